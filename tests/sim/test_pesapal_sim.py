"""The Pesapal stand-in over real HTTP: the sim and our IPN / callback receiver each run in an in-process
uvicorn on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sim.pesapal import create_app
from tests.support.servers import serving

KEY = "sim-key"
SECRET = "sim-secret"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
DOTNET_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")
STATUS_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}")
MPESA_RECEIPT = re.compile(r"[A-Z][A-L][1-9A-V][A-Z0-9]{7}")
STATUS_FIELDS = {
    "payment_method",
    "amount",
    "created_date",
    "confirmation_code",
    "payment_status_description",
    "description",
    "message",
    "payment_account",
    "call_back_url",
    "status_code",
    "merchant_reference",
    "payment_status_code",
    "currency",
    "account_number",
    "subscription_transaction_info",
    "error",
    "status",
}
NULL_ERROR = {"error_type": None, "code": None, "message": None, "call_back_url": None}
BAD_CREDENTIALS = {
    "error": {"error_type": "api_error", "code": "invalid_consumer_key_or_secret_provided", "message": ""},
    "status": "500",
}
INVALID_TOKEN = {
    "error": {
        "error_type": "authentication_error",
        "code": "invalid_api_credentials_provided",
        "message": "Invalid Access Token",
    },
    "status": "401",
}
_MISSING = object()


# --- parties ---------------------------------------------------------------------------------------------


@dataclass
class Hit:
    method: str
    query: dict[str, str]
    json: Any
    # What GetTransactionStatus said while our handler ran (the handler fetches it, as refs §5.6 says).
    seen_status_code: int | None


class Receiver:
    """Our side: the IPN endpoint and the browser's callback page; each test takes its own hook name."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: dict[str, list[Hit]] = defaultdict(list)
        self.returns: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.sims: dict[str, Sim] = {}
        self.acks: dict[str, str] = {}
        self.app = FastAPI()

        @self.app.api_route("/ipn/{name}", methods=["GET", "POST"])
        async def ipn(name: str, request: Request) -> Response:
            query = dict(request.query_params)
            body: dict[str, Any] | None = await request.json() if request.method == "POST" else None
            data: dict[str, Any] = body if body is not None else dict(query)
            seen = None
            sim = self.sims.get(name)
            if sim is not None:
                r = await sim.status(data["OrderTrackingId"])
                seen = r.json()["status_code"]
            self.hits[name].append(Hit(request.method, query, body, seen))
            ack = {
                "orderNotificationType": data["OrderNotificationType"],
                "orderTrackingId": data["OrderTrackingId"],
                "orderMerchantReference": data["OrderMerchantReference"],
                "status": 200,
            }
            mode = self.acks.get(name, "ok")
            if mode == "retry":
                ack["status"] = 500
            elif mode == "wrong-id":
                ack["orderTrackingId"] = "nope"
            elif mode == "http-500":
                return JSONResponse(ack, status_code=500)
            return JSONResponse(ack)

        @self.app.get("/return/{name}")
        async def back(name: str, request: Request) -> Response:
            self.returns[name].append(dict(request.query_params))
            return HTMLResponse("<p>Thanks</p>")

    def hook(self, sim: Sim | None = None, ack: str = "ok") -> tuple[str, str]:
        name = uuid.uuid4().hex
        if sim is not None:
            self.sims[name] = sim
        self.acks[name] = ack
        return name, f"{self.base}/ipn/{name}"

    async def wait(self, name: str, count: int, within: float = 3.0) -> list[Hit]:
        deadline = time.monotonic() + within
        while len(self.hits[name]) < count:
            assert time.monotonic() < deadline, f"expected {count} IPNs, got {len(self.hits[name])}"
            await asyncio.sleep(0.01)
        return self.hits[name]


class Sim:
    def __init__(self, base: str, client: httpx.AsyncClient, receiver: Receiver) -> None:
        self.base = base
        self.client = client
        self.receiver = receiver
        self._token: str | None = None

    async def request_token(self, key: str = KEY, secret: str = SECRET) -> httpx.Response:
        return await self.client.post(
            f"{self.base}/api/Auth/RequestToken",
            json={"consumer_key": key, "consumer_secret": secret},
            headers={"Accept": "application/json"},
        )

    async def token(self) -> str:
        r = await self.request_token()
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    async def call(
        self, method: str, path: str, *, token: str | object | None = _MISSING, **kwargs: Any
    ) -> httpx.Response:
        """An API call with a cached token refreshed once on 401 (``token`` pins one, None sends none)."""
        if token is not _MISSING:
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
            return await self.client.request(method, f"{self.base}{path}", headers=headers, **kwargs)
        for _ in range(2):
            if self._token is None:
                self._token = await self.token()
            headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
            r = await self.client.request(method, f"{self.base}{path}", headers=headers, **kwargs)
            if r.status_code != 401:
                return r
            self._token = None
        return r

    async def register_ipn(self, url: str, kind: str = "POST") -> str:
        r = await self.call(
            "POST", "/api/URLSetup/RegisterIPN", json={"url": url, "ipn_notification_type": kind}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["ipn_id"])

    def order_body(self, ipn_id: str, /, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"LP-{uuid.uuid4().hex[:12]}",
            "currency": "KES",
            "amount": 500.0,
            "description": "Hotspot plan: 30 days",
            "callback_url": f"{self.receiver.base}/return/unused?tenant=7",
            "notification_id": ipn_id,
            "billing_address": {"phone_number": "254712345678", "country_code": "KE", "first_name": "Amina"},
        }
        for name, value in overrides.items():
            if value is _MISSING:
                del body[name]
            else:
                body[name] = value
        return body

    async def submit(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.call("POST", "/api/Transactions/SubmitOrderRequest", json=body, **kwargs)

    async def order(self, ipn_id: str, /, **overrides: Any) -> dict[str, Any]:
        r = await self.submit(self.order_body(ipn_id, **overrides))
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def status(self, tracking_id: str) -> httpx.Response:
        return await self.call(
            "GET", "/api/Transactions/GetTransactionStatus", params={"orderTrackingId": tracking_id}
        )

    async def control(self, path: str, body: Any = None) -> httpx.Response:
        if body is None:
            return await self.client.post(f"{self.base}/_sim{path}")
        return await self.client.post(f"{self.base}/_sim{path}", json=body)

    async def setup(self, kind: str = "POST", ack: str = "ok") -> tuple[str, str]:
        """A fresh IPN hook registered with the sim: (hook name, ipn_id)."""
        name, url = self.receiver.hook(self, ack)
        return name, await self.register_ipn(url, kind)


def assert_error(r: httpx.Response, http: int, code: str, message: str | None = None) -> dict[str, Any]:
    assert r.status_code == http, r.text
    body = r.json()
    assert set(body) == {"error", "status"}
    assert set(body["error"]) == {"error_type", "code", "message"}
    assert body["error"]["code"] == code
    if message is not None:
        assert body["error"]["message"] == message
    return dict(body)


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with serving(rec.app, lifespan="off") as base:
        rec.base = base
        yield rec


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


@contextlib.asynccontextmanager
async def running_sim(receiver: Receiver, client: httpx.AsyncClient, **kwargs: Any) -> AsyncIterator[Sim]:
    async with serving(create_app(**kwargs)) as base:
        yield Sim(base, client, receiver)


@pytest.fixture(scope="module")
async def sim(receiver: Receiver, client: httpx.AsyncClient) -> AsyncIterator[Sim]:
    async with running_sim(receiver, client) as s:
        yield s


@pytest.fixture
async def own_sim(receiver: Receiver, client: httpx.AsyncClient) -> AsyncIterator[Sim]:
    """A private instance, for tests that flip global switches or expire tokens."""
    async with running_sim(receiver, client) as s:
        yield s


# --- auth ------------------------------------------------------------------------------------------------


async def test_token_issued(sim: Sim) -> None:
    r = await sim.request_token()
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"token", "expiryDate", "error", "status", "message"}
    assert body["error"] is None
    assert body["status"] == "200"
    assert body["message"] == "Request processed successfully"
    assert body["token"].count(".") == 2  # a JWT
    assert DOTNET_UTC.fullmatch(body["expiryDate"])
    expiry = datetime.fromisoformat(body["expiryDate"][:26] + "+00:00")
    assert abs((expiry - datetime.now(UTC)) - timedelta(minutes=5)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "body",
    [
        {"consumer_key": KEY, "consumer_secret": "wrong"},
        {"consumer_key": "other", "consumer_secret": SECRET},
        {"consumer_key": KEY},
        {},
    ],
)
async def test_token_bad_credentials(sim: Sim, body: dict[str, str]) -> None:
    r = await sim.client.post(f"{sim.base}/api/Auth/RequestToken", json=body)
    assert r.status_code == 401
    assert r.json() == BAD_CREDENTIALS


async def test_token_requires_json(sim: Sim) -> None:
    r = await sim.client.post(
        f"{sim.base}/api/Auth/RequestToken", data={"consumer_key": KEY, "consumer_secret": SECRET}
    )
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("token", [None, "garbage"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/URLSetup/RegisterIPN"),
        ("GET", "/api/URLSetup/GetIpnList"),
        ("POST", "/api/Transactions/SubmitOrderRequest"),
        ("GET", "/api/Transactions/GetTransactionStatus?orderTrackingId=x"),
    ],
)
async def test_bearer_required(sim: Sim, method: str, path: str, token: str | None) -> None:
    r = await sim.call(method, path, token=token, json={})
    assert r.status_code == 401
    assert r.json() == INVALID_TOKEN


async def test_token_expires_after_ttl(receiver: Receiver, client: httpx.AsyncClient) -> None:
    async with running_sim(receiver, client, token_ttl=0.3) as s:
        token = await s.token()
        assert (await s.call("GET", "/api/URLSetup/GetIpnList", token=token)).status_code == 200
        await asyncio.sleep(0.4)
        r = await s.call("GET", "/api/URLSetup/GetIpnList", token=token)
        assert r.status_code == 401
        assert r.json() == INVALID_TOKEN
        fresh = await s.token()
        assert (await s.call("GET", "/api/URLSetup/GetIpnList", token=fresh)).status_code == 200


async def test_switch_shortens_token_ttl(own_sim: Sim) -> None:
    r = await own_sim.control("/switches", {"token_ttl": 0.2})
    assert r.json()["token_ttl"] == 0.2
    r = await own_sim.request_token()
    expiry = datetime.fromisoformat(r.json()["expiryDate"][:26] + "+00:00")
    assert expiry - datetime.now(UTC) < timedelta(seconds=2)
    token = r.json()["token"]
    await asyncio.sleep(0.3)
    assert (await own_sim.call("GET", "/api/URLSetup/GetIpnList", token=token)).status_code == 401


async def test_expire_all_tokens_forces_refresh(own_sim: Sim) -> None:
    first, second = await own_sim.token(), await own_sim.token()
    assert first != second
    r = await own_sim.control("/tokens/expire")
    assert r.json() == {"expired": 2}
    for token in (first, second):
        assert (await own_sim.call("GET", "/api/URLSetup/GetIpnList", token=token)).status_code == 401
    # A client that refreshes once on 401 carries on.
    assert (await own_sim.call("GET", "/api/URLSetup/GetIpnList")).status_code == 200


# --- IPN registration ------------------------------------------------------------------------------------


async def test_register_ipn_and_list(sim: Sim) -> None:
    url_post = f"{sim.receiver.base}/ipn/{uuid.uuid4().hex}"
    url_get = f"{sim.receiver.base}/ipn/{uuid.uuid4().hex}"
    r = await sim.call(
        "POST", "/api/URLSetup/RegisterIPN", json={"url": url_post, "ipn_notification_type": "POST"}
    )
    assert r.status_code == 200
    body = r.json()
    assert {"url", "created_date", "ipn_id", "error", "status"} <= set(body)
    assert body["url"] == url_post
    assert GUID.fullmatch(body["ipn_id"])
    assert DOTNET_UTC.fullmatch(body["created_date"])
    assert body["error"] is None
    assert body["status"] == "200"
    assert body["ipn_notification_type_description"] == "POST"
    get_id = await sim.register_ipn(url_get, "GET")
    again = await sim.register_ipn(url_post, "POST")
    assert again != body["ipn_id"]  # re-registering mints a new id: list first and reuse
    r = await sim.call("GET", "/api/URLSetup/GetIpnList")
    assert r.status_code == 200
    listed = {item["ipn_id"]: item for item in r.json()}
    assert listed[body["ipn_id"]]["url"] == url_post
    assert listed[get_id]["url"] == url_get
    assert listed[get_id]["ipn_notification_type_description"] == "GET"
    assert listed[get_id]["notification_type"] == 0
    assert listed[body["ipn_id"]]["notification_type"] == 1
    assert all(item["status"] == "200" and item["error"] is None for item in listed.values())


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ipn_notification_type": "POST"}, "missing_required_field"),
        ({"url": "/relative", "ipn_notification_type": "POST"}, "invalid_field_value"),
        ({"url": "ftp://x.example/ipn", "ipn_notification_type": "POST"}, "invalid_field_value"),
        ({"url": "https://x.example/ipn"}, "missing_required_field"),
        ({"url": "https://x.example/ipn", "ipn_notification_type": "PUT"}, "invalid_field_value"),
    ],
)
async def test_register_ipn_validation(sim: Sim, body: dict[str, str], code: str) -> None:
    assert_error(await sim.call("POST", "/api/URLSetup/RegisterIPN", json=body), 400, code)


# --- orders ----------------------------------------------------------------------------------------------


async def test_submit_order(sim: Sim) -> None:
    _, ipn_id = await sim.setup()
    body = sim.order_body(ipn_id)
    r = await sim.submit(body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"order_tracking_id", "merchant_reference", "redirect_url", "error", "status"}
    assert GUID.fullmatch(out["order_tracking_id"])
    assert out["merchant_reference"] == body["id"]
    assert out["redirect_url"] == f"{sim.base}/pay/{out['order_tracking_id']}"
    assert out["error"] is None and out["status"] == "200"
    r = await sim.status(out["order_tracking_id"])
    assert r.status_code == 200
    st = r.json()
    assert set(st) == STATUS_FIELDS
    assert st["status_code"] == 0
    assert st["payment_status_description"] == "INVALID"
    assert st["confirmation_code"] == ""
    assert st["merchant_reference"] == body["id"]
    assert st["amount"] == 500.0
    assert st["currency"] == "KES"
    assert st["error"] == NULL_ERROR
    assert st["status"] == "200"
    assert STATUS_DATE.fullmatch(st["created_date"])


@pytest.mark.parametrize(
    ("field", "value", "code", "message"),
    [
        ("id", _MISSING, "missing_required_field", "id is required"),
        ("id", "", "missing_required_field", "id is required"),
        ("id", 12345, "invalid_field_value", "id must be a string"),
        ("id", "X" * 51, "invalid_field_value", "id must be at most 50 characters"),
        ("id", "bad ref!", "invalid_field_value", None),
        ("currency", _MISSING, "missing_required_field", "currency is required"),
        ("currency", "kes", "invalid_field_value", None),
        ("amount", _MISSING, "missing_required_field", "amount is required"),
        ("amount", 0, "invalid_field_value", "amount must be greater than zero"),
        ("amount", -5.5, "invalid_field_value", "amount must be greater than zero"),
        ("amount", "500.00", "invalid_field_value", "amount must be a number"),
        ("description", _MISSING, "missing_required_field", "description is required"),
        ("description", "d" * 101, "invalid_field_value", "description must be at most 100 characters"),
        ("callback_url", _MISSING, "missing_required_field", "callback_url is required"),
        ("callback_url", "not a url", "invalid_field_value", None),
        ("notification_id", _MISSING, "missing_required_field", "notification_id is required"),
        ("billing_address", _MISSING, "missing_required_field", "billing_address is required"),
        ("billing_address", {"first_name": "Amina"}, "missing_required_field", None),
        ("billing_address", {"email_address": "", "phone_number": ""}, "missing_required_field", None),
        ("redirect_mode", "POPUP", "invalid_field_value", None),
    ],
)
async def test_submit_order_validation(
    sim: Sim, field: str, value: Any, code: str, message: str | None
) -> None:
    _, ipn_id = await sim.setup()
    assert_error(await sim.submit(sim.order_body(ipn_id, **{field: value})), 400, code, message)


async def test_submit_order_limits_are_inclusive(sim: Sim) -> None:
    _, ipn_id = await sim.setup()
    order = await sim.order(
        ipn_id,
        id="A-b_c.d:" + "9" * 42,
        description="d" * 100,
        billing_address={"email_address": "amina@example.com"},
    )
    assert len(order["merchant_reference"]) == 50


async def test_submit_order_unknown_notification_id(sim: Sim) -> None:
    r = await sim.submit(sim.order_body(str(uuid.uuid4())))
    assert_error(r, 400, "invalid_notification_id")


async def test_submit_order_duplicate_reference(sim: Sim) -> None:
    _, ipn_id = await sim.setup()
    first = await sim.order(ipn_id)
    r = await sim.submit(sim.order_body(ipn_id, id=first["merchant_reference"], amount=1.0))
    assert_error(r, 400, "duplicate_order_reference")
    r = await sim.client.get(
        f"{sim.base}/_sim/orders", params={"merchant_reference": first["merchant_reference"]}
    )
    assert len(r.json()) == 1


async def test_submit_order_expired_token(own_sim: Sim) -> None:
    _, ipn_id = await own_sim.setup()
    token = await own_sim.token()
    await own_sim.control("/tokens/expire")
    r = await own_sim.submit(own_sim.order_body(ipn_id), token=token)
    assert r.status_code == 401
    assert r.json() == INVALID_TOKEN


async def test_status_unknown_or_missing_tracking_id(sim: Sim) -> None:
    assert_error(await sim.status(str(uuid.uuid4())), 404, "payment_details_not_found")
    r = await sim.call("GET", "/api/Transactions/GetTransactionStatus")
    assert_error(r, 400, "missing_required_field", "orderTrackingId is required")


async def test_recurring_fields_stored(sim: Sim) -> None:
    _, ipn_id = await sim.setup()
    subscription = {"start_date": "24-01-2027", "end_date": "24-12-2027", "frequency": "MONTHLY"}
    order = await sim.order(ipn_id, account_number="provider-42", subscription_details=subscription)
    st = (await sim.status(order["order_tracking_id"])).json()
    assert st["account_number"] == "provider-42"
    stored = (await sim.client.get(f"{sim.base}/_sim/orders/{order['order_tracking_id']}")).json()
    assert stored["request"]["account_number"] == "provider-42"
    assert stored["request"]["subscription_details"] == subscription


# --- status changes and IPNs -----------------------------------------------------------------------------


async def test_complete_sends_post_ipn_and_status_shows_completed(sim: Sim) -> None:
    name, ipn_id = await sim.setup("POST")
    order = await sim.order(ipn_id)
    tid, ref = order["order_tracking_id"], order["merchant_reference"]
    r = await sim.control(f"/orders/{tid}/complete")
    assert r.status_code == 200, r.text
    result = r.json()
    assert len(result["ipns"]) == 1
    sent = result["ipns"][0]
    assert sent["ack_ok"] is True, sent
    assert sent["ack_problem"] is None
    assert sent["method"] == "POST"
    assert sent["status_code"] == 200
    hits = sim.receiver.hits[name]
    assert len(hits) == 1
    assert hits[0].method == "POST"
    assert hits[0].query == {}
    assert hits[0].json == {
        "OrderTrackingId": tid,
        "OrderMerchantReference": ref,
        "OrderNotificationType": "IPNCHANGE",
    }
    assert hits[0].seen_status_code == 1  # the status had flipped before the IPN went out
    st = (await sim.status(tid)).json()
    assert st["status_code"] == 1
    assert st["payment_status_description"] == "COMPLETED"
    assert MPESA_RECEIPT.fullmatch(st["confirmation_code"]), st["confirmation_code"]
    assert st["payment_method"] == "MPESA"
    assert st["payment_account"] == "2547*****678"
    assert st["amount"] == 500.0
    assert st["merchant_reference"] == ref
    assert st["error"] == NULL_ERROR
    assert st["status"] == "200"
    callback = urlsplit(st["call_back_url"])
    assert parse_qs(callback.query) == {
        "tenant": ["7"],
        "OrderTrackingId": [tid],
        "OrderMerchantReference": [ref],
    }
    log = (await sim.client.get(f"{sim.base}/_sim/ipn-log", params={"tracking_id": tid})).json()
    assert len(log) == 1
    assert log[0]["params"] == hits[0].json
    assert log[0]["ack"] == {
        "orderNotificationType": "IPNCHANGE",
        "orderTrackingId": tid,
        "orderMerchantReference": ref,
        "status": 200,
    }


async def test_complete_with_other_amount_and_card(sim: Sim) -> None:
    _, ipn_id = await sim.setup()
    order = await sim.order(ipn_id)
    body = {"amount": 450, "payment_method": "CARD", "payment_account": "476173**0010"}
    r = await sim.control(f"/orders/{order['order_tracking_id']}/complete", body)
    st = r.json()["order"]["status"]
    assert st["amount"] == 450.0
    assert st["payment_method"] == "CARD"
    assert st["payment_account"] == "476173**0010"
    assert re.fullmatch(r"[1-9]\d{21}", st["confirmation_code"])


async def test_fail(sim: Sim) -> None:
    name, ipn_id = await sim.setup()
    order = await sim.order(ipn_id)
    tid = order["order_tracking_id"]
    r = await sim.control(f"/orders/{tid}/fail", {"description": "Insufficient funds"})
    assert r.json()["ipns"][0]["ack_ok"] is True
    assert sim.receiver.hits[name][0].seen_status_code == 2
    st = (await sim.status(tid)).json()
    assert st["status_code"] == 2
    assert st["payment_status_description"] == "FAILED"
    assert st["description"] == "Insufficient funds"
    assert st["confirmation_code"] == ""
    # A failed order can still be paid (the payer retries on the page); a pending one cannot be reversed.
    assert (await sim.control(f"/orders/{tid}/fail")).status_code == 409
    assert (await sim.control(f"/orders/{tid}/reverse")).status_code == 409
    assert (await sim.control(f"/orders/{tid}/complete")).status_code == 200


async def test_reverse_after_complete(sim: Sim) -> None:
    name, ipn_id = await sim.setup()
    order = await sim.order(ipn_id)
    tid = order["order_tracking_id"]
    assert (await sim.control(f"/orders/{tid}/reverse")).status_code == 409
    completed = (await sim.control(f"/orders/{tid}/complete")).json()["order"]["status"]
    r = await sim.control(f"/orders/{tid}/reverse")
    assert r.status_code == 200
    hits = sim.receiver.hits[name]
    assert [h.seen_status_code for h in hits] == [1, 3]
    assert all(h.json["OrderNotificationType"] == "IPNCHANGE" for h in hits)
    st = (await sim.status(tid)).json()
    assert st["status_code"] == 3
    assert st["payment_status_description"] == "REVERSED"
    assert st["confirmation_code"] == completed["confirmation_code"]
    assert (await sim.control(f"/orders/{tid}/complete")).status_code == 409


async def test_duplicate_ipns_per_call(sim: Sim) -> None:
    name, ipn_id = await sim.setup()
    order = await sim.order(ipn_id)
    r = await sim.control(f"/orders/{order['order_tracking_id']}/complete", {"duplicate_ipns": 3})
    assert len(r.json()["ipns"]) == 3
    hits = sim.receiver.hits[name]
    assert len(hits) == 3
    assert hits[0].json == hits[1].json == hits[2].json
    assert [h.seen_status_code for h in hits] == [1, 1, 1]


async def test_duplicate_ipns_switch(own_sim: Sim) -> None:
    r = await own_sim.control("/switches", {"duplicate_ipns": 3})
    assert r.json()["duplicate_ipns"] == 3
    name, ipn_id = await own_sim.setup("GET")
    order = await own_sim.order(ipn_id)
    await own_sim.control(f"/orders/{order['order_tracking_id']}/complete")
    assert len(own_sim.receiver.hits[name]) == 3
    log = (await own_sim.client.get(f"{own_sim.base}/_sim/ipn-log")).json()
    assert len(log) == 3 and all(entry["ack_ok"] for entry in log)


async def test_lost_ipn(sim: Sim) -> None:
    name, ipn_id = await sim.setup()
    order = await sim.order(ipn_id)
    r = await sim.control(f"/orders/{order['order_tracking_id']}/complete", {"duplicate_ipns": 0})
    assert r.json()["ipns"] == []
    assert sim.receiver.hits[name] == []
    assert (await sim.status(order["order_tracking_id"])).json()["status_code"] == 1


async def test_ipn_before_status(sim: Sim) -> None:
    name, ipn_id = await sim.setup()
    order = await sim.order(ipn_id)
    tid = order["order_tracking_id"]
    r = await sim.control(f"/orders/{tid}/complete", {"ipn_before_status": True})
    assert r.json()["order"]["status_code"] == 1
    hit = sim.receiver.hits[name][0]
    assert hit.seen_status_code == 0  # our handler asked while the status still said pending
    assert (await sim.status(tid)).json()["status_code"] == 1


async def test_ipn_before_status_switch(own_sim: Sim) -> None:
    await own_sim.control("/switches", {"ipn_before_status": True})
    name, ipn_id = await own_sim.setup()
    order = await own_sim.order(ipn_id)
    await own_sim.control(f"/orders/{order['order_tracking_id']}/fail")
    assert own_sim.receiver.hits[name][0].seen_status_code == 0
    assert (await own_sim.status(order["order_tracking_id"])).json()["status_code"] == 2


async def test_get_ipn(sim: Sim) -> None:
    name, ipn_id = await sim.setup("GET")
    order = await sim.order(ipn_id)
    tid, ref = order["order_tracking_id"], order["merchant_reference"]
    r = await sim.control(f"/orders/{tid}/complete")
    assert r.json()["ipns"][0]["method"] == "GET"
    assert r.json()["ipns"][0]["ack_ok"] is True
    hit = sim.receiver.hits[name][0]
    assert hit.method == "GET"
    assert hit.json is None
    assert hit.query == {
        "OrderTrackingId": tid,
        "OrderMerchantReference": ref,
        "OrderNotificationType": "IPNCHANGE",
    }


async def test_resend_ipn_with_other_type(sim: Sim) -> None:
    name, ipn_id = await sim.setup()
    order = await sim.order(ipn_id)
    r = await sim.control(
        f"/orders/{order['order_tracking_id']}/ipn", {"notification_type": "RECURRING", "times": 2}
    )
    assert [i["ack_ok"] for i in r.json()["ipns"]] == [True, True]
    assert [h.json["OrderNotificationType"] for h in sim.receiver.hits[name]] == ["RECURRING", "RECURRING"]


@pytest.mark.parametrize(
    ("ack", "problem"),
    [
        ("retry", "status: expected 200, got 500"),
        ("wrong-id", "orderTrackingId: expected"),
        ("http-500", "HTTP 500"),
    ],
)
async def test_bad_ack_is_recorded(sim: Sim, ack: str, problem: str) -> None:
    _, ipn_id = await sim.setup(ack=ack)
    order = await sim.order(ipn_id)
    r = await sim.control(f"/orders/{order['order_tracking_id']}/complete")
    sent = r.json()["ipns"][0]
    assert sent["ack_ok"] is False
    assert problem in sent["ack_problem"]


async def test_unreachable_ipn_url_is_recorded(sim: Sim) -> None:
    ipn_id = await sim.register_ipn("http://127.0.0.1:9/ipn", "POST")
    order = await sim.order(ipn_id)
    r = await sim.control(f"/orders/{order['order_tracking_id']}/complete")
    assert r.status_code == 200
    sent = r.json()["ipns"][0]
    assert sent["ack_ok"] is False
    assert sent["status_code"] is None
    assert sent["error"]


async def test_control_unknown_order(sim: Sim) -> None:
    assert (await sim.control(f"/orders/{uuid.uuid4()}/complete")).status_code == 404


# --- the payer's page ------------------------------------------------------------------------------------


def form_action(html: str, label: str) -> str:
    match = re.search(rf'<form method="post" action="([^"]+)"><button type="submit">{label}</button>', html)
    assert match, html
    return match.group(1)


async def test_pay_page_flow(sim: Sim) -> None:
    name, ipn_id = await sim.setup()
    back = uuid.uuid4().hex
    order = await sim.order(ipn_id, callback_url=f"{sim.receiver.base}/return/{back}?tenant=7")
    tid, ref = order["order_tracking_id"], order["merchant_reference"]
    page = await sim.client.get(order["redirect_url"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Pay KES 500.00" in page.text
    assert ref in page.text
    form_action(page.text, "Cancel")
    r = await sim.client.post(form_action(page.text, "Pay"))
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{sim.receiver.base}/return/{back}"
    assert parse_qs(location.query) == {
        "tenant": ["7"],
        "OrderTrackingId": [tid],
        "OrderMerchantReference": [ref],
        "OrderNotificationType": ["CALLBACKURL"],
    }
    # The browser lands on our callback page; the IPN arrives on its own.
    assert (await sim.client.get(r.headers["location"])).status_code == 200
    assert sim.receiver.returns[back][0]["OrderNotificationType"] == "CALLBACKURL"
    hits = await sim.receiver.wait(name, 1)
    assert hits[0].json["OrderNotificationType"] == "IPNCHANGE"
    assert hits[0].seen_status_code == 1
    assert (await sim.status(tid)).json()["payment_status_description"] == "COMPLETED"
    # Paying twice is refused; the page now offers the way back instead of the forms.
    page = await sim.client.get(order["redirect_url"])
    assert "COMPLETED" in page.text and "Return to the merchant" in page.text
    assert (await sim.client.post(f"{sim.base}/pay/{tid}/pay")).status_code == 409


async def test_pay_page_cancel(sim: Sim) -> None:
    name, ipn_id = await sim.setup("GET")
    order = await sim.order(ipn_id)
    page = await sim.client.get(order["redirect_url"])
    r = await sim.client.post(form_action(page.text, "Cancel"))
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["location"]).query)["OrderNotificationType"] == ["CALLBACKURL"]
    assert r.headers["location"].startswith(f"{sim.receiver.base}/return/unused?tenant=7&")
    hits = await sim.receiver.wait(name, 1)
    assert hits[0].method == "GET" and hits[0].seen_status_code == 2
    assert (await sim.status(order["order_tracking_id"])).json()["status_code"] == 2


async def test_pay_page_cancel_uses_cancellation_url(sim: Sim) -> None:
    _, ipn_id = await sim.setup()
    order = await sim.order(ipn_id, cancellation_url=f"{sim.receiver.base}/return/cancelled")
    r = await sim.client.post(f"{sim.base}/pay/{order['order_tracking_id']}/cancel")
    assert r.headers["location"].startswith(f"{sim.receiver.base}/return/cancelled?OrderTrackingId=")


async def test_pay_page_ipn_before_status(own_sim: Sim) -> None:
    await own_sim.control("/switches", {"ipn_before_status": True})
    name, ipn_id = await own_sim.setup()
    order = await own_sim.order(ipn_id)
    r = await own_sim.client.post(f"{own_sim.base}/pay/{order['order_tracking_id']}/pay")
    assert r.status_code == 303
    hits = await own_sim.receiver.wait(name, 1)
    assert hits[0].seen_status_code == 0
    for _ in range(100):
        if (await own_sim.status(order["order_tracking_id"])).json()["status_code"] == 1:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("status never flipped")


async def test_pay_page_unknown_order(sim: Sim) -> None:
    assert (await sim.client.get(f"{sim.base}/pay/{uuid.uuid4()}")).status_code == 404
    assert (await sim.client.post(f"{sim.base}/pay/{uuid.uuid4()}/pay")).status_code == 404


# --- switches, logs, mounting ----------------------------------------------------------------------------


async def test_http200_errors_switch(own_sim: Sim) -> None:
    _, ipn_id = await own_sim.setup()
    r = await own_sim.control("/switches", {"http200_errors": True})
    assert r.json()["http200_errors"] == 1
    # A successful call does not use the switch up.
    await own_sim.order(ipn_id)
    r = await own_sim.submit(own_sim.order_body(ipn_id, amount=0))
    assert_error(r, 200, "invalid_field_value")
    assert_error(await own_sim.submit(own_sim.order_body(ipn_id, amount=0)), 400, "invalid_field_value")
    await own_sim.control("/switches", {"http200_errors": 2})
    r = await own_sim.request_token(secret="wrong")
    assert r.status_code == 200 and r.json() == BAD_CREDENTIALS
    r = await own_sim.call("GET", "/api/URLSetup/GetIpnList", token="garbage")
    assert r.status_code == 200 and r.json() == INVALID_TOKEN
    assert (await own_sim.call("GET", "/api/URLSetup/GetIpnList", token="garbage")).status_code == 401


async def test_requests_log_and_reset(own_sim: Sim) -> None:
    _, ipn_id = await own_sim.setup()
    order = await own_sim.order(ipn_id)
    await own_sim.control(f"/orders/{order['order_tracking_id']}/complete")
    log = (await own_sim.client.get(f"{own_sim.base}/_sim/requests")).json()
    assert [(e["method"], e["path"], e["status_code"]) for e in log] == [
        ("POST", "/api/Auth/RequestToken", 200),
        ("POST", "/api/URLSetup/RegisterIPN", 200),
        ("POST", "/api/Transactions/SubmitOrderRequest", 200),
        ("GET", "/api/Transactions/GetTransactionStatus", 200),  # our IPN handler's lookup
    ]
    await own_sim.control("/switches", {"duplicate_ipns": 2})
    assert (await own_sim.control("/reset")).json() == {"reset": True}
    for path in ("/_sim/orders", "/_sim/ipn-log", "/_sim/requests"):
        assert (await own_sim.client.get(f"{own_sim.base}{path}")).json() == []
    switches = (await own_sim.client.get(f"{own_sim.base}/_sim/switches")).json()
    assert switches == {
        "token_ttl": 300.0,
        "duplicate_ipns": 1,
        "ipn_before_status": False,
        "http200_errors": 0,
    }
    # Tokens and IPN registrations are gone too.
    assert (await own_sim.call("GET", "/api/URLSetup/GetIpnList")).json() == []


async def test_mounted_app_links_stay_under_the_mount(receiver: Receiver, client: httpx.AsyncClient) -> None:
    parent = FastAPI()
    parent.mount("/sim/pesapal", create_app())
    async with serving(parent) as root:
        s = Sim(f"{root}/sim/pesapal", client, receiver)
        _, ipn_id = await s.setup()
        order = await s.order(ipn_id)
        assert order["redirect_url"] == f"{root}/sim/pesapal/pay/{order['order_tracking_id']}"
        page = await client.get(order["redirect_url"])
        assert form_action(page.text, "Pay") == f"{root}/sim/pesapal/pay/{order['order_tracking_id']}/pay"
