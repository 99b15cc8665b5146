"""Signing in to the web panel: password, the emailed code (always for admins), sessions that are new
at every sign-in and end on logout, CSRF on every form, roles, and other tenants' ids."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from core.audit.models import AuditLog
from core.auth.models import Role, User
from core.auth.panel_sessions import PanelSession
from core.auth.twofactor import LoginChallenge
from core.db import utcnow
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import emailed_code, make_admin, make_tenant, make_user


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def password_step(
    client: httpx.AsyncClient, email: str, password: str, next_: str = ""
) -> httpx.Response:
    page = await client.get("/login")
    assert page.status_code == 200 and "Sign in" in page.text
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text), "next": next_},
    )


async def sign_in_admin(client: httpx.AsyncClient) -> str:
    email, password = await make_admin()
    r = await password_step(client, email, password)
    assert (r.status_code, r.headers["location"]) == (303, "/login/code")
    page = await client.get("/login/code")
    assert f"We sent a 6-digit sign-in code to <strong>{email[0]}***@example.com</strong>" in page.text
    done = await client.post(
        "/login/code", data={"code": await emailed_code(email), "csrf_token": csrf_of(page.text)}
    )
    assert (done.status_code, done.headers["location"]) == (303, "/admin")
    return email


async def test_admin_needs_the_emailed_code_once(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/admin")).headers["location"] == "/login?next=/admin"
        email, password = await make_admin()
        r = await password_step(client, email, password, next_="/admin")
        assert r.status_code == 303 and r.headers["location"] == "/login/code?next=/admin"
        assert "lp_session" not in client.cookies  # no session before the code
        page = await client.get("/login/code")
        code = await emailed_code(email)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        bad = await client.post("/login/code", data={"code": wrong, "csrf_token": csrf_of(page.text)})
        assert bad.status_code == 401 and "Wrong code: 4 tries left." in bad.text
        ok = await client.post(
            "/login/code", data={"code": code, "csrf_token": csrf_of(page.text), "next": "/admin"}
        )
        assert (ok.status_code, ok.headers["location"]) == (303, "/admin")
        cookie = ok.headers["set-cookie"]
        assert "lp_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        home = await client.get("/admin")
        assert home.status_code == 200 and "Platform overview" in home.text
        assert home.headers["cache-control"] == "no-store"

    # The same code again, in a fresh browser: refused.
    async with httpx.AsyncClient(base_url=server.url) as other:
        await password_step(other, email, password)
        async with unit_of_work(readonly=True) as session:
            first = await session.scalar(
                select(LoginChallenge)
                .join(User, User.id == LoginChallenge.user_id)
                .where(User.email == email, LoginChallenge.used_at.is_not(None))
            )
        assert first is not None
        other.cookies.set("lp_challenge", f"{first.id}|x", domain="127.0.0.1", path="/")
        page = await other.get("/login/code")
        reuse = await other.post("/login/code", data={"code": code, "csrf_token": csrf_of(page.text)})
        assert reuse.status_code == 401 and "expired or was used" in reuse.text
        assert "lp_session" not in other.cookies


async def test_code_brute_force_ends_the_challenge(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        email, password = await make_admin()
        await password_step(client, email, password)
        page = await client.get("/login/code")
        code = await emailed_code(email)
        wrong = f"{(int(code) + 7) % 1_000_000:06d}"
        answers = []
        for _ in range(5):
            r = await client.post("/login/code", data={"code": wrong, "csrf_token": csrf_of(page.text)})
            answers.append(re.search(r'id="code-error">([^<]+)<', r.text).group(1))  # type: ignore[union-attr]
        assert answers == [
            "Wrong code: 4 tries left.",
            "Wrong code: 3 tries left.",
            "Wrong code: 2 tries left.",
            "Wrong code: 1 try left.",
            "Wrong code too many times. Sign in again for a new one.",
        ]
        right = await client.post("/login/code", data={"code": code, "csrf_token": csrf_of(page.text)})
        assert right.status_code == 401 and "expired or was used" in right.text  # the right code is dead too
        # Codes per user are limited too: at most 5 per 15 minutes.
        for _ in range(4):
            await password_step(client, email, password)
        sixth = await password_step(client, email, password)
        assert sixth.status_code == 429 and "Too many sign-in codes were sent" in sixth.text


async def test_business_sign_in_session_rotation_logout_and_csrf(server: LiveServer) -> None:
    _, owner = await make_tenant(name="Panel Shop")
    async with httpx.AsyncClient(base_url=server.url) as client:
        client.cookies.set(
            "lp_session", "attacker-chosen-value", domain="127.0.0.1", path="/"
        )  # fixation attempt
        r = await password_step(client, owner.email, "secret-pass-1")
        assert (r.status_code, r.headers["location"]) == (303, "/app")
        token = client.cookies["lp_session"]
        assert token != "attacker-chosen-value" and len(token) >= 40
        home = await client.get("/app")
        assert home.status_code == 200 and "<h1>Panel Shop</h1>" in home.text

        # A second sign-in gives a new session and ends the one the browser had.
        again = await password_step(client, owner.email, "secret-pass-1")
        assert again.status_code == 303 and client.cookies["lp_session"] != token
        async with httpx.AsyncClient(base_url=server.url, cookies={"lp_session": token}) as stale:
            assert (await stale.get("/app")).status_code == 303

        no_csrf = await client.post("/logout")
        assert no_csrf.status_code == 403 and "This form has expired" in no_csrf.text
        forged = await client.post(
            "/logout", data={"csrf_token": "nope"}, headers={"origin": "https://evil.example"}
        )
        assert forged.status_code == 403 and "came from another site" in forged.text
        old_form = await client.post("/logout", data={"csrf_token": csrf_of(home.text)})
        assert old_form.status_code == 403  # the token of the session before the second sign-in
        current = await client.get("/app")
        out = await client.post("/logout", data={"csrf_token": csrf_of(current.text)})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert (await client.get("/app")).status_code == 303


async def test_idle_timeout_roles_and_login_form_csrf(server: LiveServer) -> None:
    tenant, _ = await make_tenant(name="Cashier Shop")
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    async with httpx.AsyncClient(base_url=server.url) as client:
        no_token = await client.post("/login", data={"email": cashier.email, "password": "secret-pass-1"})
        assert no_token.status_code == 403 and "sign-in form has expired" in no_token.text
        r = await password_step(client, cashier.email, "wrong-password")
        assert r.status_code == 401 and "Wrong email or password." in r.text
        r = await password_step(client, cashier.email, "secret-pass-1")
        assert r.headers["location"] == "/app"
        admin = await client.get("/admin")
        assert admin.status_code == 403 and "This page is for platform administrators." in admin.text
        async with unit_of_work() as session:
            await session.execute(
                update(PanelSession)
                .where(PanelSession.user_id == cashier.id)
                .values(last_seen_at=utcnow() - timedelta(minutes=31))
            )
        assert (await client.get("/app")).headers["location"] == "/login?next=/app"


async def test_logout_everywhere_ends_api_tokens_too(server: LiveServer) -> None:
    _, owner = await make_tenant(name="Everywhere Shop")
    async with httpx.AsyncClient(base_url=server.url) as client:
        api = await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})
        bearer = {"Authorization": f"Bearer {api.json()['access_token']}"}
        assert (await client.get("/api/settings", headers=bearer)).status_code == 200
        await password_step(client, owner.email, "secret-pass-1")
        home = await client.get("/app")
        out = await client.post("/logout-everywhere", data={"csrf_token": csrf_of(home.text)})
        assert out.status_code == 303
        assert (await client.get("/api/settings", headers=bearer)).status_code == 401
        assert (await client.get("/app")).status_code == 303
    async with unit_of_work(readonly=True) as session:
        actions = list(
            await session.scalars(
                select(AuditLog.action).where(AuditLog.user_id == owner.id).order_by(AuditLog.id)
            )
        )
    assert actions.count("auth.login") == 2
