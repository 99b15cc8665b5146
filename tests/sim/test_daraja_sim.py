"""The Daraja simulator over real HTTP: the sim and a callback receiver each run in an in-process uvicorn."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from sim.daraja import create_app, mpesa_receipt_prefix
from sim.daraja.ids import IdFactory
from tests.support.servers import serving as serving_on_loopback

EAT = ZoneInfo("Africa/Nairobi")
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
SHORTCODE = "174379"
DELAY = 0.05
SUCCESS_DESC = "The service request is processed successfully."
MERCHANT_REQUEST_ID = re.compile(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\d{6,7}")
CHECKOUT_ID = re.compile(r"ws_CO_(\d{2})(\d{2})(\d{4})(\d{2})(\d{2})(\d{2})(\d{3})(\d{9})")
RECEIPT = re.compile(r"[A-Z0-9]{10}")
_MISSING = object()


# --- servers ---------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    async with serving_on_loopback(app, lifespan="off") as url:
        yield url


class Receiver:
    """The merchant's callback endpoint; each test posts to its own path so hits never mix."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self.app = Starlette(routes=[Route("/cb/{name}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> JSONResponse:
        self.hits[request.path_params["name"]].append((time.monotonic(), await request.json()))
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})

    def new_url(self) -> tuple[str, str]:
        name = uuid.uuid4().hex
        return name, f"{self.base}/cb/{name}"

    async def wait(self, name: str, count: int, within: float = 3.0) -> list[tuple[float, Any]]:
        deadline = time.monotonic() + within
        while len(self.hits[name]) < count:
            assert time.monotonic() < deadline, f"expected {count} callbacks, got {len(self.hits[name])}"
            await asyncio.sleep(0.01)
        return self.hits[name]


def timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(EAT)).astimezone(EAT).strftime("%Y%m%d%H%M%S")


def password(shortcode: str, passkey: str, ts: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{ts}".encode()).decode()


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


class Sim:
    def __init__(self, base: str, client: httpx.AsyncClient, receiver: Receiver) -> None:
        self.base = base
        self.client = client
        self.receiver = receiver

    async def token(self, key: str = "key", secret: str = "secret") -> str:
        r = await self.client.get(
            f"{self.base}/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            headers={"Authorization": basic(key, secret)},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def push_body(
        self,
        phone: str = "254712345678",
        shortcode: str = SHORTCODE,
        passkey: str = SANDBOX_PASSKEY,
        **overrides: Any,
    ) -> dict[str, Any]:
        ts = timestamp()
        body: dict[str, Any] = {
            "BusinessShortCode": int(shortcode),
            "Password": password(shortcode, passkey, ts),
            "Timestamp": ts,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": "150",
            "PartyA": phone,
            "PartyB": shortcode,
            "PhoneNumber": phone,
            "CallBackURL": f"{self.receiver.base}/cb/unused",
            "AccountReference": "INV001",
            "TransactionDesc": "Payment",
        }
        for field, value in overrides.items():
            if value is _MISSING:
                del body[field]
            else:
                body[field] = value
        return body

    async def post(self, path: str, body: Any, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await self.client.post(f"{self.base}{path}", json=body, headers=headers)

    async def push(self, body: dict[str, Any], token: str) -> httpx.Response:
        return await self.post("/mpesa/stkpush/v1/processrequest", body, token)

    async def query(
        self, checkout_id: str, token: str, shortcode: str = SHORTCODE, passkey: str = SANDBOX_PASSKEY
    ) -> httpx.Response:
        ts = timestamp()
        body = {
            "BusinessShortCode": shortcode,
            "Password": password(shortcode, passkey, ts),
            "Timestamp": ts,
            "CheckoutRequestID": checkout_id,
        }
        return await self.post("/mpesa/stkpushquery/v1/query", body, token)


def assert_error(r: httpx.Response, status: int, code: str, message: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}
    assert body["errorCode"] == code
    assert body["errorMessage"] == message
    assert isinstance(body["requestId"], str) and body["requestId"]
    return dict(body)


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with serving(rec.app) as base:
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
    async with running_sim(receiver, client, callback_delay=DELAY) as s:
        yield s


@pytest.fixture(scope="module")
async def strict_sim(receiver: Receiver, client: httpx.AsyncClient) -> AsyncIterator[Sim]:
    async with running_sim(
        receiver,
        client,
        callback_delay=0.3,
        apps={"appkey": "appsecret", "otherkey": "othersecret"},
        passkeys={SHORTCODE: SANDBOX_PASSKEY, "600100": "tillpasskey"},
        lock_subscriber=True,
        token_ttl=1,
    ) as s:
        yield s


# --- OAuth -----------------------------------------------------------------------------------------------


async def test_oauth_issues_token(sim: Sim) -> None:
    r = await sim.client.get(
        f"{sim.base}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        headers={"Authorization": basic("key", "secret")},
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "expires_in"}
    assert re.fullmatch(r"[A-Za-z0-9]{28}", body["access_token"])
    assert body["expires_in"] == "3599"


@pytest.mark.parametrize("params", [{}, {"grant_type": "password"}, {"grant_type": "client_credentials "}])
async def test_oauth_bad_grant_type(sim: Sim, params: dict[str, str]) -> None:
    r = await sim.client.get(
        f"{sim.base}/oauth/v1/generate", params=params, headers={"Authorization": basic("key", "secret")}
    )
    assert_error(r, 400, "400.008.02", "Invalid grant type passed")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer abc"}, {"Authorization": "Basic"}])
async def test_oauth_bad_auth_type(sim: Sim, headers: dict[str, str]) -> None:
    r = await sim.client.get(
        f"{sim.base}/oauth/v1/generate", params={"grant_type": "client_credentials"}, headers=headers
    )
    assert_error(r, 400, "400.008.01", "Invalid authentication type passed")


@pytest.mark.parametrize(("key", "secret"), [("appkey", "wrong"), ("nobody", "appsecret")])
async def test_oauth_wrong_credentials_empty_400(strict_sim: Sim, key: str, secret: str) -> None:
    r = await strict_sim.client.get(
        f"{strict_sim.base}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        headers={"Authorization": basic(key, secret)},
    )
    assert r.status_code == 400
    assert r.content == b""


async def test_reissue_invalidates_previous_token_of_same_key(sim: Sim) -> None:
    first = await sim.token("tenant-a", "s")
    other = await sim.token("tenant-b", "s")
    second = await sim.token("tenant-a", "s")
    assert first != second
    assert_error(await sim.query("ws_CO_nothing", first), 404, "404.001.03", "Invalid Access Token")
    # The bearer check passes for the live tokens; the made-up id is what fails.
    for live in (second, other):
        assert_error(
            await sim.query("ws_CO_nothing", live), 500, "500.001.1001", "This transaction does not exist"
        )


async def test_token_expires_after_ttl(strict_sim: Sim) -> None:
    r = await strict_sim.client.get(
        f"{strict_sim.base}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        headers={"Authorization": basic("otherkey", "othersecret")},
    )
    assert r.json()["expires_in"] == "0"
    token = r.json()["access_token"]
    assert_error(
        await strict_sim.query("ws_CO_x", token), 500, "500.001.1001", "This transaction does not exist"
    )
    await asyncio.sleep(1.05)
    assert_error(await strict_sim.query("ws_CO_x", token), 404, "404.001.03", "Invalid Access Token")


# --- gateway errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer nosuchtoken", "Basic a2V5OnNlY3JldA==", ""])
async def test_post_without_valid_bearer(sim: Sim, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    for path in ("/mpesa/stkpush/v1/processrequest", "/mpesa/stkpushquery/v1/query"):
        # An invalid body too: the token is checked before anything else.
        r = await sim.client.post(f"{sim.base}{path}", json={}, headers=headers)
        assert_error(r, 404, "404.001.03", "Invalid Access Token")


async def test_unknown_path_and_wrong_method(sim: Sim) -> None:
    assert_error(await sim.client.get(f"{sim.base}/mpesa/nothing"), 404, "404.001.01", "Resource not found")
    assert_error(
        await sim.client.post(f"{sim.base}/mpesa/nothing/v1"), 404, "404.001.01", "Resource not found"
    )
    r = await sim.client.get(f"{sim.base}/mpesa/stkpush/v1/processrequest")
    assert_error(r, 405, "405.001", "Method Not Allowed")
    r = await sim.client.post(f"{sim.base}/oauth/v1/generate?grant_type=client_credentials")
    assert_error(r, 405, "405.001", "Method Not Allowed")


# --- STK push validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reported"),
    [
        ("BusinessShortCode", "1234", "BusinessShortCode"),
        ("BusinessShortCode", _MISSING, "BusinessShortCode"),
        ("Timestamp", "2024010112000", "Timestamp"),
        ("Timestamp", 20240101120000, "Timestamp"),
        ("TransactionType", "PayBill", "TransactionType"),
        ("Amount", "10.00", "Amount"),
        ("Amount", 10.5, "Amount"),
        ("Amount", 0, "Amount"),
        ("Amount", "0", "Amount"),
        ("Amount", -5, "Amount"),
        ("Amount", True, "Amount"),
        ("PartyA", "25471234567", "PartyA"),
        ("PhoneNumber", "0712345678", "PhoneNumber"),
        ("PhoneNumber", "254812345678", "PhoneNumber"),
        ("PartyB", "12345678", "PartyB"),
        ("CallBackURL", "https://example.com/mpesa/callback", "CallBackURL"),
        ("CallBackURL", "https://example.com/hooks/MPESA", "CallBackURL"),
        ("CallBackURL", "https://example.com/cb?QUERY=1", "CallBackURL"),
        ("CallBackURL", "ftp://example.com/cb", "CallBackURL"),
        ("CallBackURL", "not a url", "CallBackURL"),
        ("AccountReference", "ABCDEFGHIJKLM", "AccountReference"),
        ("AccountReference", _MISSING, "AccountReference"),
        ("TransactionDesc", "ABCDEFGHIJKLMN", "TransactionDesc"),
    ],
)
async def test_push_field_validation(sim: Sim, field: str, value: Any, reported: str) -> None:
    token = await sim.token()
    r = await sim.push(sim.push_body(**{field: value}), token)
    assert_error(r, 400, "400.002.02", f"Bad Request - Invalid {reported}")


async def test_push_reports_first_bad_field(sim: Sim) -> None:
    token = await sim.token()
    r = await sim.push(sim.push_body(Timestamp="x", Amount="1.5", PhoneNumber="07"), token)
    assert_error(r, 400, "400.002.02", "Bad Request - Invalid Timestamp")


async def test_push_non_json_body_is_invalid_shortcode(sim: Sim) -> None:
    token = await sim.token()
    url = f"{sim.base}/mpesa/stkpush/v1/processrequest"
    auth = {"Authorization": f"Bearer {token}"}
    form = sim.push_body()
    r = await sim.client.post(url, data={k: str(v) for k, v in form.items()}, headers=auth)
    assert_error(r, 400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
    r = await sim.client.post(url, content=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert_error(r, 400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
    r = await sim.client.post(url, json=[form], headers=auth)
    assert_error(r, 400, "400.002.02", "Bad Request - Invalid BusinessShortCode")


@pytest.mark.parametrize(
    "overrides",
    [
        {"Amount": 1},
        {"Amount": "250000"},
        {"BusinessShortCode": "174379", "PhoneNumber": 254112345678, "PartyA": 254112345678},
        {"TransactionDesc": _MISSING, "TransactionType": "CustomerBuyGoodsOnline", "PartyB": "99887"},
        {"AccountReference": "ABCDEFGHIJKL"},
    ],
)
async def test_push_accepts_liberal_types(sim: Sim, overrides: dict[str, Any]) -> None:
    token = await sim.token()
    r = await sim.push(sim.push_body(**overrides), token)
    assert r.status_code == 200, r.text
    assert r.json()["ResponseCode"] == "0"


async def test_push_wrong_password(sim: Sim) -> None:
    token = await sim.token()
    other_ts = timestamp(datetime.now(EAT) - timedelta(minutes=5))
    for pw in (
        password(SHORTCODE, "not-the-passkey", timestamp()),
        password(SHORTCODE, SANDBOX_PASSKEY, other_ts),
    ):
        r = await sim.push(sim.push_body(Password=pw), token)
        assert_error(r, 500, "500.001.1001", "[MerchantValidate] - Wrong credentials")
    r = await sim.push(sim.push_body(Password=_MISSING), token)
    assert_error(r, 500, "500.001.1001", "[MerchantValidate] - Wrong credentials")


async def test_push_unknown_merchant_and_own_passkey(strict_sim: Sim) -> None:
    token = await strict_sim.token("appkey", "appsecret")
    r = await strict_sim.push(strict_sim.push_body(phone="254700000101", shortcode="600999"), token)
    assert_error(r, 500, "500.001.1001", "Merchant does not exist")
    r = await strict_sim.push(strict_sim.push_body(phone="254700000101", shortcode="600100"), token)
    assert_error(r, 500, "500.001.1001", "[MerchantValidate] - Wrong credentials")
    body = strict_sim.push_body(phone="254700000101", shortcode="600100", passkey="tillpasskey")
    r = await strict_sim.push(body, token)
    assert r.status_code == 200, r.text


async def test_lock_subscriber(strict_sim: Sim) -> None:
    token = await strict_sim.token("appkey", "appsecret")
    phone = "254700000202"
    assert (await strict_sim.push(strict_sim.push_body(phone=phone), token)).status_code == 200
    r = await strict_sim.push(strict_sim.push_body(phone=phone), token)
    assert_error(
        r,
        500,
        "500.001.1001",
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    )
    assert (await strict_sim.push(strict_sim.push_body(phone="254700000203"), token)).status_code == 200
    await asyncio.sleep(0.35)
    assert (await strict_sim.push(strict_sim.push_body(phone=phone), token)).status_code == 200


async def test_push_response_shape_and_ids(sim: Sim) -> None:
    token = await sim.token()
    phone = "254722943992"
    before = datetime.now(EAT).replace(microsecond=0)
    r = await sim.push(sim.push_body(phone=phone), token)
    after = datetime.now(EAT)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResponseCode",
        "ResponseDescription",
        "CustomerMessage",
    }
    assert body["ResponseCode"] == "0"
    assert body["ResponseDescription"] == "Success. Request accepted for processing"
    assert body["CustomerMessage"] == "Success. Request accepted for processing"
    assert MERCHANT_REQUEST_ID.fullmatch(body["MerchantRequestID"])
    m = CHECKOUT_ID.fullmatch(body["CheckoutRequestID"])
    assert m is not None, body["CheckoutRequestID"]
    dd, mm, yyyy, hh, mi, ss, _ms, national = m.groups()
    assert national == "722943992"
    issued = datetime(int(yyyy), int(mm), int(dd), int(hh), int(mi), int(ss), tzinfo=EAT)
    assert before <= issued <= after
    again = (await sim.push(sim.push_body(phone=phone), token)).json()
    assert again["CheckoutRequestID"] != body["CheckoutRequestID"]
    assert again["MerchantRequestID"] != body["MerchantRequestID"]


# --- outcomes, callbacks, query --------------------------------------------------------------------------


def receipt_prefix(day: date) -> str:
    days = "123456789ABCDEFGHIJKLMNOPQRSTUV"
    return chr(ord("A") + day.year - 2006) + chr(ord("A") + day.month - 1) + days[day.day - 1]


async def test_success_callback_exact_shape(sim: Sim) -> None:
    token = await sim.token()
    name, url = sim.receiver.new_url()
    phone = "254712345678"
    r = await sim.push(sim.push_body(phone=phone, CallBackURL=url, Amount="150"), token)
    ack = r.json()
    ((_, callback),) = await sim.receiver.wait(name, 1)
    stk = callback["Body"]["stkCallback"]
    items = stk["CallbackMetadata"]["Item"]
    receipt = items[1]["Value"]
    tx_date = items[3]["Value"]
    assert callback == {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": ack["MerchantRequestID"],
                "CheckoutRequestID": ack["CheckoutRequestID"],
                "ResultCode": 0,
                "ResultDesc": SUCCESS_DESC,
                "CallbackMetadata": {
                    "Item": [
                        {"Name": "Amount", "Value": 150.0},
                        {"Name": "MpesaReceiptNumber", "Value": receipt},
                        {"Name": "Balance"},
                        {"Name": "TransactionDate", "Value": tx_date},
                        {"Name": "PhoneNumber", "Value": 254712345678},
                    ]
                },
            }
        }
    }
    assert type(stk["ResultCode"]) is int
    assert type(items[0]["Value"]) is float
    assert type(tx_date) is int and type(items[4]["Value"]) is int
    completed = datetime.strptime(str(tx_date), "%Y%m%d%H%M%S").replace(tzinfo=EAT)
    assert abs((completed - datetime.now(EAT)).total_seconds()) < 5
    assert RECEIPT.fullmatch(receipt)
    assert receipt[:3] == receipt_prefix(completed.date())

    q = await sim.query(ack["CheckoutRequestID"], token)
    assert q.status_code == 200
    assert q.json() == {
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",
        "MerchantRequestID": ack["MerchantRequestID"],
        "CheckoutRequestID": ack["CheckoutRequestID"],
        "ResultCode": "0",
        "ResultDesc": SUCCESS_DESC,
    }


@pytest.mark.parametrize(
    ("last4", "code", "desc"),
    [
        ("1032", 1032, "Request cancelled by user"),
        ("1037", 1037, "DS timeout user cannot be reached"),
        ("2001", 2001, "The initiator information is invalid."),
        ("0001", 1, "The balance is insufficient for the transaction."),
        ("1019", 1019, "Transaction has expired."),
    ],
)
async def test_failure_outcomes(sim: Sim, last4: str, code: int, desc: str) -> None:
    token = await sim.token()
    name, url = sim.receiver.new_url()
    r = await sim.push(sim.push_body(phone=f"25471234{last4}", CallBackURL=url), token)
    ack = r.json()
    ((_, callback),) = await sim.receiver.wait(name, 1)
    assert callback == {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": ack["MerchantRequestID"],
                "CheckoutRequestID": ack["CheckoutRequestID"],
                "ResultCode": code,
                "ResultDesc": desc,
            }
        }
    }
    assert type(callback["Body"]["stkCallback"]["ResultCode"]) is int
    q = (await sim.query(ack["CheckoutRequestID"], token)).json()
    assert q["ResultCode"] == str(code)
    assert q["ResultDesc"] == desc


async def test_9998_delivers_twice(sim: Sim) -> None:
    token = await sim.token()
    name, url = sim.receiver.new_url()
    await sim.push(sim.push_body(phone="254712349998", CallBackURL=url), token)
    (t1, first), (t2, second) = await sim.receiver.wait(name, 2)
    assert first == second
    assert first["Body"]["stkCallback"]["ResultCode"] == 0
    assert 0.15 <= t2 - t1 < 1.0
    await asyncio.sleep(0.3)
    assert len(sim.receiver.hits[name]) == 2


async def test_9999_no_callback_query_pending_then_success(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    async with running_sim(receiver, client, callback_delay=0.4) as s:
        token = await s.token()
        name, url = receiver.new_url()
        ack = (await s.push(s.push_body(phone="254712349999", CallBackURL=url), token)).json()
        checkout_id = ack["CheckoutRequestID"]
        pending = assert_error(
            await s.query(checkout_id, token), 500, "500.001.1001", "The transaction is being processed"
        )
        assert pending["requestId"] == checkout_id
        await asyncio.sleep(0.5)
        q = await s.query(checkout_id, token)
        assert q.status_code == 200
        assert q.json()["ResultCode"] == "0"
        assert q.json()["ResultDesc"] == SUCCESS_DESC
        await asyncio.sleep(0.1)
        assert receiver.hits[name] == []
        assert (await client.get(f"{s.base}/_sim/callbacks")).json() == []


async def test_query_errors(sim: Sim, strict_sim: Sim) -> None:
    token = await sim.token()
    assert_error(
        await sim.query("ws_CO_000000", token), 500, "500.001.1001", "This transaction does not exist"
    )
    r = await sim.query("ws_CO_000000", token, passkey="wrong")
    assert_error(r, 500, "500.001.1001", "[MerchantValidate] - Wrong credentials")
    r = await sim.post(
        "/mpesa/stkpushquery/v1/query", {"BusinessShortCode": SHORTCODE, "Timestamp": "1"}, token
    )
    assert_error(r, 400, "400.002.02", "Bad Request - Invalid Timestamp")
    # Another merchant's transaction is unknown to this one.
    strict_token = await strict_sim.token("appkey", "appsecret")
    body = strict_sim.push_body(phone="254700000303", shortcode="600100", passkey="tillpasskey")
    checkout_id = (await strict_sim.push(body, strict_token)).json()["CheckoutRequestID"]
    r = await strict_sim.query(checkout_id, strict_token)
    assert_error(r, 500, "500.001.1001", "This transaction does not exist")


async def test_inspection_and_failed_delivery(receiver: Receiver, client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with running_sim(receiver, client, callback_delay=0.01) as s:
        token = await s.token()
        dead_url = f"http://127.0.0.1:{dead_port}/cb/gone"
        name, url = receiver.new_url()
        sent = [s.push_body(phone="254712340011", CallBackURL=dead_url), s.push_body(CallBackURL=url)]
        for body in sent:
            assert (await s.push(body, token)).status_code == 200
        await s.push(s.push_body(Amount="1.5"), token)
        await receiver.wait(name, 1)
        requests = (await client.get(f"{s.base}/_sim/requests")).json()
        assert requests[:2] == sent
        assert len(requests) == 3
        deadline = time.monotonic() + 3
        while len(records := (await client.get(f"{s.base}/_sim/callbacks")).json()) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        by_url = {rec["url"]: rec for rec in records}
        assert by_url[url]["status_code"] == 200 and by_url[url]["error"] is None
        assert by_url[url]["body"] == receiver.hits[name][0][1]
        assert by_url[dead_url]["status_code"] is None and by_url[dead_url]["error"]
        assert (await client.post(f"{s.base}/_sim/reset")).status_code == 200
        assert (await client.get(f"{s.base}/_sim/requests")).json() == []
        assert (await client.get(f"{s.base}/_sim/callbacks")).json() == []
        assert_error(await s.query("ws_CO_1", token), 404, "404.001.03", "Invalid Access Token")


async def test_mounted_under_prefix(receiver: Receiver, client: httpx.AsyncClient) -> None:
    host = FastAPI()
    host.mount("/sim/daraja", create_app(callback_delay=0.01))
    async with serving(host) as base:
        s = Sim(f"{base}/sim/daraja", client, receiver)
        token = await s.token()
        name, url = receiver.new_url()
        assert (await s.push(s.push_body(CallBackURL=url), token)).status_code == 200
        await receiver.wait(name, 1)
        r = await client.get(f"{s.base}/no/such/path")
        assert_error(r, 404, "404.001.01", "Resource not found")


async def test_callbacks_share_one_client_closed_when_the_server_stops(client: httpx.AsyncClient) -> None:
    seen: list[tuple[str, int]] = []

    async def handle(request: Request) -> JSONResponse:
        assert request.client is not None
        seen.append((request.client.host, request.client.port))
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})

    merchant = Starlette(routes=[Route("/cb", handle, methods=["POST"])])
    app = create_app(callback_delay=0.0)
    async with serving(merchant) as hook, serving_on_loopback(app, lifespan="on") as base:
        s = Sim(base, client, Receiver())
        token = await s.token()
        for n, phone in enumerate(("254712345678", "254712345679", "254712345670"), start=1):
            body = s.push_body(phone=phone, CallBackURL=f"{hook}/cb")
            assert (await s.push(body, token)).status_code == 200
            deadline = time.monotonic() + 3
            while len(seen) < n:  # one after the other: each may reuse the connection before it
                assert time.monotonic() < deadline, "callback not delivered"
                await asyncio.sleep(0.01)
        # One client, so one kept-alive connection for all three (a new client each was ~50 ms of CPU).
        assert len(set(seen)) == 1
    assert app.state.daraja_sim._http is None  # closed with the server


# --- units -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "prefix"),
    [
        (date(2006, 1, 1), "AA1"),
        (date(2019, 12, 19), "NLJ"),  # NLJ7RT61SV, a documented sample
        (date(2024, 7, 7), "SG7"),  # SG722NMVXQ
        (date(2026, 1, 10), "UAA"),
        (date(2026, 12, 31), "ULV"),
    ],
)
def test_receipt_date_letters(day: date, prefix: str) -> None:
    assert mpesa_receipt_prefix(day) == prefix


def test_receipts_unique_per_instance() -> None:
    ids = IdFactory()
    receipts = [ids.receipt(date(2026, 3, 15)) for _ in range(2000)]
    assert len(set(receipts)) == 2000
    assert all(RECEIPT.fullmatch(r) and r.startswith("UCF") for r in receipts)


def test_callback_delay_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIM_CALLBACK_DELAY", raising=False)
    assert create_app().state.daraja_sim.callback_delay == 1.0
    monkeypatch.setenv("SIM_CALLBACK_DELAY", "0.25")
    assert create_app().state.daraja_sim.callback_delay == 0.25
    assert create_app(callback_delay=2.0).state.daraja_sim.callback_delay == 2.0
    monkeypatch.setenv("SIM_CALLBACK_DELAY", "soon")
    with pytest.raises(ValueError, match="SIM_CALLBACK_DELAY"):
        create_app()
