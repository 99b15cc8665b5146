"""DarajaClient's money-out calls against a faked HTTP layer (respx): wire format, idempotency of B2C,
unknown outcomes, token refresh and error mapping."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import get_args

import httpx
import pytest
import respx
import structlog.testing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from core.daraja import money_out as mo
from core.daraja.app import AppCredentials, InitiatorCredentials
from core.daraja.client import DarajaClient
from core.daraja.errors import (
    DarajaAuthError,
    DarajaBusinessError,
    DarajaCertificateError,
    DarajaDuplicateRequestError,
    DarajaModeError,
    DarajaThrottleError,
    DarajaTransientError,
    DarajaUrlsAlreadyRegisteredError,
    DarajaValidationError,
)
from core.daraja.money_out import (
    AccountBalanceRequest,
    B2CPaymentRequest,
    C2BRegisterRequest,
    ReversalRequest,
    TransactionStatusRequest,
)
from core.daraja.tokens import MemoryTokenStore

BASE = "https://daraja.test"
OAUTH = "/oauth/v1/generate"
B2C = "/mpesa/b2c/v3/paymentrequest"
STATUS = "/mpesa/transactionstatus/v1/query"
BALANCE = "/mpesa/accountbalance/v1/query"
REVERSAL = "/mpesa/reversal/v1/request"

REPO = Path(__file__).resolve().parents[3]
SIM_CERT = (REPO / "sim" / "daraja" / "certs" / "simulator.cer").read_bytes()
SIM_KEY = (REPO / "sim" / "daraja" / "certs" / "simulator-key.pem").read_bytes()

SECRET = "consumer-secret-do-not-leak"
INITIATOR_PASSWORD = "Initiator#Pass-do-not-leak"
RESULT_URL = "https://lipapush.test/callbacks/daraja/res/abc"
TIMEOUT_URL = "https://lipapush.test/callbacks/daraja/tmo/abc"
ORIGINATOR = "po_01HZX3Q7W8N2"


def initiator(**overrides: object) -> InitiatorCredentials:
    values: dict[str, object] = {
        "base_url": BASE + "/",
        "consumer_key": "ck-b2c",
        "consumer_secret": SECRET,
        "short_code": "600992",
        "initiator_name": "testapi",
        "initiator_password": INITIATOR_PASSWORD,
        "certificate": SIM_CERT,
    } | overrides
    return InitiatorCredentials.model_validate(values)


def payout(**overrides: object) -> B2CPaymentRequest:
    values: dict[str, object] = {
        "originator_conversation_id": ORIGINATOR,
        "phone": "254705912645",
        "amount": 1500,
        "remarks": "Refund INV001",
        "result_url": RESULT_URL,
        "timeout_url": TIMEOUT_URL,
    } | overrides
    return B2CPaymentRequest.model_validate(values)


def decrypt(credential: object) -> str:
    key = serialization.load_pem_private_key(SIM_KEY, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.decrypt(base64.b64decode(str(credential)), padding.PKCS1v15()).decode()


def oauth_ok(token: str = "tok-1") -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "expires_in": "3599"})


def accepted(
    originator: str = ORIGINATOR, conversation: str = "AG_20240706_20106e9209f64bebd05b"
) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "ConversationID": conversation,
            "OriginatorConversationID": originator,
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        },
    )


def envelope(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"requestId": "1c5b-4ba8-815c", "errorCode": code, "errorMessage": message}
    )


def sent_json(route: respx.Route, index: int = -1) -> dict[str, object]:
    body = json.loads(route.calls[index].request.content)
    assert isinstance(body, dict)
    return body


@pytest.fixture
def daraja() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def oauth(daraja: respx.MockRouter) -> respx.Route:
    return daraja.get(OAUTH, params={"grant_type": "client_credentials"}).mock(return_value=oauth_ok())


@pytest.fixture
async def client() -> AsyncIterator[DarajaClient]:
    async with httpx.AsyncClient() as http:
        yield DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=(0.0,))


class TestB2CBody:
    async def test_wire_format(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(B2C).mock(return_value=accepted())
        result = await client.b2c_payment(initiator(), payout(occasion="Refund"))

        body = sent_json(route)
        credential = body.pop("SecurityCredential")
        assert decrypt(credential) == INITIATOR_PASSWORD
        assert body == {
            "OriginatorConversationID": ORIGINATOR,
            "InitiatorName": "testapi",
            "CommandID": "BusinessPayment",
            "Amount": 1500,
            "PartyA": "600992",
            "PartyB": "254705912645",
            "Remarks": "Refund INV001",
            "QueueTimeOutURL": TIMEOUT_URL,
            "ResultURL": RESULT_URL,
            "Occassion": "Refund",
        }
        request = route.calls[0].request
        assert request.headers["Authorization"] == "Bearer tok-1"
        assert request.headers["Content-Type"] == "application/json"
        assert result == mo.RequestAccepted(
            conversation_id="AG_20240706_20106e9209f64bebd05b",
            originator_conversation_id=ORIGINATOR,
            response_code="0",
            response_description="Accept the service request successfully.",
        )

    async def test_occasion_is_optional(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(B2C).mock(return_value=accepted())
        await client.b2c_payment(initiator(), payout(command="PromotionPayment"))
        body = sent_json(route)
        assert "Occassion" not in body and "Occasion" not in body
        assert body["CommandID"] == "PromotionPayment"

    async def test_a_fresh_credential_per_request(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(B2C).mock(return_value=accepted())
        await client.b2c_payment(initiator(), payout())
        await client.b2c_payment(initiator(), payout(originator_conversation_id="po_2"))
        first, second = sent_json(route, 0)["SecurityCredential"], sent_json(route, 1)["SecurityCredential"]
        assert first != second
        assert decrypt(first) == decrypt(second) == INITIATOR_PASSWORD
        assert oauth.call_count == 1


class TestRequestValidation:
    @pytest.mark.parametrize("amount", [9, 250_001, 100.0, "100", 10.5])
    def test_amount_is_whole_shillings_in_b2c_range(self, amount: object) -> None:
        with pytest.raises(ValidationError):
            payout(amount=amount)

    def test_b2c_limits_are_inclusive(self) -> None:
        assert payout(amount=10).amount == 10
        assert payout(amount=250_000).amount == 250_000

    @pytest.mark.parametrize("originator", ["", "has space", "x" * 65, "semi;colon"])
    def test_originator_conversation_id(self, originator: str) -> None:
        with pytest.raises(ValidationError):
            payout(originator_conversation_id=originator)

    @pytest.mark.parametrize("phone", ["0705912645", "+254705912645", "25470591264"])
    def test_phone_must_be_normalised(self, phone: str) -> None:
        with pytest.raises(ValidationError):
            payout(phone=phone)

    def test_remarks_length(self) -> None:
        with pytest.raises(ValidationError):
            payout(remarks="x")
        with pytest.raises(ValidationError):
            payout(remarks="x" * 101)

    def test_urls(self) -> None:
        with pytest.raises(ValidationError):
            payout(result_url="lipapush.test/result")

    def test_status_needs_a_reference(self) -> None:
        with pytest.raises(ValidationError, match="transaction_id"):
            TransactionStatusRequest(result_url=RESULT_URL, timeout_url=TIMEOUT_URL)

    @pytest.mark.parametrize("amount", [0, 1.0, "5"])
    def test_reversal_amount(self, amount: object) -> None:
        with pytest.raises(ValidationError):
            ReversalRequest.model_validate(
                {
                    "transaction_id": "PDU91HIVIT",
                    "amount": amount,
                    "result_url": RESULT_URL,
                    "timeout_url": TIMEOUT_URL,
                }
            )

    def test_bad_certificate_fails_when_credentials_are_built(self) -> None:
        with pytest.raises(DarajaCertificateError, match="private key"):
            initiator(certificate=SIM_KEY)

    def test_secrets_stay_out_of_reprs(self) -> None:
        creds = initiator()
        for text in (repr(creds), str(creds), str(creds.model_dump())):
            assert SECRET not in text
            assert INITIATOR_PASSWORD not in text
        assert "BEGIN CERTIFICATE" not in repr(creds)


class TestB2CIdempotency:
    async def test_duplicate_originator_id_is_its_own_error(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(B2C).mock(
            return_value=envelope(500, "500.002.1001", "Duplicate OriginatorConversationID")
        )
        with pytest.raises(DarajaDuplicateRequestError) as info:
            await client.b2c_payment(initiator(), payout())
        error = info.value
        assert isinstance(error, DarajaBusinessError)
        assert error.error_code == "500.002.1001"
        assert error.http_status == 500
        assert error.daraja_message == "Duplicate OriginatorConversationID"
        assert str(error) == (
            "Daraja already has a request with this OriginatorConversationID, so the payout was sent before: "
            "do not treat it as failed and do not send it under a new id. Wait for its result, or check it "
            "with a transaction status query."
        )
        assert route.call_count == 1

    @pytest.mark.parametrize(
        "outcome",
        [
            httpx.ReadTimeout("slow"),
            httpx.WriteTimeout("slow"),
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.Response(500, text="<html>Internal Server Error</html>"),
            httpx.Response(503),
            envelope(500, "500.003.1001", "Internal Server Error"),
            httpx.Response(200, text="not json"),
            httpx.Response(200, json={"ResponseCode": "0"}),
            httpx.Response(200, json={"ConversationID": "AG_1"}),
        ],
        ids=[
            "read-timeout",
            "write-timeout",
            "dropped",
            "500-html",
            "503",
            "500-envelope",
            "200-junk",
            "accepted-without-ids",
            "no-response-code",
        ],
    )
    async def test_uncertain_failures_are_unknown_outcomes_and_not_retried(
        self,
        client: DarajaClient,
        daraja: respx.MockRouter,
        oauth: respx.Route,
        outcome: httpx.Response | Exception,
    ) -> None:
        route = daraja.post(B2C).mock(side_effect=[outcome, accepted()])
        with pytest.raises(DarajaTransientError) as info:
            await client.b2c_payment(initiator(), payout())
        assert info.value.outcome_unknown is True
        assert "same OriginatorConversationID" in str(info.value)
        assert route.call_count == 1

    async def test_retry_by_the_caller_sends_the_same_id(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(B2C).mock(
            side_effect=[
                httpx.ReadTimeout("slow"),
                envelope(500, "500.002.1001", "Duplicate OriginatorConversationID"),
            ]
        )
        request = payout()
        with pytest.raises(DarajaTransientError):
            await client.b2c_payment(initiator(), request)
        with pytest.raises(DarajaDuplicateRequestError):
            await client.b2c_payment(initiator(), request)
        assert [sent_json(route, i)["OriginatorConversationID"] for i in (0, 1)] == [ORIGINATOR, ORIGINATOR]

    @pytest.mark.parametrize(
        "exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("no route")], ids=["refused", "timeout"]
    )
    async def test_connect_failures_certainly_sent_nothing(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route, exc: Exception
    ) -> None:
        route = daraja.post(B2C).mock(side_effect=[exc, accepted()])
        with pytest.raises(DarajaTransientError) as info:
            await client.b2c_payment(initiator(), payout())
        assert info.value.outcome_unknown is False
        assert (
            str(info.value)
            == "Could not connect to Daraja for the B2C payout; nothing was sent. Try again shortly."
        )
        assert route.call_count == 1

    async def test_refusals_are_not_unknown(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post(B2C).mock(
            return_value=httpx.Response(
                200, json={"ResponseCode": "1", "ResponseDescription": "Rejected", "ConversationID": "AG_1"}
            )
        )
        with pytest.raises(DarajaBusinessError) as info:
            await client.b2c_payment(initiator(), payout())
        assert type(info.value) is DarajaBusinessError
        assert info.value.error_code == "1"
        assert str(info.value) == "Daraja did not accept the B2C payout: Rejected."


class TestB2CErrors:
    @pytest.mark.parametrize(
        ("message", "field", "expected"),
        [
            (
                "Bad Request - Invalid SecurityCredential",
                "SecurityCredential",
                "Daraja says the security credential is invalid: check the initiator password and that the "
                "certificate is the one for this environment (sandbox or production).",
            ),
            (
                "Bad Request - Invalid PartyB",
                "PartyB",
                "Daraja says the recipient's phone number is invalid: use a Safaricom number in the form "
                "2547XXXXXXXX or 2541XXXXXXXX.",
            ),
            (
                "Bad Request - Invalid ResultURL",
                "ResultURL",
                "Daraja rejected the result URL: it must be a public HTTPS address that does not contain the "
                "words M-PESA, mpesa, Safaricom, exe, exec, cmd, sql or query.",
            ),
            ("Bad Request - Invalid Frobnicator", "Frobnicator", "Daraja says the Frobnicator is invalid."),
        ],
    )
    async def test_field_errors_in_payout_words(
        self,
        client: DarajaClient,
        daraja: respx.MockRouter,
        oauth: respx.Route,
        message: str,
        field: str,
        expected: str,
    ) -> None:
        route = daraja.post(B2C).mock(return_value=envelope(400, "400.002.02", message))
        with pytest.raises(DarajaValidationError) as info:
            await client.b2c_payment(initiator(), payout())
        assert info.value.field == field
        assert str(info.value) == expected
        assert route.call_count == 1

    async def test_spike_arrest_is_throttling_and_not_retried(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(B2C).mock(
            return_value=envelope(500, "500.003.02", "Error Occurred: Spike Arrest Violation")
        )
        with pytest.raises(DarajaThrottleError):
            await client.b2c_payment(initiator(), payout())
        assert route.call_count == 1

    async def test_rejected_token_is_refreshed_once_with_the_same_request(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        oauth = daraja.get(OAUTH).mock(side_effect=[oauth_ok("stale"), oauth_ok("fresh")])
        route = daraja.post(B2C).mock(
            side_effect=[
                envelope(401, "401.002.01", "Error Occurred - Invalid Access Token - stale"),
                accepted(),
            ]
        )
        result = await client.b2c_payment(initiator(), payout())
        assert result.originator_conversation_id == ORIGINATOR
        assert oauth.call_count == 2
        assert route.calls[1].request.headers["Authorization"] == "Bearer fresh"
        assert sent_json(route, 0) == sent_json(route, 1)

    async def test_token_rejected_twice_names_the_product(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        daraja.get(OAUTH).mock(side_effect=[oauth_ok("a"), oauth_ok("b")])
        route = daraja.post(B2C).mock(return_value=envelope(404, "404.001.03", "Invalid Access Token"))
        with pytest.raises(DarajaAuthError) as info:
            await client.b2c_payment(initiator(), payout())
        assert str(info.value) == (
            "Daraja rejected the access token even after a fresh one was fetched: check the app on the "
            "Daraja portal has the B2C (Business to Customer) product enabled and that the keys belong to "
            "the same environment (sandbox or production) as the base URL."
        )
        assert route.call_count == 2

    async def test_test_mode_never_reaches_production(
        self, client: DarajaClient, daraja: respx.MockRouter
    ) -> None:
        oauth = daraja.get(OAUTH).mock(return_value=oauth_ok())
        route = daraja.post(B2C).mock(return_value=accepted())
        creds = initiator(mode="test", production_url=BASE)
        with pytest.raises(DarajaModeError):
            await client.b2c_payment(creds, payout())
        assert oauth.call_count == 0
        assert route.call_count == 0

    async def test_no_secrets_in_logs_or_errors(self, client: DarajaClient, daraja: respx.MockRouter) -> None:
        daraja.get(OAUTH).mock(side_effect=[oauth_ok("tok-secret-1"), oauth_ok("tok-secret-2")])
        route = daraja.post(B2C).mock(return_value=envelope(404, "404.001.03", "Invalid Access Token"))
        with structlog.testing.capture_logs() as logs, pytest.raises(DarajaAuthError) as info:
            await client.b2c_payment(initiator(), payout())
        credential = str(sent_json(route)["SecurityCredential"])
        dumped = repr(logs) + str(info.value) + repr(info.value)
        for secret in (SECRET, INITIATOR_PASSWORD, credential, "tok-secret-1", "tok-secret-2", "Bearer"):
            assert secret not in dumped
        assert logs


class TestTransactionStatus:
    async def test_by_receipt(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(STATUS).mock(return_value=accepted(originator="1236-7134259-1"))
        req = TransactionStatusRequest(
            transaction_id="NEF61H8J60", result_url=RESULT_URL, timeout_url=TIMEOUT_URL
        )
        result = await client.transaction_status(initiator(), req)
        body = sent_json(route)
        assert decrypt(body.pop("SecurityCredential")) == INITIATOR_PASSWORD
        assert body == {
            "Initiator": "testapi",
            "CommandID": "TransactionStatusQuery",
            "TransactionID": "NEF61H8J60",
            "PartyA": "600992",
            "IdentifierType": "4",
            "ResultURL": RESULT_URL,
            "QueueTimeOutURL": TIMEOUT_URL,
            "Remarks": "OK",
        }
        assert result.originator_conversation_id == "1236-7134259-1"

    async def test_by_the_payouts_originator_id(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(STATUS).mock(return_value=accepted(originator="1236-7134259-1"))
        req = TransactionStatusRequest(
            original_conversation_id=ORIGINATOR,
            result_url=RESULT_URL,
            timeout_url=TIMEOUT_URL,
            occasion="Check",
        )
        await client.transaction_status(initiator(), req)
        body = sent_json(route)
        assert body["OriginalConversationID"] == ORIGINATOR
        assert body["Occasion"] == "Check"
        assert "TransactionID" not in body

    async def test_retried_once_on_a_transient_failure(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(STATUS).mock(side_effect=[httpx.ReadTimeout("slow"), accepted()])
        req = TransactionStatusRequest(
            transaction_id="NEF61H8J60", result_url=RESULT_URL, timeout_url=TIMEOUT_URL
        )
        result = await client.transaction_status(initiator(), req)
        assert result.conversation_id.startswith("AG_")
        assert route.call_count == 2

    async def test_gives_up_after_one_retry(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(STATUS).mock(return_value=httpx.Response(503))
        req = TransactionStatusRequest(
            transaction_id="NEF61H8J60", result_url=RESULT_URL, timeout_url=TIMEOUT_URL
        )
        with pytest.raises(DarajaTransientError) as info:
            await client.transaction_status(initiator(), req)
        assert str(info.value) == (
            "Daraja answered the transaction status query with HTTP 503 and no readable details. "
            "Try again shortly."
        )
        assert route.call_count == 2


class TestAccountBalance:
    async def test_body(self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route) -> None:
        route = daraja.post(BALANCE).mock(return_value=accepted(originator="16917-22577599-3"))
        req = AccountBalanceRequest(result_url=RESULT_URL, timeout_url=TIMEOUT_URL, remarks="Daily check")
        result = await client.account_balance(initiator(), req)
        body = sent_json(route)
        assert decrypt(body.pop("SecurityCredential")) == INITIATOR_PASSWORD
        assert body == {
            "Initiator": "testapi",
            "CommandID": "AccountBalance",
            "PartyA": "600992",
            "IdentifierType": "4",
            "Remarks": "Daily check",
            "QueueTimeOutURL": TIMEOUT_URL,
            "ResultURL": RESULT_URL,
        }
        assert result.originator_conversation_id == "16917-22577599-3"

    async def test_retried_once(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(BALANCE).mock(side_effect=[httpx.Response(502), accepted()])
        await client.account_balance(
            initiator(), AccountBalanceRequest(result_url=RESULT_URL, timeout_url=TIMEOUT_URL)
        )
        assert route.call_count == 2


class TestReversal:
    def request(self) -> ReversalRequest:
        return ReversalRequest(
            transaction_id="PDU91HIVIT",
            amount=200,
            remarks="Payment reversal",
            result_url=RESULT_URL,
            timeout_url=TIMEOUT_URL,
        )

    async def test_body(self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route) -> None:
        route = daraja.post(REVERSAL).mock(
            return_value=accepted(originator="dad6-4c34-8787-c8cb963a496d1268232")
        )
        await client.reversal(initiator(short_code="603021"), self.request())
        body = sent_json(route)
        assert decrypt(body.pop("SecurityCredential")) == INITIATOR_PASSWORD
        assert body == {
            "Initiator": "testapi",
            "CommandID": "TransactionReversal",
            "TransactionID": "PDU91HIVIT",
            "Amount": 200,
            "ReceiverParty": "603021",
            "RecieverIdentifierType": "11",
            "ResultURL": RESULT_URL,
            "QueueTimeOutURL": TIMEOUT_URL,
            "Remarks": "Payment reversal",
        }

    async def test_unknown_outcome_is_not_retried(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        route = daraja.post(REVERSAL).mock(side_effect=[httpx.ReadTimeout("slow"), accepted()])
        with pytest.raises(DarajaTransientError) as info:
            await client.reversal(initiator(), self.request())
        assert info.value.outcome_unknown is True
        assert str(info.value) == (
            "Daraja did not answer the reversal in time. Daraja may already have the reversal: check the "
            "original transaction with a transaction status query before sending it again."
        )
        assert route.call_count == 1


class TestRegisterC2BUrls:
    def creds(self) -> AppCredentials:
        return AppCredentials(
            base_url=BASE, consumer_key="ck-c2b", consumer_secret=SECRET, short_code="600984"
        )

    @pytest.mark.parametrize("version", ["v1", "v2"])
    async def test_body_and_typo_in_the_answer(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route, version: str
    ) -> None:
        route = daraja.post(f"/mpesa/c2b/{version}/registerurl").mock(
            return_value=httpx.Response(
                200,
                json={
                    "OriginatorCoversationID": "6e86-45dd-91ac-fd5d4178ab523408729",
                    "ResponseCode": "0",
                    "ResponseDescription": "Success",
                },
            )
        )
        req = C2BRegisterRequest(
            confirmation_url="https://lipapush.test/c2b/confirm/abc",
            validation_url="https://lipapush.test/c2b/validate/abc",
            response_type="Cancelled",
            version=version,
        )
        result = await client.register_c2b_urls(self.creds(), req)
        assert sent_json(route) == {
            "ShortCode": "600984",
            "ResponseType": "Cancelled",
            "ConfirmationURL": "https://lipapush.test/c2b/confirm/abc",
            "ValidationURL": "https://lipapush.test/c2b/validate/abc",
        }
        assert result == mo.C2BUrlsRegistered(
            originator_conversation_id="6e86-45dd-91ac-fd5d4178ab523408729",
            response_code="0",
            response_description="Success",
        )

    @pytest.mark.parametrize(
        "message", ["Urls are already registered.", "Duplicate notification info, SP ID is 107031"]
    )
    async def test_already_registered(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route, message: str
    ) -> None:
        route = daraja.post("/mpesa/c2b/v1/registerurl").mock(
            return_value=envelope(500, "500.003.1001", message)
        )
        req = C2BRegisterRequest(confirmation_url="https://a.test/c", validation_url="https://a.test/v")
        with pytest.raises(DarajaUrlsAlreadyRegisteredError) as info:
            await client.register_c2b_urls(self.creds(), req)
        assert info.value.kind == "business"
        assert "URL management" in str(info.value)
        assert route.call_count == 1

    async def test_internal_error_is_still_transient(
        self, client: DarajaClient, daraja: respx.MockRouter, oauth: respx.Route
    ) -> None:
        daraja.post("/mpesa/c2b/v1/registerurl").mock(
            return_value=envelope(
                500, "500.003.1001", "Service is currently unreachable. Please try again later."
            )
        )
        req = C2BRegisterRequest(confirmation_url="https://a.test/c", validation_url="https://a.test/v")
        with pytest.raises(DarajaTransientError) as info:
            await client.register_c2b_urls(self.creds(), req)
        assert info.value.outcome_unknown is True

    def test_response_type_is_exact(self) -> None:
        with pytest.raises(ValidationError):
            C2BRegisterRequest.model_validate(
                {
                    "confirmation_url": "https://a.test/c",
                    "validation_url": "https://a.test/v",
                    "response_type": "completed",
                }
            )


class TestTables:
    def test_every_operation_has_its_words(self) -> None:
        for op in get_args(mo.MoneyOutOperation):
            assert op in mo.WHAT and op in mo.RETRY_HINTS and op in mo.PRODUCTS
