"""Input no database can store, and other requests that are not what a gateway sends, still get a USSD
screen (200, `END …`): AT drops the session with a generic error on anything else. Nothing is stored and
nothing fails inside."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ussd.conftest import PIN, make_merchant

UNREADABLE = "END This request could not be read. Please dial again."
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def no_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


async def hop(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = {"sessionId": "ATUid_unstorable", "serviceCode": "*384*123#", "phoneNumber": "+254722000678"}
    form.update(fields)
    body = urlencode(form, encoding="utf-8", errors="surrogatepass")
    return await client.post("/ussd", content=body, headers=FORM)


class TestUnstorableText:
    @pytest.mark.parametrize(
        "text",
        ["1*40\x0040", "1*\x00", "\x00", "1*4040\ud800"],
        ids=["business-number", "token", "whole-text", "invalid-utf8"],
    )
    async def test_payer_text(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, text: str
    ) -> None:
        r = await hop(client, sessionId=f"ATUid_{len(text)}_{ord(text[-1])}", text=text)
        if "\ud800" in text:
            # Invalid UTF-8 reads as U+FFFD, which stores fine: an ordinary wrong business number.
            first = r.text.split("\n")[0]
            assert (r.status_code, first) == (200, "CON Enter the business number: 4 to 8 digits.")
        else:
            assert (r.status_code, r.text) == (200, UNREADABLE)
        no_internal_errors(caplog)

    async def test_merchant_text_behind_the_pin(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        m = await make_merchant()
        r = await hop(client, sessionId="ATUid_merchant_nul", phoneNumber=m.phone, text=f"{PIN}*1*0722\x00")
        assert (r.status_code, r.text) == (200, UNREADABLE)
        no_internal_errors(caplog)

    @pytest.mark.parametrize("field", ["sessionId", "phoneNumber", "serviceCode"])
    async def test_other_fields(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, field: str
    ) -> None:
        r = await hop(client, **{field: "ATUid_\x00" if field == "sessionId" else "*384\x00#"}, text="1")
        assert (r.status_code, r.text) == (200, UNREADABLE)
        no_internal_errors(caplog)


class TestNotAGatewayRequest:
    async def test_a_body_over_the_cap_gets_an_end_line(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        limit = server.settings.MAX_BODY_BYTES_AT_CALLBACK
        r = await hop(client, text="1*" * limit)
        assert (r.status_code, r.text) == (200, "END This request is too long. Please dial again.")
        assert r.headers["content-type"].startswith("text/plain")

    async def test_a_secret_with_non_ascii_is_refused_not_a_crash(
        self, server: LiveServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(server.settings, "AT_CALLBACK_SECRET", "at-secret-0001")
        body = urlencode({"sessionId": "x", "text": ""})
        r = await client.post("/ussd?secret=%C3%A9", content=body, headers=FORM)
        assert (r.status_code, r.text) == (403, "forbidden")
        r = await client.post(
            "/ussd?secret=at-secret-0001",
            content=urlencode({"sessionId": "ATUid_secret_ok", "phoneNumber": "+254722000678", "text": ""}),
            headers=FORM,
        )
        assert r.status_code == 200 and r.text.startswith("CON Welcome to lipapush")
