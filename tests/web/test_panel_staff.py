"""Staff on the web panel: an owner invites by email (/join/{code} creates the account and signs it
in), gives a Telegram-only staff member web access, and removes someone who left (no sign-in anywhere
afterwards: panel, password, API token, Telegram). Roles, other tenants' ids, CSRF, used and expired
codes; and the invitation walked through in Chromium at 360 px."""

from __future__ import annotations

import html
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import Browser, Dialog
from sqlalchemy import func, select, update

from bots.middlewares import load_actor
from core.audit.models import AuditLog
from core.auth.codes import CodePurpose, OneTimeCode, _digest, issue_code
from core.auth.models import Role, User
from core.auth.pins import new_pin_hash, register_ussd
from core.auth.staff import EMAIL_INVITE_TTL
from core.auth.telegram import accept_invite, link_chat
from core.db import utcnow
from core.errors import InvalidInput
from core.notify.models import Notification, NotifyChannel
from core.payments.models import Payment
from core.phones import normalize_msisdn
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import emailed_code, make_tenant, make_user, unique_email
from tests.support.panel import admin_client, business_client, csrf_of, form_post, password_step

STAFF = "/app/settings/staff"
PASSWORD = "secret-pass-1"
NEW_PASSWORD = "joined-pass-9"


@asynccontextmanager
async def signed_in(server: LiveServer, user: User) -> AsyncIterator[httpx.AsyncClient]:
    client = await business_client(server.url, user)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def stranger(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A browser with no session, from an address of its own (join attempts are counted per IP)."""
    ip = f"198.51.100.{secrets.randbelow(250) + 1}"
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Forwarded-For": ip}) as client:
        yield client


def text_of(page: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(2))).split())


async def audit_rows(tenant_id: uuid.UUID, action: str) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant_id, AuditLog.action == action)
                .order_by(AuditLog.id)
            )
        )


async def emails_to(address: str) -> list[Notification]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Notification)
                .where(Notification.recipient == address, Notification.kind == "staff.invite")
                .order_by(Notification.id)
            )
        )


def link_in(server: LiveServer, mail: Notification) -> str:
    match = re.search(rf"{re.escape(server.url)}/join/([A-Za-z0-9_-]+)", mail.body)
    assert match, mail.body
    return match.group(1)


async def user_by_email(email: str) -> User | None:
    async with unit_of_work(readonly=True) as session:
        return await session.scalar(select(User).where(func.lower(User.email) == email.lower()))


async def reload(user_id: uuid.UUID) -> User:
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def join_form_post(client: httpx.AsyncClient, code: str, **fields: str) -> httpx.Response:
    page = await client.get(f"/join/{code}")
    assert page.status_code == 200, page.text
    return await client.post(f"/join/{code}", data={**fields, "csrf_token": csrf_of(page.text)})


async def invite(panel: httpx.AsyncClient, email: str, role: str = "cashier") -> httpx.Response:
    return await form_post(panel, STAFF, f"{STAFF}/invite-email", {"email": email, "role": role})


async def telegram_staff(tenant: Tenant, owner: User, role: Role = Role.cashier) -> tuple[User, int]:
    """Someone who joined from the bot's invite code (placeholder email, random password)."""
    telegram_id = 880_000_000 + secrets.randbelow(10_000_000)
    async with unit_of_work() as session:
        code, _ = await issue_code(
            session, purpose=CodePurpose.staff_invite, tenant_id=tenant.id, role=role, by=owner.id
        )
        user = await accept_invite(session, code=code, telegram_user_id=telegram_id, name="Achieng")
    return user, telegram_id


class TestInviteByEmail:
    async def test_emailed_link_makes_a_signed_in_cashier(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Email Invite Duka")
        email = unique_email("cashier")
        async with signed_in(server, owner) as panel:
            r = await invite(panel, email.upper())
            assert (r.status_code, r.headers["location"]) == (303, f"{STAFF}?done=invited")
            page = await panel.get(r.headers["location"])
            assert text_of(page.text, "done").startswith("Invitation emailed.")

        # the email: to that address, through the outbox, with the link and the bot's code
        [mail] = await emails_to(email)
        assert mail.channel is NotifyChannel.email and mail.tenant_id == tenant.id
        assert mail.subject == "Join Email Invite Duka on lipapush"
        code = link_in(server, mail)
        assert f"/start {code}" in mail.body
        async with unit_of_work(readonly=True) as session:
            row = await session.scalar(select(OneTimeCode).where(OneTimeCode.code_hash == _digest(code)))
        assert row is not None and (row.purpose, row.role, row.tenant_id) == (
            CodePurpose.staff_invite,
            Role.cashier,
            tenant.id,
        )
        assert row.user_id is None and row.created_by_id == owner.id
        assert row.expires_at - utcnow() > EMAIL_INVITE_TTL - timedelta(minutes=5)
        [audited] = await audit_rows(tenant.id, "staff.invited")
        assert audited.user_id == owner.id
        assert audited.detail == {"role": "cashier", "via": "email", "email": email}

        async with stranger(server) as person:
            page = await person.get(f"/join/{code}")
            assert page.status_code == 200
            assert "Join Email Invite Duka" in page.text and "<strong>cashier</strong>" in page.text
            assert re.search(rf'id="email"[^>]*value="{re.escape(email)}" readonly', page.text)
            short = await join_form_post(person, code, password="short", confirm_password="short")
            assert short.status_code == 422
            assert text_of(short.text, "password-error") == "Password must be at least 8 characters."
            differ = await join_form_post(
                person, code, password=NEW_PASSWORD, confirm_password="other-pass-9"
            )
            assert differ.status_code == 422
            assert text_of(differ.text, "confirm_password-error") == "The two passwords are not the same."
            assert await user_by_email(email) is None

            # the email field is read-only: another address sent anyway is not the one used
            r = await join_form_post(
                person,
                code,
                email="someone@else.example",
                password=NEW_PASSWORD,
                confirm_password=NEW_PASSWORD,
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app")
            home = await person.get("/app")
            assert home.status_code == 200
            assert f"Signed in as {email} (cashier)." in home.text
            assert "These figures are for the payments you requested." in home.text
            assert "stat-wallet" not in home.text
            for path in (STAFF, "/app/wallet", "/app/customers", "/app/settings/keys"):
                assert (await person.get(path)).status_code == 403, path
        assert await user_by_email("someone@else.example") is None
        joined = await user_by_email(email)
        assert joined is not None and (joined.role, joined.tenant_id) == (Role.cashier, tenant.id)
        assert joined.telegram_user_id is None and joined.disabled_at is None
        [audited] = await audit_rows(tenant.id, "staff.joined")
        assert audited.user_id == joined.id and audited.detail["via"] == "email"

        # used once: the same link again is refused with what to do; the password signs in
        async with stranger(server) as again:
            gone = await again.get(f"/join/{code}")
            assert gone.status_code == 404
            assert "Ask the owner of the business for a new invite." in text_of(gone.text, "join-invalid")
            r = await again.post(f"/join/{code}", data={"csrf_token": "x", "password": NEW_PASSWORD})
            assert r.status_code == 403  # no CSRF cookie: refused before anything else
            r = await password_step(again, email, NEW_PASSWORD)
            assert (r.status_code, r.headers["location"]) == (303, "/app")
        async with signed_in(server, owner) as panel:
            listed = await panel.get(STAFF)
            assert email in text_of(listed.text, "staff")

    async def test_reuse_in_a_second_browser_and_expired_code_are_refused(self, server: LiveServer) -> None:
        _, owner = await make_tenant(name="Expiry Duka")
        first, second = unique_email("cashier"), unique_email("manager")
        async with signed_in(server, owner) as panel:
            assert (await invite(panel, first)).status_code == 303
            assert (await invite(panel, second, "manager")).status_code == 303
        code = link_in(server, (await emails_to(first))[0])
        old = link_in(server, (await emails_to(second))[0])

        # two browsers open the same link; the first to submit wins, the second is told
        async with stranger(server) as a, stranger(server) as b:
            page_a, page_b = await a.get(f"/join/{code}"), await b.get(f"/join/{code}")
            data = {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
            r = await a.post(f"/join/{code}", data={**data, "csrf_token": csrf_of(page_a.text)})
            assert r.status_code == 303
            r = await b.post(f"/join/{code}", data={**data, "csrf_token": csrf_of(page_b.text)})
            assert r.status_code == 404 and "This invitation is not valid" in r.text
        async with unit_of_work(readonly=True) as session:
            assert (
                await session.scalar(select(func.count()).select_from(User).where(User.email == first)) == 1
            )

        # expired: refused on opening and on submitting; nobody is created
        async with unit_of_work() as session:
            await session.execute(
                update(OneTimeCode)
                .where(OneTimeCode.code_hash == _digest(old))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        async with stranger(server) as person:
            page = await person.get(f"/join/{old}")
            assert page.status_code == 404 and "Ask the owner" in page.text
            login = await person.get("/login")  # the sign-in page's CSRF cookie is the same kind
            r = await person.post(
                f"/join/{old}",
                data={
                    "password": NEW_PASSWORD,
                    "confirm_password": NEW_PASSWORD,
                    "csrf_token": csrf_of(login.text),
                },
            )
            assert r.status_code == 404
            assert (await person.get("/join/not-a-real-code")).status_code == 404
        assert await user_by_email(second) is None

    async def test_bad_or_taken_email_and_bad_role_are_422_by_the_field(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Bad Email Duka")
        _, other_owner = await make_tenant(name="Other Email Duka")
        async with signed_in(server, owner) as panel:
            for email, expected in (
                ("", "Enter the email address of the person you are inviting."),
                ("not-an-email", "'not-an-email' is not a valid email address"),
                (owner.email, f"{owner.email} is already an existing lipapush account: use another address."),
                (other_owner.email.upper(), "is already an existing lipapush account"),
            ):
                r = await invite(panel, email)
                assert r.status_code == 422, email
                assert expected in text_of(r.text, "invite_email-error"), email
                assert f'value="{html.escape(email)}"' in r.text  # kept in the form
            r = await invite(panel, unique_email("x"), role="owner")
            assert r.status_code == 422
            assert text_of(r.text, "invite_email_role-error") == "Invite a cashier or a manager."
        assert await audit_rows(tenant.id, "staff.invited") == []
        async with unit_of_work(readonly=True) as session:
            sent = await session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.kind == "staff.invite", Notification.tenant_id == tenant.id)
            )
        assert sent == 0

    async def test_the_emailed_code_still_works_in_telegram(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Both Ways Duka")
        email = unique_email("manager")
        async with signed_in(server, owner) as panel:
            assert (await invite(panel, email, "manager")).status_code == 303
        code = link_in(server, (await emails_to(email))[0])
        async with unit_of_work() as session:
            joined = await accept_invite(session, code=code, telegram_user_id=771_234_567, name="Otieno")
        assert (joined.role, joined.tenant_id) == (Role.manager, tenant.id)
        async with stranger(server) as person:
            assert (await person.get(f"/join/{code}")).status_code == 404


class TestWebAccess:
    async def test_telegram_staff_member_signs_in_on_the_web_keeping_id_and_telegram(
        self, server: LiveServer
    ) -> None:
        tenant, owner = await make_tenant(name="Web Access Duka")
        member, telegram_id = await telegram_staff(tenant, owner, Role.manager)
        version = member.token_version
        email = unique_email("manager")
        async with signed_in(server, owner) as panel:
            page = await panel.get(STAFF)
            card = text_of(page.text, f"member-{member.id}")
            assert card.startswith("Achieng · manager Signs in with Telegram only.")
            assert f'action="{STAFF}/{member.id}/web-access"' in page.text
            action = f"{STAFF}/{member.id}/web-access"
            r = await form_post(panel, STAFF, action, {"email": "nope"})
            assert r.status_code == 422
            assert "is not a valid email address" in text_of(r.text, f"web-email-{member.id}-error")
            r = await form_post(panel, STAFF, action, {"email": owner.email})
            assert r.status_code == 422 and "already an existing" in r.text
            r = await form_post(panel, STAFF, action, {"email": email})
            assert (r.status_code, r.headers["location"]) == (303, f"{STAFF}?done=web_access")
            # someone who already signs in on the web, or the owner, gets no such form
            r = await form_post(panel, STAFF, f"{STAFF}/{owner.id}/web-access", {"email": unique_email()})
            assert r.status_code == 403
        [mail] = await emails_to(email)
        code = link_in(server, mail)
        assert "/start" not in mail.body
        async with unit_of_work(readonly=True) as session:
            row = await session.scalar(select(OneTimeCode).where(OneTimeCode.code_hash == _digest(code)))
        assert row is not None and row.user_id == member.id and row.role is Role.manager

        # the bot does not take it as a new invitation (and the code stays usable)
        with pytest.raises(InvalidInput):
            async with unit_of_work() as session:
                await accept_invite(session, code=code, telegram_user_id=772_000_001, name="Nobody")

        async with stranger(server) as person:
            page = await person.get(f"/join/{code}")
            assert "Sign in to Web Access Duka on the web" in page.text
            r = await join_form_post(person, code, password=NEW_PASSWORD, confirm_password=NEW_PASSWORD)
            assert (r.status_code, r.headers["location"]) == (303, "/app")
            assert f"Signed in as {email} (manager)." in (await person.get("/app")).text
        after = await reload(member.id)
        assert (after.id, after.telegram_user_id, after.role, after.tenant_id) == (
            member.id,
            telegram_id,
            Role.manager,
            tenant.id,
        )
        assert after.email == email and after.token_version == version + 1
        assert (await load_actor(telegram_id)) is not None  # the bot still knows them
        async with httpx.AsyncClient(base_url=server.url) as fresh:
            r = await password_step(fresh, email, NEW_PASSWORD)
            assert (r.status_code, r.headers["location"]) == (303, "/app")
        async with signed_in(server, owner) as panel:
            page = await panel.get(STAFF)
            assert f'action="{STAFF}/{member.id}/web-access"' not in page.text
            r = await form_post(panel, STAFF, f"{STAFF}/{member.id}/web-access", {"email": unique_email()})
            assert r.status_code == 422
            assert text_of(r.text, "staff-error") == "This person already signs in on the web."
        assert [a.detail["email"] for a in await audit_rows(tenant.id, "staff.web_access")] == [email]


class TestRemove:
    async def test_removed_member_is_out_everywhere_and_keeps_their_payments(
        self, server: LiveServer
    ) -> None:
        tenant, owner = await make_tenant(name="Removal Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        telegram_id = 990_000_000 + secrets.randbelow(1_000_000)
        phone = normalize_msisdn(f"0722{secrets.randbelow(1_000_000):06d}")
        async with unit_of_work() as session:
            code, _ = await issue_code(
                session, purpose=CodePurpose.telegram_link, tenant_id=tenant.id, user_id=cashier.id
            )
            await link_chat(session, code=code, telegram_user_id=telegram_id)
            user = await session.get(User, cashier.id)
            assert user is not None
            await register_ussd(session, user=user, phone=phone, pin_hash=await new_pin_hash("4826"))
        assert await load_actor(telegram_id) is not None

        async with httpx.AsyncClient(base_url=server.url) as api:
            login = await api.post("/api/login", json={"email": cashier.email, "password": PASSWORD})
            assert login.status_code == 200
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            pushed = await api.post(
                "/api/stk-push", json={"phone": "0722000111", "amount": 40}, headers=bearer
            )
            assert pushed.status_code == 201, pushed.text
            payment_id = pushed.json()["id"]
            wrong = await api.post("/api/login", json={"email": cashier.email, "password": "wrong-pass-0"})
            assert wrong.status_code == 401

            cashier_panel = await business_client(server.url, cashier)
            try:
                assert (await cashier_panel.get("/app")).status_code == 200
                async with signed_in(server, owner) as panel:
                    page = await panel.get(STAFF)
                    assert f'id="remove-{cashier.id}">Remove {cashier.email}</button>' in page.text
                    assert 'data-confirm="Remove' in page.text
                    r = await form_post(panel, STAFF, f"{STAFF}/{cashier.id}/remove")
                    assert (r.status_code, r.headers["location"]) == (303, f"{STAFF}?done=removed")
                    page = await panel.get(r.headers["location"])
                    assert text_of(page.text, "done").startswith("Staff member removed")
                    assert cashier.email not in text_of(page.text, "staff")
                    assert cashier.email in text_of(page.text, "removed")
                    assert 'class="data muted" id="removed"' in page.text
                    assert f"member-{cashier.id}" not in page.text
                    # again: nothing more happens
                    r = await panel.post(
                        f"{STAFF}/{cashier.id}/remove", data={"csrf_token": csrf_of(page.text)}
                    )
                    assert r.status_code == 303

                # the open panel session is refused at once
                r = await cashier_panel.get("/app")
                assert (r.status_code, r.headers["location"]) == (303, "/login?next=/app")
            finally:
                await cashier_panel.aclose()

            # password: the same answer as a wrong password, on the panel and the API
            async with httpx.AsyncClient(base_url=server.url) as fresh:
                r = await password_step(fresh, cashier.email, PASSWORD)
                assert r.status_code == 401 and "Wrong email or password." in r.text
            refused = await api.post("/api/login", json={"email": cashier.email, "password": PASSWORD})
            assert (refused.status_code, refused.json()) == (wrong.status_code, wrong.json())
            # the API token minted before is refused
            r = await api.get("/api/transactions", headers=bearer)
            assert r.status_code == 401

        removed = await reload(cashier.id)
        assert removed.disabled_at is not None
        assert (removed.telegram_user_id, removed.ussd_phone, removed.ussd_pin_hash) == (None, None, None)
        assert await load_actor(telegram_id) is None  # Telegram no longer knows them
        [audited] = await audit_rows(tenant.id, "staff.removed")
        assert audited.user_id == owner.id and audited.target == str(cashier.id)
        assert audited.detail == {"role": "cashier", "email": cashier.email, "telegram": True, "via": "panel"}
        assert len(await audit_rows(tenant.id, "auth.login_refused")) == 2

        # their payment still says who requested it
        async with unit_of_work(readonly=True) as session:
            payment = await session.get(Payment, uuid.UUID(payment_id))
            assert payment is not None and payment.initiated_by_id == cashier.id
        admin, _ = await admin_client(server.url)
        try:
            detail = await admin.get(f"/admin/transactions/{payment_id}")
            assert detail.status_code == 200 and cashier.email in detail.text
        finally:
            await admin.aclose()

        # the Telegram account and the phone are free again: the same person can be invited back
        async with unit_of_work() as session:
            code, _ = await issue_code(
                session, purpose=CodePurpose.staff_invite, tenant_id=tenant.id, role=Role.cashier, by=owner.id
            )
            back = await accept_invite(session, code=code, telegram_user_id=telegram_id, name="Back again")
        assert back.id != cashier.id
        actor = await load_actor(telegram_id)
        assert actor is not None and actor.user_id == back.id

    async def test_owner_cannot_be_removed_and_other_tenants_users_are_not_found(
        self, server: LiveServer
    ) -> None:
        tenant, owner = await make_tenant(name="Keep Owner Duka")
        other, other_owner = await make_tenant(name="Stranger Duka")
        theirs = await make_user(tenant=other, role=Role.cashier)
        async with signed_in(server, owner) as panel:
            r = await form_post(panel, STAFF, f"{STAFF}/{owner.id}/remove")
            assert r.status_code == 403 and "The owner cannot be removed." in r.text
            for user_id in (theirs.id, other_owner.id, uuid.uuid4()):
                r = await form_post(panel, STAFF, f"{STAFF}/{user_id}/remove")
                assert r.status_code == 404, user_id
                r = await form_post(panel, STAFF, f"{STAFF}/{user_id}/web-access", {"email": unique_email()})
                assert r.status_code == 404, user_id
            r = await form_post(panel, STAFF, f"{STAFF}/not-a-uuid/remove")
            assert r.status_code == 404
        assert (await reload(theirs.id)).disabled_at is None
        assert (await reload(owner.id)).disabled_at is None
        assert await audit_rows(tenant.id, "staff.removed") == []

    async def test_a_sign_in_code_sent_before_the_removal_does_not_sign_in(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Pending Code Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        async with unit_of_work() as session:
            await session.execute(update(User).where(User.id == manager.id).values(two_factor_enabled=True))
        async with httpx.AsyncClient(base_url=server.url) as person:
            r = await password_step(person, manager.email, PASSWORD)
            assert r.headers["location"] == "/login/code"
            code = await emailed_code(manager.email)
            async with signed_in(server, owner) as panel:
                r = await form_post(panel, STAFF, f"{STAFF}/{manager.id}/remove")
                assert r.status_code == 303
            page = await person.get("/login/code")
            r = await person.post("/login/code", data={"code": code, "csrf_token": csrf_of(page.text)})
            assert r.status_code == 401 and "expired or was used" in r.text
            assert (await person.get("/app")).status_code == 303

    async def test_admin_viewing_read_only_is_refused_and_with_write_access_is_audited(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant(name="Watched Staff Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        admin, _ = await admin_client(server.url)
        try:
            overview = await admin.get("/admin")
            r = await admin.post(
                f"/admin/tenants/{tenant.id}/impersonate", data={"csrf_token": csrf_of(overview.text)}
            )
            assert r.status_code == 303
            page = await admin.get(STAFF)
            assert page.status_code == 200
            for action, data in (
                (f"{STAFF}/invite-email", {"email": unique_email(), "role": "cashier"}),
                (f"{STAFF}/{cashier.id}/remove", {}),
            ):
                r = await admin.post(action, data={**data, "csrf_token": csrf_of(page.text)})
                assert r.status_code == 403 and "You are viewing this business read-only." in r.text
            assert (await reload(cashier.id)).disabled_at is None
            r = await admin.post(
                "/admin/impersonation/write",
                data={"reason": "ticket 7: cashier left", "csrf_token": csrf_of(page.text)},
            )
            assert r.status_code == 303
            r = await admin.post(f"{STAFF}/{cashier.id}/remove", data={"csrf_token": csrf_of(page.text)})
            assert r.status_code == 303
        finally:
            await admin.aclose()
        assert (await reload(cashier.id)).disabled_at is not None
        [audited] = await audit_rows(tenant.id, "staff.removed")
        by = await reload(audited.user_id) if audited.user_id else None
        assert by is not None and by.role is Role.platform_admin


class TestRefusals:
    async def test_manager_and_cashier_cannot_invite_give_access_or_remove(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Roles Staff Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        member, _ = await telegram_staff(tenant, owner)
        for user in (manager, cashier):
            async with signed_in(server, user) as panel:
                assert (await panel.get(STAFF)).status_code == 403
                for action, data in (
                    (f"{STAFF}/invite-email", {"email": unique_email(), "role": "cashier"}),
                    (f"{STAFF}/{member.id}/web-access", {"email": unique_email()}),
                    (f"{STAFF}/{cashier.id}/remove", {}),
                    (f"{STAFF}/{member.id}/remove", {}),
                ):
                    r = await form_post(panel, "/app/settings/account", action, data)
                    assert r.status_code == 403, (user.role, action)
                    assert "This is for the owner of Roles Staff Duka." in r.text
        for u in (manager, cashier, member):
            assert (await reload(u.id)).disabled_at is None
        assert await audit_rows(tenant.id, "staff.invited") == []

    async def test_csrf_missing_is_refused(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="CSRF Staff Duka")
        member, _ = await telegram_staff(tenant, owner)
        async with signed_in(server, owner) as panel:
            for action, data in (
                (f"{STAFF}/invite-email", {"email": unique_email(), "role": "cashier"}),
                (f"{STAFF}/{member.id}/web-access", {"email": unique_email()}),
                (f"{STAFF}/{member.id}/remove", {}),
            ):
                r = await panel.post(action, data=data)
                assert r.status_code == 403, action
                assert "This form has expired or did not come from lipapush" in r.text
                r = await panel.post(action, data={**data, "csrf_token": "forged"})
                assert r.status_code == 403, action
        assert (await reload(member.id)).disabled_at is None
        assert await audit_rows(tenant.id, "staff.invited") == []

        # /join: the double-submit cookie, as on the sign-in form
        email = unique_email("cashier")
        async with signed_in(server, owner) as panel:
            assert (await invite(panel, email)).status_code == 303
        code = link_in(server, (await emails_to(email))[0])
        async with stranger(server) as person:
            data = {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
            r = await person.post(f"/join/{code}", data=data)
            assert r.status_code == 403 and "This form has expired" in r.text
            page = await person.get(f"/join/{code}")
            r = await person.post(f"/join/{code}", data={**data, "csrf_token": csrf_of(page.text) + "x"})
            assert r.status_code == 403
            r = await person.post(
                f"/join/{code}",
                data={**data, "csrf_token": csrf_of(page.text)},
                headers={"Origin": "https://evil.example"},
            )
            assert r.status_code == 403
        assert await user_by_email(email) is None

    async def test_join_attempts_are_limited_per_address(self, server: LiveServer) -> None:
        headers = {"X-Forwarded-For": "203.0.113.45"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as guesser:
            for n in range(20):
                r = await guesser.get(f"/join/guess-{n}")
                assert r.status_code == 404
            r = await guesser.get("/join/guess-20")
            assert r.status_code == 429 and "Too many tries" in r.text
        async with stranger(server) as someone_else:
            assert (await someone_else.get("/join/guess-21")).status_code == 404


class TestInChromium:
    async def test_owner_invites_by_email_and_the_person_joins(
        self,
        server: LiveServer,
        browser: Browser,  # noqa: F811
    ) -> None:
        tenant, owner = await make_tenant(name="Chromium Staff Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        member, _ = await telegram_staff(tenant, owner)
        email = unique_email("joiner")
        owner_ctx = await browser.new_context(viewport={"width": 360, "height": 740})
        page = await owner_ctx.new_page()
        questions: list[str] = []

        async def accept(dialog: Dialog) -> None:
            questions.append(dialog.message)
            await dialog.accept()

        page.on("dialog", accept)
        await browser_sign_in(page, server.url, owner.email, PASSWORD)
        await page.get_by_role("link", name="Settings", exact=True).click()
        await page.wait_for_url(f"{server.url}/app/settings")
        await (
            page.get_by_role("navigation", name="Settings sections").get_by_role("link", name="Staff").click()
        )
        await page.wait_for_url(f"{server.url}{STAFF}")
        assert await page.get_by_role("button", name="Give web access").count() == 1
        await page.locator("#invite-email").fill(email)
        await page.locator("#invite-email-role").select_option("manager")
        await page.get_by_role("button", name="Email the invitation").click()
        await page.wait_for_url(f"{server.url}{STAFF}?done=invited")
        assert (await page.locator("#done").inner_text()).startswith("Invitation emailed.")

        # a cashier who left: removed through the confirmation, listed apart
        await page.get_by_role("button", name=f"Remove {cashier.email}").click()
        await page.wait_for_url(f"{server.url}{STAFF}?done=removed")
        assert questions and questions[0].startswith(f"Remove {cashier.email}?")
        assert cashier.email in await page.locator("#removed").inner_text()
        assert await page.locator(f"#member-{member.id}").is_visible()
        await shot(page, "app-staff")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360

        # the person opens the emailed link in a browser of their own
        code = link_in(server, (await emails_to(email))[0])
        person_ctx = await browser.new_context(viewport={"width": 360, "height": 740})
        joiner = await person_ctx.new_page()
        await joiner.goto(f"{server.url}/join/{code}")
        assert await joiner.locator("h1").inner_text() == "Join Chromium Staff Duka"
        assert await joiner.get_by_label("Email").input_value() == email
        assert await joiner.get_by_label("Email").get_attribute("readonly") is not None
        await joiner.get_by_label("Password (at least 8 characters)").fill(NEW_PASSWORD)
        await joiner.get_by_label("Password again").fill("not-the-same-1")
        await joiner.get_by_role("button", name="Create my account").click()
        await joiner.wait_for_load_state()
        assert (
            await joiner.locator("#confirm_password-error").inner_text()
            == "The two passwords are not the same."
        )
        await joiner.get_by_label("Password (at least 8 characters)").fill(NEW_PASSWORD)
        await joiner.get_by_label("Password again").fill(NEW_PASSWORD)
        await shot(joiner, "join")
        assert await joiner.evaluate("document.documentElement.scrollWidth") <= 360
        await joiner.get_by_role("button", name="Create my account").click()
        await joiner.wait_for_url(f"{server.url}/app")
        assert f"Signed in as {email} (manager)." in await joiner.locator("main").inner_text()
        await person_ctx.close()
        await owner_ctx.close()
        joined = await user_by_email(email)
        assert joined is not None and (joined.role, joined.tenant_id) == (Role.manager, tenant.id)
