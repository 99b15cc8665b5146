"""The Daraja simulator's C2B over real HTTP: register URL (v1/v2), simulate and ``/_sim/c2b/pay``,
validation and confirmation delivered to a merchant server that answers what each test scripts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import sim.daraja
from sim.daraja import create_app
from sim.daraja.ids import mpesa_receipt_prefix
from sim.daraja.transactions import default_name
from tests.support.servers import serving

EAT = ZoneInfo("Africa/Nairobi")
DELAY = 0.05
VALIDATION_WAIT = 0.4
DARAJA_ID = re.compile(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\d{6,7}")
RECEIPT = re.compile(r"[A-Z0-9]{10}")
_shortcodes = count(620_001)
_MISSING = object()


CERTIFICATE = x509.load_pem_x509_certificate(
    (Path(sim.daraja.__file__).parent / "certs" / "simulator.cer").read_bytes()
)


def new_shortcode() -> str:
    return str(next(_shortcodes))


def credential(password: str = "Safaricom999!*!") -> str:
    key = CERTIFICATE.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return base64.b64encode(key.encrypt(password.encode(), padding.PKCS1v15())).decode()


# --- the merchant ----------------------------------------------------------------------------------------


@dataclass
class Answer:
    body: Any = None
    status: int = 200
    after: float = 0.0  # seconds before answering


class Merchant:
    """Validation and confirmation URLs; a test scripts what each path answers (default: 200, accepted)."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: dict[str, list[Any]] = defaultdict(list)
        self.answers: dict[str, Answer] = {}
        self.app = Starlette(routes=[Route("/c2b/{name}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name].append(await request.json())
        answer = self.answers.get(name, Answer({"ResultCode": "0", "ResultDesc": "Accepted"}))
        if answer.after:
            await asyncio.sleep(answer.after)
        if answer.body is None:
            return Response("no json here", status_code=answer.status)
        return JSONResponse(answer.body, status_code=answer.status)

    def url(self, answer: Answer | None = None) -> tuple[str, str]:
        name = uuid.uuid4().hex
        if answer is not None:
            self.answers[name] = answer
        return name, f"{self.base}/c2b/{name}"


class Sim:
    def __init__(self, base: str, client: httpx.AsyncClient, merchant: Merchant) -> None:
        self.base = base
        self.client = client
        self.merchant = merchant
        self._token: str | None = None

    async def token(self) -> str:
        if self._token is None:
            r = await self.client.get(
                f"{self.base}/oauth/v1/generate",
                params={"grant_type": "client_credentials"},
                auth=("c2b-key", "secret"),
            )
            assert r.status_code == 200, r.text
            self._token = str(r.json()["access_token"])
        return self._token

    async def post(self, path: str, body: Any, *, auth: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.token()}"} if auth else {}
        return await self.client.post(f"{self.base}{path}", json=body, headers=headers)

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.client.post(f"{self.base}{path}", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    async def get(self, path: str) -> Any:
        r = await self.client.get(f"{self.base}{path}")
        assert r.status_code == 200, r.text
        return r.json()

    async def register(
        self,
        shortcode: str,
        *,
        version: int = 1,
        response_type: str = "Completed",
        confirmation: Answer | None = None,
        validation: Answer | None = None,
    ) -> tuple[str, str]:
        """Register a confirmation and a validation URL; their names in ``merchant.hits``."""
        confirm_name, confirm_url = self.merchant.url(confirmation)
        validate_name, validate_url = self.merchant.url(validation)
        r = await self.post(
            f"/mpesa/c2b/v{version}/registerurl",
            {
                "ShortCode": shortcode,
                "ResponseType": response_type,
                "ConfirmationURL": confirm_url,
                "ValidationURL": validate_url,
            },
        )
        assert r.status_code == 200, r.text
        return confirm_name, validate_name

    async def pay(self, shortcode: str, msisdn: str = "254712345126", amount: int = 5, **extra: Any) -> str:
        body = {"shortcode": shortcode, "msisdn": msisdn, "amount": amount, "bill_ref": "INV-001", **extra}
        return str((await self.control("/_sim/c2b/pay", body))["TransID"])

    async def settled(self, trans_id: str, within: float = 5.0) -> dict[str, Any]:
        """The payment's record once its last delivery is done."""
        deadline = time.monotonic() + within
        while True:
            record: dict[str, Any] = await self.get(f"/_sim/c2b/{trans_id}")
            if record["outcome"] != "pending":
                return record
            assert time.monotonic() < deadline, f"payment {trans_id} still pending"
            await asyncio.sleep(0.02)


def assert_error(r: httpx.Response, status: int, code: str, message: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}
    assert (body["errorCode"], body["errorMessage"]) == (code, message)


@pytest.fixture(scope="module")
async def merchant() -> AsyncIterator[Merchant]:
    m = Merchant()
    async with serving(m.app, lifespan="off") as base:
        m.base = base
        yield m


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


@contextlib.asynccontextmanager
async def running(merchant: Merchant, client: httpx.AsyncClient, **kwargs: Any) -> AsyncIterator[Sim]:
    app = create_app(callback_delay=DELAY, c2b_validation_timeout=VALIDATION_WAIT, **kwargs)
    async with serving(app, lifespan="off") as base:
        yield Sim(base, client, merchant)


@pytest.fixture(scope="module")
async def sandbox(merchant: Merchant, client: httpx.AsyncClient) -> AsyncIterator[Sim]:
    async with running(merchant, client) as s:
        yield s


# --- register URL ----------------------------------------------------------------------------------------


class TestRegister:
    @pytest.mark.parametrize("version", [1, 2])
    async def test_response_keeps_darajas_typo(self, sandbox: Sim, version: int) -> None:
        _, url = sandbox.merchant.url()
        r = await sandbox.post(
            f"/mpesa/c2b/v{version}/registerurl",
            {
                "ShortCode": new_shortcode(),
                "ResponseType": "Cancelled",
                "ConfirmationURL": url,
                "ValidationURL": url,
            },
        )
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"OriginatorCoversationID", "ResponseCode", "ResponseDescription"}
        assert DARAJA_ID.fullmatch(body["OriginatorCoversationID"])
        assert (body["ResponseCode"], body["ResponseDescription"]) == ("0", "Success")

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("ShortCode", "12"),
            ("ResponseType", "completed"),
            ("ResponseType", "CANCELLED"),
            ("ResponseType", _MISSING),
            ("ConfirmationURL", "https://example.com/safaricom/confirm"),
            ("ConfirmationURL", _MISSING),
            ("ValidationURL", "ftp://example.com/validate"),
        ],
    )
    async def test_field_validation(self, sandbox: Sim, field: str, value: Any) -> None:
        _, url = sandbox.merchant.url()
        body = {
            "ShortCode": new_shortcode(),
            "ResponseType": "Completed",
            "ConfirmationURL": url,
            "ValidationURL": url,
        }
        if value is _MISSING:
            del body[field]
        else:
            body[field] = value
        r = await sandbox.post("/mpesa/c2b/v1/registerurl", body)
        assert_error(r, 400, "400.002.02", f"Bad Request - Invalid {field}")

    async def test_sandbox_overwrites_production_refuses(
        self, merchant: Merchant, client: httpx.AsyncClient
    ) -> None:
        shortcode = new_shortcode()
        async with running(merchant, client, production=True) as production:
            await production.register(shortcode)
            _, url = merchant.url()
            r = await production.post(
                "/mpesa/c2b/v1/registerurl",
                {"ShortCode": shortcode, "ResponseType": "Completed", "ConfirmationURL": url},
            )
            assert_error(r, 500, "500.003.1001", "Urls are already registered.")
        async with running(merchant, client) as sandbox:
            await sandbox.register(shortcode)
            confirm_name, _ = await sandbox.register(shortcode)  # the second one replaces the first
            record = await sandbox.settled(await sandbox.pay(shortcode))
            assert [d["url"] for d in record["deliveries"]] == [f"{merchant.base}/c2b/{confirm_name}"]

    async def test_bearer_token_required(self, sandbox: Sim) -> None:
        for path in ("/mpesa/c2b/v1/registerurl", "/mpesa/c2b/v2/registerurl", "/mpesa/c2b/v1/simulate"):
            assert_error(await sandbox.post(path, {}, auth=False), 404, "404.001.03", "Invalid Access Token")


# --- confirmation ----------------------------------------------------------------------------------------


class TestConfirmation:
    @pytest.mark.parametrize(("version", "msisdn_seen"), [(1, "254712345126"), (2, "2547 ***** 126")])
    async def test_v1_full_msisdn_v2_masked(self, sandbox: Sim, version: int, msisdn_seen: str) -> None:
        shortcode = new_shortcode()
        confirm_name, validate_name = await sandbox.register(shortcode, version=version)
        await sandbox.control("/_sim/balance", {"shortcode": shortcode, "utility": "20.00"})
        trans_id = await sandbox.pay(shortcode, first_name="NICHOLAS", amount=5)
        record = await sandbox.settled(trans_id)
        (confirmation,) = sandbox.merchant.hits[confirm_name]
        assert confirmation == {
            "TransactionType": "Pay Bill",
            "TransID": trans_id,
            "TransTime": confirmation["TransTime"],
            "TransAmount": "5.00",
            "BusinessShortCode": shortcode,
            "BillRefNumber": "INV-001",
            "InvoiceNumber": "",
            "OrgAccountBalance": "25.00",
            "ThirdPartyTransID": "",
            "MSISDN": msisdn_seen,
            "FirstName": "NICHOLAS",
            "MiddleName": "",
            "LastName": "",
        }
        assert RECEIPT.fullmatch(trans_id) and trans_id[:3] == mpesa_receipt_prefix(datetime.now(EAT).date())
        paid_at = datetime.strptime(confirmation["TransTime"], "%Y%m%d%H%M%S").replace(tzinfo=EAT)
        assert paid_at <= datetime.now(EAT)
        # Validation is off until enabled: the merchant was never asked.
        assert sandbox.merchant.hits[validate_name] == []
        assert record["outcome"] == "completed" and record["validation"] == "not asked"
        assert [(d["kind"], d["status_code"], d["reply"]) for d in record["deliveries"]] == [
            ("confirmation", 200, {"ResultCode": "0", "ResultDesc": "Accepted"})
        ]
        assert (await sandbox.get(f"/_sim/balance/{shortcode}"))["utility"] == "25.00"

    async def test_simulate_buy_goods_with_oauth(self, sandbox: Sim) -> None:
        shortcode = new_shortcode()
        confirm_name, _ = await sandbox.register(shortcode, version=1)
        r = await sandbox.post(
            "/mpesa/c2b/v2/simulate",
            {
                "ShortCode": int(shortcode),
                "CommandID": "CustomerBuyGoodsOnline",
                "Amount": 10,
                "Msisdn": 254708374149,
                "BillRefNumber": None,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"OriginatorCoversationID", "ResponseCode", "ResponseDescription"}
        assert (body["ResponseCode"], body["ResponseDescription"]) == (
            "0",
            "Accept the service request successfully.",
        )
        deadline = time.monotonic() + 3
        while not sandbox.merchant.hits[confirm_name]:
            assert time.monotonic() < deadline, "no confirmation"
            await asyncio.sleep(0.02)
        (confirmation,) = sandbox.merchant.hits[confirm_name]
        name = default_name("254708374149")
        assert (
            confirmation["TransactionType"],
            confirmation["BillRefNumber"],
            confirmation["TransAmount"],
        ) == (
            "Buy Goods",
            "",
            "10.00",
        )
        assert (confirmation["FirstName"], confirmation["MiddleName"], confirmation["LastName"]) == (
            name.first,
            name.middle,
            name.last,
        )
        assert confirmation["MSISDN"] == "254708374149"

    @pytest.mark.parametrize(
        ("field", "value"),
        [("CommandID", "PayBill"), ("Amount", "1.5"), ("Msisdn", "0712345678"), ("BillRefNumber", "x" * 21)],
    )
    async def test_simulate_field_validation(self, sandbox: Sim, field: str, value: Any) -> None:
        body = {
            "ShortCode": new_shortcode(),
            "CommandID": "CustomerPayBillOnline",
            "Amount": 10,
            "Msisdn": "254708374149",
            "BillRefNumber": "ref",
            field: value,
        }
        assert_error(
            await sandbox.post("/mpesa/c2b/v1/simulate", body),
            400,
            "400.002.02",
            f"Bad Request - Invalid {field}",
        )

    async def test_no_urls_registered_completes_silently(self, sandbox: Sim) -> None:
        shortcode = new_shortcode()
        record = await sandbox.settled(await sandbox.pay(shortcode, amount=40))
        assert (record["outcome"], record["deliveries"]) == ("completed", [])
        assert (await sandbox.get(f"/_sim/balance/{shortcode}"))["utility"] == "100040.00"


# --- validation ------------------------------------------------------------------------------------------


class TestValidation:
    async def enable(self, sim_: Sim, shortcode: str) -> None:
        assert await sim_.control("/_sim/c2b/validation", {"shortcode": shortcode, "enabled": True}) == {
            "shortcode": shortcode,
            "enabled": True,
        }

    async def test_reject_means_no_confirmation(self, sandbox: Sim) -> None:
        shortcode = new_shortcode()
        rejection = Answer({"ResultCode": "C2B00012", "ResultDesc": "Rejected"})
        confirm_name, validate_name = await sandbox.register(shortcode, version=2, validation=rejection)
        await self.enable(sandbox, shortcode)
        trans_id = await sandbox.pay(shortcode, msisdn="254712345678", amount=7)
        record = await sandbox.settled(trans_id)
        (asked,) = sandbox.merchant.hits[validate_name]
        name = default_name("254712345678")
        assert asked == {
            "TransactionType": "Pay Bill",
            "TransID": trans_id,
            "TransTime": asked["TransTime"],
            "TransAmount": "7.00",
            "BusinessShortCode": shortcode,
            "BillRefNumber": "INV-001",
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            "MSISDN": "2547 ***** 678",
            "FirstName": name.first,
            "MiddleName": name.middle,
            "LastName": name.last,
        }
        assert record["outcome"] == "rejected"
        assert (record["validation"], record["ResultCode"], record["ResultDesc"]) == (
            "rejected",
            "C2B00012",
            "Rejected",
        )
        assert [d["kind"] for d in record["deliveries"]] == ["validation"]
        assert sandbox.merchant.hits[confirm_name] == []
        assert (await sandbox.get(f"/_sim/balance/{shortcode}"))["utility"] == "100000.00"

    async def test_accept_passes_third_party_id_to_the_confirmation(self, sandbox: Sim) -> None:
        shortcode = new_shortcode()
        accept = Answer({"ResultCode": 0, "ResultDesc": "Accepted", "ThirdPartyTransID": "ORDER-77"})
        confirm_name, _ = await sandbox.register(shortcode, validation=accept)
        await self.enable(sandbox, shortcode)
        record = await sandbox.settled(await sandbox.pay(shortcode, amount=12))
        (confirmation,) = sandbox.merchant.hits[confirm_name]
        assert (confirmation["ThirdPartyTransID"], confirmation["OrgAccountBalance"]) == (
            "ORDER-77",
            "100012.00",
        )
        assert (record["outcome"], record["validation"], record["ResultCode"]) == (
            "completed",
            "accepted",
            "0",
        )

    @pytest.mark.parametrize(
        ("response_type", "outcome", "confirmed"),
        [("Completed", "completed", True), ("Cancelled", "cancelled", False)],
    )
    async def test_timeout_applies_response_type(
        self, sandbox: Sim, response_type: str, outcome: str, confirmed: bool
    ) -> None:
        shortcode = new_shortcode()
        slow = Answer({"ResultCode": "C2B00016", "ResultDesc": "Too late"}, after=VALIDATION_WAIT * 3)
        confirm_name, validate_name = await sandbox.register(
            shortcode, response_type=response_type, validation=slow
        )
        await self.enable(sandbox, shortcode)
        record = await sandbox.settled(await sandbox.pay(shortcode))
        assert len(sandbox.merchant.hits[validate_name]) == 1
        validation = record["deliveries"][0]
        assert validation["kind"] == "validation" and validation["error"].startswith("ReadTimeout")
        assert (record["outcome"], record["validation"], record["ResultCode"]) == (outcome, "no answer", None)
        assert len(sandbox.merchant.hits[confirm_name]) == (1 if confirmed else 0)
        balance = (await sandbox.get(f"/_sim/balance/{shortcode}"))["utility"]
        assert balance == ("100005.00" if confirmed else "100000.00")

    @pytest.mark.parametrize(
        "answer", [Answer(None), Answer({"ResultCode": "0"}, status=500), Answer({"Result": 0})]
    )
    async def test_an_unusable_answer_is_no_answer(self, sandbox: Sim, answer: Answer) -> None:
        shortcode = new_shortcode()
        await sandbox.register(shortcode, response_type="Cancelled", validation=answer)
        await self.enable(sandbox, shortcode)
        record = await sandbox.settled(await sandbox.pay(shortcode))
        assert (record["outcome"], record["validation"]) == ("cancelled", "no answer")

    async def test_validation_can_be_turned_off_again(self, sandbox: Sim) -> None:
        shortcode = new_shortcode()
        _, validate_name = await sandbox.register(shortcode, validation=Answer({"ResultCode": "C2B00011"}))
        await self.enable(sandbox, shortcode)
        await sandbox.control("/_sim/c2b/validation", {"shortcode": shortcode, "enabled": False})
        record = await sandbox.settled(await sandbox.pay(shortcode))
        assert record["outcome"] == "completed" and sandbox.merchant.hits[validate_name] == []


# --- a C2B receipt elsewhere -----------------------------------------------------------------------------


async def test_a_c2b_receipt_is_found_by_status_and_reversed(sandbox: Sim) -> None:
    shortcode = new_shortcode()
    await sandbox.register(shortcode)
    trans_id = await sandbox.pay(
        shortcode, msisdn="254722000333", amount=250, first_name="AMINA", last_name="ALI"
    )
    await sandbox.settled(trans_id)
    result_name, result_url = sandbox.merchant.url()
    base = {
        "Initiator": "testapi",
        "SecurityCredential": credential(),
        "QueueTimeOutURL": sandbox.merchant.url()[1],
        "ResultURL": result_url,
    }
    r = await sandbox.post(
        "/mpesa/transactionstatus/v1/query",
        {
            **base,
            "CommandID": "TransactionStatusQuery",
            "TransactionID": trans_id,
            "PartyA": shortcode,
            "IdentifierType": "4",
        },
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 3
    while not sandbox.merchant.hits[result_name]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    (status,) = sandbox.merchant.hits[result_name]
    params = {p["Key"]: p.get("Value") for p in status["Result"]["ResultParameters"]["ResultParameter"]}
    assert (params["DebitPartyName"], params["ReasonType"], params["Amount"]) == (
        "254722000333 - AMINA ALI",
        "Pay Bill",
        "250",
    )

    reversal_name, reversal_url = sandbox.merchant.url()
    r = await sandbox.post(
        "/mpesa/reversal/v1/request",
        {
            **base,
            "ResultURL": reversal_url,
            "CommandID": "TransactionReversal",
            "TransactionID": trans_id,
            "Amount": 250,
            "ReceiverParty": shortcode,
            "RecieverIdentifierType": "11",
        },
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 3
    while not sandbox.merchant.hits[reversal_name]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    (reversal,) = sandbox.merchant.hits[reversal_name]
    assert reversal["Result"]["ResultCode"] == 0
    assert (await sandbox.get(f"/_sim/balance/{shortcode}"))["utility"] == "100000.00"


async def test_pay_control_refuses_bad_input_and_reset_forgets(
    merchant: Merchant, client: httpx.AsyncClient
) -> None:
    async with running(merchant, client) as s:
        for body in (
            {"shortcode": "600100", "msisdn": "0712345678", "amount": 5},
            {"shortcode": "600100", "msisdn": "254712345678", "amount": 0},
            {"shortcode": "600100", "msisdn": "254712345678", "amount": 5, "bill_ref": "x" * 21},
        ):
            r = await client.post(f"{s.base}/_sim/c2b/pay", json=body)
            assert r.status_code == 422, body
        shortcode = new_shortcode()
        confirm_name, _ = await s.register(shortcode)
        await s.settled(await s.pay(shortcode))
        assert len(await s.get("/_sim/c2b")) == 1
        assert [b["ShortCode"] for b in await s.get("/_sim/requests?path=/mpesa/c2b/v1/registerurl")] == [
            shortcode
        ]
        assert (await client.post(f"{s.base}/_sim/reset")).status_code == 200
        assert await s.get("/_sim/c2b") == []
        assert (await client.get(f"{s.base}/_sim/c2b/UAA0000001")).status_code == 404
        # Registrations are forgotten: the next payment completes silently.
        record = await s.settled(await s.pay(shortcode))
        assert record["deliveries"] == []
        assert len(merchant.hits[confirm_name]) == 1
