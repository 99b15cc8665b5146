"""The Daraja simulator's money-out APIs over real HTTP: B2C, Transaction Status, Account Balance, Reversal.

The simulator and the merchant's result receiver each run in an in-process uvicorn; credentials are built
the way a client builds them, by encrypting the initiator password with ``sim/daraja/certs/simulator.cer``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import sim.daraja
from sim.daraja import create_app
from sim.daraja.balances import b2c_charge_cents, kes
from sim.daraja.credential import decrypt_credential
from sim.daraja.ids import mpesa_receipt_prefix
from sim.daraja.transactions import default_name
from tests.support.servers import serving

EAT = ZoneInfo("Africa/Nairobi")
DELAY = 0.05
PASSWORD = "Safaricom999!*!"
SUCCESS = "The service request is processed successfully."
ACCEPTED = "Accept the service request successfully."
B2C_REFERENCE = {
    "ReferenceItem": {
        "Key": "QueueTimeoutURL",
        "Value": "https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit",
    }
}
REVERSAL_REFERENCE = {
    "ReferenceItem": {
        "Key": "QueueTimeoutURL",
        "Value": "https://internalsandbox.safaricom.co.ke/mpesa/reversalresults/v1/submit",
    }
}
CONVERSATION_ID = re.compile(r"AG_(\d{8})_[0-9a-f]{20}")
DARAJA_ID = re.compile(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\d{6,7}")
RECEIPT = re.compile(r"[A-Z0-9]{10}")
CERTIFICATE = x509.load_pem_x509_certificate(
    (Path(sim.daraja.__file__).parent / "certs" / "simulator.cer").read_bytes()
)
_shortcodes = count(610_001)
_MISSING = object()


def credential(password: str = PASSWORD) -> str:
    key = CERTIFICATE.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return base64.b64encode(key.encrypt(password.encode(), padding.PKCS1v15())).decode()


def foreign_credential(password: str = PASSWORD) -> str:
    """Encrypted with some other certificate: the classic stale-certificate 2001."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return base64.b64encode(key.encrypt(password.encode(), padding.PKCS1v15())).decode()


def customer(msisdn: str) -> str:
    """The public name the simulator gives a number nobody named."""
    return f"{msisdn} - {default_name(msisdn).full()}"


def new_shortcode() -> str:
    """Each test's own organisation, so balances never mix."""
    return str(next(_shortcodes))


def parameters(result: dict[str, Any]) -> dict[str, Any]:
    return {
        p["Key"]: p.get("Value", _MISSING) for p in result["Result"]["ResultParameters"]["ResultParameter"]
    }


# --- servers ---------------------------------------------------------------------------------------------


class Receiver:
    """The merchant's ResultURL and QueueTimeOutURL; each test posts to paths of its own."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: dict[str, list[Any]] = defaultdict(list)
        self.app = Starlette(routes=[Route("/hooks/{name}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> JSONResponse:
        self.hits[request.path_params["name"]].append(await request.json())
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})

    def url(self) -> tuple[str, str]:
        name = uuid.uuid4().hex
        return name, f"{self.base}/hooks/{name}"

    async def wait(self, name: str, n: int = 1, within: float = 3.0) -> list[Any]:
        deadline = time.monotonic() + within
        while len(self.hits[name]) < n:
            assert time.monotonic() < deadline, (
                f"expected {n} deliveries to {name}, got {len(self.hits[name])}"
            )
            await asyncio.sleep(0.01)
        return self.hits[name]


class Sim:
    def __init__(self, base: str, client: httpx.AsyncClient, receiver: Receiver) -> None:
        self.base = base
        self.client = client
        self.receiver = receiver
        self._token: str | None = None

    async def token(self) -> str:
        if self._token is None:
            r = await self.client.get(
                f"{self.base}/oauth/v1/generate",
                params={"grant_type": "client_credentials"},
                auth=("money-out-key", "secret"),
            )
            assert r.status_code == 200, r.text
            self._token = str(r.json()["access_token"])
        return self._token

    async def post(self, path: str, body: Any, *, auth: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.token()}"} if auth else {}
        return await self.client.post(f"{self.base}{path}", json=body, headers=headers)

    async def get(self, path: str) -> Any:
        r = await self.client.get(f"{self.base}{path}")
        assert r.status_code == 200, r.text
        return r.json()

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.client.post(f"{self.base}{path}", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def b2c_body(self, shortcode: str, phone: str = "254705912645", **overrides: Any) -> dict[str, Any]:
        _, result_url = self.receiver.url()
        _, timeout_url = self.receiver.url()
        body: dict[str, Any] = {
            "OriginatorConversationID": f"{shortcode}_{uuid.uuid4().hex[:12]}",
            "InitiatorName": "testapi",
            "SecurityCredential": credential(),
            "CommandID": "BusinessPayment",
            "Amount": "300",
            "PartyA": shortcode,
            "PartyB": phone,
            "Remarks": "Payout",
            "QueueTimeOutURL": timeout_url,
            "ResultURL": result_url,
            "Occassion": "Refund",
        }
        return _apply(body, overrides)

    def initiator_body(self, command: str, shortcode: str, **overrides: Any) -> dict[str, Any]:
        _, result_url = self.receiver.url()
        _, timeout_url = self.receiver.url()
        body: dict[str, Any] = {
            "Initiator": "testapi",
            "SecurityCredential": credential(),
            "CommandID": command,
            "PartyA": shortcode,
            "IdentifierType": "4",
            "Remarks": "ok",
            "QueueTimeOutURL": timeout_url,
            "ResultURL": result_url,
        }
        return _apply(body, overrides)

    def reversal_body(self, shortcode: str, receipt: str, amount: int, **overrides: Any) -> dict[str, Any]:
        _, result_url = self.receiver.url()
        _, timeout_url = self.receiver.url()
        body: dict[str, Any] = {
            "Initiator": "testapi",
            "SecurityCredential": credential(),
            "CommandID": "TransactionReversal",
            "TransactionID": receipt,
            "Amount": str(amount),
            "ReceiverParty": shortcode,
            "RecieverIdentifierType": "11",
            "ResultURL": result_url,
            "QueueTimeOutURL": timeout_url,
            "Remarks": "Payment reversal",
        }
        return _apply(body, overrides)

    async def result_of(self, body: dict[str, Any], *, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a request and return its ack and the Result delivered to its ResultURL."""
        r = await self.post(path, body)
        assert r.status_code == 200, r.text
        (result,) = await self.receiver.wait(_name(body["ResultURL"]))
        return r.json(), result

    async def pay(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return await self.result_of(body, path="/mpesa/b2c/v3/paymentrequest")

    async def status(self, shortcode: str, **ids: str) -> dict[str, Any]:
        body = self.initiator_body("TransactionStatusQuery", shortcode, **ids)
        return (await self.result_of(body, path="/mpesa/transactionstatus/v1/query"))[1]

    async def stk_receipt(self, shortcode: str, phone: str, amount: int) -> str:
        """A customer pays ``shortcode`` by STK push; the receipt, from the callback."""
        name, callback_url = self.receiver.url()
        ts = datetime.now(EAT).strftime("%Y%m%d%H%M%S")
        passkey = sim.daraja.SANDBOX_PASSKEY
        r = await self.post(
            "/mpesa/stkpush/v1/processrequest",
            {
                "BusinessShortCode": shortcode,
                "Password": base64.b64encode(f"{shortcode}{passkey}{ts}".encode()).decode(),
                "Timestamp": ts,
                "TransactionType": "CustomerPayBillOnline",
                "Amount": amount,
                "PartyA": phone,
                "PartyB": shortcode,
                "PhoneNumber": phone,
                "CallBackURL": callback_url,
                "AccountReference": "INV1",
                "TransactionDesc": "Pay",
            },
        )
        assert r.status_code == 200, r.text
        (callback,) = await self.receiver.wait(name)
        items = {
            i["Name"]: i.get("Value") for i in callback["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        }
        return str(items["MpesaReceiptNumber"])


def _apply(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is _MISSING:
            del body[key]
        else:
            body[key] = value
    return body


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def assert_error(r: httpx.Response, status: int, code: str, message: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}
    assert (body["errorCode"], body["errorMessage"]) == (code, message)


def assert_ack(ack: dict[str, Any], originator: str | None = None) -> None:
    assert set(ack) == {"ConversationID", "OriginatorConversationID", "ResponseCode", "ResponseDescription"}
    match = CONVERSATION_ID.fullmatch(ack["ConversationID"])
    assert match is not None and match.group(1) == datetime.now(EAT).strftime("%Y%m%d")
    if originator is None:
        assert DARAJA_ID.fullmatch(ack["OriginatorConversationID"])
    else:
        assert ack["OriginatorConversationID"] == originator
    assert (ack["ResponseCode"], ack["ResponseDescription"]) == ("0", ACCEPTED)


def empty_transaction_id() -> str:
    return mpesa_receipt_prefix(datetime.now(EAT).date()) + "0000000"


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
async def running(receiver: Receiver, client: httpx.AsyncClient, **kwargs: Any) -> AsyncIterator[Sim]:
    async with serving(create_app(callback_delay=DELAY, **kwargs), lifespan="off") as base:
        yield Sim(base, client, receiver)


@pytest.fixture(scope="module")
async def open_sim(receiver: Receiver, client: httpx.AsyncClient) -> AsyncIterator[Sim]:
    """``initiators=None``: any initiator whose credential decrypts."""
    async with running(receiver, client) as s:
        yield s


@pytest.fixture(scope="module")
async def strict_sim(receiver: Receiver, client: httpx.AsyncClient) -> AsyncIterator[Sim]:
    async with running(receiver, client, initiators={"600992": {"testapi": PASSWORD}}) as s:
        yield s


# --- B2C -------------------------------------------------------------------------------------------------


class TestB2CSuccess:
    async def test_ack_and_result_exact_wire_bodies(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        body = open_sim.b2c_body(shortcode, Amount="300")
        before = datetime.now(EAT).replace(microsecond=0)
        ack, result = await open_sim.pay(body)
        assert_ack(ack, body["OriginatorConversationID"])
        receipt = result["Result"]["TransactionID"]
        completed = parameters(result)["TransactionCompletedDateTime"]
        assert result == {
            "Result": {
                "ResultType": 0,
                "ResultCode": 0,
                "ResultDesc": SUCCESS,
                "OriginatorConversationID": body["OriginatorConversationID"],
                "ConversationID": ack["ConversationID"],
                "TransactionID": receipt,
                "ResultParameters": {
                    "ResultParameter": [
                        {"Key": "TransactionAmount", "Value": 300},
                        {"Key": "TransactionReceipt", "Value": receipt},
                        {"Key": "ReceiverPartyPublicName", "Value": "254705912645 - FAITH KIPKEMBOI NJOROGE"},
                        {"Key": "TransactionCompletedDateTime", "Value": completed},
                        {"Key": "B2CUtilityAccountAvailableFunds", "Value": 99700.0},
                        {"Key": "B2CWorkingAccountAvailableFunds", "Value": 0.0},
                        {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                        {"Key": "B2CChargesPaidAccountAvailableFunds", "Value": -5.0},
                    ]
                },
                "ReferenceData": B2C_REFERENCE,
            }
        }
        assert RECEIPT.fullmatch(receipt) and receipt[:3] == mpesa_receipt_prefix(datetime.now(EAT).date())
        assert type(parameters(result)["TransactionAmount"]) is int
        finished = datetime.strptime(completed, "%d.%m.%Y %H:%M:%S").replace(tzinfo=EAT)
        assert before <= finished <= datetime.now(EAT)
        # The payout came out of Utility, its charge out of Charges Paid.
        assert await open_sim.get(f"/_sim/balance/{shortcode}") == {
            "shortcode": shortcode,
            "utility": "99700.00",
            "working": "0.00",
            "charges_paid": "-5.00",
        }

    async def test_v1_has_no_originator_id_and_daraja_mints_one(self, open_sim: Sim) -> None:
        body = open_sim.b2c_body(new_shortcode(), OriginatorConversationID=_MISSING)
        ack, result = await open_sim.result_of(body, path="/mpesa/b2c/v1/paymentrequest")
        assert_ack(ack)
        assert result["Result"]["OriginatorConversationID"] == ack["OriginatorConversationID"]
        assert result["Result"]["ResultCode"] == 0

    async def test_v3_requires_its_originator_id(self, open_sim: Sim) -> None:
        body = open_sim.b2c_body(new_shortcode(), OriginatorConversationID=_MISSING)
        r = await open_sim.post("/mpesa/b2c/v3/paymentrequest", body)
        assert_error(r, 400, "400.002.02", "Bad Request - Invalid OriginatorConversationID")

    async def test_duplicate_originator_conversation_id_refused(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        body = open_sim.b2c_body(shortcode, Amount="100")
        first, _ = await open_sim.pay(body)
        again = dict(body, ResultURL=open_sim.receiver.url()[1])
        r = await open_sim.post("/mpesa/b2c/v3/paymentrequest", again)
        assert_error(r, 500, "500.002.1001", "Duplicate OriginatorConversationID.")
        # The refused repeat paid nothing and will deliver nothing.
        assert (await open_sim.get(f"/_sim/balance/{shortcode}"))["utility"] == "99900.00"
        results = await open_sim.get("/_sim/results")
        assert [
            rec["body"]["Result"]["ConversationID"]
            for rec in results
            if rec["body"]["Result"]["OriginatorConversationID"] == body["OriginatorConversationID"]
        ] == [first["ConversationID"]]


class TestB2CFailures:
    async def test_wrong_password_is_2001_in_the_result(self, strict_sim: Sim) -> None:
        body = strict_sim.b2c_body("600992", SecurityCredential=credential("Wrong-password1"))
        ack, result = await strict_sim.pay(body)
        assert_ack(ack, body["OriginatorConversationID"])
        assert result == {
            "Result": {
                "ResultType": 0,
                "ResultCode": 2001,
                "ResultDesc": "The initiator information is invalid.",
                "OriginatorConversationID": body["OriginatorConversationID"],
                "ConversationID": ack["ConversationID"],
                "TransactionID": empty_transaction_id(),
                "ReferenceData": B2C_REFERENCE,
            }
        }

    @pytest.mark.parametrize(
        "overrides",
        [
            {"InitiatorName": "someone"},
            {"SecurityCredential": foreign_credential()},
            {"SecurityCredential": PASSWORD},  # the plain password, not encrypted
            {"PartyA": "600993"},  # a short code with no initiator listed
        ],
    )
    async def test_other_credential_faults_are_2001(self, strict_sim: Sim, overrides: dict[str, Any]) -> None:
        _, result = await strict_sim.pay(strict_sim.b2c_body("600992", **overrides))
        assert result["Result"]["ResultCode"] == 2001

    async def test_right_credential_pays_on_the_strict_sim(self, strict_sim: Sim) -> None:
        _, result = await strict_sim.pay(strict_sim.b2c_body("600992", Amount="10"))
        assert result["Result"]["ResultCode"] == 0

    async def test_open_sim_refuses_a_credential_it_cannot_decrypt(self, open_sim: Sim) -> None:
        _, result = await open_sim.pay(
            open_sim.b2c_body(new_shortcode(), SecurityCredential=foreign_credential())
        )
        assert result["Result"]["ResultCode"] == 2001

    async def test_initiator_added_at_run_time(self, strict_sim: Sim) -> None:
        shortcode = new_shortcode()
        body = strict_sim.b2c_body(
            shortcode, InitiatorName="payouts", SecurityCredential=credential("Payouts#2026")
        )
        _, result = await strict_sim.pay(body)
        assert result["Result"]["ResultCode"] == 2001
        added = await strict_sim.control(
            "/_sim/initiators", {"shortcode": shortcode, "name": "payouts", "password": "Payouts#2026"}
        )
        assert added == {"shortcode": shortcode, "name": "payouts"}
        body = strict_sim.b2c_body(
            shortcode, InitiatorName="payouts", SecurityCredential=credential("Payouts#2026")
        )
        _, result = await strict_sim.pay(body)
        assert result["Result"]["ResultCode"] == 0

    async def test_insufficient_funds_once_utility_runs_out(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        assert await open_sim.control("/_sim/balance", {"shortcode": shortcode, "utility": "250.00"}) == {
            "shortcode": shortcode,
            "utility": "250.00",
            "working": "0.00",
            "charges_paid": "0.00",
        }
        codes = []
        for n in range(3):
            _, result = await open_sim.pay(
                open_sim.b2c_body(shortcode, phone=f"25470000010{n}", Amount="100")
            )
            codes.append((result["Result"]["ResultCode"], result["Result"]["ResultDesc"]))
        assert codes == [
            (0, SUCCESS),
            (0, SUCCESS),
            (1, "The balance is insufficient for the transaction."),
        ]
        # The charge never counts against Utility: 250 - 2 x 100 left 50.00, and the refused row took nothing.
        balance = await open_sim.get(f"/_sim/balance/{shortcode}")
        assert (balance["utility"], balance["charges_paid"]) == ("50.00", "-10.00")

    @pytest.mark.parametrize(
        ("amount", "code", "desc"),
        [
            ("9", 2, "Declined due to limit rule"),
            ("250001", 3, "Declined due to limit rule: greater than the maximum transaction amount."),
        ],
    )
    async def test_amount_limits(self, open_sim: Sim, amount: str, code: int, desc: str) -> None:
        _, result = await open_sim.pay(open_sim.b2c_body(new_shortcode(), Amount=amount))
        assert (result["Result"]["ResultCode"], result["Result"]["ResultDesc"]) == (code, desc)
        assert "ResultParameters" not in result["Result"]

    @pytest.mark.parametrize(
        ("last4", "code", "desc"),
        [
            ("2001", 2001, "The initiator information is invalid."),
            (
                "2040",
                2040,
                "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the "
                "service.",
            ),
            ("0003", "SFC_IC0003", "The operator does not exist."),
            ("0008", 8, "Declined due to limit rule: would exceed the maximum balance."),
        ],
    )
    async def test_recipient_scenarios(self, open_sim: Sim, last4: str, code: int | str, desc: str) -> None:
        shortcode = new_shortcode()
        body = open_sim.b2c_body(shortcode, phone=f"25471234{last4}")
        _, result = await open_sim.pay(body)
        assert result["Result"]["ResultCode"] == code
        assert result["Result"]["ResultDesc"] == desc
        assert result["Result"]["TransactionID"] == empty_transaction_id()
        assert (await open_sim.get(f"/_sim/balance/{shortcode}"))["utility"] == "100000.00"
        # A payout that moved no money is nowhere to be found.
        status = await open_sim.status(shortcode, OriginalConversationID=body["OriginatorConversationID"])
        assert status["Result"]["ResultCode"] == 2032

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("InitiatorName", ""),
            ("SecurityCredential", _MISSING),
            ("SecurityCredential", ""),
            ("CommandID", "BusinessPayToBulk"),
            ("Amount", "10.00"),
            ("Amount", 10.5),
            ("Amount", 0),
            ("PartyA", "12"),
            ("PartyB", "0712345678"),
            ("Remarks", "x"),
            ("Remarks", "r" * 101),
            ("QueueTimeOutURL", "https://example.com/mpesa/timeout"),
            ("ResultURL", "not a url"),
            ("Occassion", "o" * 101),
        ],
    )
    async def test_field_validation(self, open_sim: Sim, field: str, value: Any) -> None:
        r = await open_sim.post(
            "/mpesa/b2c/v3/paymentrequest", open_sim.b2c_body(new_shortcode(), **{field: value})
        )
        assert_error(r, 400, "400.002.02", f"Bad Request - Invalid {field}")

    async def test_a_body_that_is_not_json_is_an_invalid_payload(self, open_sim: Sim) -> None:
        r = await open_sim.client.post(
            f"{open_sim.base}/mpesa/b2c/v3/paymentrequest",
            data={"Amount": "10"},
            headers={"Authorization": f"Bearer {await open_sim.token()}"},
        )
        assert_error(r, 400, "400.002.05", "Invalid Request Payload")


class TestB2CDelivery:
    async def test_queue_timeout_then_status_says_completed(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        body = open_sim.b2c_body(shortcode, phone="254712349997", Amount="1500")
        r = await open_sim.post("/mpesa/b2c/v3/paymentrequest", body)
        ack = r.json()
        (notice,) = await open_sim.receiver.wait(_name(body["QueueTimeOutURL"]))
        assert notice == {
            "Result": {
                "ResultType": 1,
                "ResultCode": 1,
                "ResultDesc": "The service request has timed out.",
                "OriginatorConversationID": body["OriginatorConversationID"],
                "ConversationID": ack["ConversationID"],
            }
        }
        assert open_sim.receiver.hits[_name(body["ResultURL"])] == []
        # It went through all the same: the status query finds it by the id the client chose.
        status = await open_sim.status(shortcode, OriginalConversationID=body["OriginatorConversationID"])
        params = parameters(status)
        receipt = params["ReceiptNo"]
        assert RECEIPT.fullmatch(receipt)
        assert params == {
            "DebitPartyName": f"{shortcode} - Daraja Simulator {shortcode[-3:]}",
            "CreditPartyName": customer("254712349997"),
            "OriginatorConversationID": body["OriginatorConversationID"],
            "InitiatedTime": params["InitiatedTime"],
            "DebitAccountType": "Utility Account",
            "DebitPartyCharges": "Fee For B2C Payment|KES|15.00",
            "TransactionReason": _MISSING,
            "ReasonType": "Business Payment to Customer via API",
            "TransactionStatus": "Completed",
            "FinalisedTime": params["FinalisedTime"],
            "Amount": "1500",
            "ConversationID": ack["ConversationID"],
            "ReceiptNo": receipt,
        }
        assert (
            re.fullmatch(r"\d{14}", params["InitiatedTime"])
            and params["FinalisedTime"] >= params["InitiatedTime"]
        )
        assert (status["Result"]["ResultCode"], status["Result"]["ResultDesc"]) == (0, SUCCESS)
        assert status["Result"]["TransactionID"] == empty_transaction_id()
        assert status["Result"]["ReferenceData"] == {"ReferenceItem": {"Key": "Occasion"}}
        # The receipt itself finds it too.
        by_receipt = await open_sim.status(shortcode, TransactionID=receipt, Occasion="recon")
        assert parameters(by_receipt)["ReceiptNo"] == receipt
        assert by_receipt["Result"]["ReferenceData"] == {
            "ReferenceItem": {"Key": "Occasion", "Value": "recon"}
        }

    async def test_queue_timeout_that_never_processed(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        body = open_sim.b2c_body(shortcode, phone="254712349996")
        r = await open_sim.post("/mpesa/b2c/v3/paymentrequest", body)
        assert r.status_code == 200
        (notice,) = await open_sim.receiver.wait(_name(body["QueueTimeOutURL"]))
        assert notice["Result"]["ResultDesc"] == "The service request has timed out."
        status = await open_sim.status(shortcode, OriginalConversationID=body["OriginatorConversationID"])
        assert status["Result"] == {
            "ResultType": 0,
            "ResultCode": 2032,
            "ResultDesc": "The transaction receipt number does not exist.",
            "OriginatorConversationID": status["Result"]["OriginatorConversationID"],
            "ConversationID": status["Result"]["ConversationID"],
            "TransactionID": empty_transaction_id(),
            "ReferenceData": {"ReferenceItem": {"Key": "Occasion"}},
        }
        assert (await open_sim.get(f"/_sim/balance/{shortcode}"))["utility"] == "100000.00"

    async def test_lost_result_only_status_can_tell(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        body = open_sim.b2c_body(shortcode, phone="254712349999", Amount="50")
        assert (await open_sim.post("/mpesa/b2c/v3/paymentrequest", body)).status_code == 200
        status = await open_sim.status(shortcode, OriginalConversationID=body["OriginatorConversationID"])
        assert parameters(status)["TransactionStatus"] == "Completed"
        await asyncio.sleep(DELAY * 3)
        assert open_sim.receiver.hits[_name(body["ResultURL"])] == []
        assert open_sim.receiver.hits[_name(body["QueueTimeOutURL"])] == []

    async def test_result_delivered_twice(self, open_sim: Sim) -> None:
        body = open_sim.b2c_body(new_shortcode(), phone="254712349998")
        assert (await open_sim.post("/mpesa/b2c/v3/paymentrequest", body)).status_code == 200
        first, second = await open_sim.receiver.wait(_name(body["ResultURL"]), 2)
        assert first == second and first["Result"]["ResultCode"] == 0


# --- Account Balance, Transaction Status ------------------------------------------------------------------


class TestAccountBalance:
    async def test_balance_string_after_a_payout(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        await open_sim.control(
            "/_sim/balance", {"shortcode": shortcode, "utility": 228_037, "working": "700000"}
        )
        await open_sim.pay(open_sim.b2c_body(shortcode, Amount="20000"))
        body = open_sim.initiator_body("AccountBalance", shortcode)
        ack, result = await open_sim.result_of(body, path="/mpesa/accountbalance/v1/query")
        assert_ack(ack)
        completed = parameters(result)["BOCompletedTime"]
        assert result == {
            "Result": {
                "ResultType": "0",
                "ResultCode": "0",
                "ResultDesc": "The service request is processed successfully",
                "OriginatorConversationID": ack["OriginatorConversationID"],
                "ConversationID": ack["ConversationID"],
                "TransactionID": empty_transaction_id(),
                "ResultParameters": {
                    "ResultParameter": [
                        {
                            "Key": "AccountBalance",
                            "Value": "Working Account|KES|700000.00|700000.00|0.00|0.00"
                            "&Float Account|KES|0.00|0.00|0.00|0.00"
                            "&Utility Account|KES|208037.00|208037.00|0.00|0.00"
                            "&Charges Paid Account|KES|-22.40|-22.40|0.00|0.00"
                            "&Organization Settlement Account|KES|0.00|0.00|0.00|0.00",
                        },
                        {"Key": "BOCompletedTime", "Value": completed},
                    ]
                },
                "ReferenceData": {
                    "ReferenceItem": {
                        "Key": "QueueTimeoutURL",
                        "Value": "https://internalsandbox.safaricom.co.ke/mpesa/abresults/v1/submit",
                    }
                },
            }
        }
        assert re.fullmatch(r"\d{14}", completed)

    async def test_bad_credential(self, strict_sim: Sim) -> None:
        body = strict_sim.initiator_body(
            "AccountBalance", "600992", SecurityCredential=credential("nope-nope")
        )
        _, result = await strict_sim.result_of(body, path="/mpesa/accountbalance/v1/query")
        assert (result["Result"]["ResultCode"], result["Result"]["ResultDesc"]) == (
            "2001",
            "The initiator information is invalid.",
        )
        assert "ResultParameters" not in result["Result"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [("CommandID", "Balance"), ("PartyA", "abc"), ("IdentifierType", "9"), ("ResultURL", _MISSING)],
    )
    async def test_field_validation(self, open_sim: Sim, field: str, value: Any) -> None:
        body = open_sim.initiator_body("AccountBalance", new_shortcode(), **{field: value})
        r = await open_sim.post("/mpesa/accountbalance/v1/query", body)
        assert_error(r, 400, "400.002.02", f"Bad Request - Invalid {field}")


class TestTransactionStatus:
    async def test_finds_an_stk_receipt(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        receipt = await open_sim.stk_receipt(shortcode, "254712340042", 75)
        status = await open_sim.status(shortcode, TransactionID=receipt)
        params = parameters(status)
        assert params["DebitPartyName"] == customer("254712340042")
        assert params["CreditPartyName"] == f"{shortcode} - Daraja Simulator {shortcode[-3:]}"
        assert (params["Amount"], params["ReceiptNo"], params["TransactionStatus"]) == (
            "75",
            receipt,
            "Completed",
        )
        assert params["ReasonType"] == "Pay Bill Online"
        assert params["OriginatorConversationID"] is _MISSING and params["DebitPartyCharges"] is _MISSING
        # The money landed in the merchant's Utility account.
        assert (await open_sim.get(f"/_sim/balance/{shortcode}"))["utility"] == "100075.00"

    async def test_another_organisations_receipt_is_unknown(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        receipt = await open_sim.stk_receipt(shortcode, "254712340043", 20)
        status = await open_sim.status(new_shortcode(), TransactionID=receipt)
        assert status["Result"]["ResultCode"] == 2032

    async def test_neither_id_is_a_sync_error(self, open_sim: Sim) -> None:
        body = open_sim.initiator_body("TransactionStatusQuery", new_shortcode())
        r = await open_sim.post("/mpesa/transactionstatus/v1/query", body)
        assert_error(r, 400, "400.002.02", "Bad Request - Invalid TransactionID")


# --- Reversal --------------------------------------------------------------------------------------------


class TestReversal:
    async def test_success_then_already_reversed(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        receipt = await open_sim.stk_receipt(shortcode, "254705912645", 120)
        body = open_sim.reversal_body(shortcode, receipt, 120)
        ack, result = await open_sim.result_of(body, path="/mpesa/reversal/v1/request")
        assert_ack(ack)
        reversal = result["Result"]["TransactionID"]
        completed = parameters(result)["TransCompletedTime"]
        assert result == {
            "Result": {
                "ResultType": 0,
                "ResultCode": 0,
                "ResultDesc": SUCCESS,
                "OriginatorConversationID": ack["OriginatorConversationID"],
                "ConversationID": ack["ConversationID"],
                "TransactionID": reversal,
                "ResultParameters": {
                    "ResultParameter": [
                        {
                            "Key": "DebitAccountBalance",
                            "Value": "Utility Account|KES|100000.00|100000.00|0.00|0.00",
                        },
                        {"Key": "Amount", "Value": 120.0},
                        {"Key": "TransCompletedTime", "Value": completed},
                        {"Key": "OriginalTransactionID", "Value": receipt},
                        {"Key": "Charge", "Value": 0.0},
                        {"Key": "CreditPartyPublicName", "Value": "254705912645 - FAITH KIPKEMBOI NJOROGE"},
                        {
                            "Key": "DebitPartyPublicName",
                            "Value": f"{shortcode} - Daraja Simulator {shortcode[-3:]}",
                        },
                    ]
                },
                "ReferenceData": REVERSAL_REFERENCE,
            }
        }
        assert RECEIPT.fullmatch(reversal) and reversal != receipt
        assert type(completed) is int and re.fullmatch(r"\d{14}", str(completed))

        _, again = await open_sim.result_of(
            open_sim.reversal_body(shortcode, receipt, 120), path="/mpesa/reversal/v1/request"
        )
        assert again["Result"] == {
            "ResultType": 0,
            "ResultCode": "R000001",
            "ResultDesc": "The transaction has already been reversed.",
            "OriginatorConversationID": again["Result"]["OriginatorConversationID"],
            "ConversationID": again["Result"]["ConversationID"],
            "TransactionID": empty_transaction_id(),
            "ReferenceData": REVERSAL_REFERENCE,
        }
        # The reversal is a transaction of its own that Transaction Status finds.
        status = await open_sim.status(shortcode, TransactionID=reversal)
        params = parameters(status)
        assert (params["ReasonType"], params["Amount"], params["DebitAccountType"]) == (
            "Reversal",
            "120",
            "Utility Account",
        )
        assert params["CreditPartyName"] == "254705912645 - FAITH KIPKEMBOI NJOROGE"

    @pytest.mark.parametrize("case", ["unknown", "other organisation", "wrong amount", "a payout"])
    async def test_invalid_original(self, open_sim: Sim, case: str) -> None:
        shortcode = new_shortcode()
        receipt = await open_sim.stk_receipt(shortcode, "254712340044", 60)
        amount, receiver = 60, shortcode
        if case == "unknown":
            receipt = "UAA1234567"
        elif case == "other organisation":
            receiver = new_shortcode()
        elif case == "wrong amount":
            amount = 59
        else:
            _, paid = await open_sim.pay(open_sim.b2c_body(shortcode, Amount="60"))
            receipt = paid["Result"]["TransactionID"]
        _, result = await open_sim.result_of(
            open_sim.reversal_body(receiver, receipt, amount), path="/mpesa/reversal/v1/request"
        )
        assert (result["Result"]["ResultCode"], result["Result"]["ResultDesc"]) == (
            "R000002",
            "The OriginalTransactionID is invalid.",
        )

    async def test_insufficient_utility(self, open_sim: Sim) -> None:
        shortcode = new_shortcode()
        receipt = await open_sim.stk_receipt(shortcode, "254712340045", 500)
        await open_sim.control("/_sim/balance", {"shortcode": shortcode, "utility": "499.99"})
        _, result = await open_sim.result_of(
            open_sim.reversal_body(shortcode, receipt, 500), path="/mpesa/reversal/v1/request"
        )
        assert result["Result"]["ResultCode"] == 1

    async def test_the_identifier_type_field_keeps_darajas_spelling(self, open_sim: Sim) -> None:
        body = open_sim.reversal_body(
            new_shortcode(), "UAA1234567", 10, RecieverIdentifierType=_MISSING, ReceiverIdentifierType="11"
        )
        r = await open_sim.post("/mpesa/reversal/v1/request", body)
        assert_error(r, 400, "400.002.02", "Bad Request - Invalid RecieverIdentifierType")


# --- gateway, inspection, reset --------------------------------------------------------------------------


MONEY_PATHS = [
    "/mpesa/b2c/v3/paymentrequest",
    "/mpesa/b2c/v1/paymentrequest",
    "/mpesa/accountbalance/v1/query",
    "/mpesa/transactionstatus/v1/query",
    "/mpesa/reversal/v1/request",
]


@pytest.mark.parametrize("path", MONEY_PATHS)
async def test_bearer_token_required(open_sim: Sim, path: str) -> None:
    r = await open_sim.post(path, {}, auth=False)
    assert_error(r, 404, "404.001.03", "Invalid Access Token")


async def test_requests_recorded_and_reset_clears_everything(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    async with running(receiver, client, initiators={"600992": {"testapi": PASSWORD}}) as s:
        shortcode = "600992"
        await s.control(
            "/_sim/initiators", {"shortcode": shortcode, "name": "extra", "password": "Extra#2026"}
        )
        await s.control("/_sim/balance", {"shortcode": shortcode, "utility": "10.00"})
        bad = s.b2c_body(shortcode, Amount="1.5")
        good = s.b2c_body(shortcode, Amount="10")
        assert (await s.post("/mpesa/b2c/v3/paymentrequest", bad)).status_code == 400
        await s.pay(good)
        balance_query = s.initiator_body("AccountBalance", shortcode)
        await s.result_of(balance_query, path="/mpesa/accountbalance/v1/query")
        assert await s.get("/_sim/requests") == [bad, good, balance_query]
        assert await s.get("/_sim/requests?path=/mpesa/b2c/v3/paymentrequest") == [bad, good]
        results = await s.get("/_sim/results")
        assert [(r["kind"], r["status_code"], r["url"]) for r in results] == [
            ("result", 200, good["ResultURL"]),
            ("result", 200, balance_query["ResultURL"]),
        ]
        assert results[0]["reply"] == {"ResultCode": 0, "ResultDesc": "Accepted"}

        assert (await client.post(f"{s.base}/_sim/reset")).status_code == 200
        assert await s.get("/_sim/requests") == []
        assert await s.get("/_sim/results") == []
        assert (await s.get(f"/_sim/balance/{shortcode}"))["utility"] == "100000.00"
        s._token = None  # reset drops tokens too
        # The duplicate check starts afresh, and the initiator added at run time is gone.
        _, paid = await s.pay(dict(good, ResultURL=receiver.url()[1]))
        assert paid["Result"]["ResultCode"] == 0
        extra = s.b2c_body(shortcode, InitiatorName="extra", SecurityCredential=credential("Extra#2026"))
        _, refused = await s.pay(extra)
        assert refused["Result"]["ResultCode"] == 2001


async def test_mounted_under_a_prefix(receiver: Receiver, client: httpx.AsyncClient) -> None:
    host = FastAPI()
    host.mount("/sim/daraja", create_app(callback_delay=DELAY))
    async with serving(host, lifespan="off") as base:
        s = Sim(f"{base}/sim/daraja", client, receiver)
        shortcode = new_shortcode()
        _, result = await s.pay(s.b2c_body(shortcode, Amount="10"))
        assert result["Result"]["ResultCode"] == 0
        assert (await s.get(f"/_sim/balance/{shortcode}"))["utility"] == "99990.00"


async def test_control_endpoints_refuse_bad_input(open_sim: Sim) -> None:
    for path, body in [
        ("/_sim/balance", {"shortcode": "1", "utility": "10"}),
        ("/_sim/balance", {"shortcode": "600100", "utility": "10.001"}),
        ("/_sim/initiators", {"shortcode": "600100", "name": "", "password": "x"}),
    ]:
        r = await open_sim.client.post(f"{open_sim.base}{path}", json=body)
        assert r.status_code == 422, (path, body, r.text)


# --- units -----------------------------------------------------------------------------------------------


def test_credential_round_trip_and_refusals() -> None:
    assert decrypt_credential(credential(PASSWORD)) == PASSWORD
    assert decrypt_credential(foreign_credential()) is None
    assert decrypt_credential(PASSWORD) is None
    assert decrypt_credential(base64.b64encode(b"short").decode()) is None


@pytest.mark.parametrize(
    ("amount", "charge"), [(10, "5.00"), (1000, "5.00"), (1001, "15.00"), (10000, "15.00"), (10001, "22.40")]
)
def test_b2c_charge_table(amount: int, charge: str) -> None:
    assert kes(b2c_charge_cents(amount)) == charge
