"""The API documentation renders in Chromium with no internet: every request that would leave the
machine is aborted and recorded, and the page must still show the operations."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, Page, Route

from tests.conftest import LiveServer
from tests.support.browser import browser, shot  # noqa: F401  - the fixture
from web.docs import ASSETS_URL

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


async def offline_page(browser: Browser) -> tuple[Page, list[str], list[str]]:  # noqa: F811
    """A page whose requests to anywhere but this machine are aborted; returns (page, left, failed)."""
    page = await browser.new_page()
    left: list[str] = []
    failed: list[str] = []

    async def only_local(route: Route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            left.append(url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_local)
    page.on("requestfailed", lambda r: failed.append(r.url))
    return page, left, failed


async def test_swagger_ui_renders_without_internet(server: LiveServer, browser: Browser) -> None:  # noqa: F811
    page, left, failed = await offline_page(browser)
    response = await page.goto(f"{server.url}/docs")
    assert response is not None and response.status == 200
    push = page.locator('.opblock-post .opblock-summary-path[data-path="/api/stk-push"]')
    await push.wait_for(state="visible", timeout=15_000)
    assert await page.locator(".opblock").count() > 10
    # Opening an operation renders its schema from /openapi.json: the UI works, not just the shell.
    await push.click()
    await page.locator(".opblock-post.is-open .parameter__name", has_text="Idempotency-Key").wait_for(
        timeout=5_000
    )
    await shot(page, "docs-swagger-offline")
    assert left == []
    assert failed == []
    await page.close()


async def test_docs_pages_name_only_local_assets(server: LiveServer, client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert "http://" not in r.text and "https://" not in r.text
    assert f'<script src="{ASSETS_URL}/swagger-ui-bundle.js">' in r.text
    # ReDoc always fetches its logo from cdn.redoc.ly, so it is not offered (web/docs.py).
    assert (await client.get("/redoc")).status_code == 404
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        r = await client.get(f"{ASSETS_URL}/{asset}")
        assert r.status_code == 200, asset
        assert len(r.content) > 1000, asset
