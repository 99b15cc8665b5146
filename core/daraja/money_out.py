"""Requests and synchronous answers of Daraja's money-out APIs: B2C payment (v3), C2B URL registration,
Transaction Status, Account Balance and Reversal.

Every one of these is asynchronous: a ``ResponseCode "0"`` answer only means Daraja accepted the request,
and the outcome arrives later on the ResultURL (or the QueueTimeOutURL); see :mod:`core.daraja.results`.

Amounts are whole shillings, strictly: a float or a ``"10.00"`` string is refused here rather than by Daraja
as "Invalid Amount". The B2C ``OriginatorConversationID`` is the caller's idempotency key: it is sent exactly
as given and never minted here, so a retry of an unknown outcome reuses it and Daraja refuses a second
payout with ``500.002.1001`` (:class:`~core.daraja.errors.DarajaDuplicateRequestError`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.daraja.app import AppCredentials, InitiatorCredentials
from core.daraja.errors import DarajaBusinessError, DarajaTransientError
from core.daraja.results import text_value
from core.daraja.schemas import Msisdn, _http_url

B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
C2B_REGISTER_PATHS = {"v1": "/mpesa/c2b/v1/registerurl", "v2": "/mpesa/c2b/v2/registerurl"}
TRANSACTION_STATUS_PATH = "/mpesa/transactionstatus/v1/query"
ACCOUNT_BALANCE_PATH = "/mpesa/accountbalance/v1/query"
REVERSAL_PATH = "/mpesa/reversal/v1/request"

MoneyOutOperation = Literal["b2c", "c2b_register", "transaction_status", "account_balance", "reversal"]

# Keyed by MoneyOutOperation (typed as str so the client's table of all operations can include them).

WHAT: dict[str, str] = {
    "b2c": "B2C payout",
    "c2b_register": "C2B URL registration",
    "transaction_status": "transaction status query",
    "account_balance": "account balance query",
    "reversal": "reversal",
}

# What to do when the request may or may not have reached Daraja.
RETRY_HINTS: dict[str, str] = {
    "b2c": (
        "Daraja may already have the payout: send it again with the same OriginatorConversationID (never a "
        "new one), or check it with a transaction status query."
    ),
    "c2b_register": (
        "The URLs may have been registered: check them on the Daraja portal before registering again."
    ),
    "transaction_status": "Try again shortly.",
    "account_balance": "Try again shortly.",
    "reversal": (
        "Daraja may already have the reversal: check the original transaction with a transaction status "
        "query before sending it again."
    ),
}

PRODUCTS: dict[str, str] = {
    "b2c": "B2C (Business to Customer)",
    "c2b_register": "C2B (Customer to Business)",
    "transaction_status": "Transaction Status",
    "account_balance": "Account Balance",
    "reversal": "Reversal",
}

_URL_RULES = (
    "it must be a public HTTPS address that does not contain the words M-PESA, mpesa, Safaricom, exe, exec, "
    "cmd, sql or query."
)

# Daraja's "Bad Request - Invalid <Field>" for these APIs, in words that fit them (the STK wording would send
# a merchant looking for a till number when a payout's PartyB, the customer's phone, is wrong).
FIELD_MESSAGES: dict[str, str] = {
    "SecurityCredential": (
        "Daraja says the security credential is invalid: check the initiator password and that the "
        "certificate is the one for this environment (sandbox or production)."
    ),
    "InitiatorName": (
        "Daraja says the initiator name is invalid: use the API operator's username from the M-Pesa "
        "organisation portal."
    ),
    "Initiator": (
        "Daraja says the initiator name is invalid: use the API operator's username from the M-Pesa "
        "organisation portal."
    ),
    "PartyA": "Daraja says PartyA is invalid: it is the organisation short code the request acts for.",
    "PartyB": (
        "Daraja says the recipient's phone number is invalid: use a Safaricom number in the form "
        "2547XXXXXXXX or 2541XXXXXXXX."
    ),
    "Amount": "Daraja says the amount is invalid: it must be a whole number of shillings.",
    "Remarks": "Daraja says the remarks are invalid: use 2 to 100 letters, digits and spaces.",
    "Occassion": "Daraja says the occasion is invalid: use up to 100 letters, digits and spaces.",
    "Occasion": "Daraja says the occasion is invalid: use up to 100 letters, digits and spaces.",
    "CommandID": (
        "Daraja says the command is invalid: check the Daraja app has this product enabled for the "
        "short code."
    ),
    "TransactionID": "Daraja says the transaction ID is invalid: use the 10-character M-Pesa receipt.",
    "OriginatorConversationID": (
        "Daraja says the OriginatorConversationID is invalid: use letters, digits, '-' and '_' only."
    ),
    "ShortCode": "Daraja says the short code is invalid: use the organisation's paybill or till short code.",
    "ReceiverParty": "Daraja says the receiver party is invalid: it is the organisation short code.",
    "IdentifierType": "Daraja says the identifier type is invalid: use 4 for an organisation short code.",
    "RecieverIdentifierType": "Daraja says the receiver identifier type is invalid: use 11.",
    "ResponseType": "Daraja says the response type is invalid: use Completed or Cancelled.",
    "ResultURL": f"Daraja rejected the result URL: {_URL_RULES}",
    "QueueTimeOutURL": f"Daraja rejected the queue timeout URL: {_URL_RULES}",
    "ConfirmationURL": f"Daraja rejected the confirmation URL: {_URL_RULES}",
    "ValidationURL": f"Daraja rejected the validation URL: {_URL_RULES}",
}


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True)


class _ResultUrls(_Request):
    result_url: str
    timeout_url: str
    remarks: str = Field(default="OK", min_length=2, max_length=100)

    @field_validator("result_url", "timeout_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class B2CPaymentRequest(_ResultUrls):
    """One payout to a customer's M-Pesa.

    ``originator_conversation_id`` is the idempotency key: keep it with the payout and send the same value
    on any retry. Limits per refs/daraja.md §7: KES 10 to 250,000 per payout.
    """

    originator_conversation_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    phone: Msisdn
    amount: int = Field(strict=True, ge=10, le=250_000)
    command: Literal["BusinessPayment", "SalaryPayment", "PromotionPayment"] = "BusinessPayment"
    occasion: str | None = Field(default=None, min_length=1, max_length=100)


class TransactionStatusRequest(_ResultUrls):
    """Ask how a transaction ended: by its receipt (``transaction_id``), or, for a payout whose request
    outcome is unknown, by the ``original_conversation_id`` it was sent with."""

    transaction_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{10}$")
    original_conversation_id: str | None = Field(default=None, min_length=1, max_length=64)
    identifier_type: Literal["1", "2", "4"] = "4"
    occasion: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_reference(self) -> TransactionStatusRequest:
        if self.transaction_id is None and self.original_conversation_id is None:
            raise ValueError("give the transaction_id (receipt) or the original_conversation_id")
        return self


class AccountBalanceRequest(_ResultUrls):
    identifier_type: Literal["1", "2", "4"] = "4"


class ReversalRequest(_ResultUrls):
    """Reverse a transaction received on the short code (the initiator needs the Org Reversals role)."""

    transaction_id: str = Field(pattern=r"^[A-Z0-9]{10}$")
    amount: int = Field(strict=True, ge=1)
    # "11" per the current docs; "4" appears in older examples (refs/daraja.md §10).
    receiver_identifier_type: Literal["11", "4"] = "11"
    occasion: str | None = Field(default=None, min_length=1, max_length=100)


class C2BRegisterRequest(_Request):
    """Where Daraja sends a paybill's or till's incoming payments.

    ``response_type`` is what M-Pesa does when the validation URL does not answer in time. v1 by default:
    integrators report v2 failing with a product mismatch and Safaricom support pointing them to v1.
    """

    confirmation_url: str
    validation_url: str
    response_type: Literal["Completed", "Cancelled"] = "Completed"
    version: Literal["v1", "v2"] = "v1"

    @field_validator("confirmation_url", "validation_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class RequestAccepted(BaseModel):
    """Daraja accepted an asynchronous request; its result comes to the ResultURL under these ids."""

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    originator_conversation_id: str
    response_code: str
    response_description: str


class C2BUrlsRegistered(BaseModel):
    model_config = ConfigDict(frozen=True)

    originator_conversation_id: str | None
    response_code: str
    response_description: str


def b2c_body(creds: InitiatorCredentials, req: B2CPaymentRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "OriginatorConversationID": req.originator_conversation_id,
        "InitiatorName": creds.initiator_name,
        "SecurityCredential": creds.security_credential(),
        "CommandID": req.command,
        "Amount": req.amount,
        "PartyA": creds.short_code,
        "PartyB": req.phone,
        "Remarks": req.remarks,
        "QueueTimeOutURL": req.timeout_url,
        "ResultURL": req.result_url,
    }
    if req.occasion is not None:
        body["Occassion"] = req.occasion  # sic: the documented spelling
    return body


def transaction_status_body(creds: InitiatorCredentials, req: TransactionStatusRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Initiator": creds.initiator_name,
        "SecurityCredential": creds.security_credential(),
        "CommandID": "TransactionStatusQuery",
        "PartyA": creds.short_code,
        "IdentifierType": req.identifier_type,
        "ResultURL": req.result_url,
        "QueueTimeOutURL": req.timeout_url,
        "Remarks": req.remarks,
    }
    if req.transaction_id is not None:
        body["TransactionID"] = req.transaction_id
    if req.original_conversation_id is not None:
        body["OriginalConversationID"] = req.original_conversation_id
    if req.occasion is not None:
        body["Occasion"] = req.occasion
    return body


def account_balance_body(creds: InitiatorCredentials, req: AccountBalanceRequest) -> dict[str, Any]:
    return {
        "Initiator": creds.initiator_name,
        "SecurityCredential": creds.security_credential(),
        "CommandID": "AccountBalance",
        "PartyA": creds.short_code,
        "IdentifierType": req.identifier_type,
        "Remarks": req.remarks,
        "QueueTimeOutURL": req.timeout_url,
        "ResultURL": req.result_url,
    }


def reversal_body(creds: InitiatorCredentials, req: ReversalRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Initiator": creds.initiator_name,
        "SecurityCredential": creds.security_credential(),
        "CommandID": "TransactionReversal",
        "TransactionID": req.transaction_id,
        "Amount": req.amount,
        "ReceiverParty": creds.short_code,
        "RecieverIdentifierType": req.receiver_identifier_type,  # sic: the documented spelling
        "ResultURL": req.result_url,
        "QueueTimeOutURL": req.timeout_url,
        "Remarks": req.remarks,
    }
    if req.occasion is not None:
        body["Occasion"] = req.occasion
    return body


def c2b_register_body(creds: AppCredentials, req: C2BRegisterRequest) -> dict[str, Any]:
    return {
        "ShortCode": creds.short_code,
        "ResponseType": req.response_type,
        "ConfirmationURL": req.confirmation_url,
        "ValidationURL": req.validation_url,
    }


def parse_accepted(data: dict[str, Any], op: MoneyOutOperation) -> RequestAccepted:
    """The synchronous answer of B2C, Transaction Status, Account Balance or Reversal.

    A non-zero ResponseCode is a refusal. An answer without a ResponseCode or without the ids is an unknown
    outcome: Daraja may be processing a request we cannot track.
    """
    response_code = text_value(data.get("ResponseCode"))
    description = text_value(data.get("ResponseDescription")) or ""
    what = WHAT[op]
    if response_code is None:
        raise DarajaTransientError(
            f"Daraja answered the {what} without a ResponseCode. {RETRY_HINTS[op]}",
            outcome_unknown=True,
            http_status=200,
        )
    if response_code != "0":
        raise DarajaBusinessError(
            f"Daraja did not accept the {what}: {description or 'no reason given'}.",
            error_code=response_code,
            http_status=200,
            daraja_message=description or None,
        )
    conversation_id = text_value(data.get("ConversationID"))
    originator = text_value(data.get("OriginatorConversationID"))
    if not conversation_id or not originator:
        raise DarajaTransientError(
            f"Daraja accepted the {what} but did not return its conversation IDs, so its result cannot be "
            f"matched. {RETRY_HINTS[op]}",
            outcome_unknown=True,
            http_status=200,
        )
    return RequestAccepted(
        conversation_id=conversation_id,
        originator_conversation_id=originator,
        response_code=response_code,
        response_description=description,
    )


def parse_c2b_registered(data: dict[str, Any]) -> C2BUrlsRegistered:
    response_code = text_value(data.get("ResponseCode"))
    description = text_value(data.get("ResponseDescription")) or ""
    if response_code is None:
        raise DarajaTransientError(
            f"Daraja answered the C2B URL registration without a ResponseCode. {RETRY_HINTS['c2b_register']}",
            outcome_unknown=True,
            http_status=200,
        )
    if response_code != "0":
        raise DarajaBusinessError(
            f"Daraja did not register the C2B URLs: {description or 'no reason given'}.",
            error_code=response_code,
            http_status=200,
            daraja_message=description or None,
        )
    return C2BUrlsRegistered(
        # "OriginatorCoversationID" (sic) is what the register API really returns.
        originator_conversation_id=text_value(data.get("OriginatorCoversationID"))
        or text_value(data.get("OriginatorConversationID")),
        response_code=response_code,
        response_description=description,
    )
