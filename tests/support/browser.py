"""Chromium (Debian's, through Playwright) for panel tests, with screenshots kept as CI artifacts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.support import services
from tests.support.factories import emailed_code
from tests.support.panel import ARTIFACTS, NO_CHROMIUM, find_chromium


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Chromium from ``find_chromium``; without one the test is skipped, except in CI
    (LIPAPUSH_REQUIRE_SERVICES=1), where a missing browser must not pass as skipped browser tests."""
    async with async_playwright() as p:
        chromium = find_chromium(p.chromium.executable_path)
        if chromium is None:
            if services.REQUIRE:
                pytest.fail(NO_CHROMIUM, pytrace=False)
            pytest.skip(NO_CHROMIUM)
        b = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        await b.close()


async def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot under tests/artifacts/ (not committed) for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(
        path=str(ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"), full_page=True
    )


async def browser_sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Type the password and, when asked, the emailed code, like a person would."""
    await page.goto(f"{base_url}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    if "/login/code" in page.url:
        await page.get_by_label("Sign-in code").fill(await emailed_code(email))
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_load_state()
