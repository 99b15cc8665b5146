"""Async client for Daraja OAuth, M-Pesa Express (STK push) and STK query, and the money-out APIs (B2C,
C2B URL registration, Transaction Status, Account Balance, Reversal).

The client holds no per-tenant state: each call takes the tenant's credentials, and tokens live in a
:class:`~core.daraja.tokens.TokenStore` keyed by app, so one client serves every tenant. Request bodies and
answers of the money-out APIs are built and read in :mod:`core.daraja.money_out`; this module only sends.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import structlog

import core.daraja.money_out as mo
from core.daraja.app import AppCredentials, DarajaApp, InitiatorCredentials
from core.daraja.errors import (
    INVALID_TOKEN_CODES,
    DarajaAuthError,
    DarajaBusinessError,
    DarajaError,
    DarajaModeError,
    DarajaThrottleError,
    DarajaTransientError,
    DarajaValidationError,
    error_from_envelope,
)
from core.daraja.schemas import DarajaCredentials, StkPushAccepted, StkPushRequest, StkQueryResult
from core.daraja.tokens import TokenStore

log = structlog.get_logger(__name__)

EAT = ZoneInfo("Africa/Nairobi")

OAUTH_PATH = "/oauth/v1/generate?grant_type=client_credentials"
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"

# Older Daraja docs and many real responses give expires_in as a string; fall back to the documented hour
# minus a second when it is missing altogether.
DEFAULT_EXPIRES_IN = 3599

_BAD_CREDENTIALS = (
    "Daraja rejected the consumer key or secret: check both were copied from the app on the Daraja portal "
    "and belong to the same environment (sandbox or production) as the base URL."
)

Operation = Literal["oauth", "stk_push", "stk_query"] | mo.MoneyOutOperation

_WHAT: dict[str, str] = {
    "oauth": "token request",
    "stk_push": "STK push",
    "stk_query": "STK query",
    **mo.WHAT,
}


def build_password(short_code: str, passkey: str, timestamp: str) -> str:
    """Daraja's STK password: base64 of the plain concatenation short code + passkey + timestamp."""
    return base64.b64encode(f"{short_code}{passkey}{timestamp}".encode()).decode("ascii")


def daraja_timestamp(now: datetime) -> str:
    """``YYYYMMDDHHmmss`` in East Africa Time, whatever zone the server runs in."""
    if now.tzinfo is None:
        # A naive time would be read as server-local time, the classic cause of "Invalid Timestamp" offshore.
        raise ValueError("daraja_timestamp needs a timezone-aware datetime")
    return now.astimezone(EAT).strftime("%Y%m%d%H%M%S")


def token_cache_key(creds: DarajaApp) -> str:
    """One cache entry per Daraja app and environment, short and uniform whatever the key looks like."""
    return hashlib.sha256(f"{creds.base_url}\n{creds.consumer_key}".encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=256)
def _endpoint(url: str) -> tuple[str, int | None]:
    """Where a URL's requests go, for telling the production host from others: the host lower-cased
    without a trailing dot (``api.safaricom.co.ke.`` is the same name in DNS), and its port unless it
    is a default one (80 or 443, or none given). The scheme is ignored: plain HTTP to the production
    host still reaches production. Cached: the mode guard asks on every call about the same few base
    URLs, and parsing one costs about as much as the rest of a push's own work."""
    u = httpx.URL(url)
    port = None if u.port in (None, 80, 443) else u.port
    return u.host.lower().rstrip("."), port


def check_mode(creds: DarajaApp) -> None:
    """Test mode never reaches the production host; live mode reaches nothing else. Checked before any
    request (the token's included) whenever the credentials say their mode and where production is.
    The base URL was chosen from the channel's environment and the mode is the payment's (or the
    channel's): this catches a channel that changed mode after a payment was recorded, and a setting
    that points a test environment at production (or production at a stand-in)."""
    if creds.mode is None or creds.production_url is None:
        return
    target, production = _endpoint(creds.base_url), _endpoint(creds.production_url)
    if creds.mode == "test" and target == production:
        raise DarajaModeError(
            f"Refused to send a test-mode request to the production M-Pesa host ({target[0]}): test mode "
            "reaches only the simulator or the sandbox. Check that DARAJA_SANDBOX_URL and "
            "DARAJA_SIMULATOR_URL do not point at production."
        )
    if creds.mode == "live" and target != production:
        raise DarajaModeError(
            f"Refused to send a live request to {target[0]}, which is not the production M-Pesa host "
            f"({production[0]}, DARAJA_PRODUCTION_URL): live mode never reaches a simulator or the sandbox."
        )


class DarajaClient:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        tokens: TokenStore,
        clock: Callable[[], datetime] | None = None,
        retry_backoff: Sequence[float] = (0.2, 0.6),
    ) -> None:
        """``http`` carries the timeouts; ``retry_backoff`` gives the pauses before each retry of a call
        that is safe to repeat (two for OAuth, one for STK query; never for STK push)."""
        self._http = http
        self._tokens = tokens
        self._clock = clock or _utc_now
        self._retry_backoff = tuple(retry_backoff)

    async def aclose(self) -> None:
        """Close the HTTP client: for an owner that made it for this client alone (the runtime)."""
        await self._http.aclose()

    async def stk_push(self, creds: DarajaCredentials, req: StkPushRequest) -> StkPushAccepted:
        """Send the M-Pesa prompt.

        Never retried on an uncertain failure: there is no idempotency key, so a second POST would be a
        second prompt. ``DarajaTransientError.outcome_unknown`` tells the caller to resolve the outcome with
        :meth:`stk_query` rather than push again.
        """
        timestamp = daraja_timestamp(self._clock())
        body = {
            "BusinessShortCode": creds.business_short_code,
            "Password": build_password(
                creds.business_short_code, creds.passkey.get_secret_value(), timestamp
            ),
            "Timestamp": timestamp,
            "TransactionType": creds.transaction_type,
            "Amount": req.amount,
            "PartyA": req.phone,
            "PartyB": creds.party_b,
            "PhoneNumber": req.phone,
            "CallBackURL": req.callback_url,
            "AccountReference": req.account_reference,
            "TransactionDesc": req.description,
        }
        data = await self._post(creds, STK_PUSH_PATH, body, op="stk_push", transient_retries=0)
        response_code = _text(data.get("ResponseCode"))
        description = _text(data.get("ResponseDescription")) or ""
        if response_code is None:
            raise DarajaTransientError(
                f"Daraja answered the STK push without a ResponseCode. {_retry_hint('stk_push')}",
                outcome_unknown=True,
                http_status=200,
            )
        if response_code != "0":
            raise DarajaBusinessError(
                f"Daraja did not accept the STK push: {description or 'no reason given'}.",
                error_code=response_code,
                http_status=200,
                daraja_message=description or None,
            )
        merchant_request_id = _text(data.get("MerchantRequestID"))
        checkout_request_id = _text(data.get("CheckoutRequestID"))
        if not merchant_request_id or not checkout_request_id:
            # Accepted but unidentifiable: the prompt is probably on its way, so this is not a clean failure.
            raise DarajaTransientError(
                "Daraja accepted the STK push but did not return its request IDs, so it cannot be tracked: "
                "the prompt may have been sent. Check with the customer before pushing again.",
                outcome_unknown=True,
                http_status=200,
            )
        accepted = StkPushAccepted(
            merchant_request_id=merchant_request_id,
            checkout_request_id=checkout_request_id,
            response_code=response_code,
            response_description=description,
            customer_message=_text(data.get("CustomerMessage")),
        )
        # Debug, not info: the payment row keeps the CheckoutRequestID, and an info line per push (through
        # structlog, stdlib logging and the redaction filter) cost ~0.04 ms of a push's ~0.6 ms of client
        # CPU (bench/daraja_client.py).
        log.debug("daraja.stk_push.accepted", checkout_request_id=checkout_request_id)
        return accepted

    async def stk_query(self, creds: DarajaCredentials, checkout_request_id: str) -> StkQueryResult:
        """Ask Daraja how a push ended. ``pending=True`` while the customer has not finished the prompt."""
        timestamp = daraja_timestamp(self._clock())
        body = {
            "BusinessShortCode": creds.business_short_code,
            "Password": build_password(
                creds.business_short_code, creds.passkey.get_secret_value(), timestamp
            ),
            "Timestamp": timestamp,
            "CheckoutRequestID": checkout_request_id,
        }
        try:
            data = await self._post(creds, STK_QUERY_PATH, body, op="stk_query", transient_retries=1)
        except DarajaBusinessError as exc:
            # Daraja reports "still waiting for the customer" as a 500.001.1001 error, not as a result.
            if exc.error_code == "500.001.1001" and "being processed" in (exc.daraja_message or "").lower():
                return StkQueryResult(pending=True)
            raise
        response_code = _text(data.get("ResponseCode"))
        if response_code not in (None, "0"):
            description = _text(data.get("ResponseDescription")) or "no reason given"
            raise DarajaBusinessError(
                f"Daraja did not accept the STK query: {description}.",
                error_code=response_code,
                http_status=200,
                daraja_message=description,
            )
        result_code = _text(data.get("ResultCode"))
        if result_code is None:
            return StkQueryResult(pending=True)
        return StkQueryResult(
            pending=False, result_code=result_code, result_desc=_text(data.get("ResultDesc"))
        )

    async def b2c_payment(self, creds: InitiatorCredentials, req: mo.B2CPaymentRequest) -> mo.RequestAccepted:
        """Send one payout (B2C v3). Never retried here: on ``DarajaTransientError.outcome_unknown`` the
        caller resends with the *same* OriginatorConversationID or queries its status; a
        :class:`DarajaDuplicateRequestError` means Daraja already has it (not a failure)."""
        data = await self._post(creds, mo.B2C_PATH, mo.b2c_body(creds, req), op="b2c", transient_retries=0)
        accepted = mo.parse_accepted(data, "b2c")
        if accepted.originator_conversation_id != req.originator_conversation_id:
            log.warning("daraja.b2c.originator_id_changed", conversation_id=accepted.conversation_id)
        log.info("daraja.b2c.accepted", conversation_id=accepted.conversation_id)
        return accepted

    async def register_c2b_urls(
        self, creds: AppCredentials, req: mo.C2BRegisterRequest
    ) -> mo.C2BUrlsRegistered:
        """Register the confirmation and validation URLs of ``creds.short_code``. Not retried: production
        accepts one registration, and a second attempt would answer "already registered"."""
        path = mo.C2B_REGISTER_PATHS[req.version]
        body = mo.c2b_register_body(creds, req)
        return mo.parse_c2b_registered(
            await self._post(creds, path, body, op="c2b_register", transient_retries=0)
        )

    async def transaction_status(
        self, creds: InitiatorCredentials, req: mo.TransactionStatusRequest
    ) -> mo.RequestAccepted:
        """Ask for a transaction's status; the answer comes to ``req.result_url``. Read-only, so retried
        once on a transient failure (at worst Daraja sends two results)."""
        body = mo.transaction_status_body(creds, req)
        data = await self._post(
            creds, mo.TRANSACTION_STATUS_PATH, body, op="transaction_status", transient_retries=1
        )
        return mo.parse_accepted(data, "transaction_status")

    async def account_balance(
        self, creds: InitiatorCredentials, req: mo.AccountBalanceRequest
    ) -> mo.RequestAccepted:
        """Ask for the short code's balances; the answer comes to ``req.result_url``. Retried once."""
        body = mo.account_balance_body(creds, req)
        data = await self._post(
            creds, mo.ACCOUNT_BALANCE_PATH, body, op="account_balance", transient_retries=1
        )
        return mo.parse_accepted(data, "account_balance")

    async def reversal(self, creds: InitiatorCredentials, req: mo.ReversalRequest) -> mo.RequestAccepted:
        """Ask M-Pesa to reverse a received transaction. Never retried: on an unknown outcome, check the
        original transaction with :meth:`transaction_status` before sending it again."""
        body = mo.reversal_body(creds, req)
        data = await self._post(creds, mo.REVERSAL_PATH, body, op="reversal", transient_retries=0)
        return mo.parse_accepted(data, "reversal")

    async def _post(
        self,
        creds: DarajaApp,
        path: str,
        body: dict[str, Any],
        *,
        op: Operation,
        transient_retries: int,
    ) -> dict[str, Any]:
        check_mode(creds)
        key = token_cache_key(creds)
        refreshed = False
        attempt = 0
        while True:
            try:
                token = await self._tokens.get_token(key, lambda: self._fetch_token(creds))
            except DarajaTransientError as exc:
                # Without a token the request itself was never sent, whatever happened to the OAuth call.
                raise DarajaTransientError(
                    exc.message,
                    outcome_unknown=False,
                    error_code=exc.error_code,
                    http_status=exc.http_status,
                    request_id=exc.request_id,
                    daraja_message=exc.daraja_message,
                ) from exc
            try:
                return await self._send(
                    "POST",
                    f"{creds.base_url}{path}",
                    op=op,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except DarajaAuthError as exc:
                # A rejected token means Daraja refused the request before processing it, so even an STK push
                # may be retried once; a second rejection is a configuration problem, not a stale token.
                if exc.error_code in INVALID_TOKEN_CODES and not refreshed:
                    refreshed = True
                    log.info("daraja.token.rejected", op=op, error_code=exc.error_code)
                    await self._tokens.invalidate(key, token)
                    continue
                raise
            except DarajaTransientError:
                if attempt >= transient_retries:
                    raise
                await self._backoff(attempt)
                attempt += 1

    async def _fetch_token(self, creds: DarajaApp) -> tuple[str, int]:
        attempt = 0
        while True:
            try:
                data = await self._send(
                    "GET",
                    f"{creds.base_url}{OAUTH_PATH}",
                    op="oauth",
                    auth=httpx.BasicAuth(creds.consumer_key, creds.consumer_secret.get_secret_value()),
                )
                break
            except DarajaTransientError:
                if attempt >= 2:
                    raise
                await self._backoff(attempt)
                attempt += 1
        token = _text(data.get("access_token"))
        if not token:
            raise DarajaTransientError(
                "Daraja answered the token request without an access token: try again shortly.",
                outcome_unknown=False,
                http_status=200,
            )
        expires_raw = data.get("expires_in", DEFAULT_EXPIRES_IN)
        try:
            expires_in = int(str(expires_raw).strip())
        except ValueError:
            expires_in = DEFAULT_EXPIRES_IN
        log.info("daraja.token.fetched", expires_in=expires_in)
        return token, expires_in

    async def _backoff(self, attempt: int) -> None:
        if not self._retry_backoff:
            return
        await asyncio.sleep(self._retry_backoff[min(attempt, len(self._retry_backoff) - 1)])

    async def _send(
        self,
        method: str,
        url: str,
        *,
        op: Operation,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> dict[str, Any]:
        """One HTTP exchange: the parsed JSON object of a 200, or the matching DarajaError."""
        what = _WHAT[op]
        try:
            if auth is not None:
                response = await self._http.request(method, url, json=json, headers=headers, auth=auth)
            else:
                response = await self._http.request(method, url, json=json, headers=headers)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
        ) as exc:
            # Nothing reached Daraja, so even a push can safely be tried again.
            log.warning("daraja.unreachable", op=op, error=type(exc).__name__)
            raise DarajaTransientError(
                f"Could not connect to Daraja for the {what}; nothing was sent. Try again shortly.",
                outcome_unknown=False,
            ) from None
        except httpx.TransportError as exc:
            log.warning("daraja.no_answer", op=op, error=type(exc).__name__)
            raise DarajaTransientError(
                f"Daraja did not answer the {what} in time. {_retry_hint(op)}", outcome_unknown=True
            ) from None

        data = _json_object(response)
        if response.status_code == 200 and data is not None and "errorCode" not in data:
            return data
        raise _error_for(response, data, op)


def _retry_hint(op: Operation) -> str:
    if op == "stk_push":
        return "The prompt may or may not have been sent: check it with an STK query before pushing again."
    if op in mo.RETRY_HINTS:
        return mo.RETRY_HINTS[op]
    return "Try again shortly."


def _money_out_wording(op: Operation) -> dict[str, Any]:
    if op not in mo.PRODUCTS:
        return {}
    return {"product": mo.PRODUCTS[op], "field_messages": mo.FIELD_MESSAGES}


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _error_for(response: httpx.Response, data: dict[str, Any] | None, op: Operation) -> DarajaError:
    status = response.status_code
    error_code = _text(data.get("errorCode")) if data else None
    if op == "oauth" and (status == 401 or (status == 400 and error_code is None)):
        # Daraja answers a wrong key or secret with a bare 400 (sometimes 401) rather than an error envelope.
        return DarajaAuthError(_BAD_CREDENTIALS, http_status=status)
    if data is not None and error_code is not None:
        error = error_from_envelope(
            error_code=error_code,
            error_message=_text(data.get("errorMessage")),
            http_status=status,
            request_id=_text(data.get("requestId")),
            retry_hint=_retry_hint(op),
            **_money_out_wording(op),
        )
    elif status in (404, 405):
        # Without Daraja's envelope this is almost always a base URL that points somewhere else.
        error = DarajaValidationError(
            f"Daraja's {_WHAT[op]} URL answered HTTP {status}: check the base URL points at the Daraja API "
            "(for example https://api.safaricom.co.ke).",
            http_status=status,
        )
    elif status == 429:
        error = DarajaThrottleError(
            "Daraja is limiting how fast this app can send requests: wait a moment, then try again.",
            http_status=status,
        )
    else:
        # No envelope (an HTML error page, an empty body, a proxy in between): we cannot tell what happened,
        # except that a 4xx from the gateway means the request went no further.
        refused = 400 <= status < 500
        error = DarajaTransientError(
            f"Daraja answered the {_WHAT[op]} with HTTP {status} and no readable details. "
            + ("Try again shortly." if refused else _retry_hint(op)),
            outcome_unknown=not refused,
            http_status=status,
        )
    log.warning(
        "daraja.error",
        op=op,
        kind=error.kind,
        http_status=status,
        error_code=error.error_code,
        request_id=error.request_id,
    )
    return error


def _text(value: object) -> str | None:
    """Daraja mixes numbers and strings for codes and ids; read both as trimmed text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str | int):
        text = str(value).strip()
        return text or None
    return None
