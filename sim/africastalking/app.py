"""A local Africa's Talking SMS API stand-in: ``POST /version1/messaging`` and delivery reports (refs §4, §6).

Our real httpx SMS client talks to it exactly as it would to ``api.africastalking.com``: ``apiKey`` header,
form-urlencoded body, a 201 whose ``Content-Type`` is exactly ``application/json`` (the official SDK compares
that header by string equality). Every instance keeps its own state, so tests can run several side by side.

The control API (JSON, under ``/_sim``) reads back what was sent, forces per-number outcomes, injects faults
and fires delivery reports at our DLR endpoint:

* ``GET  /_sim/messages?to=+2547…``  accepted messages, oldest first
* ``GET  /_sim/requests``            every messaging request as received (form fields, apiKey, status)
* ``POST /_sim/outcomes``            ``{"number", "status_code"?, "dlr_status"?, "failure_reason"?}``
* ``POST /_sim/faults``              ``{"http_500": n, "delay": s, "delay_requests": m | null}`` (replaces)
* ``POST /_sim/config``              ``{"dlr_url"?, "auto_dlr"?}`` (only the keys given change)
* ``POST /_sim/dlr``                 ``{"id", "status"?, "failureReason"?, "url"?}``
* ``POST /_sim/reset``               forget messages, requests, outcomes and faults (config stays)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sim.africastalking.ids import message_id
from sim.africastalking.segments import sms_segments

logger = logging.getLogger("sim.africastalking")

AUTH_FAILED = "The supplied authentication is invalid"
NETWORK_CODE = "63902"  # Safaricom KE
PRICE_PER_PART = Decimal("0.80")
DLR_TIMEOUT = 10.0
# The SDK's own check (refs §4.4): a leading "+", a country code and at least three more digits.
VALID_NUMBER = re.compile(r"^\+\d{1,3}\d{3,}$")

# Per-recipient statusCode -> status label (refs §4.1). AT labels a sent message "Success", not "Sent".
STATUS_LABELS: Mapping[int, str] = {
    100: "Processed",
    101: "Success",
    102: "Queued",
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    409: "DoNotDisturbRejection",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}
ACCEPTED_CODES = frozenset({100, 101, 102})
# failureReason only travels with these final statuses (refs §4.2).
FAILED_STATUSES = frozenset({"Failed", "Rejected"})
DEFAULT_FAILURE_REASON = "DeliveryFailure"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _kes(amount: Decimal) -> str:
    return f"KES {amount:.4f}"


@dataclass(slots=True)
class Delivery:
    """One delivery report the stand-in posted (or tried to)."""

    status: str
    failure_reason: str | None
    url: str | None
    status_code: int | None
    error: str | None
    at: str


@dataclass(slots=True)
class SmsMessage:
    id: str
    to: str
    sender: str | None
    message: str
    segments: int
    encoding: str
    cost: str
    status_code: int
    received_at: str
    deliveries: list[Delivery] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "from": self.sender,
            "message": self.message,
            "segments": self.segments,
            "encoding": self.encoding,
            "cost": self.cost,
            "status_code": self.status_code,
            "received_at": self.received_at,
            "status": self.deliveries[-1].status if self.deliveries else STATUS_LABELS[self.status_code],
            "deliveries": [asdict(d) for d in self.deliveries],
        }


@dataclass(slots=True)
class NumberRule:
    """What happens to one number: a forced send outcome and/or the final status its reports carry."""

    status_code: int | None = None
    dlr_status: str | None = None
    failure_reason: str | None = None


@dataclass(slots=True)
class Faults:
    http_500: int = 0
    delay: float = 0.0
    # None: every request is delayed until the faults are replaced or reset.
    delay_requests: int | None = None

    def take_delay(self) -> float:
        if self.delay <= 0:
            return 0.0
        if self.delay_requests is None:
            return self.delay
        if self.delay_requests <= 0:
            return 0.0
        self.delay_requests -= 1
        return self.delay

    def take_500(self) -> bool:
        if self.http_500 <= 0:
            return False
        self.http_500 -= 1
        return True


class SendError(Exception):
    """A whole-request failure: AT answers these with a non-2xx plain-text body."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class AfricasTalkingSimulator:
    """The in-memory state and behaviour behind one SMS stand-in app."""

    def __init__(self, *, api_key: str, username: str, dlr_url: str | None, auto_dlr: float | None) -> None:
        self.api_key = api_key
        self.username = username
        self.dlr_url = dlr_url
        self.auto_dlr = auto_dlr
        self.messages: dict[str, SmsMessage] = {}
        self.requests: list[dict[str, Any]] = []
        self.rules: dict[str, NumberRule] = {}
        self.faults = Faults()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- sending -------------------------------------------------------------------------------------------

    def check_auth(self, api_key: str | None, username: str | None) -> None:
        key_ok = api_key is not None and hmac.compare_digest(api_key.encode(), self.api_key.encode())
        user_ok = username is not None and hmac.compare_digest(username.encode(), self.username.encode())
        if not (key_ok and user_ok):
            raise SendError(401, AUTH_FAILED)

    def send(self, form: Mapping[str, str]) -> dict[str, Any]:
        to = form.get("to", "").strip()
        message = form.get("message", "")
        if not to:
            raise SendError(400, "Request is missing required form field 'to'")
        if not message:
            raise SendError(400, "Request is missing required form field 'message'")
        sender = form.get("from") or None
        parts, encoding = sms_segments(message)
        numbers = list(dict.fromkeys(n.strip() for n in to.split(",") if n.strip()))
        recipients: list[dict[str, Any]] = []
        total = Decimal(0)
        for number in numbers:
            code = 403 if not VALID_NUMBER.match(number) else self._forced_code(number)
            recipient: dict[str, Any] = {
                "statusCode": code,
                "number": number,
                "status": STATUS_LABELS[code],
                "cost": "0",
                "messageId": "None",
                "messageParts": parts,
            }
            if code in ACCEPTED_CODES:
                cost = PRICE_PER_PART * parts
                total += cost
                stored = SmsMessage(
                    id=message_id(),
                    to=number,
                    sender=sender,
                    message=message,
                    segments=parts,
                    encoding=encoding,
                    cost=_kes(cost),
                    status_code=code,
                    received_at=_now(),
                )
                self.messages[stored.id] = stored
                recipient["cost"] = stored.cost
                recipient["messageId"] = stored.id
                if self.auto_dlr is not None:
                    self._spawn(self._auto_report(stored, self.auto_dlr))
            recipients.append(recipient)
        sent = sum(1 for r in recipients if r["statusCode"] in ACCEPTED_CODES)
        return {
            "SMSMessageData": {
                "Message": f"Sent to {sent}/{len(recipients)} Total Cost: {_kes(total)}",
                "Recipients": recipients,
            }
        }

    def _forced_code(self, number: str) -> int:
        rule = self.rules.get(number)
        return rule.status_code if rule is not None and rule.status_code is not None else 101

    # --- delivery reports ----------------------------------------------------------------------------------

    def final_status(self, number: str) -> tuple[str, str | None]:
        rule = self.rules.get(number)
        if rule is None or rule.dlr_status is None:
            return "Success", None
        return rule.dlr_status, rule.failure_reason

    async def report(
        self, message: SmsMessage, status: str, failure_reason: str | None, url: str | None
    ) -> Delivery:
        """POST one delivery report for ``message`` to ``url`` (default: the configured DLR URL)."""
        target = url or self.dlr_url
        failure_reason = (failure_reason or DEFAULT_FAILURE_REASON) if status in FAILED_STATUSES else None
        delivery = Delivery(status, failure_reason, target, None, None, _now())
        message.deliveries.append(delivery)
        if target is None:
            delivery.error = "no DLR URL configured"
            return delivery
        form = {
            "id": message.id,
            "status": status,
            "phoneNumber": message.to,
            "networkCode": NETWORK_CODE,
            "retryCount": "0",
        }
        if failure_reason is not None:
            form["failureReason"] = failure_reason
        try:
            async with httpx.AsyncClient(timeout=DLR_TIMEOUT) as client:
                response = await client.post(target, data=form)
            delivery.status_code = response.status_code
        except Exception as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
            logger.warning("delivery report for %s to %s failed: %s", message.id, target, delivery.error)
        return delivery

    async def _auto_report(self, message: SmsMessage, delay: float) -> None:
        await asyncio.sleep(delay)
        status, reason = self.final_status(message.to)
        try:
            delivery = await self.report(message, status, reason, None)
        except Exception:
            logger.exception("automatic delivery report for %s failed", message.id)
            return
        if delivery.error is not None:
            logger.warning("automatic delivery report for %s not delivered: %s", message.id, delivery.error)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- control -------------------------------------------------------------------------------------------

    def cancel_pending(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def reset(self) -> None:
        self.cancel_pending()
        self.messages.clear()
        self.requests.clear()
        self.rules.clear()
        self.faults = Faults()


# --- control API bodies ----------------------------------------------------------------------------------


class OutcomeIn(BaseModel):
    number: str = Field(min_length=1)
    status_code: int | None = None
    dlr_status: str | None = Field(default=None, min_length=1)
    failure_reason: str | None = None


class FaultsIn(BaseModel):
    http_500: int = Field(default=0, ge=0)
    delay: float = Field(default=0.0, ge=0)
    delay_requests: int | None = Field(default=None, ge=0)


class ConfigIn(BaseModel):
    dlr_url: str | None = None
    auto_dlr: float | None = Field(default=None, ge=0)


class DlrIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    status: str | None = Field(default=None, min_length=1)
    failure_reason: str | None = Field(default=None, alias="failureReason")
    url: str | None = None


def create_app(
    *,
    api_key: str = "sim-at-key",
    username: str = "sandbox",
    dlr_url: str | None = None,
    auto_dlr: float | None = None,
) -> FastAPI:
    """Build an SMS stand-in; routes are relative so it can be mounted (e.g. at ``/sim/at``).

    ``dlr_url`` is where delivery reports go; ``auto_dlr`` (seconds) sends every accepted message's final
    report on its own after that delay (``Success``, or the number's configured ``dlr_status``).
    """
    sim = AfricasTalkingSimulator(api_key=api_key, username=username, dlr_url=dlr_url, auto_dlr=auto_dlr)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        sim.cancel_pending()

    app = FastAPI(
        title="Africa's Talking SMS simulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.at_sim = sim

    @app.post("/version1/messaging")
    async def messaging(request: Request) -> Response:
        raw = await request.form()
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        api_key = request.headers.get("apikey")
        record: dict[str, Any] = {"form": form, "api_key": api_key, "status_code": None, "at": _now()}
        sim.requests.append(record)
        delay = sim.faults.take_delay()
        if delay:
            await asyncio.sleep(delay)
        response: Response
        if sim.faults.take_500():
            response = PlainTextResponse("Internal Server Error", status_code=500)
        else:
            try:
                sim.check_auth(api_key, form.get("username"))
                response = JSONResponse(sim.send(form), status_code=201)
            except SendError as err:
                response = PlainTextResponse(err.text, status_code=err.status)
        record["status_code"] = response.status_code
        return response

    @app.get("/_sim/messages")
    async def sim_messages(to: str | None = None) -> list[dict[str, Any]]:
        return [m.as_dict() for m in sim.messages.values() if to is None or m.to == to]

    @app.get("/_sim/messages/{message_id}")
    async def sim_message(message_id: str) -> dict[str, Any]:
        message = sim.messages.get(message_id)
        if message is None:
            raise HTTPException(404, f"no message {message_id}")
        return message.as_dict()

    @app.get("/_sim/requests")
    async def sim_requests() -> list[dict[str, Any]]:
        return sim.requests

    @app.get("/_sim/outcomes")
    async def sim_outcomes() -> dict[str, dict[str, Any]]:
        return {number: asdict(rule) for number, rule in sim.rules.items()}

    @app.post("/_sim/outcomes")
    async def sim_set_outcome(body: OutcomeIn) -> dict[str, Any]:
        if body.status_code is not None and body.status_code not in STATUS_LABELS:
            known = ", ".join(str(c) for c in sorted(STATUS_LABELS))
            raise HTTPException(422, f"unknown statusCode {body.status_code}; known: {known}")
        rule = NumberRule(body.status_code, body.dlr_status, body.failure_reason)
        sim.rules[body.number] = rule
        return {"number": body.number, **asdict(rule)}

    @app.post("/_sim/faults")
    async def sim_faults(body: FaultsIn) -> dict[str, Any]:
        sim.faults = Faults(body.http_500, body.delay, body.delay_requests)
        return asdict(sim.faults)

    @app.get("/_sim/config")
    async def sim_get_config() -> dict[str, Any]:
        return {"dlr_url": sim.dlr_url, "auto_dlr": sim.auto_dlr}

    @app.post("/_sim/config")
    async def sim_config(body: ConfigIn) -> dict[str, Any]:
        if "dlr_url" in body.model_fields_set:
            sim.dlr_url = body.dlr_url
        if "auto_dlr" in body.model_fields_set:
            sim.auto_dlr = body.auto_dlr
        return {"dlr_url": sim.dlr_url, "auto_dlr": sim.auto_dlr}

    @app.post("/_sim/dlr")
    async def sim_dlr(body: DlrIn) -> dict[str, Any]:
        message = sim.messages.get(body.id)
        if message is None:
            raise HTTPException(404, f"no message {body.id}")
        if body.url is None and sim.dlr_url is None:
            raise HTTPException(409, "no DLR URL: configure dlr_url or pass url")
        if body.status is None:
            status, reason = sim.final_status(message.to)
        else:
            status, reason = body.status, body.failure_reason
        delivery = await sim.report(message, status, reason, body.url)
        result: dict[str, Any] = {"delivered_to": delivery.url, "status_code": delivery.status_code}
        if delivery.error is not None:
            result["error"] = delivery.error
        return result

    @app.post("/_sim/reset")
    async def sim_reset() -> dict[str, bool]:
        sim.reset()
        return {"reset": True}

    return app


def run(
    host: str = "127.0.0.1",
    port: int = 8002,
    *,
    api_key: str = "sim-at-key",
    username: str = "sandbox",
    dlr_url: str | None = None,
    auto_dlr: float | None = None,
) -> None:
    import uvicorn

    app = create_app(api_key=api_key, username=username, dlr_url=dlr_url, auto_dlr=auto_dlr)
    uvicorn.run(app, host=host, port=port)
