"""The captive portal in real Chromium (Debian's, driven by Playwright): pick a plan, pay (Daraja
simulator), see the voucher, and be logged in to the router's login page automatically."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser

from core.hotspot.models import Plan, PlanKind
from core.runtime import runtime, unit_of_work
from sim.routeros import RouterSim
from tests.conftest import LiveServer
from tests.support.browser import browser  # noqa: F401  - the fixture
from tests.support.factories import make_tenant
from tests.support.servers import serving
from tests.support.waiting import wait_until
from tests.ussd.conftest import sms_to


@pytest.fixture
async def router_login() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The hotspot's own /login, as a MikroTik serves it: records what the portal submits."""
    posted: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/login", response_class=HTMLResponse)
    async def login(username: str = Form(""), password: str = Form(""), dst: str = Form("")) -> str:
        posted.append({"username": username, "password": password, "dst": dst})
        return "<h1>You are logged in</h1>"

    async with serving(app) as url:
        yield f"{url}/login", posted


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


async def provider(sim: RouterSim) -> tuple[uuid.UUID, uuid.UUID, str]:
    from core.hotspot.routers import routers
    from core.hotspot.schemas import RouterIn

    tenant, owner = await make_tenant(name="Mama Njeri Hotspot")
    async with unit_of_work() as session:
        r = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(name="gate", host="127.0.0.1", port=sim.port, username="api", password="router-pw"),
            box=runtime().secrets,
            by=owner.id,
        )
        session.add(
            Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        )
        session.add(
            Plan(tenant_id=tenant.id, name="24 hours", kind=PlanKind.time, price=50, validity_minutes=1440)
        )
        await session.flush()
        return tenant.id, r.id, tenant.slug


async def test_buy_and_connect_in_chromium(
    server: LiveServer,
    sim: RouterSim,
    browser: Browser,  # noqa: F811  - the fixture
    router_login: tuple[str, list[dict[str, Any]]],
) -> None:
    login_url, posted = router_login
    _, rid, slug = await provider(sim)
    phone = f"07{random.randint(10_000, 99_999)}678"[:6] + "5678"
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(
        f"{server.url}/portal/{slug}/{rid}?mac=AA:BB:CC:DD:EE:01&ip=10.5.50.23"
        f"&login={login_url}&dst=http://example.com/"
    )
    assert await page.locator("h1").inner_text() == "Mama Njeri Hotspot WiFi"
    await page.get_by_text("24 hours").click()
    await page.fill("#phone", phone)
    await page.click("#pay")
    await page.wait_for_selector("#code:not(:empty)", timeout=30_000)
    code = await page.inner_text("#code")
    assert len(code) == 8
    assert "24 hours, valid 1 day." in await page.inner_text("#donemsg")
    # The page logs the buyer in by itself, with the voucher, at the router's login URL.
    await page.wait_for_url(login_url, timeout=10_000)
    assert await page.locator("h1").inner_text() == "You are logged in"
    assert posted == [{"username": code, "password": code, "dst": "http://example.com/"}]
    assert code in {str(u["name"]) for u in sim.users()}
    assert errors == []
    async with httpx.AsyncClient(base_url=server.at_url) as at:

        async def texted() -> bool:
            return bool(await sms_to(at, phone))

        await wait_until(texted)
    await page.close()


async def test_cancelled_payment_in_chromium(
    server: LiveServer,
    sim: RouterSim,
    browser: Browser,  # noqa: F811  - the fixture
    router_login: tuple[str, list[dict[str, Any]]],
) -> None:
    login_url, posted = router_login
    _, rid, slug = await provider(sim)
    page = await browser.new_page()
    # A device address of its own, as a hotspot reports it: without one the portal counts the buy
    # against 127.0.0.1, which every portal test in the run shares (10 buys per device per 5 minutes).
    device = f"10.5.{random.randint(0, 255)}.{random.randint(1, 254)}"
    await page.goto(f"{server.url}/portal/{slug}/{rid}?ip={device}&login={login_url}")
    await page.fill("#phone", f"07{random.randint(10, 99)}111032")
    await page.click("#pay")
    await page.wait_for_selector("#fail:not([hidden])", timeout=30_000)
    assert "cancel" in (await page.inner_text("#failmsg")).lower()
    assert posted == [] and sim.users() == []
    await page.click("#again")
    assert await page.is_visible("#pay")
    bad = await browser.new_page()
    await bad.goto(f"{server.url}/portal/{slug}/{rid}")
    await bad.fill("#phone", "12345")
    await bad.click("#pay")
    await bad.wait_for_selector("#err:not(:empty)")
    assert (await bad.inner_text("#err")).startswith("'12345' is not a Kenyan mobile number.")
    await page.close()
    await bad.close()
