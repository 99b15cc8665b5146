"""Our Africa's Talking client against the stand-in, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.notify.sms import AfricasTalkingSms, SmsError
from sim.africastalking import create_app
from tests.support.servers import serving


@pytest.fixture
async def at() -> AsyncIterator[tuple[AfricasTalkingSms, httpx.AsyncClient]]:
    async with serving(create_app(api_key="k", username="shop")) as url, httpx.AsyncClient() as http:
        control = httpx.AsyncClient(base_url=url)
        yield AfricasTalkingSms(http=http, username="shop", api_key="k", base_url=url, timeout=2), control
        await control.aclose()


async def test_accepted(at: tuple[AfricasTalkingSms, httpx.AsyncClient]) -> None:
    sms, control = at
    ok = await sms.send(to="254712345678", message="Hello", sender_id="SHOP")
    assert ok.message_id.startswith("ATXid_") and ok.status == "Success" and ok.cost == "KES 0.8000"
    [req] = (await control.get("/_sim/requests")).json()
    assert req["form"] == {
        "username": "shop",
        "to": "+254712345678",
        "message": "Hello",
        "bulkSMSMode": "1",
        "from": "SHOP",
    }


@pytest.mark.parametrize(("code", "retry"), [(406, False), (403, False), (405, True), (502, True)])
async def test_recipient_refusals(
    at: tuple[AfricasTalkingSms, httpx.AsyncClient], code: int, retry: bool
) -> None:
    sms, control = at
    await control.post("/_sim/outcomes", json={"number": "+254700000406", "status_code": code})
    with pytest.raises(SmsError) as err:
        await sms.send(to="254700000406", message="x")
    assert err.value.retry is retry
    assert f"({code})" in str(err.value)


async def test_whole_request_failures_are_retried(at: tuple[AfricasTalkingSms, httpx.AsyncClient]) -> None:
    sms, control = at
    bad = AfricasTalkingSms(http=sms.http, username="shop", api_key="wrong", base_url=sms.base_url)
    with pytest.raises(SmsError, match="check AT_USERNAME and AT_API_KEY") as err:
        await bad.send(to="254712345678", message="x")
    assert err.value.retry
    await control.post("/_sim/faults", json={"http_500": 1})
    with pytest.raises(SmsError, match="HTTP 500") as err:
        await sms.send(to="254712345678", message="x")
    assert err.value.retry
    await control.post("/_sim/faults", json={"delay": 3, "delay_requests": 1})
    with pytest.raises(SmsError, match="unreachable: ReadTimeout") as err:
        await sms.send(to="254712345678", message="x")
    assert err.value.retry


def test_hosts() -> None:
    http = httpx.AsyncClient()
    assert AfricasTalkingSms(http=http, username="sandbox", api_key="k").url == (
        "https://api.sandbox.africastalking.com/version1/messaging"
    )
    assert AfricasTalkingSms(http=http, username="live", api_key="k").url == (
        "https://api.africastalking.com/version1/messaging"
    )
