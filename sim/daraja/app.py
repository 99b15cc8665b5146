"""A local Daraja (Safaricom M-Pesa API) stand-in: OAuth, STK push, STK query and the STK callback, plus
the money-out APIs (B2C, Transaction Status, Account Balance, Reversal) and C2B.

Every instance keeps its own state, so tests can run several side by side. The outcome of a push is chosen
by the last four digits of the payer's phone (see ``OUTCOMES``), the way a tester picks a scenario without
any back channel into the simulator; a B2C payout's by the recipient's (``b2c.B2C_OUTCOMES``).

This module holds the STK behaviour and its routes; each other API lives in its own module (``b2c``,
``enquiries``, ``reversal``, ``c2b``) over the shared ``books``, wired by ``routes.money_router``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sim.daraja.books import Books
from sim.daraja.c2b import C2B, VALIDATION_TIMEOUT
from sim.daraja.ids import IdFactory, daraja_timestamp, now_eat
from sim.daraja.routes import money_router
from sim.daraja.validation import (
    SANDBOX_PASSKEY,
    DarajaError,
    StkPushRequest,
    StkQueryRequest,
    expected_password,
    merchant_error,
    parse_json_object,
    validate_stk_push,
    validate_stk_query,
)

logger = logging.getLogger("sim.daraja")

SUCCESS_DESC = "The service request is processed successfully."
ACCEPTED_DESC = "Success. Request accepted for processing"
# The triple "s" is Daraja's own spelling; clients match on it, so it stays (refs §2.3).
QUERY_ACCEPTED_DESC = "The service request has been accepted successsfully"
LOCKED_DESC = "Unable to lock subscriber, a transaction is already in process for the current subscriber"
CALLBACK_TIMEOUT = 10.0
DUPLICATE_GAP = 0.2
STK_REASON_TYPES = {"CustomerPayBillOnline": "Pay Bill Online", "CustomerBuyGoodsOnline": "Buy Goods Online"}


@dataclass(frozen=True, slots=True)
class Outcome:
    result_code: int
    result_desc: str
    deliveries: int


_SUCCESS = Outcome(0, SUCCESS_DESC, 1)

OUTCOMES: Mapping[str, Outcome] = {
    "1032": Outcome(1032, "Request cancelled by user", 1),
    "1037": Outcome(1037, "DS timeout user cannot be reached", 1),
    "2001": Outcome(2001, "The initiator information is invalid.", 1),
    "0001": Outcome(1, "The balance is insufficient for the transaction.", 1),
    "1019": Outcome(1019, "Transaction has expired.", 1),
    # A lost callback: the payment succeeds but only STK query can tell.
    "9999": Outcome(0, SUCCESS_DESC, 0),
    # At-least-once delivery: receivers must be idempotent on CheckoutRequestID.
    "9998": Outcome(0, SUCCESS_DESC, 2),
}


def outcome_for(msisdn: str) -> Outcome:
    return OUTCOMES.get(msisdn[-4:], _SUCCESS)


@dataclass(slots=True)
class _Token:
    consumer_key: str
    expires_at: float


@dataclass(slots=True)
class _Payment:
    merchant_request_id: str
    checkout_request_id: str
    shortcode: str
    phone: str
    amount: int
    outcome: Outcome
    final_at: float
    completed_at: datetime
    receipt: str | None

    def is_final(self, now: float) -> bool:
        return now >= self.final_at

    def callback_body(self) -> dict[str, Any]:
        callback: dict[str, Any] = {
            "MerchantRequestID": self.merchant_request_id,
            "CheckoutRequestID": self.checkout_request_id,
            "ResultCode": self.outcome.result_code,
            "ResultDesc": self.outcome.result_desc,
        }
        if self.outcome.result_code == 0:
            callback["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": float(self.amount)},
                    {"Name": "MpesaReceiptNumber", "Value": self.receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": int(daraja_timestamp(self.completed_at))},
                    {"Name": "PhoneNumber", "Value": int(self.phone)},
                ]
            }
        return {"Body": {"stkCallback": callback}}


def _resolve_delay(callback_delay: float | None) -> float:
    if callback_delay is not None:
        return callback_delay
    raw = os.environ.get("SIM_CALLBACK_DELAY")
    if raw is None or not raw.strip():
        return 1.0
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"SIM_CALLBACK_DELAY must be a number of seconds, got {raw!r}") from None


class DarajaSimulator:
    """The in-memory state and behaviour behind one simulator app."""

    def __init__(
        self,
        *,
        callback_delay: float,
        apps: Mapping[str, str] | None,
        passkeys: Mapping[str, str] | None,
        lock_subscriber: bool,
        token_ttl: int,
        initiators: Mapping[str, Mapping[str, str]] | None = None,
        production: bool = False,
        c2b_validation_timeout: float = VALIDATION_TIMEOUT,
    ) -> None:
        self.callback_delay = callback_delay
        self.apps = dict(apps) if apps is not None else None
        self.passkeys = {str(k): v for k, v in passkeys.items()} if passkeys is not None else None
        self.lock_subscriber = lock_subscriber
        self.token_ttl = token_ttl
        self.ids = IdFactory()
        self.tokens: dict[str, _Token] = {}
        self.token_by_key: dict[str, str] = {}
        self.payments: dict[str, _Payment] = {}
        self.latest_by_phone: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.request_paths: list[str] = []  # beside `requests`, whose items stay the bare bodies
        self.callbacks: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # One client for every callback (a new one costs a TLS context, ~50 ms of CPU), made by the loop
        # that delivers and closed by `aclose` when the server stops.
        self._http: httpx.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self.books = Books.create(self, self.ids, initiators)
        self.c2b = C2B(self.books, production=production, validation_timeout=c2b_validation_timeout)

    def record_request(self, path: str, body: dict[str, Any]) -> None:
        self.requests.append(body)
        self.request_paths.append(path)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a delivery in the background; `reset` and `aclose` cancel it."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def http_client(self) -> httpx.AsyncClient:
        return self._client()

    # --- OAuth -------------------------------------------------------------------------------------------

    def issue_token(self, authorization: str | None, grant_type: str | None) -> dict[str, str] | None:
        """Return the token body, or None for wrong credentials (Daraja answers those with an empty 400)."""
        if grant_type != "client_credentials":
            raise DarajaError(400, "400.008.02", "Invalid grant type passed")
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise DarajaError(400, "400.008.01", "Invalid authentication type passed")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        key, sep, secret = decoded.partition(":")
        if not sep or not key or not secret:
            return None
        if self.apps is not None:
            known = self.apps.get(key)
            if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
                return None
        # The doc claims a new token invalidates the key's previous one; mimicking it exposes clients whose
        # workers each fetch their own token and then knock each other out.
        previous = self.token_by_key.pop(key, None)
        if previous is not None:
            self.tokens.pop(previous, None)
        token = self.ids.access_token()
        self.tokens[token] = _Token(key, time.monotonic() + self.token_ttl)
        self.token_by_key[key] = token
        return {"access_token": token, "expires_in": str(max(self.token_ttl - 1, 0))}

    def check_bearer(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        entry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or time.monotonic() >= entry.expires_at:
            raise DarajaError(404, "404.001.03", "Invalid Access Token")

    # --- STK ---------------------------------------------------------------------------------------------

    def _check_credentials(self, shortcode: str, password: str, timestamp: str) -> None:
        if self.passkeys is None:
            passkey = SANDBOX_PASSKEY
        else:
            found = self.passkeys.get(shortcode)
            if found is None:
                raise merchant_error("Merchant does not exist")
            passkey = found
        wanted = expected_password(shortcode, passkey, timestamp)
        if not hmac.compare_digest(wanted.encode(), password.encode()):
            raise merchant_error("[MerchantValidate] - Wrong credentials")

    def push(self, req: StkPushRequest) -> dict[str, str]:
        self._check_credentials(req.shortcode, req.password, req.timestamp)
        now = time.monotonic()
        if self.lock_subscriber:
            open_id = self.latest_by_phone.get(req.phone)
            if open_id is not None and not self.payments[open_id].is_final(now):
                raise merchant_error(LOCKED_DESC)
        started = now_eat()
        checkout_id = self.ids.checkout_request_id(started, req.phone)
        while checkout_id in self.payments:
            # Two pushes to one phone inside the same millisecond: shift like a later arrival would.
            started += timedelta(milliseconds=1)
            checkout_id = self.ids.checkout_request_id(started, req.phone)
        outcome = outcome_for(req.phone)
        completed_at = started + timedelta(seconds=self.callback_delay)
        payment = _Payment(
            merchant_request_id=self.ids.request_id(),
            checkout_request_id=checkout_id,
            shortcode=req.shortcode,
            phone=req.phone,
            amount=req.amount,
            outcome=outcome,
            final_at=now + self.callback_delay,
            completed_at=completed_at,
            receipt=self.ids.receipt(completed_at.date()) if outcome.result_code == 0 else None,
        )
        self.payments[checkout_id] = payment
        self.latest_by_phone[req.phone] = checkout_id
        if payment.receipt is not None:
            # Paid: the money is in the merchant's Utility account and the receipt is known to Transaction
            # Status and Reversal, whether or not the callback is delivered.
            self.books.record_collection(
                kind="stk",
                receipt=payment.receipt,
                shortcode=req.shortcode,
                aliases=frozenset({req.party_b}),
                msisdn=req.phone,
                amount=req.amount,
                initiated_at=started,
                finalised_at=completed_at,
                reason_type=STK_REASON_TYPES[req.transaction_type],
            )
        if outcome.deliveries:
            self.spawn(self._deliver(payment, req.callback_url))
        return {
            "MerchantRequestID": payment.merchant_request_id,
            "CheckoutRequestID": checkout_id,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED_DESC,
            "CustomerMessage": ACCEPTED_DESC,
        }

    def query(self, req: StkQueryRequest) -> dict[str, str]:
        self._check_credentials(req.shortcode, req.password, req.timestamp)
        payment = self.payments.get(req.checkout_request_id)
        # Another merchant's CheckoutRequestID is as unknown as a made-up one.
        if payment is None or payment.shortcode != req.shortcode:
            raise merchant_error("This transaction does not exist")
        if not payment.is_final(time.monotonic()):
            raise merchant_error("The transaction is being processed", request_id=payment.checkout_request_id)
        return {
            "ResponseCode": "0",
            "ResponseDescription": QUERY_ACCEPTED_DESC,
            "MerchantRequestID": payment.merchant_request_id,
            "CheckoutRequestID": payment.checkout_request_id,
            "ResultCode": str(payment.outcome.result_code),
            "ResultDesc": payment.outcome.result_desc,
        }

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.is_closed or self._http_loop is not loop:
            # Its connections belong to one event loop; a server restarted on another loop gets a new one.
            self._http, self._http_loop = httpx.AsyncClient(timeout=CALLBACK_TIMEOUT), loop
        return self._http

    async def _deliver(self, payment: _Payment, url: str) -> None:
        await asyncio.sleep(self.callback_delay)
        body = payment.callback_body()
        client = self._client()
        for attempt in range(payment.outcome.deliveries):
            if attempt:
                await asyncio.sleep(DUPLICATE_GAP)
            await self._post(client, url, body)

    async def aclose(self) -> None:
        """Stop pending deliveries and close the callback client (the server is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        http, loop = self._http, self._http_loop
        self._http, self._http_loop = None, None
        if http is not None and loop is asyncio.get_running_loop():
            await http.aclose()

    async def _post(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
        record: dict[str, Any] = {"url": url, "body": body, "status_code": None, "error": None}
        try:
            response = await client.post(url, json=body)
            record["status_code"] = response.status_code
        except Exception as exc:
            # Daraja does not retry or report failed callbacks; neither does the simulator crash on one.
            record["error"] = f"{type(exc).__name__}: {exc}"
            logger.warning("STK callback to %s failed: %s", url, record["error"])
        self.callbacks.append(record)

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.tokens.clear()
        self.token_by_key.clear()
        self.payments.clear()
        self.latest_by_phone.clear()
        self.requests.clear()
        self.request_paths.clear()
        self.callbacks.clear()
        self.books.reset()
        self.c2b.reset()


def create_app(
    *,
    callback_delay: float | None = None,
    apps: dict[str, str] | None = None,
    passkeys: dict[str, str] | None = None,
    lock_subscriber: bool = False,
    token_ttl: int = 3600,
    initiators: dict[str, dict[str, str]] | None = None,
    production: bool = False,
    c2b_validation_timeout: float = VALIDATION_TIMEOUT,
) -> FastAPI:
    """Build a simulator app; routes are relative so it can be mounted (e.g. at ``/sim/daraja``).

    ``callback_delay`` None reads ``SIM_CALLBACK_DELAY`` (seconds, default 1.0). ``apps`` maps consumer key to
    secret (None accepts any); ``passkeys`` maps shortcode to passkey (None: every shortcode uses the public
    sandbox passkey). ``initiators`` maps shortcode to {initiator name: password} (None: any initiator whose
    SecurityCredential decrypts with the simulator's key, see ``credential.py``). ``production`` makes C2B
    URL registration one-time, as on the production host. ``c2b_validation_timeout`` is how long a C2B
    validation answer is awaited before ResponseType applies (Daraja: about 8 s).
    """
    sim = DarajaSimulator(
        callback_delay=_resolve_delay(callback_delay),
        apps=apps,
        passkeys=passkeys,
        lock_subscriber=lock_subscriber,
        token_ttl=token_ttl,
        initiators=initiators,
        production=production,
        c2b_validation_timeout=c2b_validation_timeout,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sim.aclose()

    # Mounted under another app (``lipapush serve``), this lifespan does not run: the host closes the
    # simulator itself (web.app).
    app = FastAPI(
        title="Daraja simulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.daraja_sim = sim

    def envelope(err: DarajaError) -> JSONResponse:
        return JSONResponse(
            {
                "requestId": err.request_id or sim.ids.request_id(),
                "errorCode": err.code,
                "errorMessage": err.message,
            },
            status_code=err.status,
        )

    async def on_daraja_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DarajaError)
        return envelope(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return envelope(DarajaError(404, "404.001.01", "Resource not found"))
        if exc.status_code == 405:
            return envelope(DarajaError(405, "405.001", "Method Not Allowed"))
        return await http_exception_handler(request, exc)

    app.add_exception_handler(DarajaError, on_daraja_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

    @app.get("/oauth/v1/generate")
    async def generate_token(request: Request) -> Response:
        body = sim.issue_token(request.headers.get("authorization"), request.query_params.get("grant_type"))
        if body is None:
            return Response(status_code=400)
        return JSONResponse(body)

    @app.post("/mpesa/stkpush/v1/processrequest")
    async def stk_push(request: Request) -> Response:
        sim.check_bearer(request.headers.get("authorization"))
        body = parse_json_object(request.headers.get("content-type"), await request.body())
        # Recorded before validation: a test asserting "exactly one push was sent" must count rejected
        # pushes too.
        sim.record_request("/mpesa/stkpush/v1/processrequest", body)
        return JSONResponse(sim.push(validate_stk_push(body)))

    @app.post("/mpesa/stkpushquery/v1/query")
    async def stk_query(request: Request) -> Response:
        sim.check_bearer(request.headers.get("authorization"))
        body = parse_json_object(request.headers.get("content-type"), await request.body())
        return JSONResponse(sim.query(validate_stk_query(body)))

    app.include_router(money_router(sim))

    @app.get("/_sim/requests")
    async def sim_requests(path: str | None = None) -> list[dict[str, Any]]:
        """Every Daraja API body received, oldest first; ``?path=/mpesa/…`` keeps one API's."""
        if path is None:
            return sim.requests
        return [body for body, at in zip(sim.requests, sim.request_paths, strict=True) if at == path]

    @app.get("/_sim/callbacks")
    async def sim_callbacks() -> list[dict[str, Any]]:
        return sim.callbacks

    @app.post("/_sim/reset")
    async def sim_reset() -> dict[str, bool]:
        sim.reset()
        return {"reset": True}

    return app


def run(host: str = "127.0.0.1", port: int = 8001, callback_delay: float | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(callback_delay=callback_delay), host=host, port=port)
