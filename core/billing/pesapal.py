"""Async client for Pesapal API 3.0 (refs §5): tokens, IPN registration, orders and transaction status.

Pesapal reports many failures in the body rather than the HTTP status (even an error object under HTTP 200),
so every reply is judged by its ``error`` object and body ``status`` as well as its HTTP code. Payment state
must always come from :meth:`PesapalClient.status`: an IPN only says *that* something changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

import httpx
import structlog
from pydantic import ValidationError

from core.billing.pesapal_wire import (
    OrderCreated,
    PesapalAuthError,
    PesapalCredentials,
    PesapalError,
    PesapalUnavailable,
    TransactionStatus,
    body_status,
    decode_json,
    encode_json,
    error_object,
    order_payload,
    parse_datetime,
)

__all__ = [
    "LIVE_URL",
    "SANDBOX_URL",
    "OrderCreated",
    "PesapalAuthError",
    "PesapalClient",
    "PesapalCredentials",
    "PesapalError",
    "PesapalUnavailable",
    "TransactionStatus",
]

log = structlog.get_logger(__name__)

SANDBOX_URL: Final = "https://cybqa.pesapal.com/pesapalv3"
LIVE_URL: Final = "https://pay.pesapal.com/v3"

TOKEN_PATH = "/api/Auth/RequestToken"
REGISTER_IPN_PATH = "/api/URLSetup/RegisterIPN"
IPN_LIST_PATH = "/api/URLSetup/GetIpnList"
SUBMIT_ORDER_PATH = "/api/Transactions/SubmitOrderRequest"
STATUS_PATH = "/api/Transactions/GetTransactionStatus"

# Tokens live at most 5 minutes (refs §5.2). Refreshing a minute early keeps a token from dying in flight;
# a lifetime shorter than that margin (test doubles) is used for half its length instead.
MAX_TOKEN_SECONDS = 300.0
EARLY_REFRESH_SECONDS = 60.0

BAD_CREDENTIAL_CODES = frozenset({"invalid_consumer_key_or_secret_provided"})
TOKEN_REJECTED_CODES = frozenset({"invalid_api_credentials_provided"})

Operation = Literal["token", "ipn_list", "register_ipn", "submit_order", "status"]
_WHAT: Mapping[Operation, str] = {
    "token": "token request",
    "ipn_list": "IPN list request",
    "register_ipn": "IPN registration",
    "submit_order": "order submission",
    "status": "transaction status request",
}
_HINTS: Mapping[str, str] = {
    "duplicate_order_reference": "Each order needs a new merchant reference.",
    "invalid_notification_id": "The notification_id is not registered here: call ensure_ipn() again.",
    "payment_details_not_found": "Check the order tracking id belongs to this Pesapal environment.",
}
_BAD_CREDENTIALS = (
    "Pesapal rejected the consumer key or secret: check both were copied from the Pesapal merchant "
    "dashboard and belong to the same environment (sandbox or live) as the base URL."
)


class _TokenRejected(PesapalAuthError):
    """A bearer token Pesapal no longer accepts; handled inside the client by one refresh and retry."""


class PesapalClient:
    """One merchant account. ``http`` is owned by the caller; each call uses ``timeout`` seconds."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        credentials: PesapalCredentials,
        timeout: float = 20.0,
    ) -> None:
        url = httpx.URL(base_url.strip())
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"Pesapal base URL must be absolute, like {LIVE_URL} (live) or {SANDBOX_URL} (sandbox); "
                f"got {base_url!r}"
            )
        self._http = http
        self._base_url = str(url).rstrip("/")
        self._credentials = credentials
        self._timeout = timeout
        self._token: str | None = None
        self._refresh_at = 0.0
        self._token_lock = asyncio.Lock()
        self._ipn_lock = asyncio.Lock()
        self._ipn_ids: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"PesapalClient(base_url={self._base_url!r})"

    # --- auth ----------------------------------------------------------------------------------------------

    def _cached_token(self) -> str | None:
        if self._token is not None and time.monotonic() < self._refresh_at:
            return self._token
        return None

    async def token(self) -> str:
        """A bearer token, fetched at most once at a time however many callers are waiting for it."""
        cached = self._cached_token()
        if cached is not None:
            return cached
        async with self._token_lock:
            cached = self._cached_token()
            if cached is not None:
                return cached
            token, lifetime = await self._request_token()
            self._token = token
            self._refresh_at = time.monotonic() + max(lifetime - EARLY_REFRESH_SECONDS, lifetime / 2)
            return token

    def _drop_token(self, token: str) -> None:
        # Only the token that failed: a concurrent caller may already have replaced it with a fresh one.
        if self._token == token:
            self._token = None

    async def _request_token(self) -> tuple[str, float]:
        creds = self._credentials
        body = {"consumer_key": creds.consumer_key, "consumer_secret": creds.consumer_secret}
        data = await self._exchange("POST", TOKEN_PATH, op="token", body=body)
        token = data.get("token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token.strip():
            raise PesapalUnavailable("Pesapal answered the token request without a token: try again shortly.")
        return token.strip(), _lifetime(data.get("expiryDate"))

    async def _authed(
        self,
        method: str,
        path: str,
        *,
        op: Operation,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        refreshed = False
        while True:
            token = await self.token()
            try:
                return await self._exchange(method, path, op=op, body=body, params=params, token=token)
            except _TokenRejected as exc:
                # Pesapal refused the request before doing anything, so even an order may be sent again.
                self._drop_token(token)
                if refreshed:
                    raise PesapalAuthError(
                        f"Pesapal rejected a freshly issued token for the {_WHAT[op]}: check the base URL "
                        "and that the consumer key and secret belong to that environment.",
                        code=exc.code,
                        http_status=exc.http_status,
                    ) from None
                refreshed = True
                log.info("pesapal.token.rejected", op=op)

    # --- API -----------------------------------------------------------------------------------------------

    async def ensure_ipn(self, url: str, *, method: Literal["GET", "POST"] = "POST") -> str:
        """The ipn_id for ``url``: an existing registration when Pesapal has one, else a new one.

        Pesapal issues a new id on every registration and has no way to delete one, so registering again
        on every deploy would pile them up.
        """
        if method not in ("GET", "POST"):
            raise ValueError(f"IPN method must be 'GET' or 'POST'; got {method!r}")
        parts = httpx.URL(url.strip())
        if parts.scheme not in ("http", "https") or not parts.host:
            raise ValueError(f"IPN URL must be an absolute public http(s) URL; got {url!r}")
        url = url.strip()
        async with self._ipn_lock:
            known = self._ipn_ids.get((url, method))
            if known is not None:
                return known
            listed = await self._authed("GET", IPN_LIST_PATH, op="ipn_list")
            if not isinstance(listed, list):
                raise PesapalError(
                    "Pesapal's IPN list was not a list: check the base URL points at the Pesapal API.",
                    retry=True,
                )
            ipn_id = _find_ipn(listed, url, method)
            if ipn_id is None:
                data = await self._authed(
                    "POST",
                    REGISTER_IPN_PATH,
                    op="register_ipn",
                    body={"url": url, "ipn_notification_type": method},
                )
                ipn_id = _text(data.get("ipn_id") if isinstance(data, Mapping) else None)
                if ipn_id is None:
                    raise PesapalError(
                        "Pesapal answered the IPN registration without an ipn_id: try again shortly.",
                        retry=True,
                    )
                log.info("pesapal.ipn.registered", url=url, method=method, ipn_id=ipn_id)
            self._ipn_ids[(url, method)] = ipn_id
            return ipn_id

    async def submit_order(
        self,
        *,
        merchant_reference: str,
        amount: Decimal,
        currency: str,
        description: str,
        callback_url: str,
        notification_id: str,
        email: str | None,
        phone: str | None,
        first_name: str | None = None,
        account_number: str | None = None,
    ) -> OrderCreated:
        """Create an order; send the payer to ``redirect_url``. ``account_number`` enables the payer's card
        recurring opt-in (refs §5.7)."""
        body = order_payload(
            merchant_reference=merchant_reference,
            amount=amount,
            currency=currency,
            description=description,
            callback_url=callback_url,
            notification_id=notification_id,
            email=email,
            phone=phone,
            first_name=first_name,
            account_number=account_number,
        )
        data = await self._authed("POST", SUBMIT_ORDER_PATH, op="submit_order", body=body)
        fields = data if isinstance(data, Mapping) else {}
        tracking_id = _text(fields.get("order_tracking_id"))
        redirect_url = _text(fields.get("redirect_url"))
        if tracking_id is None or redirect_url is None:
            raise PesapalError(
                f"Pesapal accepted order {merchant_reference} but returned no tracking id or payment link, "
                "so it cannot be paid or tracked: submit it again under a new merchant reference.",
                retry=True,
            )
        echoed = _text(fields.get("merchant_reference"))
        if echoed is not None and echoed != merchant_reference:
            log.warning("pesapal.order.reference_mismatch", sent=merchant_reference, echoed=echoed)
        log.info("pesapal.order.submitted", merchant_reference=merchant_reference, tracking_id=tracking_id)
        return OrderCreated(tracking_id, merchant_reference, redirect_url)

    async def status(self, order_tracking_id: str) -> TransactionStatus:
        """Pesapal's current view of an order. Check amount, currency and reference against our own order."""
        tracking_id = order_tracking_id.strip()
        if not tracking_id:
            raise ValueError("order_tracking_id is required: use the id submit_order() returned.")
        data = await self._authed("GET", STATUS_PATH, op="status", params={"orderTrackingId": tracking_id})
        try:
            result = TransactionStatus.model_validate(data)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
            log.warning("pesapal.status.unreadable", tracking_id=tracking_id, fields=fields)
            raise PesapalError(
                f"Pesapal's status reply for {tracking_id} was missing or had unreadable fields "
                f"({', '.join(fields) or 'not an object'}): try again shortly.",
                retry=True,
            ) from None
        if not result.consistent:
            log.warning(
                "pesapal.status.inconsistent",
                tracking_id=tracking_id,
                status_code=result.status_code,
                description=result.payment_status_description,
            )
        return result

    # --- HTTP ----------------------------------------------------------------------------------------------

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        op: Operation,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> Any:
        """One HTTP exchange: the decoded JSON of a successful reply, or the matching PesapalError."""
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = encode_json(body)
        what = _WHAT[op]
        try:
            response = await self._http.request(
                method,
                f"{self._base_url}{path}",
                content=content,
                params=params,
                headers=headers,
                timeout=self._timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            log.warning("pesapal.unreachable", op=op, error=type(exc).__name__)
            raise PesapalUnavailable(
                f"Could not connect to Pesapal at {self._base_url} for the {what}; nothing was sent. "
                "Check the base URL and the network, then try again."
            ) from None
        except httpx.RequestError as exc:
            log.warning("pesapal.no_answer", op=op, error=type(exc).__name__)
            detail = (
                " The order may have been created: retrying with the same merchant reference is refused "
                "as a duplicate if it was, so check it or use a new reference."
                if op == "submit_order"
                else ""
            )
            raise PesapalUnavailable(
                f"Pesapal did not answer the {what} in time; try again shortly.{detail}"
            ) from None
        data = decode_json(response.content)
        status = body_status(data)
        if (
            response.is_success
            and data is not None
            and error_object(data) is None
            and (status is None or status < 400)
        ):
            return data
        error = _error_for(op, response.status_code, data, self._base_url)
        if not isinstance(error, _TokenRejected):
            log.warning(
                "pesapal.error",
                op=op,
                error=type(error).__name__,
                code=error.code,
                http_status=response.status_code,
                body_status=status,
            )
        raise error


def _error_for(op: Operation, http_status: int, data: object, base_url: str) -> PesapalError:
    what = _WHAT[op]
    found = error_object(data)
    code, detail = found if found is not None else (None, "")
    # Under HTTP 200 the body's own status is the only hint of what kind of failure this is.
    status = http_status if not 200 <= http_status < 300 else (body_status(data) or http_status)
    if op == "token" and (
        code in BAD_CREDENTIAL_CODES or code in TOKEN_REJECTED_CODES or status in (401, 403)
    ):
        return PesapalAuthError(_BAD_CREDENTIALS, code=code, http_status=http_status)
    if code in BAD_CREDENTIAL_CODES:
        return PesapalAuthError(_BAD_CREDENTIALS, code=code, http_status=http_status)
    if code in TOKEN_REJECTED_CODES or status == 401:
        return _TokenRejected(
            f"Pesapal rejected the bearer token for the {what}.", code=code, http_status=http_status
        )
    said = f": {detail}" if detail else ""
    tag = f" ({code})" if code else f" (HTTP {status})"
    if status >= 500 or status == 429:
        return PesapalUnavailable(
            f"Pesapal failed the {what}{said}{tag}; try again shortly.", code=code, http_status=http_status
        )
    if code is None and data is None:
        return PesapalError(
            f"Pesapal's answer to the {what} was not JSON (HTTP {http_status}): check the base URL "
            f"{base_url} points at the Pesapal API, such as {LIVE_URL}.",
            http_status=http_status,
        )
    if code is None and status in (404, 405):
        return PesapalError(
            f"Pesapal's {what} URL answered HTTP {status}: check the base URL {base_url} points at the "
            f"Pesapal API, such as {LIVE_URL}.",
            http_status=http_status,
        )
    hint = _HINTS.get(code or "", "Fix the request before sending it again.")
    return PesapalError(f"Pesapal refused the {what}{said}{tag}. {hint}", code=code, http_status=http_status)


def _lifetime(expiry_date: object) -> float:
    """Seconds a token has left, from Pesapal's absolute UTC ``expiryDate``."""
    try:
        expiry = parse_datetime(expiry_date)
    except ValueError:
        expiry = None
    if expiry is None:
        log.warning("pesapal.token.no_expiry")
        return MAX_TOKEN_SECONDS
    seconds = (expiry - datetime.now(UTC)).total_seconds()
    if seconds <= 0:
        # Our clock is ahead of Pesapal's. Assume the documented lifetime: a wrong guess costs one 401 and
        # a refresh, whereas not caching would fetch a token for every call.
        log.warning("pesapal.token.expiry_in_past", seconds=round(seconds, 1))
        return MAX_TOKEN_SECONDS
    return min(seconds, MAX_TOKEN_SECONDS)


def _same_url(listed: object, url: str) -> bool:
    if not isinstance(listed, str):
        return False
    return listed.strip().rstrip("/").casefold() == url.rstrip("/").casefold()


def _ipn_method(item: Mapping[str, Any]) -> str | None:
    """GET/POST of a listed registration, if it says; field names beyond ``url``/``ipn_id`` are unverified."""
    for name in ("ipn_notification_type_description", "ipn_notification_type"):
        value = item.get(name)
        if isinstance(value, str) and value.strip().upper() in ("GET", "POST"):
            return value.strip().upper()
    kind = item.get("notification_type")
    if isinstance(kind, int) and not isinstance(kind, bool):
        return {0: "GET", 1: "POST"}.get(kind)
    return None


def _find_ipn(listed: list[Any], url: str, method: str) -> str | None:
    for item in listed:
        if not isinstance(item, Mapping) or not _same_url(item.get("url"), url):
            continue
        if _ipn_method(item) not in (None, method):
            continue
        state = item.get("ipn_status_description")
        if isinstance(state, str) and state.strip().lower() != "active":
            continue
        ipn_id = _text(item.get("ipn_id"))
        if ipn_id is not None:
            return ipn_id
    return None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None
