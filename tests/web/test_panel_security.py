"""Every panel route, found from the app itself, obeys the same rules: no session → sign in; a business
user on an admin page → 403; a POST without the CSRF token, or from another site → 403 and nothing
changes; another tenant's (or no one's) id → 404. A route added later is checked without a new test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import aclosing
from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from core.audit.models import AuditLog
from core.auth.models import Role
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user
from tests.support.panel import admin_client, business_client, csrf_of

# Public panel pages: the sign-in forms and invitations work without a session.
PUBLIC = re.compile(r"^/(login|logout|join)")


def _api_routes(routes: Sequence[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif (inner := getattr(route, "original_router", None)) is not None:
            # FastAPI ≥ 0.16x keeps an included router as one entry, with its prefix beside it.
            yield from _api_routes(inner.routes, prefix + route.include_context.prefix)


def panel_routes(server: LiveServer, method: str, prefix: str) -> list[str]:
    """Paths of the app's panel routes for `method`, with every path parameter filled with a new uuid."""
    found = []
    for path, route in _api_routes(server.app.routes):
        if method in route.methods and path.startswith(prefix) and not PUBLIC.match(path):
            found.append(re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
    assert found, f"no {method} routes under {prefix}"
    return sorted(found)


async def audit_rows() -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).select_from(AuditLog)) or 0)


async def test_without_a_session_every_page_sends_to_sign_in(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anon:
        for method in ("GET", "POST"):
            for prefix in ("/admin", "/app"):
                for path in panel_routes(server, method, prefix):
                    r = await anon.request(method, path)
                    assert r.status_code == 303, (method, path, r.status_code)
                    assert r.headers["location"].startswith("/login"), path


async def test_business_users_get_403_on_every_admin_route(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Sweep Duka")
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    for user in (owner, cashier):
        client = await business_client(server.url, user)
        async with aclosing(client):
            token = csrf_of((await client.get("/app")).text)
            for path in panel_routes(server, "GET", "/admin"):
                r = await client.get(path)
                assert r.status_code == 403, (user.role, path, r.status_code)
            before = await audit_rows()
            for path in panel_routes(server, "POST", "/admin"):
                if path.startswith("/admin/impersonation/"):
                    continue  # ends or widens the caller's own impersonation: refused below with the rest
                r = await client.post(path, data={"csrf_token": token, "reason": "sweeping the admin routes"})
                assert r.status_code == 403, (user.role, path, r.status_code)
            assert await audit_rows() == before


async def test_every_post_without_csrf_or_from_another_site_is_refused(server: LiveServer) -> None:
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        token = csrf_of((await admin.get("/admin")).text)
        before = await audit_rows()
        for path in panel_routes(server, "POST", "/admin") + panel_routes(server, "POST", "/app"):
            r = await admin.post(path, data={"reason": "no token here"})
            assert r.status_code == 403, (path, r.status_code)
            assert "reload the page and try again" in r.text, path
            wrong = await admin.post(path, data={"csrf_token": "x" * len(token)})
            assert wrong.status_code == 403, path
            foreign = await admin.post(
                path, data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
            )
            assert foreign.status_code == 403 and "came from another site" in foreign.text, path
        assert await audit_rows() == before


async def test_unknown_and_other_tenants_ids_are_404_for_the_owner(server: LiveServer) -> None:
    _, owner = await make_tenant(name="Owner Sweep Duka")
    client = await business_client(server.url, owner)
    async with aclosing(client):
        for path in panel_routes(server, "GET", "/app"):
            if path.count("-") < 4:
                continue  # no id in this path
            r = await client.get(path)
            # A WiFi page of a plain business is a 404 too: there is nothing of its own to show.
            assert r.status_code == 404, (path, r.status_code)
            assert "<h1>Not found</h1>" in r.text, path
