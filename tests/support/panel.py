"""Signing in to the web panel from tests, over HTTP (httpx) or in Chromium (Playwright)."""

from __future__ import annotations

import html
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeGuard

import httpx

from core.auth.models import User
from tests.support.factories import emailed_code, make_admin

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NO_CHROMIUM = "no Chromium found: apt-get install chromium or set LIPAPUSH_CHROMIUM"
# Debian's package first: it is what .ci/run installs and what the tests are written against.
CHROMIUM_PATHS = ("/usr/bin/chromium",)
CHROMIUM_COMMANDS = ("chromium", "chromium-browser", "google-chrome")


def _executable(path: str | None) -> TypeGuard[str]:
    return path is not None and os.path.isfile(path) and os.access(path, os.X_OK)


def find_chromium(
    playwright_path: str | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    paths: tuple[str, ...] = CHROMIUM_PATHS,
    which: Callable[[str], str | None] = shutil.which,
) -> str | None:
    """The Chromium the browser tests drive, or None.

    In order: LIPAPUSH_CHROMIUM, Debian's /usr/bin/chromium, a chromium/chrome command on PATH, then
    the browser Playwright installed itself (``playwright_path``: ``p.chromium.executable_path``, which
    names where that browser would be whether or not it was ever downloaded)."""
    for path in (env.get("LIPAPUSH_CHROMIUM"), *paths):
        if _executable(path):
            return path
    for command in CHROMIUM_COMMANDS:
        found = which(command)
        if _executable(found):
            return found
    return playwright_path if _executable(playwright_path) else None


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def password_step(
    client: httpx.AsyncClient, email: str, password: str, next_: str = ""
) -> httpx.Response:
    page = await client.get("/login")
    assert page.status_code == 200
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text), "next": next_},
    )


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    """Password, then the emailed code when one is asked for; the client keeps the session cookie."""
    r = await password_step(client, email, password)
    assert r.status_code == 303, r.text
    if r.headers["location"].startswith("/login/code"):
        page = await client.get("/login/code")
        r = await client.post(
            "/login/code", data={"code": await emailed_code(email), "csrf_token": csrf_of(page.text)}
        )
        assert r.status_code == 303, r.text


async def admin_client(base_url: str) -> tuple[httpx.AsyncClient, str]:
    """A signed-in platform admin (new account); close the client when done."""
    email, password = await make_admin()
    client = httpx.AsyncClient(base_url=base_url)
    await sign_in(client, email, password)
    return client, email


async def business_client(base_url: str, user: User, password: str = "secret-pass-1") -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url)
    await sign_in(client, user.email, password)
    return client


async def form_post(
    client: httpx.AsyncClient, page_url: str, action: str, data: dict[str, str] | None = None
) -> httpx.Response:
    """Submit a form the way a browser would: read the page for its CSRF token, then post."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={**(data or {}), "csrf_token": csrf_of(page.text)})


def text_of(page: str, element_id: str) -> str:
    """The text inside the element with this id (tags removed, spaces collapsed)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(2))).split())


def rows_of(page: str, table_id: str) -> list[list[str]]:
    """The body rows of a table, each as its cells' text."""
    match = re.search(rf'<table class="data" id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert match, f"no table #{table_id}"
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        rows.append([" ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells])
    return rows
