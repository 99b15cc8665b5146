"""PesapalClient over real HTTP against the Pesapal stand-in (sim/pesapal), plus a faked transport for the
replies the stand-in never gives (5xx, timeouts, odd status bodies)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog.testing

from core.billing.pesapal import (
    LIVE_URL,
    SANDBOX_URL,
    OrderCreated,
    PesapalAuthError,
    PesapalClient,
    PesapalCredentials,
    PesapalError,
    PesapalUnavailable,
    TransactionStatus,
)
from core.billing.pesapal_wire import encode_json
from sim.pesapal import create_app
from tests.support.servers import bound_socket, serving

KEY = "ck-lipapush-visible-key"
SECRET = "cs-TOP-SECRET-do-not-leak"
CREDS = PesapalCredentials(KEY, SECRET)
IPN_URL = "https://lipapush.example/pesapal/ipn"
CALLBACK = "https://lipapush.example/billing/return?tenant=7"
TOKEN_PATH = "/api/Auth/RequestToken"


@dataclass
class Stand:
    """One running stand-in and a client pointed at it."""

    base: str
    http: httpx.AsyncClient
    client: PesapalClient

    def new_client(self, credentials: PesapalCredentials = CREDS) -> PesapalClient:
        return PesapalClient(http=self.http, base_url=self.base, credentials=credentials, timeout=5.0)

    async def control(self, path: str, body: Any = None) -> Any:
        r = await self.http.post(f"{self.base}/_sim{path}", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    async def requests(self) -> list[tuple[str, str, int]]:
        r = await self.http.get(f"{self.base}/_sim/requests")
        return [(e["method"], e["path"], e["status_code"]) for e in r.json()]

    async def token_requests(self) -> int:
        return sum(1 for _, path, _ in await self.requests() if path == TOKEN_PATH)

    async def order(self, **overrides: Any) -> OrderCreated:
        ipn_id = await self.client.ensure_ipn(IPN_URL)
        return await self.client.submit_order(**order_args(ipn_id, **overrides))


_counter = 0


def reference() -> str:
    global _counter
    _counter += 1
    return f"LP-T{_counter:04d}"


def order_args(notification_id: str, /, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "merchant_reference": reference(),
        "amount": Decimal("500.00"),
        "currency": "KES",
        "description": "Hotspot plan: 30 days",
        "callback_url": CALLBACK,
        "notification_id": notification_id,
        "email": None,
        "phone": "254712345678",
        "first_name": "Amina",
        "account_number": "provider-7",
    }
    return args | overrides


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@contextlib.asynccontextmanager
async def running(http: httpx.AsyncClient, **kwargs: Any) -> AsyncIterator[Stand]:
    """A private stand-in, so request logs, switches and tokens belong to one test."""
    kwargs.setdefault("consumer_key", KEY)
    kwargs.setdefault("consumer_secret", SECRET)
    async with serving(create_app(**kwargs)) as base:
        yield Stand(base, http, PesapalClient(http=http, base_url=base, credentials=CREDS, timeout=5.0))


@pytest.fixture
async def stand(http: httpx.AsyncClient) -> AsyncIterator[Stand]:
    async with running(http) as s:
        yield s


# --- constants, credentials ------------------------------------------------------------------------------


def test_base_urls_match_refs() -> None:
    assert SANDBOX_URL == "https://cybqa.pesapal.com/pesapalv3"
    assert LIVE_URL == "https://pay.pesapal.com/v3"


def test_base_url_must_be_absolute(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="must be absolute"):
        PesapalClient(http=http, base_url="pay.pesapal.com/v3", credentials=CREDS)


def test_credentials_required() -> None:
    with pytest.raises(ValueError, match="consumer key and a consumer secret"):
        PesapalCredentials("key", " ")


def test_reprs_hide_secrets(http: httpx.AsyncClient) -> None:
    client = PesapalClient(http=http, base_url=SANDBOX_URL + "/", credentials=CREDS)
    for text in (repr(CREDS), str(CREDS), repr(client)):
        assert SECRET not in text and KEY not in text
    assert repr(client) == f"PesapalClient(base_url={SANDBOX_URL!r})"


def test_decimal_amount_written_as_json_number() -> None:
    body = encode_json({"amount": Decimal("1234.50"), "nested": {"a": [Decimal("1E+2"), "x", None]}})
    assert body == b'{"amount":1234.50,"nested":{"a":[100,"x",null]}}'
    assert json.loads(body)["amount"] == 1234.5


# --- tokens ----------------------------------------------------------------------------------------------


async def test_token_cached_across_calls(stand: Stand) -> None:
    created = await stand.order()
    await stand.client.status(created.order_tracking_id)
    await stand.client.status(created.order_tracking_id)
    assert await stand.client.token() == await stand.client.token()
    assert [path for _, path, _ in await stand.requests()] == [
        TOKEN_PATH,
        "/api/URLSetup/GetIpnList",
        "/api/URLSetup/RegisterIPN",
        "/api/Transactions/SubmitOrderRequest",
        "/api/Transactions/GetTransactionStatus",
        "/api/Transactions/GetTransactionStatus",
    ]


async def test_expired_token_is_refreshed_once_and_the_call_retried(stand: Stand) -> None:
    created = await stand.order()
    await stand.control("/tokens/expire")
    status = await stand.client.status(created.order_tracking_id)
    assert status.pending
    assert (await stand.requests())[-3:] == [
        ("GET", "/api/Transactions/GetTransactionStatus", 401),
        ("POST", TOKEN_PATH, 200),
        ("GET", "/api/Transactions/GetTransactionStatus", 200),
    ]
    assert await stand.token_requests() == 2


async def test_expired_token_refresh_for_an_order_submission(stand: Stand) -> None:
    ipn_id = await stand.client.ensure_ipn(IPN_URL)
    await stand.control("/tokens/expire")
    created = await stand.client.submit_order(**order_args(ipn_id))
    orders = (await stand.http.get(f"{stand.base}/_sim/orders")).json()
    assert [o["order_tracking_id"] for o in orders] == [created.order_tracking_id]


async def test_token_refreshed_before_it_expires(http: httpx.AsyncClient) -> None:
    async with running(http, token_ttl=1.0) as stand:
        await stand.client.ensure_ipn(IPN_URL)
        # A 1 s token is kept for half its life, so this call fetches a new one instead of meeting a 401.
        await asyncio.sleep(0.6)
        await stand.client.ensure_ipn(IPN_URL + "/2")
        log = await stand.requests()
        assert [p for _, p, _ in log].count(TOKEN_PATH) == 2
        assert all(code == 200 for _, _, code in log)


async def test_single_flight_under_concurrency(stand: Stand) -> None:
    created = await stand.order()
    fresh = stand.new_client()
    results = await asyncio.gather(*(fresh.status(created.order_tracking_id) for _ in range(10)))
    assert {r.merchant_reference for r in results} == {created.merchant_reference}
    assert await stand.token_requests() == 2  # the first client's and the fresh one's

    await stand.control("/tokens/expire")
    await asyncio.gather(*(fresh.status(created.order_tracking_id) for _ in range(10)))
    assert await stand.token_requests() == 3


async def test_bad_credentials(stand: Stand) -> None:
    client = stand.new_client(PesapalCredentials(KEY, "wrong-" + SECRET))
    with pytest.raises(PesapalAuthError) as info:
        await client.ensure_ipn(IPN_URL)
    err = info.value
    assert err.retry is False
    assert err.code == "invalid_consumer_key_or_secret_provided"
    assert "consumer key or secret" in err.message
    assert await stand.requests() == [("POST", TOKEN_PATH, 401)]


async def test_bad_credentials_under_http_200(stand: Stand) -> None:
    await stand.control("/switches", {"http200_errors": 1})
    with pytest.raises(PesapalAuthError) as info:
        await stand.new_client(PesapalCredentials("other", SECRET)).token()
    assert info.value.http_status == 200
    assert info.value.code == "invalid_consumer_key_or_secret_provided"


async def test_expired_token_reported_under_http_200_is_refreshed(stand: Stand) -> None:
    created = await stand.order()
    await stand.control("/tokens/expire")
    await stand.control("/switches", {"http200_errors": 1})
    assert (await stand.client.status(created.order_tracking_id)).pending
    assert (await stand.requests())[-3:] == [
        ("GET", "/api/Transactions/GetTransactionStatus", 200),
        ("POST", TOKEN_PATH, 200),
        ("GET", "/api/Transactions/GetTransactionStatus", 200),
    ]


# --- IPN registration ------------------------------------------------------------------------------------


async def test_ensure_ipn_registers_once_and_reuses(stand: Stand) -> None:
    first = await stand.client.ensure_ipn(IPN_URL)
    assert await stand.client.ensure_ipn(IPN_URL) == first
    # Another process (no memory of the first) finds the registration through GetIpnList.
    assert await stand.new_client().ensure_ipn(IPN_URL + "/") == first
    paths = [p for _, p, _ in await stand.requests()]
    assert paths.count("/api/URLSetup/RegisterIPN") == 1
    assert paths.count("/api/URLSetup/GetIpnList") == 2


async def test_ensure_ipn_other_method_or_url_registers_anew(stand: Stand) -> None:
    post_id = await stand.client.ensure_ipn(IPN_URL)
    get_id = await stand.client.ensure_ipn(IPN_URL, method="GET")
    other_id = await stand.client.ensure_ipn(IPN_URL + "-other")
    assert len({post_id, get_id, other_id}) == 3
    listed = await stand.http.get(f"{stand.base}/_sim/requests")
    assert [e["path"] for e in listed.json()].count("/api/URLSetup/RegisterIPN") == 3


async def test_ensure_ipn_concurrent_calls_register_once(stand: Stand) -> None:
    ids = await asyncio.gather(*(stand.client.ensure_ipn(IPN_URL) for _ in range(5)))
    assert len(set(ids)) == 1
    assert [p for _, p, _ in await stand.requests()].count("/api/URLSetup/RegisterIPN") == 1


@pytest.mark.parametrize(
    ("url", "method", "message"),
    [("/pesapal/ipn", "POST", "absolute"), (IPN_URL, "PUT", "GET' or 'POST")],
)
async def test_ensure_ipn_input_checked(stand: Stand, url: str, method: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await stand.client.ensure_ipn(url, method=method)
    assert await stand.requests() == []


# --- orders ----------------------------------------------------------------------------------------------


async def test_submit_order(stand: Stand) -> None:
    created = await stand.order(amount=Decimal("1234.50"), email="amina@example.com")
    assert created.redirect_url == f"{stand.base}/pay/{created.order_tracking_id}"
    assert created.merchant_reference.startswith("LP-T")
    page = await stand.http.get(created.redirect_url)
    assert page.status_code == 200 and created.merchant_reference in page.text
    order = (await stand.http.get(f"{stand.base}/_sim/orders/{created.order_tracking_id}")).json()
    request = order["request"]
    assert request["amount"] == 1234.5
    assert request["currency"] == "KES"
    assert request["account_number"] == "provider-7"
    assert request["callback_url"] == CALLBACK
    address = request["billing_address"]
    assert address["phone_number"] == "254712345678"
    assert address["email_address"] == "amina@example.com"
    assert address["first_name"] == "Amina"


async def test_submit_order_email_only_and_limits_inclusive(stand: Stand) -> None:
    ref = "A" * 50
    created = await stand.order(
        merchant_reference=ref, phone=None, email="a@b.co", description="d" * 100, amount=Decimal("1")
    )
    assert created.merchant_reference == ref


async def test_duplicate_reference_from_server(stand: Stand) -> None:
    ref = reference()
    await stand.order(merchant_reference=ref)
    with pytest.raises(PesapalError) as info:
        await stand.order(merchant_reference=ref)
    err = info.value
    assert type(err) is PesapalError
    assert err.code == "duplicate_order_reference"
    assert err.retry is False
    assert err.http_status == 400
    assert ref in err.message and "new merchant reference" in err.message


async def test_unknown_notification_id_from_server(stand: Stand) -> None:
    with pytest.raises(PesapalError) as info:
        await stand.client.submit_order(**order_args("00000000-0000-4000-8000-000000000000"))
    assert info.value.code == "invalid_notification_id"
    assert "ensure_ipn" in info.value.message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"merchant_reference": "R" * 51}, "51 characters; Pesapal allows at most 50"),
        ({"merchant_reference": "LP 1"}, "letters, digits and - _ . :"),
        ({"merchant_reference": ""}, "merchant_reference is required"),
        ({"description": "d" * 101}, "at most 100"),
        ({"description": "  "}, "description is required"),
        ({"amount": Decimal("0")}, "greater than zero"),
        ({"amount": Decimal("-5")}, "greater than zero"),
        ({"amount": Decimal("NaN")}, "greater than zero"),
        ({"amount": Decimal("10.005")}, "at most 2 decimal places"),
        ({"amount": 10.5}, "never a float"),
        ({"email": None, "phone": None}, "email or phone"),
        ({"email": " ", "phone": ""}, "email or phone"),
        ({"email": "not-an-email", "phone": None}, "not an email address"),
        ({"currency": "kes"}, "3-letter"),
        ({"callback_url": "/billing/return"}, "absolute http"),
        ({"notification_id": ""}, "ensure_ipn"),
    ],
)
async def test_submit_order_checked_before_sending(
    stand: Stand, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        await stand.client.submit_order(**order_args("some-ipn-id", **overrides))
    assert await stand.requests() == []


# --- status ----------------------------------------------------------------------------------------------


async def test_status_pending_then_completed(stand: Stand) -> None:
    created = await stand.order(amount=Decimal("750.50"))
    pending = await stand.client.status(created.order_tracking_id)
    assert pending.pending and not (pending.completed or pending.failed or pending.reversed)
    assert pending.status_code == 0 and pending.payment_status_description == "INVALID"
    assert pending.confirmation_code is None and pending.payment_method is None
    assert pending.merchant_reference == created.merchant_reference

    await stand.control(f"/orders/{created.order_tracking_id}/complete")
    done = await stand.client.status(created.order_tracking_id)
    assert done.completed and not (done.pending or done.failed or done.reversed)
    assert done.status_code == 1
    assert done.confirmation_code is not None and len(done.confirmation_code) == 10
    assert done.amount == Decimal("750.5") and isinstance(done.amount, Decimal)
    assert done.currency == "KES"
    assert done.payment_method == "MPESA"
    assert done.payment_account is not None and "*" in done.payment_account
    assert isinstance(done.created_date, datetime) and done.created_date.tzinfo is not None


async def test_status_failed(stand: Stand) -> None:
    created = await stand.order()
    await stand.control(f"/orders/{created.order_tracking_id}/fail")
    status = await stand.client.status(created.order_tracking_id)
    assert status.failed and not (status.pending or status.completed or status.reversed)
    assert status.status_code == 2
    assert status.description == "Request cancelled by user"


async def test_status_reversed(stand: Stand) -> None:
    created = await stand.order()
    await stand.control(f"/orders/{created.order_tracking_id}/complete", {"confirmation_code": "QWE123RTY4"})
    await stand.control(f"/orders/{created.order_tracking_id}/reverse")
    status = await stand.client.status(created.order_tracking_id)
    assert status.reversed and not (status.completed or status.failed or status.pending)
    assert status.status_code == 3
    assert status.confirmation_code == "QWE123RTY4"


async def test_status_unknown_order(stand: Stand) -> None:
    with pytest.raises(PesapalError) as info:
        await stand.client.status("00000000-0000-4000-8000-000000000000")
    assert info.value.code == "payment_details_not_found"
    assert info.value.http_status == 404


async def test_status_requires_tracking_id(stand: Stand) -> None:
    with pytest.raises(ValueError, match="order_tracking_id is required"):
        await stand.client.status("  ")


async def test_http_200_error_object_is_an_error(stand: Stand) -> None:
    ref = reference()
    await stand.order(merchant_reference=ref)
    await stand.control("/switches", {"http200_errors": 2})
    with pytest.raises(PesapalError) as info:
        await stand.order(merchant_reference=ref)
    assert info.value.code == "duplicate_order_reference"
    assert info.value.http_status == 200
    with pytest.raises(PesapalError) as info:
        await stand.client.status("00000000-0000-4000-8000-000000000000")
    assert info.value.code == "payment_details_not_found"
    assert info.value.http_status == 200
    assert (await stand.requests())[-1] == ("GET", "/api/Transactions/GetTransactionStatus", 200)


# --- transport failures ----------------------------------------------------------------------------------


async def test_closed_port_is_unavailable(http: httpx.AsyncClient) -> None:
    sock, port = bound_socket()
    sock.close()
    client = PesapalClient(http=http, base_url=f"http://127.0.0.1:{port}", credentials=CREDS, timeout=2.0)
    with pytest.raises(PesapalUnavailable) as info:
        await client.status("anything")
    assert info.value.retry is True
    assert "nothing was sent" in info.value.message


def faked(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[PesapalClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return PesapalClient(http=http, base_url="https://pesapal.test/v3", credentials=CREDS), http


def token_reply(token: str = "tok-1") -> httpx.Response:
    return httpx.Response(
        200,
        json={"token": token, "expiryDate": "2999-01-01T00:00:00.0000000Z", "error": None, "status": "200"},
    )


def status_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "payment_method": "MPESA",
        "amount": 500.0,
        "created_date": "2024-05-01T10:00:00.123",
        "confirmation_code": "QWE123RTY4",
        "payment_status_description": "Completed",
        "description": "",
        "message": "Request processed successfully",
        "payment_account": "2547****678",
        "status_code": 1,
        "merchant_reference": "LP-1",
        "currency": "KES",
        "error": {"error_type": None, "code": None, "message": None, "call_back_url": None},
        "status": "200",
    }
    return body | overrides


def route(replies: dict[str, Callable[[], httpx.Response]]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(TOKEN_PATH):
            return token_reply()
        return replies[request.url.path.rsplit("/", 1)[-1]]()

    return handler


@pytest.mark.parametrize(
    ("reply", "error", "retry"),
    [
        (lambda: httpx.Response(503, text="<html>down</html>"), PesapalUnavailable, True),
        (
            lambda: httpx.Response(500, json={"error": {"code": "x", "message": "boom"}}),
            PesapalUnavailable,
            True,
        ),
        (lambda: httpx.Response(429, text=""), PesapalUnavailable, True),
        (lambda: httpx.Response(404, text="Not Found"), PesapalError, False),
        (lambda: httpx.Response(200, text="<html>login</html>"), PesapalError, False),
        (lambda: httpx.Response(200, json={"status": "500"}), PesapalUnavailable, True),
        (lambda: httpx.Response(200, json={"status_code": 1}), PesapalError, True),
    ],
)
async def test_unusable_replies(reply: Callable[[], httpx.Response], error: type, retry: bool) -> None:
    client, http = faked(route({"GetTransactionStatus": reply}))
    async with http:
        with pytest.raises(PesapalError) as info:
            await client.status("tid")
    assert type(info.value) is error
    assert info.value.retry is retry


async def test_timeout_on_submit_warns_the_order_may_exist() -> None:
    def timeout() -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    client, http = faked(route({"SubmitOrderRequest": timeout}))
    async with http:
        with pytest.raises(PesapalUnavailable, match="may have been created"):
            await client.submit_order(**order_args("ipn"))


async def test_status_description_compared_case_insensitively() -> None:
    client, http = faked(route({"GetTransactionStatus": lambda: httpx.Response(200, json=status_body())}))
    async with http:
        status = await client.status("tid")
    assert status.completed and status.consistent
    assert status.amount == Decimal("500.0")
    assert status.description is None


def test_completed_needs_both_fields_to_agree() -> None:
    disagree = TransactionStatus.model_validate(status_body(payment_status_description="FAILED"))
    assert not disagree.completed and disagree.failed and not disagree.consistent
    reversed_ = TransactionStatus.model_validate(status_body(payment_status_description="reversed"))
    assert reversed_.reversed and not reversed_.completed
    unknown = TransactionStatus.model_validate(status_body(status_code=7, payment_status_description="NEW"))
    assert unknown.pending


async def test_token_rejected_twice_is_an_auth_error() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith(TOKEN_PATH):
            return token_reply(f"tok-secret-{len(calls)}")
        return httpx.Response(401, json={"error": {"code": "invalid_api_credentials_provided"}})

    client, http = faked(handler)
    async with http:
        with structlog.testing.capture_logs() as logs, pytest.raises(PesapalAuthError) as info:
            await client.status("tid")
    assert [p.rsplit("/", 1)[-1] for p in calls] == [
        "RequestToken",
        "GetTransactionStatus",
        "RequestToken",
        "GetTransactionStatus",
    ]
    assert "freshly issued token" in info.value.message
    dumped = repr(logs) + str(info.value) + repr(info.value)
    for secret in (SECRET, "tok-secret-1", "tok-secret-3", "Bearer"):
        assert secret not in dumped
    assert logs


async def test_no_secrets_in_errors_or_logs(stand: Stand) -> None:
    leaked = "cs-WRONG-" + SECRET
    client = stand.new_client(PesapalCredentials(KEY, leaked))
    with structlog.testing.capture_logs() as logs, pytest.raises(PesapalAuthError) as info:
        await client.submit_order(**order_args("ipn"))
    created = await stand.order()
    with structlog.testing.capture_logs() as more_logs:
        await stand.client.status(created.order_tracking_id)
    token = await stand.client.token()
    dumped = repr(logs) + repr(more_logs) + str(info.value) + repr(info.value) + repr(info.value.args)
    for secret in (leaked, SECRET, token):
        assert secret not in dumped
