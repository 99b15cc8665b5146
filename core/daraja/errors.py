"""Daraja errors, classified by what the caller should do about them.

Each subclass has a ``kind`` so front ends can pick a rendering without matching on classes, and every message
says what to change or whether to wait. Messages never carry credentials, tokens or request bodies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal, TypedDict

ErrorKind = Literal["auth", "validation", "business", "throttle", "transient", "mode", "config"]

# Daraja reports an expired, revoked or wrong-product token under three codes depending on the API; all of
# them mean the request was refused before processing, so a fresh token and one retry are safe even for an
# STK push.
INVALID_TOKEN_CODES = frozenset({"404.001.03", "401.002.01", "400.003.01"})

_FIELD_RE = re.compile(r"\bInvalid\s+([A-Za-z][A-Za-z0-9_]*)")


class _Context(TypedDict):
    error_code: str | None
    http_status: int | None
    request_id: str | None
    daraja_message: str | None


class DarajaError(Exception):
    kind: ClassVar[ErrorKind]

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        field: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        daraja_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.field = field
        self.http_status = http_status
        self.request_id = request_id
        # Daraja's own errorMessage, kept apart from the friendly message so callers can match on it
        # (e.g. "The transaction is being processed") without parsing our wording.
        self.daraja_message = daraja_message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r}, "
            f"http_status={self.http_status!r}, request_id={self.request_id!r})"
        )


class DarajaAuthError(DarajaError):
    kind: ClassVar[ErrorKind] = "auth"


class DarajaValidationError(DarajaError):
    kind: ClassVar[ErrorKind] = "validation"


class DarajaBusinessError(DarajaError):
    kind: ClassVar[ErrorKind] = "business"


class DarajaModeError(DarajaError):
    """Refused before anything was sent: a test-mode request bound for the production host, or a live
    one bound for a simulator or the sandbox. A configuration fault, never a customer's."""

    kind: ClassVar[ErrorKind] = "mode"


class DarajaDuplicateRequestError(DarajaBusinessError):
    """``500.002.1001 Duplicate OriginatorConversationID``: Daraja already holds a request (a B2C payout)
    with this id. Not a failure: the first request is being processed or was, so the caller waits for its
    result or asks Transaction Status, and never pays again under a new id."""


class DarajaUrlsAlreadyRegisteredError(DarajaBusinessError):
    """C2B register URL refused because URLs are already registered for the short code (production allows
    one registration; changing it goes through the portal's URL management or Safaricom support)."""


class DarajaCertificateError(DarajaError):
    """The M-Pesa certificate needed for a SecurityCredential is missing or unusable. Raised before
    anything is sent: a configuration fault for the operator, never a customer's."""

    kind: ClassVar[ErrorKind] = "config"


class DarajaThrottleError(DarajaError):
    kind: ClassVar[ErrorKind] = "throttle"


class DarajaTransientError(DarajaError):
    """The call failed for a reason that may go away on its own.

    For an STK push this means "outcome unknown" unless ``outcome_unknown`` is False: the prompt may already
    be on the customer's phone, so the caller must resolve it with an STK query instead of pushing again.
    """

    kind: ClassVar[ErrorKind] = "transient"

    def __init__(
        self,
        message: str,
        *,
        outcome_unknown: bool = True,
        error_code: str | None = None,
        field: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        daraja_message: str | None = None,
    ) -> None:
        super().__init__(
            message,
            error_code=error_code,
            field=field,
            http_status=http_status,
            request_id=request_id,
            daraja_message=daraja_message,
        )
        self.outcome_unknown = outcome_unknown

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, outcome_unknown={self.outcome_unknown!r})"


_TOKEN_REJECTED = (
    "Daraja rejected the access token even after a fresh one was fetched: check the app on the Daraja "
    "portal has the {product} product enabled and that the keys belong to the same "
    "environment (sandbox or production) as the base URL."
)
STK_PRODUCT = "M-Pesa Express (Lipa na M-Pesa)"

_FIELD_MESSAGES = {
    "BusinessShortCode": (
        "Daraja says the business short code is invalid: check it is the go-live short code "
        "(for a Till, the Head Office/Store number, not the till)."
    ),
    "Password": (
        "Daraja says the password is invalid: check the passkey matches the business short code "
        "(for a Till, the Head Office/Store number)."
    ),
    "Timestamp": "Daraja rejected the timestamp: check the server clock is correct, then try again.",
    "Amount": "Daraja says the amount is invalid: it must be a whole number of shillings from 1 to 250,000.",
    "PhoneNumber": (
        "Daraja says the phone number is invalid: use a Safaricom number in the form 2547XXXXXXXX "
        "or 2541XXXXXXXX."
    ),
    "PartyA": (
        "Daraja says the paying phone number is invalid: use a Safaricom number in the form 2547XXXXXXXX "
        "or 2541XXXXXXXX."
    ),
    "PartyB": (
        "Daraja says PartyB is invalid: for a Paybill it is the paybill number, for a Till it is the "
        "till number."
    ),
    "CallBackURL": (
        "Daraja rejected the callback URL: it must be a public HTTPS address that does not contain the words "
        "M-PESA, mpesa, Safaricom, exe, exec, cmd, sql or query."
    ),
    "TransactionType": (
        "Daraja says the transaction type is invalid: use CustomerPayBillOnline for a Paybill and "
        "CustomerBuyGoodsOnline for a Till."
    ),
    "AccountReference": "Daraja says the account reference is invalid: use up to 12 letters and digits.",
    "TransactionDesc": "Daraja says the description is invalid: use up to 13 letters and digits.",
    "CheckoutRequestID": (
        "Daraja says the CheckoutRequestID is invalid: use the one returned by the STK push."
    ),
}


def extract_field(error_message: str | None) -> str | None:
    """The ``<Field>`` of Daraja's ``Bad Request - Invalid <Field>`` messages."""
    if not error_message:
        return None
    match = _FIELD_RE.search(error_message)
    return match.group(1) if match else None


def error_from_envelope(
    *,
    error_code: str | None,
    error_message: str | None,
    http_status: int | None,
    request_id: str | None,
    retry_hint: str = "Try again shortly.",
    product: str = STK_PRODUCT,
    field_messages: Mapping[str, str] | None = None,
) -> DarajaError:
    """Turn Daraja's ``{requestId, errorCode, errorMessage}`` envelope into the matching error class.

    ``retry_hint`` ends the message of a transient error, so an STK push can say its outcome is unknown.
    ``product`` names the Daraja product a rejected token may lack, and ``field_messages`` replaces the
    STK wording of ``Invalid <Field>`` errors for other APIs (where PartyB is a phone, not a till).
    """
    code = (error_code or "").strip()
    text = (error_message or "").strip()
    common = _Context(
        error_code=code or None, http_status=http_status, request_id=request_id, daraja_message=text or None
    )
    lowered = text.lower()

    if code in INVALID_TOKEN_CODES:
        return DarajaAuthError(_TOKEN_REJECTED.format(product=product), **common)
    if code.startswith("400.008."):
        return DarajaAuthError(
            "Daraja rejected the token request (invalid grant or authentication type): check the base URL "
            "has no stray characters or spaces.",
            **common,
        )
    if code == "404.001.04":
        return DarajaAuthError(
            "Daraja rejected the authentication header: check the base URL points at the Daraja API.",
            **common,
        )
    if code == "400.002.02":
        field = extract_field(text)
        messages = _FIELD_MESSAGES if field_messages is None else field_messages
        message = messages.get(field or "") or (
            f"Daraja says the {field} is invalid."
            if field
            else f"Daraja rejected the request as invalid: {text}."
        )
        return DarajaValidationError(message, field=field, **common)
    if code in {"400.002.05", "400.003.02"}:
        return DarajaValidationError(
            f"Daraja rejected the request as malformed ({text or 'Bad Request'}).", **common
        )
    if code == "500.001.1001":
        return _business_error(lowered, text, common)
    if code == "500.002.1001" or "duplicate originatorconversationid" in lowered:
        return DarajaDuplicateRequestError(
            "Daraja already has a request with this OriginatorConversationID, so the payout was sent "
            "before: do not treat it as failed and do not send it under a new id. Wait for its result, "
            "or check it with a transaction status query.",
            **common,
        )
    if code == "500.003.1001" and ("already registered" in lowered or "duplicate notification" in lowered):
        return DarajaUrlsAlreadyRegisteredError(
            "Daraja already has C2B URLs registered for this short code. In production they can be "
            "registered once: delete them under URL management on the Daraja portal (or ask "
            "apisupport@safaricom.co.ke), then register again.",
            **common,
        )
    if code in {"500.003.02", "500.003.03"} or http_status == 429:
        if "quota" in lowered:
            message = "Daraja's request quota for this app is used up: wait a while, then try again."
        elif "busy" in lowered:
            message = "Daraja is busy: wait a few minutes, then try again."
        else:
            message = "Daraja is limiting how fast this app can send requests: wait a moment, then try again."
        return DarajaThrottleError(message, **common)
    if code.startswith(("404.", "405.")):
        return DarajaValidationError(
            "Daraja does not recognise this request URL: check the base URL points at the Daraja API "
            "(for example https://api.safaricom.co.ke).",
            **common,
        )
    if http_status is not None and 400 <= http_status < 500:
        return DarajaValidationError(
            f"Daraja rejected the request: {text or f'HTTP {http_status}'}.", **common
        )
    return DarajaTransientError(
        f"Daraja had an internal error ({text or f'HTTP {http_status}'}). {retry_hint}",
        outcome_unknown=True,
        **common,
    )


def _business_error(lowered: str, text: str, common: _Context) -> DarajaBusinessError:
    if "merchant does not exist" in lowered:
        message = (
            "Daraja does not know this business short code: check it is the go-live short code (for a Till, "
            "the Head Office/Store number) and that the keys are for the same environment (sandbox or "
            "production)."
        )
    elif "wrong credentials" in lowered:
        message = (
            "Daraja says the password is wrong: check the passkey matches the business short code "
            "(for a Till, the Head Office/Store number)."
        )
    elif "unable to lock subscriber" in lowered:
        message = "The customer already has an M-Pesa prompt open: wait a minute, then try again."
    elif "does not exist" in lowered:
        message = "Daraja has no record of this STK push: the CheckoutRequestID is unknown or has expired."
    elif "being processed" in lowered:
        message = "The customer has not finished the M-Pesa prompt yet: check again in a few seconds."
    else:
        message = f"Daraja declined the request: {text or 'no reason given'}."
    return DarajaBusinessError(message, **common)
