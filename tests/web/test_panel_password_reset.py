"""The panel sign-in's "Forgot your password?": /login/reset emails a link (the same answer whether or
not the address has an account), /login/reset/{token} sets a new password once; expired, used, forged
and other users' tokens are refused; removed and Telegram-only staff get nothing; sessions and API
tokens end; requests are limited per email and network, per network and per email from anywhere (a
ceiling the owner's known browser is not held by); a reset frees the owner from wrong passwords counted
on their network; CSRF; platform admins still need their sign-in code; and the whole flow in Chromium
at 360 px."""

from __future__ import annotations

import html
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from playwright.async_api import Browser
from sqlalchemy import func, select

from core.audit.models import AuditLog
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import Role, User
from core.auth.password_reset import PER_EMAIL, PER_EMAIL_ANYWHERE, PER_IP, make_token
from core.auth.staff import remove_staff
from core.auth.telegram import accept_invite
from core.db import utcnow
from core.notify.models import Notification
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import emailed_code, make_admin, make_tenant, make_user, unique_email
from tests.support.panel import business_client, csrf_of, password_step, sign_in

PASSWORD = "secret-pass-1"
NEW_PASSWORD = "brand-new-pass-7"
SENT = "If an account uses this address, we sent a link to reset its password."


@asynccontextmanager
async def stranger(server: LiveServer, ip: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A browser with no session, from a network address of its own (requests count per address)."""
    ip = ip or f"198.51.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Forwarded-For": ip}) as client:
        yield client


def text_of(page: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(2))).split())


async def ask(client: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await client.get("/login/reset")
    assert page.status_code == 200
    return await client.post("/login/reset", data={"email": email, "csrf_token": csrf_of(page.text)})


async def ask_and_check(client: httpx.AsyncClient, email: str) -> str:
    """Ask for a link; the answer is always the same redirect and page. Returns the page's main text."""
    r = await ask(client, email)
    assert (r.status_code, r.headers["location"]) == (303, "/login/reset?sent=1"), r.text
    page = await client.get(r.headers["location"])
    assert page.status_code == 200
    assert text_of(page.text, "done").startswith(SENT)
    return text_of(page.text, "main")


async def links_to(address: str) -> list[Notification]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Notification)
                .where(Notification.recipient == address, Notification.kind == "auth.reset_link")
                .order_by(Notification.id)
            )
        )


async def notices_to(address: str) -> list[Notification]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Notification)
                .where(Notification.recipient == address, Notification.kind == "auth.password_changed")
                .order_by(Notification.id)
            )
        )


def token_in(server: LiveServer, mail: Notification) -> str:
    match = re.search(rf"{re.escape(server.url)}/login/reset/([A-Za-z0-9_.-]+)", mail.body)
    assert match, mail.body
    return match.group(1)


async def emailed_token(server: LiveServer, email: str) -> str:
    async with stranger(server) as client:
        await ask_and_check(client, email)
    mails = await links_to(email)
    assert mails, f"no reset link was emailed to {email}"
    return token_in(server, mails[-1])


async def reload(user_id: uuid.UUID) -> User:
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def user_by_email(email: str) -> User:
    async with unit_of_work(readonly=True) as session:
        user = await session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        assert user is not None
        return user


async def audit_rows(user_id: uuid.UUID, action: str) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog).where(AuditLog.user_id == user_id, AuditLog.action == action)
            )
        )


async def set_new(
    client: httpx.AsyncClient, token: str, password: str, confirm: str | None = None
) -> httpx.Response:
    page = await client.get(f"/login/reset/{token}")
    assert page.status_code == 200, page.text
    return await client.post(
        f"/login/reset/{token}",
        data={
            "password": password,
            "confirm_password": password if confirm is None else confirm,
            "csrf_token": csrf_of(page.text),
        },
    )


async def post_with_cookie_csrf(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    """Post the form as a browser that once had the form open (the token page is refused by now)."""
    page = await client.get("/login/reset")
    return await client.post(
        f"/login/reset/{token}",
        data={"password": password, "confirm_password": password, "csrf_token": csrf_of(page.text)},
    )


async def refused_token(client: httpx.AsyncClient, token: str) -> None:
    r = await client.get(f"/login/reset/{token}")
    assert r.status_code == 404, token
    assert "This reset link is not valid" in r.text
    assert 'href="/login/reset">Ask for a new link</a>' in r.text
    r = await post_with_cookie_csrf(client, token, "whatever-pass-5")
    assert r.status_code == 404 and "This reset link is not valid" in r.text


async def password_works(server: LiveServer, email: str, password: str) -> bool:
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await password_step(client, email, password)
    assert r.status_code in (303, 401), r.text
    return r.status_code == 303


class TestAsking:
    async def test_known_and_unknown_email_get_the_same_answer_and_only_the_known_one_an_email(
        self, server: LiveServer
    ) -> None:
        _, owner = await make_tenant(name="Reset Ask Duka")
        unknown = unique_email("nobody")
        async with stranger(server) as client:
            known_page = await ask_and_check(client, owner.email.upper())
            unknown_page = await ask_and_check(client, unknown)
        assert known_page == unknown_page
        assert await links_to(unknown) == []
        [mail] = await links_to(owner.email)
        assert mail.subject == "Reset your lipapush password" and mail.channel.value == "email"
        token = token_in(server, mail)
        assert f"{server.url}/login/reset/{token}" in mail.body and "30 minutes" in mail.body
        assert len(await audit_rows(owner.id, "auth.reset_requested")) == 1

    async def test_the_sign_in_page_links_to_it(self, server: LiveServer) -> None:
        async with stranger(server) as client:
            page = await client.get("/login")
            assert '<a href="/login/reset">Forgot your password?</a>' in page.text
            page = await client.get("/login/reset")
            assert page.status_code == 200 and '<label for="email">Email</label>' in page.text
            assert 'href="/login">← Back to sign in</a>' in page.text

    async def test_empty_or_malformed_email_is_422_by_the_field(self, server: LiveServer) -> None:
        async with stranger(server) as client:
            r = await ask(client, "  ")
            assert r.status_code == 422
            assert text_of(r.text, "email-error") == "Enter the email you sign in with."
            r = await ask(client, "not-an-email")
            assert r.status_code == 422
            assert text_of(r.text, "email-error").startswith("'not-an-email' is not a valid email address")
            assert 'value="not-an-email"' in r.text

    async def test_removed_and_telegram_only_staff_get_no_email(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Reset Removed Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        async with unit_of_work() as session:
            await remove_staff(session, tenant_id=tenant.id, user_id=cashier.id, by=owner.id)
            code, _ = await issue_code(
                session, purpose=CodePurpose.staff_invite, tenant_id=tenant.id, role=Role.cashier, by=owner.id
            )
            telegram_only = await accept_invite(
                session,
                code=code,
                telegram_user_id=770_000_000 + secrets.randbelow(10_000_000),
                name="Wanjiru",
            )
        async with stranger(server) as client:
            removed_page = await ask_and_check(client, cashier.email)
            unknown_page = await ask_and_check(client, unique_email("nobody"))
        assert removed_page == unknown_page
        assert await links_to(cashier.email) == []
        assert await links_to(telegram_only.email) == []
        # even a token made for them is refused
        async with unit_of_work(readonly=True) as session:
            removed = await session.get(User, cashier.id)
            assert removed is not None
            token = make_token(removed, secret=server.settings.SECRET_KEY)
        async with stranger(server) as client:
            await refused_token(client, token)
        assert not await password_works(server, cashier.email, "whatever-pass-5")

    async def test_rate_limits_answer_the_same_but_send_nothing(self, server: LiveServer) -> None:
        _, owner = await make_tenant(name="Reset Limit Duka")
        # per email and network: PER_EMAIL links in the window from one network
        async with stranger(server) as client:
            for _ in range(PER_EMAIL):
                await ask_and_check(client, owner.email)
            assert len(await links_to(owner.email)) == PER_EMAIL
            await ask_and_check(client, owner.email)  # the same answer...
        assert len(await links_to(owner.email)) == PER_EMAIL  # ...and no email
        # which does not stop the owner asking from their own network
        async with stranger(server) as client:
            await ask_and_check(client, owner.email)
        assert len(await links_to(owner.email)) == PER_EMAIL + 1
        # per email from anywhere: a ceiling on one inbox's mail...
        while len(await links_to(owner.email)) < PER_EMAIL_ANYWHERE:
            async with stranger(server) as client:
                await ask_and_check(client, owner.email)
        async with stranger(server) as client:
            await ask_and_check(client, owner.email)
        assert len(await links_to(owner.email)) == PER_EMAIL_ANYWHERE
        # ...that a browser the owner signed in with before is not held by
        async with stranger(server) as known:
            await sign_in(known, owner.email, PASSWORD)
            await ask_and_check(known, owner.email)
        assert len(await links_to(owner.email)) == PER_EMAIL_ANYWHERE + 1

        # per network: PER_IP requests from one address, then nothing, even for a fresh account
        _, other = await make_tenant(name="Reset Limit IP Duka")
        ip = f"203.0.113.{secrets.randbelow(250) + 1}"
        async with stranger(server, ip) as client:
            for _ in range(PER_IP):
                await ask_and_check(client, unique_email("nobody"))
            await ask_and_check(client, other.email)
        assert await links_to(other.email) == []  # the per-network limit
        async with stranger(server) as elsewhere:
            await ask_and_check(elsewhere, other.email)
        assert len(await links_to(other.email)) == 1  # the address itself was not limited

    async def test_csrf_missing_wrong_or_cross_site_is_refused(self, server: LiveServer) -> None:
        _, owner = await make_tenant(name="Reset CSRF Duka")
        async with stranger(server) as client:
            r = await client.post("/login/reset", data={"email": owner.email})
            assert r.status_code == 403 and "This form has expired" in r.text
            page = await client.get("/login/reset")
            r = await client.post(
                "/login/reset", data={"email": owner.email, "csrf_token": csrf_of(page.text) + "x"}
            )
            assert r.status_code == 403
            r = await client.post(
                "/login/reset",
                data={"email": owner.email, "csrf_token": csrf_of(page.text)},
                headers={"Origin": "https://evil.example"},
            )
            assert r.status_code == 403
        assert await links_to(owner.email) == []

        token = await emailed_token(server, owner.email)
        data = {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
        async with stranger(server) as client:
            r = await client.post(f"/login/reset/{token}", data=data)
            assert r.status_code == 403 and "This form has expired" in r.text
            page = await client.get(f"/login/reset/{token}")
            r = await client.post(
                f"/login/reset/{token}", data={**data, "csrf_token": csrf_of(page.text) + "x"}
            )
            assert r.status_code == 403
            r = await client.post(
                f"/login/reset/{token}",
                data={**data, "csrf_token": csrf_of(page.text)},
                headers={"Origin": "https://evil.example"},
            )
            assert r.status_code == 403
        assert await password_works(server, owner.email, PASSWORD)
        assert await audit_rows(owner.id, "auth.password_reset") == []


class TestResetting:
    async def test_the_link_sets_a_new_password_once(self, server: LiveServer) -> None:
        _, owner = await make_tenant(name="Reset Link Duka")
        # a stranger's wrong passwords hold the owner's own network (a carrier's NAT they share)...
        shared = f"192.0.2.{secrets.randbelow(250) + 1}"
        async with stranger(server, shared) as attacker:
            for _ in range(server.settings.LOGIN_MAX_FAILURES_PER_ACCOUNT_NETWORK):
                assert (await password_step(attacker, owner.email, "guess-pass-0")).status_code == 401
        before = await reload(owner.id)
        token = await emailed_token(server, owner.email)
        async with stranger(server) as client:
            page = await client.get(f"/login/reset/{token}")
            assert page.status_code == 200
            assert owner.email in page.text
            assert '<label for="password">New password (at least 8 characters)</label>' in page.text
            assert '<label for="confirm_password">New password again</label>' in page.text
            # errors by the field, 422
            r = await set_new(client, token, NEW_PASSWORD, "not-the-same-1")
            assert r.status_code == 422
            assert text_of(r.text, "confirm_password-error") == "The two passwords are not the same."
            r = await set_new(client, token, "short")
            assert r.status_code == 422
            assert text_of(r.text, "password-error") == "Password must be at least 8 characters."
            r = await set_new(client, token, "")
            assert r.status_code == 422 and text_of(r.text, "password-error") == "Choose a new password."
            async with stranger(server, shared) as own:  # still held there
                assert (await password_step(own, owner.email, PASSWORD)).status_code == 429

            r = await set_new(client, token, NEW_PASSWORD)
            assert (r.status_code, r.headers["location"]) == (303, "/login?done=password-reset")
            page = await client.get(r.headers["location"])
            assert text_of(page.text, "done").startswith("Password changed: sign in")

            # the same link again: refused, and the password stays
            await refused_token(client, token)

        after = await reload(owner.id)
        assert after.password_hash != before.password_hash
        assert after.token_version == before.token_version + 1
        async with stranger(server, shared) as own:  # ...until the reset: a fresh browser there signs in
            assert (await password_step(own, owner.email, NEW_PASSWORD)).status_code == 303
        assert not await password_works(server, owner.email, PASSWORD)
        assert await password_works(server, owner.email, NEW_PASSWORD)
        [audited] = await audit_rows(owner.id, "auth.password_reset")
        assert audited.tenant_id == owner.tenant_id
        [notice] = await notices_to(owner.email)
        assert notice.subject == "Your lipapush password was changed"

    async def test_expired_forged_and_other_users_tokens_are_refused(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Reset Forged Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        secret = server.settings.SECRET_KEY
        expired = make_token(owner, secret=secret, expires_at=utcnow() - timedelta(seconds=1))
        good = make_token(owner, secret=secret)
        uid, expiry, signature = good.split(".")
        cashier_uid = make_token(cashier, secret=secret).split(".")[0]
        flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
        async with stranger(server) as client:
            for token in (
                expired,
                f"{cashier_uid}.{expiry}.{signature}",  # owner's signature, cashier's id
                f"{uid}.{expiry}.{flipped}",  # a changed signature
                f"{uid}.{int(expiry) + 3600}.{signature}",  # a later expiry
                make_token(owner, secret="another-secret-" + "x" * 32),
                "not-a-token",
                f"{uid}..{signature}",
            ):
                await refused_token(client, token)
            # the genuine one still works
            r = await set_new(client, good, NEW_PASSWORD)
            assert r.status_code == 303
        assert await password_works(server, cashier.email, PASSWORD)
        assert await password_works(server, owner.email, NEW_PASSWORD)

    async def test_sessions_api_tokens_and_sign_in_codes_end(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Reset Sessions Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        panel = await business_client(server.url, manager)
        try:
            assert (await panel.get("/app")).status_code == 200
            async with httpx.AsyncClient(base_url=server.url) as api:
                login = await api.post("/api/login", json={"email": manager.email, "password": PASSWORD})
                assert login.status_code == 200
                bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
                assert (await api.get("/api/transactions", headers=bearer)).status_code == 200

                token = await emailed_token(server, manager.email)
                async with stranger(server) as client:
                    assert (await set_new(client, token, NEW_PASSWORD)).status_code == 303

                assert (await api.get("/api/transactions", headers=bearer)).status_code == 401
            r = await panel.get("/app")
            assert (r.status_code, r.headers["location"]) == (303, "/login?next=/app")
        finally:
            await panel.aclose()

    async def test_platform_admin_resets_and_still_needs_the_sign_in_code(self, server: LiveServer) -> None:
        email, old = await make_admin()
        # a sign-in code emailed before the reset (old password typed) stops working
        async with httpx.AsyncClient(base_url=server.url) as before:
            r = await password_step(before, email, old)
            assert (r.status_code, r.headers["location"]) == (303, "/login/code")
            stale = await emailed_code(email)
            token = await emailed_token(server, email)
            async with stranger(server) as client:
                assert (await set_new(client, token, NEW_PASSWORD)).status_code == 303
            page = await before.get("/login/code")
            r = await before.post("/login/code", data={"code": stale, "csrf_token": csrf_of(page.text)})
            assert r.status_code == 401 and "expired or was used" in r.text

        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await password_step(client, email, old)
            assert r.status_code == 401
            r = await password_step(client, email, NEW_PASSWORD)
            assert (r.status_code, r.headers["location"]) == (303, "/login/code")  # not signed in yet
            assert (await client.get("/admin")).status_code == 303
        async with httpx.AsyncClient(base_url=server.url) as client:
            await sign_in(client, email, NEW_PASSWORD)
            assert (await client.get("/admin")).status_code == 200
        admin = await user_by_email(email)
        assert len(await audit_rows(admin.id, "auth.password_reset")) == 1


class TestInChromium:
    async def test_forgot_password_to_signed_in(
        self,
        server: LiveServer,
        browser: Browser,  # noqa: F811
    ) -> None:
        _, owner = await make_tenant(name="Chromium Reset Duka")
        ctx = await browser.new_context(viewport={"width": 360, "height": 740})
        page = await ctx.new_page()
        await page.goto(f"{server.url}/login")
        await page.get_by_role("link", name="Forgot your password?").click()
        await page.wait_for_url(f"{server.url}/login/reset")
        await page.get_by_label("Email").fill(owner.email)
        await page.get_by_role("button", name="Email me a link").click()
        await page.wait_for_url(f"{server.url}/login/reset?sent=1")
        assert (await page.locator("#done").inner_text()).startswith(SENT)
        await shot(page, "reset-sent")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360

        [mail] = await links_to(owner.email)
        await page.goto(f"{server.url}/login/reset/{token_in(server, mail)}")
        assert await page.locator("h1").inner_text() == "Choose a new password"
        await page.get_by_label("New password (at least 8 characters)").fill(NEW_PASSWORD)
        await page.get_by_label("New password again").fill("not-the-same-1")
        await page.get_by_role("button", name="Set the new password").click()
        await page.wait_for_load_state()
        assert (
            await page.locator("#confirm_password-error").inner_text()
            == "The two passwords are not the same."
        )
        await page.get_by_label("New password (at least 8 characters)").fill(NEW_PASSWORD)
        await page.get_by_label("New password again").fill(NEW_PASSWORD)
        await shot(page, "reset")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.get_by_role("button", name="Set the new password").click()
        await page.wait_for_url(f"{server.url}/login?done=password-reset")
        assert (await page.locator("#done").inner_text()).startswith("Password changed: sign in")

        await browser_sign_in(page, server.url, owner.email, NEW_PASSWORD)
        await page.wait_for_url(f"{server.url}/app")
        assert owner.email in await page.locator("header").inner_text()
        await ctx.close()
