"""The Africa's Talking stand-in over real HTTP: the SMS API, its delivery reports, and the USSD gateway
driver walking a small echo app; every party runs in an in-process uvicorn on loopback."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from sim.africastalking import UssdGateway, UssdProtocolError, create_app, sms_segments
from tests.support.servers import bound_socket, serving

API_KEY = "test-at-key"
USERNAME = "sandbox"
MESSAGE_ID = re.compile(r"ATXid_[0-9a-f]{32}")
SESSION_ID = re.compile(r"ATUid_[0-9a-f]{32}")
PHONE = "+254712345678"
OTHER = "+254722000111"
DLR_FIELDS = {"id", "status", "phoneNumber", "networkCode", "retryCount"}
EOS_FIELDS = {
    "date",
    "sessionId",
    "serviceCode",
    "networkCode",
    "phoneNumber",
    "status",
    "cost",
    "durationInMillis",
    "hopsCount",
    "input",
    "lastAppResponse",
    "errorMessage",
}


# --- parties ---------------------------------------------------------------------------------------------


class Receiver:
    """Our side of the callbacks (DLRs, end-of-session notifications); each test takes its own path."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.content_types: dict[str, list[str]] = defaultdict(list)
        self.app = FastAPI()

        @self.app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            form = await request.form()
            self.hits[name].append({k: str(v) for k, v in form.items()})
            self.content_types[name].append(request.headers.get("content-type", ""))
            status = 500 if name.startswith("fail-") else 200
            return PlainTextResponse("ok", status_code=status)

    def new_url(self, prefix: str = "") -> tuple[str, str]:
        name = prefix + uuid.uuid4().hex
        return name, f"{self.base}/hook/{name}"

    async def wait(self, name: str, count: int, within: float = 3.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + within
        while len(self.hits[name]) < count:
            assert time.monotonic() < deadline, f"expected {count} hits on {name}, got {len(self.hits[name])}"
            await asyncio.sleep(0.01)
        return self.hits[name]


@dataclass
class Sms:
    base: str
    client: httpx.AsyncClient

    async def send(
        self,
        to: str,
        message: str = "Hello",
        *,
        api_key: str | None = API_KEY,
        username: str | None = USERNAME,
        sender: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        data = {"to": to, "message": message, "bulkSMSMode": "1"}
        if username is not None:
            data["username"] = username
        if sender is not None:
            data["from"] = sender
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["apiKey"] = api_key
        return await self.client.post(
            f"{self.base}/version1/messaging",
            data=data,
            headers=headers,
            timeout=timeout if timeout is not None else 5.0,
        )

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        if body is None:
            r = await self.client.get(f"{self.base}/_sim/{path}")
        else:
            r = await self.client.post(f"{self.base}/_sim/{path}", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    async def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        r = await self.client.get(f"{self.base}/_sim/messages", params={"to": to} if to else {})
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()
        return result


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


@pytest.fixture(scope="module")
async def shared_sms(client: httpx.AsyncClient) -> AsyncIterator[Sms]:
    async with serving(create_app(api_key=API_KEY, username=USERNAME)) as base:
        yield Sms(base, client)


@pytest.fixture
async def sms(shared_sms: Sms) -> Sms:
    await shared_sms.control("reset", {})
    await shared_sms.control("config", {"dlr_url": None, "auto_dlr": None})
    return shared_sms


# --- segments --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (1, "GSM-7")),
        ("Hello\nworld @£$¥ èé", (1, "GSM-7")),
        ("a" * 160, (1, "GSM-7")),
        ("a" * 161, (2, "GSM-7")),
        ("a" * 306, (2, "GSM-7")),
        ("a" * 307, (3, "GSM-7")),
        # Extension characters cost two septets each.
        ("€" * 80, (1, "GSM-7")),
        ("a" * 159 + "€", (2, "GSM-7")),
        ("a" * 158 + "{", (1, "GSM-7")),
        ("^{}\\[~]|€", (1, "GSM-7")),
        # 306 septets would fit two parts, but the ESC pair at 153/154 cannot straddle them.
        ("a" * 152 + "€" + "a" * 152, (3, "GSM-7")),
        ("a" * 151 + "€" + "a" * 153, (2, "GSM-7")),
        # Anything outside GSM-7 switches the whole text to UCS-2.
        ("ā" * 70, (1, "UCS-2")),
        ("ā" * 71, (2, "UCS-2")),
        ("ā" * 134, (2, "UCS-2")),
        ("ā" * 135, (3, "UCS-2")),
        ("ç", (1, "UCS-2")),  # only the capital Ç is in the GSM-7 table
        ("It\u2019s paid", (1, "UCS-2")),  # curly apostrophe
        ("a" * 159 + "😀", (3, "UCS-2")),
        # An emoji is two UTF-16 code units, and a surrogate pair is never split.
        ("😀", (1, "UCS-2")),
        ("😀" * 35, (1, "UCS-2")),
        ("😀" * 36, (2, "UCS-2")),
        ("a" * 66 + "😀" + "a" * 66, (3, "UCS-2")),
        ("a" * 65 + "😀" + "a" * 67, (2, "UCS-2")),
    ],
)
def test_sms_segments(text: str, expected: tuple[int, str]) -> None:
    assert sms_segments(text) == expected


# --- SMS send --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "username"),
    [(None, USERNAME), ("wrong", USERNAME), (API_KEY, "someone-else"), (API_KEY, None), ("", USERNAME)],
)
async def test_bad_credentials_401_plain_text(sms: Sms, api_key: str | None, username: str | None) -> None:
    r = await sms.send(PHONE, api_key=api_key, username=username)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "The supplied authentication is invalid"
    assert await sms.messages() == []


@pytest.mark.parametrize("missing", ["to", "message"])
async def test_missing_field_400_names_it(sms: Sms, missing: str) -> None:
    data = {"username": USERNAME, "to": PHONE, "message": "Hi"}
    del data[missing]
    r = await sms.client.post(f"{sms.base}/version1/messaging", data=data, headers={"apiKey": API_KEY})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert f"'{missing}'" in r.text


async def test_send_201_exact_shape(sms: Sms) -> None:
    r = await sms.send(PHONE, "Payment of KES 150 received", sender="LIPAPUSH")
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    [recipient] = body["SMSMessageData"]["Recipients"]
    assert MESSAGE_ID.fullmatch(recipient["messageId"])
    assert body == {
        "SMSMessageData": {
            "Message": "Sent to 1/1 Total Cost: KES 0.8000",
            "Recipients": [
                {
                    "statusCode": 101,
                    "number": PHONE,
                    "status": "Success",
                    "cost": "KES 0.8000",
                    "messageId": recipient["messageId"],
                    "messageParts": 1,
                }
            ],
        }
    }
    [stored] = await sms.messages(PHONE)
    assert stored["id"] == recipient["messageId"]
    assert stored["to"] == PHONE
    assert stored["from"] == "LIPAPUSH"
    assert stored["message"] == "Payment of KES 150 received"
    assert (stored["segments"], stored["encoding"]) == (1, "GSM-7")
    assert stored["deliveries"] == []
    assert stored["received_at"]


async def test_two_segments_cost_per_part_and_recipient(sms: Sms) -> None:
    text = "x" * 161
    r = await sms.send(f"{PHONE},{OTHER}", text)
    assert r.status_code == 201
    data = r.json()["SMSMessageData"]
    assert data["Message"] == "Sent to 2/2 Total Cost: KES 3.2000"
    assert [(x["number"], x["cost"], x["messageParts"]) for x in data["Recipients"]] == [
        (PHONE, "KES 1.6000", 2),
        (OTHER, "KES 1.6000", 2),
    ]
    ids = {x["messageId"] for x in data["Recipients"]}
    assert len(ids) == 2
    assert [m["to"] for m in await sms.messages()] == [PHONE, OTHER]
    assert [m["to"] for m in await sms.messages(OTHER)] == [OTHER]


async def test_ucs2_message_recorded(sms: Sms) -> None:
    r = await sms.send(PHONE, "Asante 🙏")
    assert r.json()["SMSMessageData"]["Recipients"][0]["messageParts"] == 1
    [stored] = await sms.messages()
    assert stored["encoding"] == "UCS-2"


async def test_invalid_number_403_recipient_not_stored(sms: Sms) -> None:
    r = await sms.send(f"0712345678, {PHONE}")
    assert r.status_code == 201
    data = r.json()["SMSMessageData"]
    assert data["Message"] == "Sent to 1/2 Total Cost: KES 0.8000"
    assert data["Recipients"][0] == {
        "statusCode": 403,
        "number": "0712345678",
        "status": "InvalidPhoneNumber",
        "cost": "0",
        "messageId": "None",
        "messageParts": 1,
    }
    assert data["Recipients"][1]["statusCode"] == 101
    assert [m["to"] for m in await sms.messages()] == [PHONE]


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (405, "InsufficientBalance"),
        (406, "UserInBlacklist"),
        (407, "CouldNotRoute"),
        (502, "RejectedByGateway"),
    ],
)
async def test_forced_failure_outcome(sms: Sms, code: int, label: str) -> None:
    await sms.control("outcomes", {"number": OTHER, "status_code": code})
    r = await sms.send(f"{PHONE},{OTHER}")
    data = r.json()["SMSMessageData"]
    assert data["Message"] == "Sent to 1/2 Total Cost: KES 0.8000"
    forced = data["Recipients"][1]
    assert forced == {
        "statusCode": code,
        "number": OTHER,
        "status": label,
        "cost": "0",
        "messageId": "None",
        "messageParts": 1,
    }
    assert await sms.messages(OTHER) == []


async def test_forced_queued_outcome_is_accepted(sms: Sms) -> None:
    await sms.control("outcomes", {"number": PHONE, "status_code": 102})
    recipient = (await sms.send(PHONE)).json()["SMSMessageData"]["Recipients"][0]
    assert (recipient["statusCode"], recipient["status"], recipient["cost"]) == (102, "Queued", "KES 0.8000")
    assert MESSAGE_ID.fullmatch(recipient["messageId"])


async def test_unknown_outcome_code_rejected(sms: Sms) -> None:
    r = await sms.client.post(f"{sms.base}/_sim/outcomes", json={"number": PHONE, "status_code": 499})
    assert r.status_code == 422


async def test_reset_clears_outcomes_and_messages(sms: Sms) -> None:
    await sms.control("outcomes", {"number": PHONE, "status_code": 406})
    await sms.send(OTHER)
    await sms.control("reset", {})
    assert await sms.messages() == []
    assert await sms.control("outcomes") == {}
    assert (await sms.send(PHONE)).json()["SMSMessageData"]["Recipients"][0]["statusCode"] == 101


async def test_requests_are_recorded_as_sent(sms: Sms) -> None:
    await sms.send(PHONE, "Hi", api_key="nope")
    await sms.send(PHONE, "Hi")
    requests = await sms.control("requests")
    assert [r["status_code"] for r in requests] == [401, 201]
    assert requests[1]["api_key"] == API_KEY
    assert requests[1]["form"] == {"to": PHONE, "message": "Hi", "bulkSMSMode": "1", "username": USERNAME}


# --- faults ----------------------------------------------------------------------------------------------


async def test_http_500_for_next_n_requests(sms: Sms) -> None:
    await sms.control("faults", {"http_500": 2})
    for _ in range(2):
        r = await sms.send(PHONE)
        assert r.status_code == 500
        assert r.headers["content-type"].startswith("text/plain")
    assert (await sms.send(PHONE)).status_code == 201
    assert len(await sms.messages()) == 1


async def test_delay_makes_client_time_out_but_message_still_sent(sms: Sms) -> None:
    await sms.control("faults", {"delay": 0.4, "delay_requests": 1})
    with pytest.raises(httpx.ReadTimeout):
        await sms.send(PHONE, timeout=0.1)
    started = time.monotonic()
    assert (await sms.send(PHONE)).status_code == 201
    assert time.monotonic() - started < 0.3
    # The slow request was still processed: a client retrying after a timeout sends the SMS twice.
    await asyncio.sleep(0.4)
    assert len(await sms.messages()) == 2


async def test_delay_without_count_applies_until_reset(sms: Sms) -> None:
    await sms.control("faults", {"delay": 0.15})
    for _ in range(2):
        started = time.monotonic()
        assert (await sms.send(PHONE)).status_code == 201
        assert time.monotonic() - started >= 0.15
    await sms.control("reset", {})
    started = time.monotonic()
    await sms.send(PHONE)
    assert time.monotonic() - started < 0.15


# --- delivery reports ------------------------------------------------------------------------------------


async def _send_one(sms: Sms, to: str = PHONE) -> str:
    r = await sms.send(to)
    assert r.status_code == 201, r.text
    message_id: str = r.json()["SMSMessageData"]["Recipients"][0]["messageId"]
    return message_id


async def test_dlr_posts_exact_form_to_configured_url(sms: Sms, receiver: Receiver) -> None:
    name, url = receiver.new_url()
    await sms.control("config", {"dlr_url": url})
    message_id = await _send_one(sms)
    result = await sms.control("dlr", {"id": message_id, "status": "Success"})
    assert result == {"delivered_to": url, "status_code": 200}
    [form] = receiver.hits[name]
    assert form == {
        "id": message_id,
        "status": "Success",
        "phoneNumber": PHONE,
        "networkCode": "63902",
        "retryCount": "0",
    }
    assert receiver.content_types[name] == ["application/x-www-form-urlencoded"]
    [stored] = await sms.messages()
    assert stored["status"] == "Success"
    assert [(d["status"], d["status_code"]) for d in stored["deliveries"]] == [("Success", 200)]


async def test_dlr_failed_carries_failure_reason(sms: Sms, receiver: Receiver) -> None:
    name, url = receiver.new_url()
    message_id = await _send_one(sms)
    await sms.control("dlr", {"id": message_id, "status": "Submitted", "url": url})
    await sms.control(
        "dlr", {"id": message_id, "status": "Failed", "failureReason": "UserInBlacklist", "url": url}
    )
    await sms.control("dlr", {"id": message_id, "status": "Rejected", "url": url})
    submitted, failed, rejected = receiver.hits[name]
    assert set(submitted) == DLR_FIELDS
    assert set(failed) == DLR_FIELDS | {"failureReason"}
    assert (failed["status"], failed["failureReason"]) == ("Failed", "UserInBlacklist")
    assert (rejected["status"], rejected["failureReason"]) == ("Rejected", "DeliveryFailure")
    [stored] = await sms.messages()
    assert [d["status"] for d in stored["deliveries"]] == ["Submitted", "Failed", "Rejected"]


async def test_dlr_reports_our_status_code(sms: Sms, receiver: Receiver) -> None:
    name, url = receiver.new_url("fail-")
    message_id = await _send_one(sms)
    result = await sms.control("dlr", {"id": message_id, "status": "Success", "url": url})
    assert result == {"delivered_to": url, "status_code": 500}
    assert len(receiver.hits[name]) == 1


async def test_dlr_errors(sms: Sms, receiver: Receiver) -> None:
    r = await sms.client.post(f"{sms.base}/_sim/dlr", json={"id": "ATXid_" + "0" * 32, "status": "Success"})
    assert r.status_code == 404
    message_id = await _send_one(sms)
    r = await sms.client.post(f"{sms.base}/_sim/dlr", json={"id": message_id, "status": "Success"})
    assert r.status_code == 409
    sock, port = bound_socket()  # bound, never listening: connection refused
    try:
        result = await sms.control(
            "dlr", {"id": message_id, "status": "Success", "url": f"http://127.0.0.1:{port}/dlr"}
        )
    finally:
        sock.close()
    assert result["status_code"] is None
    assert "ConnectError" in result["error"]


async def test_dlr_default_status_follows_number_rule(sms: Sms, receiver: Receiver) -> None:
    name, url = receiver.new_url()
    await sms.control(
        "outcomes", {"number": OTHER, "dlr_status": "Failed", "failure_reason": "UserInBlacklist"}
    )
    # A final-status rule alone does not stop the send.
    message_id = await _send_one(sms, OTHER)
    await sms.control("dlr", {"id": message_id, "url": url})
    [form] = receiver.hits[name]
    assert (form["status"], form["failureReason"]) == ("Failed", "UserInBlacklist")


async def test_auto_dlr(client: httpx.AsyncClient, receiver: Receiver) -> None:
    name, url = receiver.new_url()
    async with serving(create_app(api_key=API_KEY, dlr_url=url, auto_dlr=0.05)) as base:
        sms = Sms(base, client)
        await sms.control(
            "outcomes", {"number": OTHER, "dlr_status": "Failed", "failure_reason": "UserInBlacklist"}
        )
        r = await sms.send(f"{PHONE},{OTHER},+254733000999")
        ids = [x["messageId"] for x in r.json()["SMSMessageData"]["Recipients"]]
        hits = await receiver.wait(name, 3)
        by_id = {h["id"]: h for h in hits}
        assert set(by_id) == set(ids)
        assert by_id[ids[0]] == {
            "id": ids[0],
            "status": "Success",
            "phoneNumber": PHONE,
            "networkCode": "63902",
            "retryCount": "0",
        }
        assert (by_id[ids[1]]["status"], by_id[ids[1]]["failureReason"]) == ("Failed", "UserInBlacklist")
        assert by_id[ids[2]]["status"] == "Success"
        await asyncio.sleep(0.1)
        assert len(receiver.hits[name]) == 3


async def test_auto_dlr_via_config_and_unreachable_url_is_not_fatal(client: httpx.AsyncClient) -> None:
    sock, port = bound_socket()
    try:
        async with serving(create_app(api_key=API_KEY)) as base:
            sms = Sms(base, client)
            config = await sms.control("config", {"dlr_url": f"http://127.0.0.1:{port}/dlr", "auto_dlr": 0.0})
            assert config == {"dlr_url": f"http://127.0.0.1:{port}/dlr", "auto_dlr": 0.0}
            await _send_one(sms)
            deadline = time.monotonic() + 3
            while not (await sms.messages())[0]["deliveries"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            [delivery] = (await sms.messages())[0]["deliveries"]
            assert delivery["status"] == "Success"
            assert "ConnectError" in delivery["error"]
            # The sim keeps serving after the failed background report.
            assert (await sms.send(PHONE)).status_code == 201
    finally:
        sock.close()


# --- USSD gateway driver ---------------------------------------------------------------------------------


class EchoUssd:
    """A tiny app in our /ussd's place: a menu that echoes the accumulated text, plus misbehaving routes."""

    def __init__(self) -> None:
        self.base = ""
        self.calls: list[tuple[dict[str, str], dict[str, str], str]] = []
        app = FastAPI()
        self.app = app

        @app.post("/ussd")
        async def ussd(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.calls.append((form, dict(request.query_params), request.headers.get("content-type", "")))
            text = form["text"]
            if text == "":
                return PlainTextResponse("CON Welcome\n1. Pay\n2. Balance")
            if text.split("*")[-1] == "9":
                return PlainTextResponse(f"END Bye {text}")
            return PlainTextResponse(f"CON You said {text}")

        @app.post("/bad/500")
        async def server_error() -> Response:
            return PlainTextResponse("boom", status_code=500)

        @app.post("/bad/json")
        async def json_type() -> Response:
            return Response("CON Welcome", media_type="application/json")

        @app.post("/bad/html")
        async def html_type() -> Response:
            return Response("CON Welcome", media_type="text/html")

        @app.post("/bad/prefix")
        async def no_prefix() -> Response:
            return PlainTextResponse("Welcome")

        @app.post("/bad/nospace")
        async def no_space() -> Response:
            return PlainTextResponse("CONWelcome")

        @app.post("/bad/unicode")
        async def unicode() -> Response:
            return PlainTextResponse("CON Umelipa \u2713")

        @app.post("/bad/crlf")
        async def crlf() -> Response:
            return PlainTextResponse("CON 1. Pay\r\n2. Balance")

        @app.post("/bad/slow")
        async def slow() -> Response:
            await asyncio.sleep(0.5)
            return PlainTextResponse("CON late")

        @app.post("/len/{n}")
        async def length(n: int) -> Response:
            return PlainTextResponse("CON " + "x" * (n - 4))

        @app.post("/second/{path}")
        async def second_hop_fails(path: str, request: Request) -> Response:
            text = str((await request.form())["text"])
            if text == "":
                return PlainTextResponse("CON Welcome")
            return PlainTextResponse("oops", status_code=502)


@pytest.fixture(scope="module")
async def echo() -> AsyncIterator[EchoUssd]:
    app = EchoUssd()
    async with serving(app.app) as base:
        app.base = base
        yield app


def _calls_for(echo: EchoUssd, session_id: str) -> list[tuple[dict[str, str], dict[str, str], str]]:
    return [c for c in echo.calls if c[0]["sessionId"] == session_id]


async def test_ussd_walk_accumulates_text(echo: EchoUssd, receiver: Receiver) -> None:
    name, eos_url = receiver.new_url()
    async with UssdGateway(f"{echo.base}/ussd?secret=s3cret", end_of_session_url=eos_url) as gateway:
        session = gateway.dial(PHONE)
        assert SESSION_ID.fullmatch(session.session_id)
        first = await session.start()
        assert (first.kind, first.text) == ("CON", "Welcome\n1. Pay\n2. Balance")
        assert first.raw == "CON Welcome\n1. Pay\n2. Balance"
        assert first.status_code == 200
        assert first.elapsed > 0
        assert (await session.send("1")).text == "You said 1"
        assert (await session.send("0")).text == "You said 1*0"
        last = await session.send("9")
        assert (last.kind, last.text) == ("END", "Bye 1*0*9")
        assert session.ended
        assert session.status == "Success"
        assert session.inputs == ["1", "0", "9"]
        assert [s.kind for s in session.screens] == ["CON", "CON", "CON", "END"]
        with pytest.raises(UssdProtocolError, match="after the session ended"):
            await session.send("1")

    calls = _calls_for(echo, session.session_id)
    assert [form["text"] for form, _, _ in calls] == ["", "1", "1*0", "1*0*9"]
    for form, query, content_type in calls:
        assert form == {
            "sessionId": session.session_id,
            "serviceCode": "*384*123#",
            "phoneNumber": PHONE,
            "networkCode": "63902",
            "text": form["text"],
        }
        assert query == {"secret": "s3cret"}
        assert content_type == "application/x-www-form-urlencoded"

    [eos] = await receiver.wait(name, 1)
    assert set(eos) == EOS_FIELDS
    assert eos["sessionId"] == session.session_id
    assert (eos["serviceCode"], eos["networkCode"], eos["phoneNumber"]) == ("*384*123#", "63902", PHONE)
    assert (eos["status"], eos["cost"], eos["hopsCount"], eos["input"]) == (
        "Success",
        "KES 0.10",
        "4",
        "1*0*9",
    )
    assert eos["lastAppResponse"] == "END Bye 1*0*9"
    assert eos["errorMessage"] == ""
    assert eos["durationInMillis"].isdigit()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", eos["date"])


async def test_ussd_custom_ids_and_codes(echo: EchoUssd, client: httpx.AsyncClient) -> None:
    gateway = UssdGateway(f"{echo.base}/ussd", service_code="*483*7#", network_code="63903", http=client)
    session = gateway.dial("+254733000999", session_id="ATUid_custom")
    await session.start()
    [(form, _, _)] = _calls_for(echo, "ATUid_custom")
    assert (form["serviceCode"], form["networkCode"], form["phoneNumber"]) == (
        "*483*7#",
        "63903",
        "+254733000999",
    )
    await gateway.aclose()
    assert not client.is_closed  # a borrowed client stays open


async def test_ussd_abandon_sends_incomplete(echo: EchoUssd, receiver: Receiver) -> None:
    name, eos_url = receiver.new_url()
    async with UssdGateway(f"{echo.base}/ussd", end_of_session_url=eos_url) as gateway:
        session = gateway.dial(PHONE)
        await session.start()
        await session.send("2")
        await session.abandon()
        await session.abandon()
        assert session.ended
        assert session.status == "Incomplete"
        with pytest.raises(UssdProtocolError):
            await session.send("1")
    [eos] = await receiver.wait(name, 1)
    assert (eos["status"], eos["hopsCount"], eos["input"]) == ("Incomplete", "2", "2")
    assert eos["lastAppResponse"] == "CON You said 2"
    assert len(gateway.notifications) == 1


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("bad/500", r"HTTP 500 \(expected 200\)"),
        ("bad/json", r"Content-Type 'application/json' \(expected text/plain\)"),
        ("bad/html", r"Content-Type 'text/html; charset=utf-8' \(expected text/plain\)"),
        ("bad/prefix", r"does not start with 'CON ' or 'END '"),
        ("bad/nospace", r"does not start with 'CON ' or 'END '"),
        ("bad/unicode", r"'✓' at index 12"),
        ("bad/crlf", r"'\\r' at index 10"),
        ("len/183", r"183 characters, over the 182 limit"),
        ("bad/slow", r"0.2s application timeout"),
    ],
)
async def test_ussd_protocol_violations(echo: EchoUssd, receiver: Receiver, path: str, match: str) -> None:
    name, eos_url = receiver.new_url()
    async with UssdGateway(f"{echo.base}/{path}", timeout=0.2, end_of_session_url=eos_url) as gateway:
        session = gateway.dial(PHONE)
        with pytest.raises(UssdProtocolError, match=match) as caught:
            await session.start()
        assert session.session_id in str(caught.value)
        assert session.ended
        assert session.status == "Failed"
        assert session.screens == []
        with pytest.raises(UssdProtocolError, match="after the session ended"):
            await session.send("1")
    [eos] = await receiver.wait(name, 1)
    assert eos["status"] == "Failed"
    assert eos["errorMessage"] == str(caught.value)
    assert eos["hopsCount"] == "1"


async def test_ussd_max_chars_boundary(echo: EchoUssd) -> None:
    async with UssdGateway(f"{echo.base}/len/182") as gateway:
        screen = await gateway.dial(PHONE).start()
        assert len(screen.raw) == 182
    async with UssdGateway(f"{echo.base}/len/161", max_chars=160) as gateway:
        with pytest.raises(UssdProtocolError, match="161 characters, over the 160 limit"):
            await gateway.dial(PHONE).start()


async def test_ussd_failure_mid_session(echo: EchoUssd, receiver: Receiver) -> None:
    name, eos_url = receiver.new_url()
    async with UssdGateway(f"{echo.base}/second/x", end_of_session_url=eos_url) as gateway:
        session = gateway.dial(PHONE)
        assert (await session.start()).text == "Welcome"
        with pytest.raises(UssdProtocolError, match=r"hop 2 \(text='3'\): HTTP 502"):
            await session.send("3")
    [eos] = await receiver.wait(name, 1)
    assert (eos["status"], eos["hopsCount"], eos["input"], eos["lastAppResponse"]) == (
        "Failed",
        "2",
        "3",
        "oops",
    )


async def test_ussd_unreachable_app_and_end_of_session_url() -> None:
    sock, port = bound_socket()
    try:
        dead = f"http://127.0.0.1:{port}"
        async with UssdGateway(f"{dead}/ussd", end_of_session_url=f"{dead}/eos") as gateway:
            session = gateway.dial(PHONE)
            with pytest.raises(UssdProtocolError, match="ConnectError"):
                await session.start()
            # The failed end-of-session post was swallowed, but is still on record.
            assert [n["status"] for n in gateway.notifications] == ["Failed"]
    finally:
        sock.close()


async def test_ussd_send_before_start_is_a_usage_error(echo: EchoUssd) -> None:
    async with UssdGateway(f"{echo.base}/ussd") as gateway:
        session = gateway.dial(PHONE)
        with pytest.raises(RuntimeError, match="start"):
            await session.send("1")
        await session.start()
        with pytest.raises(RuntimeError, match="already started"):
            await session.start()
