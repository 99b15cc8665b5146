"""A local Pesapal API 3.0 stand-in: auth, IPN registration, orders, status, the hosted page and IPNs.

Our real Pesapal client talks to it as it would to ``{base}/api/...`` (refs §5): JSON in, JSON out, bearer
tokens that expire, failures as Pesapal's error object. Every instance keeps its own state, so tests can
run several side by side. Routes are relative, so the app can be mounted (e.g. at ``/sim/pesapal``).

API (refs §5): ``POST /api/Auth/RequestToken``, ``POST /api/URLSetup/RegisterIPN``,
``GET /api/URLSetup/GetIpnList``, ``POST /api/Transactions/SubmitOrderRequest``,
``GET /api/Transactions/GetTransactionStatus?orderTrackingId=``; the payer's page ``GET /pay/{tracking_id}``
whose Pay / Cancel forms settle the order and redirect the browser to ``callback_url``.

Control API (JSON, under ``/_sim``):

* ``POST /_sim/orders/{id}/complete|fail|reverse`` ``{"amount"?, "confirmation_code"?, "payment_method"?,
  "payment_account"?, "description"?, "duplicate_ipns"?, "ipn_before_status"?}`` → ``{"order", "ipns"}``;
  the IPNs are sent (and acknowledged or not) before the call returns
* ``POST /_sim/orders/{id}/ipn``     ``{"notification_type"?, "times"?}``: re-send without a status change
* ``GET  /_sim/orders[?merchant_reference=]``, ``GET /_sim/orders/{id}``
* ``GET  /_sim/ipn-log[?tracking_id=]``  every IPN sent: url, method, params, our status code/body, ack_ok
* ``GET  /_sim/requests``            every API call: method, path, query, HTTP status
* ``GET|POST /_sim/switches``  ``{"duplicate_ipns", "ipn_before_status", "http200_errors", "token_ttl"}``
* ``POST /_sim/tokens/expire``       every issued token stops working (the next API call gets a 401)
* ``POST /_sim/reset``               forget tokens, IPNs, orders, logs; switches back to defaults
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import jwt
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sim.pesapal.page import message_page, payment_page
from sim.pesapal.validation import (
    OrderRequest,
    parse_json_object,
    validate_ipn_registration,
    validate_order,
)
from sim.pesapal.wire import (
    CALLBACK_URL,
    COMPLETED,
    FAILED,
    INVALID,
    IPN_CHANGE,
    NULL_ERROR,
    PROCESSED,
    REVERSED,
    STATUS_DESCRIPTIONS,
    PesapalError,
    bad_credentials,
    card_confirmation_code,
    dotnet_utc,
    guid,
    invalid_token,
    mask_phone,
    missing_field,
    mpesa_receipt,
    status_date,
    utc_now,
)

logger = logging.getLogger("sim.pesapal")

IPN_TIMEOUT = 10.0
DEFAULT_KEY = "sim-key"
DEFAULT_SECRET = "sim-secret"
DEFAULT_TTL = 300.0
DEFAULT_METHOD = "MPESA"
DEFAULT_PHONE = "254700000000"
Action = Literal["complete", "fail", "reverse"]
RESULT_TEXT: Mapping[str, str] = {
    "complete": "Payment processed successfully",
    "fail": "Request cancelled by user",
    "reverse": "Payment reversed",
}
# Which statuses each action may start from.
ALLOWED_FROM: Mapping[str, frozenset[int]] = {
    "complete": frozenset({INVALID, FAILED}),
    "fail": frozenset({INVALID}),
    "reverse": frozenset({COMPLETED}),
}
ACTION_STATUS: Mapping[str, int] = {"complete": COMPLETED, "fail": FAILED, "reverse": REVERSED}


def with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(slots=True)
class _Token:
    consumer_key: str
    expires_at: float


@dataclass(slots=True)
class Ipn:
    ipn_id: str
    url: str
    method: str
    created: datetime

    def wire(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "created_date": dotnet_utc(self.created),
            "ipn_id": self.ipn_id,
            "notification_type": 0 if self.method == "GET" else 1,
            "ipn_notification_type_description": self.method,
            "ipn_status": 1,
            "ipn_status_description": "Active",
            "error": None,
            "status": "200",
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """A planned status change, computed (and its transition checked) before any IPN goes out."""

    action: str
    status_code: int
    amount: float
    payment_method: str
    payment_account: str
    confirmation_code: str
    description: str


@dataclass(slots=True)
class Order:
    request: OrderRequest
    tracking_id: str
    created: datetime
    status_code: int = INVALID
    amount: float = 0.0
    payment_method: str = ""
    payment_account: str = ""
    confirmation_code: str = ""
    result_description: str = ""
    # Set while an IPN-before-status change is in flight, so a second change cannot start meanwhile.
    deferred: Outcome | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def merchant_reference(self) -> str:
        return self.request.merchant_reference

    @property
    def status_description(self) -> str:
        return STATUS_DESCRIPTIONS[self.status_code]

    def apply(self, outcome: Outcome) -> None:
        self.status_code = outcome.status_code
        self.amount = outcome.amount
        self.payment_method = outcome.payment_method
        self.payment_account = outcome.payment_account
        self.confirmation_code = outcome.confirmation_code
        self.result_description = outcome.description
        self.history.append(
            {"action": outcome.action, "status_code": outcome.status_code, "at": dotnet_utc(utc_now())}
        )

    def status_body(self) -> dict[str, Any]:
        return {
            "payment_method": self.payment_method,
            "amount": self.amount,
            "created_date": status_date(self.created),
            "confirmation_code": self.confirmation_code,
            "payment_status_description": self.status_description,
            "description": self.result_description,
            "message": PROCESSED,
            "payment_account": self.payment_account,
            "call_back_url": with_query(
                self.request.callback_url,
                {"OrderTrackingId": self.tracking_id, "OrderMerchantReference": self.merchant_reference},
            ),
            "status_code": self.status_code,
            "merchant_reference": self.merchant_reference,
            "payment_status_code": "",
            "currency": self.request.currency,
            "account_number": self.request.account_number,
            "subscription_transaction_info": None,
            "error": dict(NULL_ERROR),
            "status": "200",
        }

    def browser_return_url(self, cancelled: bool) -> str:
        base = self.request.cancellation_url if cancelled and self.request.cancellation_url else None
        return with_query(
            base or self.request.callback_url,
            {
                "OrderTrackingId": self.tracking_id,
                "OrderMerchantReference": self.merchant_reference,
                "OrderNotificationType": CALLBACK_URL,
            },
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_tracking_id": self.tracking_id,
            "merchant_reference": self.merchant_reference,
            "status_code": self.status_code,
            "payment_status_description": self.status_description,
            "request": asdict(self.request),
            "status": self.status_body(),
            "history": list(self.history),
        }


@dataclass(slots=True)
class Switches:
    token_ttl: float
    duplicate_ipns: int = 1
    ipn_before_status: bool = False
    # How many upcoming error responses go out as HTTP 200 (the body still carries the error object).
    http200_errors: int = 0


class PesapalSimulator:
    """The in-memory state and behaviour behind one stand-in app."""

    def __init__(self, *, consumer_key: str, consumer_secret: str, token_ttl: float) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.default_token_ttl = token_ttl
        self.switches = Switches(token_ttl=token_ttl)
        self._jwt_secret = secrets.token_bytes(32)
        self.tokens: dict[str, _Token] = {}
        self.ipns: dict[str, Ipn] = {}
        self.orders: dict[str, Order] = {}
        self.by_reference: dict[str, str] = {}
        self.ipn_log: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- auth ----------------------------------------------------------------------------------------------

    def issue_token(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key, secret = body.get("consumer_key"), body.get("consumer_secret")
        if not isinstance(key, str) or not isinstance(secret, str):
            raise bad_credentials()
        key_ok = hmac.compare_digest(key.encode(), self.consumer_key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.consumer_secret.encode())
        if not (key_ok and secret_ok):
            raise bad_credentials()
        ttl = self.switches.token_ttl
        issued = utc_now()
        expiry = issued + timedelta(seconds=ttl)
        claims = {
            "iss": "sim.pesapal",
            "sub": key,
            "jti": guid(),
            "iat": int(issued.timestamp()),
            "exp": int(expiry.timestamp()) + 1,
        }
        token = jwt.encode(claims, self._jwt_secret, algorithm="HS256")
        self.tokens[token] = _Token(key, time.monotonic() + ttl)
        return {
            "token": token,
            "expiryDate": dotnet_utc(expiry),
            "error": None,
            "status": "200",
            "message": PROCESSED,
        }

    def check_bearer(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        entry = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if entry is None:
            raise invalid_token()
        if time.monotonic() >= entry.expires_at:
            del self.tokens[token]
            raise invalid_token()

    def expire_tokens(self) -> int:
        count = len(self.tokens)
        self.tokens.clear()
        return count

    # --- IPN registration and orders -----------------------------------------------------------------------

    def register_ipn(self, body: Mapping[str, Any]) -> Ipn:
        reg = validate_ipn_registration(body)
        # Every registration gets a fresh id, even for a known URL: clients must list first to reuse one.
        ipn = Ipn(guid(), reg.url, reg.notification_type, utc_now())
        self.ipns[ipn.ipn_id] = ipn
        return ipn

    def submit_order(self, body: Mapping[str, Any], page_url: Callable[[str], str]) -> dict[str, Any]:
        req = validate_order(body)
        if req.notification_id not in self.ipns:
            message = f"Unknown notification_id {req.notification_id}"
            raise PesapalError(400, "invalid_notification_id", message)
        if req.merchant_reference in self.by_reference:
            raise PesapalError(
                400,
                "duplicate_order_reference",
                f"An order with merchant reference {req.merchant_reference} already exists",
            )
        tracking_id = guid()
        order = Order(request=req, tracking_id=tracking_id, created=utc_now(), amount=req.amount)
        self.orders[tracking_id] = order
        self.by_reference[req.merchant_reference] = tracking_id
        return {
            "order_tracking_id": tracking_id,
            "merchant_reference": req.merchant_reference,
            "redirect_url": page_url(tracking_id),
            "error": None,
            "status": "200",
        }

    def order_or_error(self, tracking_id: str) -> Order:
        order = self.orders.get(tracking_id)
        if order is None:
            raise PesapalError(404, "payment_details_not_found", f"No transaction found for {tracking_id}")
        return order

    # --- status changes and IPNs ---------------------------------------------------------------------------

    def plan(
        self,
        order: Order,
        action: str,
        *,
        amount: float | None = None,
        confirmation_code: str | None = None,
        payment_method: str | None = None,
        payment_account: str | None = None,
        description: str | None = None,
    ) -> Outcome:
        if order.deferred is not None:
            raise HTTPException(409, f"order {order.tracking_id} already has a change in flight")
        if order.status_code not in ALLOWED_FROM[action]:
            raise HTTPException(409, f"cannot {action} an order that is {order.status_description}")
        method = payment_method or order.payment_method or DEFAULT_METHOD
        billing_phone = order.request.billing_address.get("phone_number") or DEFAULT_PHONE
        if action == "complete":
            code = confirmation_code or (
                mpesa_receipt(utc_now().date()) if "MPESA" in method.upper() else card_confirmation_code()
            )
        else:
            code = confirmation_code if confirmation_code is not None else order.confirmation_code
        return Outcome(
            action=action,
            status_code=ACTION_STATUS[action],
            amount=amount if amount is not None else order.amount,
            payment_method=method,
            payment_account=payment_account or order.payment_account or mask_phone(billing_phone),
            confirmation_code=code,
            description=description if description is not None else RESULT_TEXT[action],
        )

    async def change(
        self,
        order: Order,
        outcome: Outcome,
        *,
        times: int | None = None,
        ipn_before_status: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Apply ``outcome`` and send its IPN(s) (``times`` copies; before the flip if asked)."""
        times = self.switches.duplicate_ipns if times is None else times
        before = self.switches.ipn_before_status if ipn_before_status is None else ipn_before_status
        if not before:
            order.apply(outcome)
            return await self.notify(order, times, IPN_CHANGE)
        order.deferred = outcome
        try:
            return await self.notify(order, times, IPN_CHANGE)
        finally:
            order.deferred = None
            order.apply(outcome)

    async def notify(self, order: Order, times: int, notification_type: str) -> list[dict[str, Any]]:
        ipn = self.ipns.get(order.request.notification_id)
        if ipn is None or times <= 0:
            return []
        records = []
        async with httpx.AsyncClient(timeout=IPN_TIMEOUT) as client:
            for _ in range(times):
                records.append(await self._send_ipn(client, order, ipn, notification_type))
        return records

    async def _send_ipn(
        self, client: httpx.AsyncClient, order: Order, ipn: Ipn, notification_type: str
    ) -> dict[str, Any]:
        params = {
            "OrderTrackingId": order.tracking_id,
            "OrderMerchantReference": order.merchant_reference,
            "OrderNotificationType": notification_type,
        }
        record: dict[str, Any] = {
            "tracking_id": order.tracking_id,
            "merchant_reference": order.merchant_reference,
            "notification_type": notification_type,
            "ipn_id": ipn.ipn_id,
            "url": ipn.url,
            "method": ipn.method,
            "params": params,
            "status_code": None,
            "body": None,
            "ack": None,
            "ack_ok": False,
            "ack_problem": None,
            "error": None,
            "at": dotnet_utc(utc_now()),
        }
        self.ipn_log.append(record)
        try:
            if ipn.method == "GET":
                response = await client.get(ipn.url, params=params)
            else:
                response = await client.post(ipn.url, json=params)
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["ack_problem"] = "no response"
            logger.warning("IPN to %s failed: %s", ipn.url, record["error"])
            return record
        record["status_code"] = response.status_code
        record["body"] = response.text
        with contextlib.suppress(ValueError):
            record["ack"] = response.json()
        record["ack_problem"] = ack_problem(response.status_code, record["ack"], params)
        record["ack_ok"] = record["ack_problem"] is None
        return record

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task: asyncio.Task[Any] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _background(self, work: Awaitable[Any]) -> None:
        try:
            await work
        except Exception:
            logger.exception("background IPN delivery failed")

    def change_in_background(self, order: Order, outcome: Outcome) -> None:
        """The hosted page's path: the browser is redirected at once, the IPN follows on its own."""
        if not self.switches.ipn_before_status:
            order.apply(outcome)
            self.spawn(self._background(self.notify(order, self.switches.duplicate_ipns, IPN_CHANGE)))
            return
        order.deferred = outcome
        self.spawn(self._background(self.change(order, outcome, ipn_before_status=True)))

    # --- control -------------------------------------------------------------------------------------------

    def take_http200(self) -> bool:
        if self.switches.http200_errors <= 0:
            return False
        self.switches.http200_errors -= 1
        return True

    def cancel_pending(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def reset(self) -> None:
        self.cancel_pending()
        self.switches = Switches(token_ttl=self.default_token_ttl)
        self.tokens.clear()
        self.ipns.clear()
        self.orders.clear()
        self.by_reference.clear()
        self.ipn_log.clear()
        self.requests.clear()


def ack_problem(status_code: int, ack: Any, params: Mapping[str, str]) -> str | None:
    """Why our acknowledgement is not the one Pesapal expects (refs §5.6), or None when it is."""
    if status_code != 200:
        return f"HTTP {status_code}"
    if not isinstance(ack, dict):
        return "acknowledgement is not a JSON object"
    expected: dict[str, Any] = {
        "orderNotificationType": params["OrderNotificationType"],
        "orderTrackingId": params["OrderTrackingId"],
        "orderMerchantReference": params["OrderMerchantReference"],
        "status": 200,
    }
    problems = []
    for key, want in expected.items():
        got = ack.get(key)
        if got != want or isinstance(got, bool):
            problems.append(f"{key}: expected {want!r}, got {got!r}")
    return "; ".join(problems) if problems else None


# --- control API bodies ----------------------------------------------------------------------------------


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: float | None = Field(default=None, gt=0)
    confirmation_code: str | None = None
    payment_method: str | None = Field(default=None, min_length=1)
    payment_account: str | None = Field(default=None, min_length=1)
    description: str | None = None
    # 0 sends no IPN at all (a lost notification: only polling the status finds the change).
    duplicate_ipns: int | None = Field(default=None, ge=0)
    ipn_before_status: bool | None = None


class ResendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notification_type: Literal["IPNCHANGE", "RECURRING"] = "IPNCHANGE"
    times: int = Field(default=1, ge=1)


class SwitchesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duplicate_ipns: int | None = Field(default=None, ge=0)
    ipn_before_status: bool | None = None
    # true: the next error response; n: the next n; false/0: none.
    http200_errors: bool | int | None = None
    token_ttl: float | None = Field(default=None, gt=0)


def create_app(
    *,
    consumer_key: str = DEFAULT_KEY,
    consumer_secret: str = DEFAULT_SECRET,
    token_ttl: float = DEFAULT_TTL,
) -> FastAPI:
    """Build a Pesapal stand-in accepting one consumer key/secret pair; tokens live ``token_ttl`` seconds
    (Pesapal's are valid for at most 5 minutes, refs §5.2)."""
    sim = PesapalSimulator(consumer_key=consumer_key, consumer_secret=consumer_secret, token_ttl=token_ttl)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        sim.cancel_pending()

    app = FastAPI(
        title="Pesapal simulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.pesapal_sim = sim

    async def on_pesapal_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PesapalError)
        status = 200 if sim.take_http200() else exc.http_status
        return JSONResponse(exc.body(), status_code=status)

    app.add_exception_handler(PesapalError, on_pesapal_error)

    @app.middleware("http")
    async def record_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if "/_sim/" in request.url.path:
            return await call_next(request)
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "status_code": None,
            "at": dotnet_utc(utc_now()),
        }
        sim.requests.append(record)
        response = await call_next(request)
        record["status_code"] = response.status_code
        return response

    async def json_body(request: Request) -> dict[str, Any]:
        return parse_json_object(request.headers.get("content-type"), await request.body())

    # --- Pesapal API ---------------------------------------------------------------------------------------

    @app.post("/api/Auth/RequestToken")
    async def request_token(request: Request) -> Response:
        return JSONResponse(sim.issue_token(await json_body(request)))

    @app.post("/api/URLSetup/RegisterIPN")
    async def register_ipn(request: Request) -> Response:
        sim.check_bearer(request.headers.get("authorization"))
        return JSONResponse(sim.register_ipn(await json_body(request)).wire())

    @app.get("/api/URLSetup/GetIpnList")
    async def ipn_list(request: Request) -> Response:
        sim.check_bearer(request.headers.get("authorization"))
        return JSONResponse([ipn.wire() for ipn in sim.ipns.values()])

    @app.post("/api/Transactions/SubmitOrderRequest")
    async def submit_order(request: Request) -> Response:
        sim.check_bearer(request.headers.get("authorization"))
        body = await json_body(request)
        return JSONResponse(
            sim.submit_order(body, lambda tid: str(request.url_for("pay_page", tracking_id=tid)))
        )

    @app.get("/api/Transactions/GetTransactionStatus")
    async def transaction_status(request: Request) -> Response:
        sim.check_bearer(request.headers.get("authorization"))
        # ASP.NET binds query names case-insensitively; so does the stand-in.
        tracking_id = next((v for k, v in request.query_params.items() if k.lower() == "ordertrackingid"), "")
        if not tracking_id.strip():
            raise missing_field("orderTrackingId")
        return JSONResponse(sim.order_or_error(tracking_id.strip()).status_body())

    # --- the payer's page ----------------------------------------------------------------------------------

    def page_order(tracking_id: str) -> Order:
        order = sim.orders.get(tracking_id)
        if order is None:
            raise HTTPException(404, "unknown order")
        return order

    def not_found_page() -> HTMLResponse:
        return HTMLResponse(message_page("Order not found", "This payment link is not valid."), 404)

    @app.get("/pay/{tracking_id}", name="pay_page")
    async def pay_page(request: Request, tracking_id: str) -> Response:
        order = sim.orders.get(tracking_id)
        if order is None:
            return not_found_page()
        html = payment_page(
            merchant_reference=order.merchant_reference,
            currency=order.request.currency,
            amount=order.request.amount,
            description=order.request.description,
            status=order.status_description,
            pay_action=str(request.url_for("pay_submit", tracking_id=tracking_id)),
            cancel_action=str(request.url_for("pay_cancel", tracking_id=tracking_id)),
            return_url=order.browser_return_url(cancelled=False),
        )
        return HTMLResponse(html)

    def settle_from_page(tracking_id: str, action: Action) -> Response:
        order = sim.orders.get(tracking_id)
        if order is None:
            return not_found_page()
        try:
            outcome = sim.plan(order, action)
        except HTTPException as exc:
            return HTMLResponse(message_page("Payment already processed", str(exc.detail)), 409)
        sim.change_in_background(order, outcome)
        return RedirectResponse(order.browser_return_url(cancelled=action == "fail"), status_code=303)

    @app.post("/pay/{tracking_id}/pay", name="pay_submit")
    async def pay_submit(tracking_id: str) -> Response:
        return settle_from_page(tracking_id, "complete")

    @app.post("/pay/{tracking_id}/cancel", name="pay_cancel")
    async def pay_cancel(tracking_id: str) -> Response:
        return settle_from_page(tracking_id, "fail")

    # --- control API ---------------------------------------------------------------------------------------

    async def control_change(tracking_id: str, action: Action, body: ChangeIn | None) -> dict[str, Any]:
        opts = body or ChangeIn()
        order = page_order(tracking_id)
        outcome = sim.plan(
            order,
            action,
            amount=opts.amount,
            confirmation_code=opts.confirmation_code,
            payment_method=opts.payment_method,
            payment_account=opts.payment_account,
            description=opts.description,
        )
        ipns = await sim.change(
            order, outcome, times=opts.duplicate_ipns, ipn_before_status=opts.ipn_before_status
        )
        return {"order": order.as_dict(), "ipns": ipns}

    @app.post("/_sim/orders/{tracking_id}/complete")
    async def sim_complete(tracking_id: str, body: ChangeIn | None = None) -> dict[str, Any]:
        return await control_change(tracking_id, "complete", body)

    @app.post("/_sim/orders/{tracking_id}/fail")
    async def sim_fail(tracking_id: str, body: ChangeIn | None = None) -> dict[str, Any]:
        return await control_change(tracking_id, "fail", body)

    @app.post("/_sim/orders/{tracking_id}/reverse")
    async def sim_reverse(tracking_id: str, body: ChangeIn | None = None) -> dict[str, Any]:
        return await control_change(tracking_id, "reverse", body)

    @app.post("/_sim/orders/{tracking_id}/ipn")
    async def sim_resend(tracking_id: str, body: ResendIn | None = None) -> dict[str, Any]:
        opts = body or ResendIn()
        order = page_order(tracking_id)
        ipns = await sim.notify(order, opts.times, opts.notification_type)
        return {"order": order.as_dict(), "ipns": ipns}

    @app.get("/_sim/orders")
    async def sim_orders(merchant_reference: str | None = None) -> list[dict[str, Any]]:
        return [
            o.as_dict()
            for o in sim.orders.values()
            if merchant_reference is None or o.merchant_reference == merchant_reference
        ]

    @app.get("/_sim/orders/{tracking_id}")
    async def sim_order(tracking_id: str) -> dict[str, Any]:
        return page_order(tracking_id).as_dict()

    @app.get("/_sim/ipn-log")
    async def sim_ipn_log(tracking_id: str | None = None) -> list[dict[str, Any]]:
        return [r for r in sim.ipn_log if tracking_id is None or r["tracking_id"] == tracking_id]

    @app.get("/_sim/requests")
    async def sim_requests() -> list[dict[str, Any]]:
        return sim.requests

    @app.get("/_sim/switches")
    async def sim_get_switches() -> dict[str, Any]:
        return asdict(sim.switches)

    @app.post("/_sim/switches")
    async def sim_switches(body: SwitchesIn) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if body.duplicate_ipns is not None:
            changes["duplicate_ipns"] = body.duplicate_ipns
        if body.ipn_before_status is not None:
            changes["ipn_before_status"] = body.ipn_before_status
        if body.token_ttl is not None:
            changes["token_ttl"] = body.token_ttl
        if body.http200_errors is not None:
            count = int(body.http200_errors)
            if count < 0:
                raise HTTPException(422, "http200_errors must be a boolean or a count >= 0")
            changes["http200_errors"] = count
        sim.switches = replace(sim.switches, **changes)
        return asdict(sim.switches)

    @app.post("/_sim/tokens/expire")
    async def sim_expire_tokens() -> dict[str, int]:
        return {"expired": sim.expire_tokens()}

    @app.post("/_sim/reset")
    async def sim_reset() -> dict[str, bool]:
        sim.reset()
        return {"reset": True}

    return app


def run(
    host: str = "127.0.0.1",
    port: int = 8003,
    *,
    consumer_key: str = DEFAULT_KEY,
    consumer_secret: str = DEFAULT_SECRET,
    token_ttl: float = DEFAULT_TTL,
) -> None:
    import uvicorn

    app = create_app(consumer_key=consumer_key, consumer_secret=consumer_secret, token_ttl=token_ttl)
    uvicorn.run(app, host=host, port=port)
