"""DarajaClient against a faked HTTP layer (respx): wire format, token handling, retries, error mapping."""

from __future__ import annotations

import ast
import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
import structlog.testing
from pydantic import ValidationError

import core.daraja
from core.daraja import (
    DarajaAuthError,
    DarajaBusinessError,
    DarajaClient,
    DarajaCredentials,
    DarajaError,
    DarajaThrottleError,
    DarajaTransientError,
    DarajaValidationError,
    MemoryTokenStore,
    StkPushRequest,
    build_password,
    daraja_timestamp,
    token_cache_key,
)
from core.daraja.errors import extract_field

BASE = "https://daraja.test"
PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
OAUTH = "/oauth/v1/generate"

SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
SECRET = "consumer-secret-do-not-leak"
NOW = datetime(2024, 7, 10, 6, 15, 26, tzinfo=UTC)  # 09:15:26 in Nairobi
NOW_EAT = "20240710091526"


def paybill(**overrides: str) -> DarajaCredentials:
    values = {
        "base_url": BASE + "/",
        "consumer_key": "ck-test",
        "consumer_secret": SECRET,
        "passkey": SANDBOX_PASSKEY,
        "business_short_code": "174379",
        "party_b": "174379",
        "transaction_type": "CustomerPayBillOnline",
    } | overrides
    return DarajaCredentials.model_validate(values)


def till() -> DarajaCredentials:
    return paybill(
        business_short_code="7654321", party_b="5123456", transaction_type="CustomerBuyGoodsOnline"
    )


def push_request(**overrides: object) -> StkPushRequest:
    values: dict[str, object] = {
        "phone": "254708374149",
        "amount": 150,
        "callback_url": "https://lipapush.test/callbacks/daraja/abc123",
        "account_reference": "INV001",
        "description": "Order 1",
    } | overrides
    return StkPushRequest.model_validate(values)


def oauth_ok(token: str = "tok-1", expires_in: object = "3599") -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "expires_in": expires_in})


def accepted(checkout: str = "ws_CO_1007202409152617172396192") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "MerchantRequestID": "2654-4b64-97ff-b827b542881d3130",
            "CheckoutRequestID": checkout,
            "ResponseCode": "0",
            "ResponseDescription": "Success. Request accepted for processing",
            "CustomerMessage": "Success. Request accepted for processing",
        },
    )


def envelope(status: int, code: str, message: str, request_id: str = "1c5b-4ba8-815c") -> httpx.Response:
    return httpx.Response(status, json={"requestId": request_id, "errorCode": code, "errorMessage": message})


def sent_json(route: respx.Route, index: int = -1) -> dict[str, object]:
    body = json.loads(route.calls[index].request.content)
    assert isinstance(body, dict)
    return body


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def daraja() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def oauth(daraja: respx.MockRouter) -> respx.Route:
    return daraja.get(OAUTH, params={"grant_type": "client_credentials"}).mock(return_value=oauth_ok())


@pytest.fixture
def token_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(token_clock: FakeClock) -> AsyncIterator[DarajaClient]:
    async with httpx.AsyncClient() as http:
        yield DarajaClient(
            http=http,
            tokens=MemoryTokenStore(clock=token_clock),
            clock=lambda: NOW,
            retry_backoff=(0.0,),
        )


class TestPasswordAndTimestamp:
    def test_password_matches_the_documented_sandbox_example(self) -> None:
        expected = (
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQy"
            "YzkxOTIwMjEwNjI4MDkyNDA4"
        )
        assert build_password("174379", SANDBOX_PASSKEY, "20210628092408") == expected

    def test_timestamp_is_east_africa_time(self) -> None:
        assert daraja_timestamp(NOW) == NOW_EAT

    def test_timestamp_rolls_over_to_the_next_day_in_nairobi(self) -> None:
        assert daraja_timestamp(datetime(2024, 12, 31, 22, 30, 0, tzinfo=UTC)) == "20250101013000"

    def test_naive_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            daraja_timestamp(datetime(2024, 7, 10, 9, 0, 0))

    async def test_one_timestamp_per_push_is_used_for_password_and_body(
        self, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        ticks = iter([NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)])
        calls: list[datetime] = []

        def clock() -> datetime:
            calls.append(next(ticks))
            return calls[-1]

        push = daraja.post(PUSH).mock(return_value=accepted())
        async with httpx.AsyncClient() as http:
            await DarajaClient(http=http, tokens=MemoryTokenStore(), clock=clock).stk_push(
                paybill(), push_request()
            )
        body = sent_json(push)
        assert len(calls) == 1
        assert body["Timestamp"] == NOW_EAT
        decoded = base64.b64decode(str(body["Password"])).decode()
        assert decoded == f"174379{SANDBOX_PASSKEY}{NOW_EAT}"


class TestStkPushBody:
    async def test_paybill_body(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        push = daraja.post(PUSH).mock(return_value=accepted())
        result = await client.stk_push(paybill(), push_request())

        assert sent_json(push) == {
            "BusinessShortCode": "174379",
            "Password": build_password("174379", SANDBOX_PASSKEY, NOW_EAT),
            "Timestamp": NOW_EAT,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": 150,
            "PartyA": "254708374149",
            "PartyB": "174379",
            "PhoneNumber": "254708374149",
            "CallBackURL": "https://lipapush.test/callbacks/daraja/abc123",
            "AccountReference": "INV001",
            "TransactionDesc": "Order 1",
        }
        request = push.calls[0].request
        assert request.headers["Authorization"] == "Bearer tok-1"
        assert request.headers["Content-Type"] == "application/json"
        assert result.checkout_request_id == "ws_CO_1007202409152617172396192"
        assert result.merchant_request_id == "2654-4b64-97ff-b827b542881d3130"
        assert result.response_code == "0"
        assert result.customer_message == "Success. Request accepted for processing"

    async def test_till_uses_store_number_as_short_code_and_till_as_party_b(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        push = daraja.post(PUSH).mock(return_value=accepted())
        await client.stk_push(till(), push_request())

        body = sent_json(push)
        assert body["BusinessShortCode"] == "7654321"
        assert body["PartyB"] == "5123456"
        assert body["TransactionType"] == "CustomerBuyGoodsOnline"
        assert body["Password"] == build_password("7654321", SANDBOX_PASSKEY, NOW_EAT)

    async def test_non_zero_response_code_is_a_business_error(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(PUSH).mock(
            return_value=httpx.Response(
                200,
                json={
                    "MerchantRequestID": "m",
                    "CheckoutRequestID": "c",
                    "ResponseCode": "1",
                    "ResponseDescription": "Rejected",
                },
            )
        )
        with pytest.raises(DarajaBusinessError) as info:
            await client.stk_push(paybill(), push_request())
        assert info.value.error_code == "1"


class TestRequestValidation:
    @pytest.mark.parametrize("phone", ["0708374149", "+254708374149", "254208374149", "25470837414"])
    def test_phone_must_be_normalised(self, phone: str) -> None:
        with pytest.raises(ValidationError):
            push_request(phone=phone)

    def test_2541_numbers_are_accepted(self) -> None:
        assert push_request(phone="254110123456").phone == "254110123456"

    @pytest.mark.parametrize("amount", [0, 250_001, 10.0, "10"])
    def test_amount_is_a_whole_number_in_range(self, amount: object) -> None:
        with pytest.raises(ValidationError):
            push_request(amount=amount)

    def test_reference_and_description_lengths(self) -> None:
        with pytest.raises(ValidationError):
            push_request(account_reference="A" * 13)
        with pytest.raises(ValidationError):
            push_request(description="D" * 14)
        with pytest.raises(ValidationError):
            push_request(account_reference="")

    def test_base_url_is_trimmed(self) -> None:
        assert paybill(base_url=" https://daraja.test/ ").base_url == "https://daraja.test"

    def test_secrets_stay_out_of_reprs(self) -> None:
        creds = paybill()
        assert SECRET not in repr(creds)
        assert SANDBOX_PASSKEY not in repr(creds)
        assert SECRET not in str(creds.model_dump())


class TestOAuth:
    @pytest.mark.parametrize("expires_in", ["3599", 3599])
    async def test_expires_in_as_string_or_number(
        self,
        client: DarajaClient,
        daraja: respx.MockRouter,
        token_clock: FakeClock,
        expires_in: object,
    ) -> None:
        oauth = daraja.get(OAUTH).mock(return_value=oauth_ok(expires_in=expires_in))
        daraja.post(PUSH).mock(return_value=accepted())
        await client.stk_push(paybill(), push_request())
        token_clock.now += 3599 - 121
        await client.stk_push(paybill(), push_request())
        assert oauth.call_count == 1

    async def test_uses_basic_auth_and_client_credentials_grant(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(PUSH).mock(return_value=accepted())
        await client.stk_push(paybill(), push_request())
        request = oauth.calls[0].request
        expected = base64.b64encode(f"ck-test:{SECRET}".encode()).decode()
        assert request.headers["Authorization"] == f"Basic {expected}"
        assert request.url.params["grant_type"] == "client_credentials"

    async def test_one_token_serves_two_pushes(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        push = daraja.post(PUSH).mock(return_value=accepted())
        await client.stk_push(paybill(), push_request())
        await client.stk_push(paybill(), push_request())
        assert oauth.call_count == 1
        assert push.call_count == 2

    async def test_token_is_refreshed_early(
        self, client: DarajaClient, daraja: respx.MockRouter, token_clock: FakeClock
    ) -> None:
        oauth = daraja.get(OAUTH).mock(side_effect=[oauth_ok("tok-1"), oauth_ok("tok-2")])
        push = daraja.post(PUSH).mock(return_value=accepted())
        await client.stk_push(paybill(), push_request())
        # 119 s of validity left: inside the 120 s margin, so a new token is fetched before it can expire.
        token_clock.now += 3599 - 119
        await client.stk_push(paybill(), push_request())
        assert oauth.call_count == 2
        assert push.calls[1].request.headers["Authorization"] == "Bearer tok-2"

    async def test_each_app_gets_its_own_token(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(PUSH).mock(return_value=accepted())
        await client.stk_push(paybill(), push_request())
        await client.stk_push(paybill(consumer_key="ck-other"), push_request())
        assert oauth.call_count == 2
        assert token_cache_key(paybill()) != token_cache_key(paybill(consumer_key="ck-other"))

    @pytest.mark.parametrize(
        "response",
        [httpx.Response(400), httpx.Response(400, text=""), httpx.Response(401, json={})],
        ids=["400-empty", "400-blank", "401"],
    )
    async def test_rejected_credentials(
        self, client: DarajaClient, daraja: respx.MockRouter, response: httpx.Response
    ) -> None:
        oauth = daraja.get(OAUTH).mock(return_value=response)
        push = daraja.post(PUSH).mock(return_value=accepted())
        with pytest.raises(DarajaAuthError, match="consumer key or secret") as info:
            await client.stk_push(paybill(), push_request())
        assert SECRET not in str(info.value) and SECRET not in repr(info.value)
        assert oauth.call_count == 1
        assert push.call_count == 0

    async def test_invalid_grant_type_is_an_auth_error(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        daraja.get(OAUTH).mock(return_value=envelope(400, "400.008.02", "Invalid grant type passed"))
        with pytest.raises(DarajaAuthError) as info:
            await client.stk_push(paybill(), push_request())
        assert info.value.error_code == "400.008.02"
        assert info.value.kind == "auth"

    async def test_transient_oauth_failures_are_retried_twice(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        oauth = daraja.get(OAUTH).mock(
            side_effect=[httpx.ConnectError("down"), httpx.Response(503, text="<html>"), oauth_ok()]
        )
        daraja.post(PUSH).mock(return_value=accepted())
        await client.stk_push(paybill(), push_request())
        assert oauth.call_count == 3

    async def test_oauth_gives_up_after_two_retries(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        oauth = daraja.get(OAUTH).mock(side_effect=httpx.ReadTimeout("slow"))
        push = daraja.post(PUSH).mock(return_value=accepted())
        with pytest.raises(DarajaTransientError) as info:
            await client.stk_push(paybill(), push_request())
        assert oauth.call_count == 3
        assert push.call_count == 0
        # No token, so no push went out: the caller may safely try again.
        assert info.value.outcome_unknown is False

    async def test_wrong_base_url_says_so(self, client: DarajaClient, daraja: respx.MockRouter) -> None:
        oauth = daraja.get(OAUTH).mock(return_value=httpx.Response(404, text="<html>Not Found</html>"))
        with pytest.raises(DarajaValidationError, match="base URL") as info:
            await client.stk_push(paybill(), push_request())
        assert info.value.http_status == 404
        assert oauth.call_count == 1


class TestInvalidTokenRetry:
    @pytest.mark.parametrize(
        ("status", "code"), [(404, "404.001.03"), (401, "401.002.01"), (400, "400.003.01")]
    )
    async def test_push_refreshes_the_token_and_retries_once(
        self, client: DarajaClient, daraja: respx.MockRouter, status: int, code: str
    ) -> None:
        oauth = daraja.get(OAUTH).mock(side_effect=[oauth_ok("stale"), oauth_ok("fresh")])
        push = daraja.post(PUSH).mock(
            side_effect=[envelope(status, code, "Invalid Access Token"), accepted()]
        )
        result = await client.stk_push(paybill(), push_request())

        assert result.checkout_request_id.startswith("ws_CO_")
        assert oauth.call_count == 2
        assert push.call_count == 2
        assert push.calls[0].request.headers["Authorization"] == "Bearer stale"
        assert push.calls[1].request.headers["Authorization"] == "Bearer fresh"
        # The retry is the same request: same timestamp, same password.
        assert sent_json(push, 0) == sent_json(push, 1)

    async def test_push_is_not_retried_a_second_time(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        oauth = daraja.get(OAUTH).mock(side_effect=[oauth_ok("a"), oauth_ok("b"), oauth_ok("c")])
        push = daraja.post(PUSH).mock(return_value=envelope(404, "404.001.03", "Invalid Access Token"))
        with pytest.raises(DarajaAuthError, match="M-Pesa Express") as info:
            await client.stk_push(paybill(), push_request())
        assert info.value.error_code == "404.001.03"
        assert oauth.call_count == 2
        assert push.call_count == 2

    async def test_query_refreshes_the_token_once(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        daraja.get(OAUTH).mock(side_effect=[oauth_ok("stale"), oauth_ok("fresh")])
        query = daraja.post(QUERY).mock(
            side_effect=[envelope(404, "404.001.03", "Invalid Access Token"), query_final("0")]
        )
        result = await client.stk_query(paybill(), "ws_CO_1")
        assert result.result_code == "0"
        assert query.call_count == 2


class TestPushIsNeverRetried:
    @pytest.mark.parametrize(
        "outcome",
        [
            httpx.Response(500, text="<html>Internal Server Error</html>"),
            httpx.Response(503),
            envelope(500, "500.003.1001", "Internal Server Error"),
            httpx.ReadTimeout("slow"),
            httpx.WriteTimeout("slow"),
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.Response(200, text="not json"),
        ],
        ids=[
            "500-html",
            "503-empty",
            "500-envelope",
            "read-timeout",
            "write-timeout",
            "protocol",
            "200-junk",
        ],
    )
    async def test_uncertain_failures_are_outcome_unknown(
        self,
        client: DarajaClient,
        daraja: respx.MockRouter,
        oauth: respx.Route,
        outcome: httpx.Response | Exception,
    ) -> None:
        push = daraja.post(PUSH).mock(side_effect=[outcome, accepted()])
        with pytest.raises(DarajaTransientError) as info:
            await client.stk_push(paybill(), push_request())
        assert push.call_count == 1
        assert info.value.outcome_unknown is True
        assert "STK query" in str(info.value)

    @pytest.mark.parametrize(
        "exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("no route")], ids=["refused", "timeout"]
    )
    async def test_connect_failures_certainly_sent_nothing(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route, exc: Exception
    ) -> None:
        push = daraja.post(PUSH).mock(side_effect=[exc, accepted()])
        with pytest.raises(DarajaTransientError) as info:
            await client.stk_push(paybill(), push_request())
        assert push.call_count == 1
        assert info.value.outcome_unknown is False
        assert info.value.kind == "transient"

    async def test_accepted_without_ids_is_outcome_unknown(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(PUSH).mock(return_value=httpx.Response(200, json={"ResponseCode": "0"}))
        with pytest.raises(DarajaTransientError) as info:
            await client.stk_push(paybill(), push_request())
        assert info.value.outcome_unknown is True


ERROR_CASES = [
    (400, "400.002.02", "Bad Request - Invalid PhoneNumber", DarajaValidationError, "PhoneNumber"),
    (400, "400.002.02", "Bad Request - Invalid CallBackURL", DarajaValidationError, "CallBackURL"),
    (400, "400.002.02", "Bad Request - Invalid Timestamp", DarajaValidationError, "Timestamp"),
    (400, "400.002.02", "Bad Request - Invalid Remarks", DarajaValidationError, "Remarks"),
    (400, "400.002.05", "Invalid Request Payload", DarajaValidationError, None),
    (400, "400.003.02", "Bad Request", DarajaValidationError, None),
    (500, "500.001.1001", "Merchant does not exist", DarajaBusinessError, None),
    (500, "500.001.1001", "[MerchantValidate] - Wrong credentials", DarajaBusinessError, None),
    (
        500,
        "500.001.1001",
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
        DarajaBusinessError,
        None,
    ),
    (500, "500.003.02", "Error Occurred: Spike Arrest Violation", DarajaThrottleError, None),
    (500, "500.003.02", "System is busy. Please try again in few minutes.", DarajaThrottleError, None),
    (500, "500.003.03", "Error Occurred: Quota Violation", DarajaThrottleError, None),
    (404, "404.001.01", "Resource not found", DarajaValidationError, None),
    (500, "500.003.1001", "Internal Server Error", DarajaTransientError, None),
]


class TestErrorClassification:
    @pytest.mark.parametrize(
        ("status", "code", "message", "error_class", "field"),
        ERROR_CASES,
        ids=[f"{c[1]}:{c[2][:24]}" for c in ERROR_CASES],
    )
    async def test_push_error_envelopes(
        self,
        client: DarajaClient,
        daraja: respx.MockRouter,
        oauth: respx.Route,
        status: int,
        code: str,
        message: str,
        error_class: type[DarajaError],
        field: str | None,
    ) -> None:
        push = daraja.post(PUSH).mock(return_value=envelope(status, code, message, request_id="req-42"))
        with pytest.raises(error_class) as info:
            await client.stk_push(paybill(), push_request())
        error = info.value
        assert type(error) is error_class
        assert error.error_code == code
        assert error.field == field
        assert error.http_status == status
        assert error.request_id == "req-42"
        assert error.daraja_message == message
        assert str(error) == error.message
        assert push.call_count == 1

    async def test_wrong_credentials_says_what_to_check(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(PUSH).mock(
            return_value=envelope(500, "500.001.1001", "[MerchantValidate] - Wrong credentials")
        )
        with pytest.raises(DarajaBusinessError) as info:
            await client.stk_push(paybill(), push_request())
        assert str(info.value) == (
            "Daraja says the password is wrong: check the passkey matches the business short code "
            "(for a Till, the Head Office/Store number)."
        )

    async def test_http_429_is_throttling(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(PUSH).mock(return_value=httpx.Response(429, text="Too Many Requests"))
        with pytest.raises(DarajaThrottleError) as info:
            await client.stk_push(paybill(), push_request())
        assert info.value.http_status == 429
        assert info.value.kind == "throttle"

    async def test_kinds(self) -> None:
        assert [c.kind for c in (DarajaAuthError, DarajaValidationError, DarajaBusinessError)] == [
            "auth",
            "validation",
            "business",
        ]
        assert DarajaThrottleError.kind == "throttle"
        assert DarajaTransientError.kind == "transient"

    @pytest.mark.parametrize(
        ("message", "field"),
        [
            ("Bad Request - Invalid BusinessShortCode", "BusinessShortCode"),
            ("Bad Request - Invalid PartyB", "PartyB"),
            ("Bad Request -  Invalid Amount ", "Amount"),
            ("Bad Request", None),
            ("", None),
            (None, None),
        ],
    )
    def test_field_extraction(self, message: str | None, field: str | None) -> None:
        assert extract_field(message) == field


def query_final(code: object, desc: str = "Request cancelled by user") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": "22205-34066-1",
            "CheckoutRequestID": "ws_CO_13012021093521236557",
            "ResultCode": code,
            "ResultDesc": desc,
        },
    )


class TestStkQuery:
    async def test_body(self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route) -> None:
        query = daraja.post(QUERY).mock(return_value=query_final("1032"))
        await client.stk_query(till(), "ws_CO_13012021093521236557")
        assert sent_json(query) == {
            "BusinessShortCode": "7654321",
            "Password": build_password("7654321", SANDBOX_PASSKEY, NOW_EAT),
            "Timestamp": NOW_EAT,
            "CheckoutRequestID": "ws_CO_13012021093521236557",
        }

    async def test_pending(self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route) -> None:
        daraja.post(QUERY).mock(
            return_value=envelope(
                500, "500.001.1001", "The transaction is being processed", request_id="ws_CO_1"
            )
        )
        result = await client.stk_query(paybill(), "ws_CO_1")
        assert result.pending is True
        assert result.result_code is None

    @pytest.mark.parametrize(("code", "expected"), [("1032", "1032"), (0, "0"), ("0", "0")])
    async def test_final(
        self,
        client: DarajaClient,
        daraja: respx.MockRouter,
        oauth: respx.Route,
        code: object,
        expected: str,
    ) -> None:
        daraja.post(QUERY).mock(return_value=query_final(code, "Request cancelled by user"))
        result = await client.stk_query(paybill(), "ws_CO_1")
        assert result.pending is False
        assert result.result_code == expected
        assert result.result_desc == "Request cancelled by user"

    async def test_does_not_exist(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(QUERY).mock(return_value=envelope(500, "500.001.1001", "This transaction does not exist"))
        with pytest.raises(DarajaBusinessError, match="no record"):
            await client.stk_query(paybill(), "ws_CO_missing")

    async def test_retried_once_on_transient_failure(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        query = daraja.post(QUERY).mock(side_effect=[httpx.ReadTimeout("slow"), query_final("0")])
        result = await client.stk_query(paybill(), "ws_CO_1")
        assert result.result_code == "0"
        assert query.call_count == 2

    async def test_gives_up_after_one_retry(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        query = daraja.post(QUERY).mock(return_value=httpx.Response(503))
        with pytest.raises(DarajaTransientError):
            await client.stk_query(paybill(), "ws_CO_1")
        assert query.call_count == 2

    async def test_throttle_is_not_retried(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        query = daraja.post(QUERY).mock(
            return_value=envelope(500, "500.003.02", "Error Occurred: Spike Arrest Violation")
        )
        with pytest.raises(DarajaThrottleError):
            await client.stk_query(paybill(), "ws_CO_1")
        assert query.call_count == 1


class TestNoSecretsInLogs:
    async def test_logs_and_errors_carry_no_secrets(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        daraja.get(OAUTH).mock(side_effect=[oauth_ok("tok-secret-1"), oauth_ok("tok-secret-2")])
        daraja.post(PUSH).mock(
            side_effect=[
                envelope(404, "404.001.03", "Invalid Access Token"),
                envelope(404, "404.001.03", "Invalid Access Token"),
            ]
        )
        with structlog.testing.capture_logs() as logs, pytest.raises(DarajaAuthError) as info:
            await client.stk_push(paybill(), push_request())
        dumped = repr(logs) + str(info.value) + repr(info.value)
        for secret in (SECRET, SANDBOX_PASSKEY, "tok-secret-1", "tok-secret-2", "Bearer", "Basic"):
            assert secret not in dumped
        assert logs, "the client should log what happened"


class TestLeafPackage:
    def test_imports_nothing_else_of_ours(self) -> None:
        package = Path(core.daraja.__file__).parent
        forbidden = ("web", "bots", "ussd", "sim", "core")
        for source in package.glob("*.py"):
            tree = ast.parse(source.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    if name.startswith("core.daraja"):
                        continue
                    assert name.split(".")[0] not in forbidden, f"{source.name} imports {name}"
