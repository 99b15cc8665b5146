"""Business view → Settings over HTTP, and one walk through it in Chromium at 360 px: the M-Pesa
channel (masked secrets, re-verification, errors by the field), API keys shown once, staff invites,
the user's own 2FA, password and sessions; roles, CSRF, other tenants' ids and a read-only
impersonating admin."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from playwright.async_api import Browser, Dialog, expect
from sqlalchemy import select

from core.audit.models import AuditLog
from core.auth.codes import OneTimeCode, _digest
from core.auth.models import ApiKey, Role, User
from core.auth.telegram import accept_invite
from core.runtime import unit_of_work
from core.tenants.models import Environment, MpesaChannel, Tenant
from sim.daraja import SANDBOX_PASSKEY
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_tenant, make_user
from tests.support.panel import (
    admin_client,
    business_client,
    csrf_of,
    form_post,
    password_step,
    sign_in,
    text_of,
)
from tests.support.waiting import wait_until

SETTINGS_PAGES = (
    "/app/settings",
    "/app/settings/channel",
    "/app/settings/channel/verification",
    "/app/settings/keys",
    "/app/settings/staff",
    "/app/settings/account",
)


@asynccontextmanager
async def signed_in(server: LiveServer, user: User | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A panel client signed in as `user` (a new platform admin when None), closed afterwards."""
    if user is None:
        client, _ = await admin_client(server.url)
    else:
        client = await business_client(server.url, user)
    try:
        yield client
    finally:
        await client.aclose()


async def channel_of(tenant: Tenant) -> MpesaChannel:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id))
        assert row is not None
        return row


async def audit_rows(tenant_id: uuid.UUID | None, action: str) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant_id, AuditLog.action == action)
                .order_by(AuditLog.id)
            )
        )


async def user_row(user_id: uuid.UUID) -> User:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(User, user_id)
        assert row is not None
        return row


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestChannel:
    async def test_saving_resends_the_verification_push_and_shows_its_state(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Duka la Settings")
        # the simulator checks the push's password against the public sandbox passkey
        secret, passkey, key = "my-consumer-SECRET-q7Zx9876", SANDBOX_PASSKEY, "ck-" + uuid.uuid4().hex
        async with signed_in(server, owner) as panel:
            r = await form_post(
                panel,
                "/app/settings/channel",
                "/app/settings/channel",
                {
                    "environment": "simulator",
                    "kind": "paybill",
                    "business_short_code": "600111",
                    "till_number": "",
                    "consumer_key": key,
                    "consumer_secret": secret,
                    "passkey": passkey,
                },
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app/settings/channel?done=sent")
            page = await panel.get(r.headers["location"])
            assert page.status_code == 200
            assert text_of(page.text, "saved") == (
                "Channel saved. Verification prompt sent to 0712 345 678: approve the KES 1 payment on "
                "that phone to verify the channel."
            )
            assert text_of(page.text, "ch-short-code") == "600111"
            assert text_of(page.text, "ch-environment") == "simulator"
            assert "****9876" in page.text  # masked: that one is set, never what it is

            # the state is polled until the simulator's callback verified the channel
            async def verified() -> bool:
                frag = await panel.get("/app/settings/channel/verification")
                assert frag.status_code == 200
                return text_of(frag.text, "verification-state") == "verified"

            first = await panel.get("/app/settings/channel/verification")
            assert text_of(first.text, "verification-state") in ("waiting", "verified")
            if text_of(first.text, "verification-state") == "waiting":
                assert 'data-poll="/app/settings/channel/verification"' in first.text
            await wait_until(verified)
            done = await panel.get("/app/settings/channel/verification")
            assert "data-poll" not in done.text

            # no secret in clear anywhere in Settings, not even in an input's value
            for path in SETTINGS_PAGES:
                p = await panel.get(path)
                assert p.status_code == 200, path
                for clear in (secret, passkey, key):
                    assert clear not in p.text, (path, clear)
                assert (
                    re.search(r'name="(consumer_secret|passkey|consumer_key)"[^>]*value="[^"]', p.text)
                    is None
                )

        channel = await channel_of(tenant)
        assert channel.business_short_code == "600111" and channel.verified_at is not None
        changed = await audit_rows(tenant.id, "channel.credentials_changed")
        assert changed[-1].user_id == owner.id and changed[-1].detail["short_code"] == "600111"
        assert await audit_rows(tenant.id, "channel.verified")

    async def test_failed_verification_says_why(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Wrong PIN Duka", phone="0712342001")  # sim: wrong PIN
        async with signed_in(server, owner) as panel:
            r = await form_post(
                panel, "/app/settings/channel", "/app/settings/channel", {"environment": "simulator"}
            )
            assert r.status_code == 303

            async def failed() -> bool:
                frag = await panel.get("/app/settings/channel/verification")
                return text_of(frag.text, "verification-state") == "not verified"

            await wait_until(failed)
            page = await panel.get("/app/settings/channel")
            assert "The KES 1 test did not go through: The customer entered a wrong M-Pesa PIN." in (
                text_of(page.text, "verification")
            )

            # Daraja refusing the push itself (a wrong passkey): saved, not sent, and why
            r = await form_post(
                panel,
                "/app/settings/channel",
                "/app/settings/channel",
                {"environment": "simulator", "passkey": "not-the-passkey-" + uuid.uuid4().hex},
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app/settings/channel?done=not_sent")
            page = await panel.get(r.headers["location"])
            assert text_of(page.text, "saved").startswith(
                "Channel saved, but the verification prompt could not"
            )
            assert text_of(page.text, "verification-state") == "not verified"
            assert "not-the-passkey" not in page.text
        assert (await channel_of(tenant)).verified_at is None

    async def test_a_business_without_a_channel_adds_one(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="New Duka", with_channel=False)
        async with signed_in(server, owner) as panel:
            overview = await panel.get("/app/settings")
            assert text_of(overview.text, "ov-channel-state") == "No M-Pesa channel yet."
            page = await panel.get("/app/settings/channel")
            assert page.status_code == 200 and 'id="no-channel"' in page.text
            assert (await panel.get("/app/settings/channel/verification")).status_code == 404
            r = await form_post(
                panel, "/app/settings/channel", "/app/settings/channel", {"environment": "simulator"}
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app/settings/channel?done=sent")
        assert (await channel_of(tenant)).verification_payment_id is not None

    async def test_invalid_input_is_shown_by_the_field_and_changes_nothing(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Typo Duka", environment=Environment.simulator)
        before = await channel_of(tenant)
        typed_secret = "typed-but-refused-" + uuid.uuid4().hex
        async with signed_in(server, owner) as panel:
            r = await form_post(
                panel,
                "/app/settings/channel",
                "/app/settings/channel",
                {
                    "environment": "simulator",
                    "kind": "paybill",
                    "business_short_code": "12ab",
                    "consumer_secret": typed_secret,
                },
            )
            assert r.status_code == 422
            assert text_of(r.text, "business_short_code-error") == "The short code must be 5 to 7 digits."
            assert 'value="12ab"' in r.text  # what was typed stays, so it can be fixed
            assert typed_secret not in r.text  # but a secret is never written back

            r = await form_post(
                panel,
                "/app/settings/channel",
                "/app/settings/channel",
                {"environment": "production", "kind": "till", "business_short_code": "123456"},
            )
            assert r.status_code == 422
            assert text_of(r.text, "till_number-error") == (
                "The till number is required for a Till channel (the short code is the Store/HO number)."
            )
            r = await form_post(
                panel,
                "/app/settings/channel",
                "/app/settings/channel",
                {"environment": "sandbox", "kind": "paybill", "business_short_code": "123456"},
            )
            assert r.status_code == 422
            for field in ("consumer_key", "consumer_secret", "passkey"):
                assert text_of(r.text, f"{field}-error") == "Required for a sandbox channel."

            r = await form_post(
                panel, "/app/settings/channel", "/app/settings/channel", {"environment": "moon"}
            )
            assert r.status_code == 422
            assert text_of(r.text, "environment-error") == "Choose one from the list."

        after = await channel_of(tenant)
        assert (after.business_short_code, after.environment, after.verified_at) == (
            before.business_short_code,
            Environment.simulator,
            before.verified_at,
        )
        assert after.consumer_secret_enc == before.consumer_secret_enc
        assert len(await audit_rows(tenant.id, "channel.credentials_changed")) == 1  # from make_tenant


class TestApiKeys:
    async def test_created_shown_once_works_then_revoked(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Keys Duka")
        async with signed_in(server, owner) as panel:
            r = await form_post(
                panel, "/app/settings/keys", "/app/settings/keys", {"name": "shop website", "mode": "live"}
            )
            assert r.status_code == 201
            assert "Copy this key now." in r.text
            key = text_of(r.text, "new-key")
            assert len(key) > 30

            again = await panel.get("/app/settings/keys")
            assert again.status_code == 200
            assert key not in again.text and 'id="new-key"' not in again.text
            async with unit_of_work(readonly=True) as session:
                row = await session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant.id))
            assert row is not None and row.name == "shop website" and row.revoked_at is None
            assert f"{row.prefix}…" in again.text

            # the key works on the API
            api = await panel.get("/api/settings", headers=bearer(key))
            assert api.status_code == 200 and api.json()["business"]["id"] == str(tenant.id)
            me = await panel.get("/api/me", headers=bearer(key))
            assert me.status_code == 403  # a key is not a login, as the API says; but it is accepted

            r = await panel.post(
                f"/app/settings/keys/{row.id}/revoke", data={"csrf_token": csrf_of(again.text)}
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app/settings/keys?done=revoked")
            page = await panel.get(r.headers["location"])
            assert text_of(page.text, "done").startswith("API key revoked")
            assert "revoked" in text_of(page.text, f"key-{row.id}")
            for path in ("/api/me", "/api/settings"):
                assert (await panel.get(path, headers=bearer(key))).status_code == 401

        created = await audit_rows(tenant.id, "apikey.created")
        revoked = await audit_rows(tenant.id, "apikey.revoked")
        assert created[-1].user_id == owner.id and revoked[-1].target == str(row.id)

    async def test_bad_name_by_the_field_and_other_tenants_key_is_404(self, server: LiveServer) -> None:
        other, _ = await make_tenant(name="Other Keys Duka")
        async with unit_of_work() as session:
            from core.auth.service import auth

            theirs, _ = await auth.create_api_key(session, tenant_id=other.id, created_by=None, name="x")
        _, owner = await make_tenant(name="Nosy Keys Duka")
        async with signed_in(server, owner) as panel:
            r = await form_post(panel, "/app/settings/keys", "/app/settings/keys", {"name": "   "})
            assert r.status_code == 422
            assert text_of(r.text, "name-error") == "Key name must be 1 to 80 characters."
            page = await panel.get("/app/settings/keys")
            r = await panel.post(
                f"/app/settings/keys/{theirs.id}/revoke", data={"csrf_token": csrf_of(page.text)}
            )
            assert r.status_code == 404 and "No such API key." in r.text
        async with unit_of_work(readonly=True) as session:
            row = await session.get(ApiKey, theirs.id)
            assert row is not None and row.revoked_at is None


class TestStaff:
    async def test_invite_code_joins_and_is_listed(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Staff Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app/settings/staff")
            assert page.status_code == 200
            assert owner.email in page.text and cashier.email in page.text
            r = await form_post(
                panel, "/app/settings/staff", "/app/settings/staff/invite", {"role": "manager"}
            )
            assert r.status_code == 201
            code = text_of(r.text, "invite-code")
            assert text_of(r.text, "invite-command") == f"/start {code}"
            async with unit_of_work(readonly=True) as session:
                row = await session.scalar(select(OneTimeCode).where(OneTimeCode.code_hash == _digest(code)))
            assert row is not None and row.role is Role.manager and row.tenant_id == tenant.id
            assert row.created_by_id == owner.id

            # the code is the real thing: the bot's redemption makes a manager of this business
            async with unit_of_work() as session:
                joined = await accept_invite(
                    session, code=code, telegram_user_id=770_000_000 + row.id, name="Wanjiru"
                )
            assert (joined.role, joined.tenant_id) == (Role.manager, tenant.id)
            listed = await panel.get("/app/settings/staff")
            assert "Wanjiru" in text_of(listed.text, "staff")

            bad = await form_post(
                panel, "/app/settings/staff", "/app/settings/staff/invite", {"role": "owner"}
            )
            assert bad.status_code == 422
            assert text_of(bad.text, "role-error") == "Invite a cashier or a manager."
        invited = await audit_rows(tenant.id, "staff.invited")
        assert [(a.user_id, a.detail) for a in invited] == [(owner.id, {"role": "manager", "via": "panel"})]


class TestAccount:
    async def test_two_factor_on_then_the_next_sign_in_needs_the_code(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="2FA Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        async with signed_in(server, manager) as panel:
            r = await form_post(
                panel, "/app/settings/account", "/app/settings/account/2fa", {"enabled": "on"}
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app/settings/account?done=2fa_on")
            page = await panel.get(r.headers["location"])
            assert "on" in text_of(page.text, "tf-state")
        assert (await user_row(manager.id)).two_factor_enabled is True
        assert [a.user_id for a in await audit_rows(tenant.id, "auth.2fa_enabled")] == [manager.id]

        async with httpx.AsyncClient(base_url=server.url) as fresh:
            step = await password_step(fresh, manager.email, "secret-pass-1")
            assert (step.status_code, step.headers["location"]) == (303, "/login/code")
            assert "lp_session" not in fresh.cookies
        async with httpx.AsyncClient(base_url=server.url) as fresh:
            await sign_in(fresh, manager.email, "secret-pass-1")  # types the emailed code
            assert (await fresh.get("/app/settings/account")).status_code == 200

            wrong = await form_post(
                fresh,
                "/app/settings/account",
                "/app/settings/account/2fa",
                {"enabled": "off", "password": "not-my-password"},
            )
            assert wrong.status_code == 422
            assert text_of(wrong.text, "tf_password-error") == "The current password is wrong."
            assert (await user_row(manager.id)).two_factor_enabled is True

            off = await form_post(
                fresh,
                "/app/settings/account",
                "/app/settings/account/2fa",
                {"enabled": "off", "password": "secret-pass-1"},
            )
            assert (off.status_code, off.headers["location"]) == (303, "/app/settings/account?done=2fa_off")
        assert (await user_row(manager.id)).two_factor_enabled is False
        assert [a.user_id for a in await audit_rows(tenant.id, "auth.2fa_disabled")] == [manager.id]
        async with httpx.AsyncClient(base_url=server.url) as fresh:
            step = await password_step(fresh, manager.email, "secret-pass-1")
            assert (step.status_code, step.headers["location"]) == (303, "/app")

    async def test_password_change_ends_other_sessions_and_keeps_this_one(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Password Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        token = (
            await httpx.AsyncClient(base_url=server.url).post(
                "/api/login", json={"email": cashier.email, "password": "secret-pass-1"}
            )
        ).json()["access_token"]
        async with signed_in(server, cashier) as old, signed_in(server, cashier) as current:
            assert (await old.get("/app/settings/account")).status_code == 200
            for data, field, message in (
                (
                    {
                        "current_password": "wrong-one-9",
                        "new_password": "new-pass-123",
                        "confirm_password": "new-pass-123",
                    },
                    "current_password",
                    "The current password is wrong.",
                ),
                (
                    {
                        "current_password": "secret-pass-1",
                        "new_password": "new-pass-123",
                        "confirm_password": "new-pass-124",
                    },
                    "confirm_password",
                    "The two new passwords are not the same.",
                ),
                (
                    {
                        "current_password": "secret-pass-1",
                        "new_password": "short",
                        "confirm_password": "short",
                    },
                    "new_password",
                    "Password must be at least 8 characters.",
                ),
            ):
                r = await form_post(current, "/app/settings/account", "/app/settings/account/password", data)
                assert r.status_code == 422, data
                assert text_of(r.text, f"{field}-error") == message
            assert (await old.get("/app/settings/account")).status_code == 200  # nothing changed yet

            r = await form_post(
                current,
                "/app/settings/account",
                "/app/settings/account/password",
                {
                    "current_password": "secret-pass-1",
                    "new_password": "new-pass-123",
                    "confirm_password": "new-pass-123",
                },
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app/settings/account?done=password")
            still = await current.get(r.headers["location"])
            assert still.status_code == 200 and text_of(still.text, "done").startswith("Password changed.")
            refused = await old.get("/app/settings/account")
            assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
            api = await current.get("/api/me", headers=bearer(token))
            assert api.status_code == 401  # the API login token from before, too
        assert [a.user_id for a in await audit_rows(tenant.id, "auth.password_changed")] == [cashier.id]
        async with httpx.AsyncClient(base_url=server.url) as fresh:
            assert (await password_step(fresh, cashier.email, "secret-pass-1")).status_code == 401
            await sign_in(fresh, cashier.email, "new-pass-123")

    async def test_sign_out_everywhere_else(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Sessions Duka")
        async with signed_in(server, owner) as other, signed_in(server, owner) as here:
            page = await here.get("/app/settings/account")
            assert page.text.count("<li>") == 2 and "This browser" in page.text
            assert 'action="/logout-everywhere"' in page.text
            r = await here.post(
                "/app/settings/account/sessions/end-others", data={"csrf_token": csrf_of(page.text)}
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app/settings/account?done=others")
            page = await here.get("/app/settings/account")
            assert page.status_code == 200 and page.text.count("<li>") == 1
            assert (await other.get("/app/settings")).status_code == 303
        rows = await audit_rows(tenant.id, "auth.logout_others")
        assert [(a.user_id, a.detail) for a in rows] == [(owner.id, {"panel_sessions": 1, "via": "panel"})]


class TestRefusals:
    async def test_roles(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Roles Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        manager = await make_user(tenant=tenant, role=Role.manager)
        async with signed_in(server, cashier) as panel:
            page = await panel.get("/app/settings")
            assert page.status_code == 200
            assert (
                'href="/app/settings/channel"' not in page.text
                and 'href="/app/settings/keys"' not in page.text
            )
            for path in (
                "/app/settings/channel",
                "/app/settings/channel/verification",
                "/app/settings/keys",
                "/app/settings/staff",
            ):
                r = await panel.get(path)
                assert r.status_code == 403, path
            account = await panel.get("/app/settings/account")
            assert account.status_code == 200
            for action, data in (
                ("/app/settings/channel", {"environment": "simulator"}),
                ("/app/settings/keys", {"name": "sneaky"}),
                ("/app/settings/staff/invite", {"role": "cashier"}),
            ):
                r = await panel.post(action, data={**data, "csrf_token": csrf_of(account.text)})
                assert r.status_code == 403, action
                assert "This is for the owner" in r.text
        async with signed_in(server, manager) as panel:
            channel = await panel.get("/app/settings/channel")
            assert channel.status_code == 200 and "The owner changes the channel." in channel.text
            assert 'action="/app/settings/channel"' not in channel.text
            keys = await panel.get("/app/settings/keys")
            assert keys.status_code == 200 and 'action="/app/settings/keys"' not in keys.text
            assert (await panel.get("/app/settings/staff")).status_code == 403
            r = await panel.post(
                "/app/settings/keys", data={"name": "sneaky", "csrf_token": csrf_of(keys.text)}
            )
            assert r.status_code == 403
        async with unit_of_work(readonly=True) as session:
            assert await session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant.id)) is None
        assert await audit_rows(tenant.id, "staff.invited") == []
        assert len(await audit_rows(tenant.id, "channel.credentials_changed")) == 1

    async def test_csrf_missing_is_refused(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="CSRF Duka")
        async with signed_in(server, owner) as panel:
            for action, data in (
                ("/app/settings/channel", {"environment": "simulator", "business_short_code": "600222"}),
                ("/app/settings/keys", {"name": "forged"}),
                ("/app/settings/staff/invite", {"role": "cashier"}),
                ("/app/settings/account/2fa", {"enabled": "on"}),
                ("/app/settings/account/sessions/end-others", {}),
                (
                    "/app/settings/account/password",
                    {
                        "current_password": "secret-pass-1",
                        "new_password": "forged-pass-1",
                        "confirm_password": "forged-pass-1",
                    },
                ),
            ):
                r = await panel.post(action, data=data)
                assert r.status_code == 403, action
                assert "This form has expired or did not come from lipapush" in r.text
            assert (await panel.get("/app/settings")).status_code == 200  # still signed in
        assert (await channel_of(tenant)).business_short_code != "600222"
        row = await user_row(owner.id)
        assert row.two_factor_enabled is False and row.token_version == owner.token_version

    async def test_impersonating_admin_read_only_gets_403_on_every_post(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Watched Settings Duka")
        async with unit_of_work() as session:
            from core.auth.service import auth

            key_row, _ = await auth.create_api_key(session, tenant_id=tenant.id, created_by=owner.id)
        async with signed_in(server) as admin:
            overview = await admin.get("/admin")
            r = await admin.post(
                f"/admin/tenants/{tenant.id}/impersonate", data={"csrf_token": csrf_of(overview.text)}
            )
            assert r.status_code == 303
            for path in SETTINGS_PAGES:
                assert (await admin.get(path)).status_code == 200, path
            page = await admin.get("/app/settings/channel")
            assert 'action="/app/settings/channel"' in page.text  # the owner's view, but read-only
            for action, data in (
                ("/app/settings/channel", {"environment": "simulator", "business_short_code": "600333"}),
                ("/app/settings/keys", {"name": "admin key"}),
                (f"/app/settings/keys/{key_row.id}/revoke", {}),
                ("/app/settings/staff/invite", {"role": "cashier"}),
                ("/app/settings/account/2fa", {"enabled": "on"}),
                ("/app/settings/account/sessions/end-others", {}),
                (
                    "/app/settings/account/password",
                    {
                        "current_password": "x",
                        "new_password": "y-long-enough",
                        "confirm_password": "y-long-enough",
                    },
                ),
            ):
                r = await admin.post(action, data={**data, "csrf_token": csrf_of(page.text)})
                assert r.status_code == 403, action
                assert "You are viewing this business read-only." in r.text

            # with write access the business's settings can change, audited as the admin;
            # the account section stays each user's own
            r = await admin.post(
                "/admin/impersonation/write",
                data={"reason": "ticket 42: new key for the shop", "csrf_token": csrf_of(page.text)},
            )
            assert r.status_code == 303
            created = await admin.post(
                "/app/settings/keys", data={"name": "from support", "csrf_token": csrf_of(page.text)}
            )
            assert created.status_code == 201
            r = await admin.post(
                "/app/settings/account/2fa", data={"enabled": "on", "csrf_token": csrf_of(page.text)}
            )
            assert r.status_code == 403
        async with unit_of_work(readonly=True) as session:
            names = list(await session.scalars(select(ApiKey.name).where(ApiKey.tenant_id == tenant.id)))
            still = await session.get(ApiKey, key_row.id)
        assert sorted(names) == ["default", "from support"] and still is not None and still.revoked_at is None
        assert (await channel_of(tenant)).business_short_code != "600333"
        assert await audit_rows(tenant.id, "staff.invited") == []
        created_rows = await audit_rows(tenant.id, "apikey.created")
        assert created_rows[-1].detail["name"] == "from support" and created_rows[-1].user_id != owner.id
        requests = [a.target for a in await audit_rows(tenant.id, "impersonation.request")]
        assert "POST /app/settings/keys" in requests and "GET /app/settings/channel" in requests


class TestInChromium:
    async def test_owner_changes_the_short_code_and_creates_a_key(
        self,
        server: LiveServer,
        browser: Browser,  # noqa: F811
    ) -> None:
        tenant, owner = await make_tenant(name="Chromium Settings Duka", environment=Environment.simulator)
        page = await browser.new_page(viewport={"width": 360, "height": 740})
        questions: list[str] = []

        async def accept(dialog: Dialog) -> None:
            questions.append(dialog.message)
            await dialog.accept()

        page.on("dialog", accept)
        await browser_sign_in(page, server.url, owner.email, "secret-pass-1")

        await page.get_by_role("link", name="Settings", exact=True).click()
        await page.wait_for_url(f"{server.url}/app/settings")
        assert await page.locator("h1").inner_text() == "Settings"
        await shot(page, "app-settings")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360

        # the channel: a new short code, saved; the KES 1 prompt's state updates itself (data-poll)
        await (
            page.get_by_role("navigation", name="Settings sections")
            .get_by_role("link", name="M-Pesa channel")
            .click()
        )
        await page.wait_for_url(f"{server.url}/app/settings/channel")
        await page.get_by_label("Short code").fill("600777")
        await page.get_by_role("button", name="Save and send the test prompt").click()
        await page.wait_for_url(f"{server.url}/app/settings/channel?done=sent")
        assert "Verification prompt sent to 0712 345 678" in await page.locator("#saved").inner_text()
        assert await page.locator("#ch-short-code").inner_text() == "600777"
        await expect(page.locator("#verification-state")).to_have_text("verified", timeout=20_000)
        await shot(page, "app-settings-channel")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        channel = await channel_of(tenant)
        assert channel.business_short_code == "600777" and channel.verified_at is not None

        # an API key: shown once, then only its prefix
        await (
            page.get_by_role("navigation", name="Settings sections")
            .get_by_role("link", name="API keys")
            .click()
        )
        await page.wait_for_url(f"{server.url}/app/settings/keys")
        await page.get_by_label("Key name").fill("till website")
        await page.get_by_role("button", name="Create key").click()
        await page.wait_for_load_state()
        key = (await page.locator("#new-key").inner_text()).strip()
        assert await page.get_by_text("Copy this key now.").is_visible()
        await shot(page, "app-settings-key-created")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        async with httpx.AsyncClient(base_url=server.url) as api:
            assert (await api.get("/api/settings", headers=bearer(key))).status_code == 200

        await page.get_by_role("link", name="Done: back to the list").click()
        await page.wait_for_url(f"{server.url}/app/settings/keys")
        assert await page.locator("#new-key").count() == 0
        assert key not in await page.content()
        await page.get_by_role("button", name="Revoke till website").click()
        await page.wait_for_url(f"{server.url}/app/settings/keys?done=revoked")
        assert questions == ["Revoke the key “till website”? Systems using it stop working at once."]
        assert "revoked" in await page.locator("#keys tbody tr").first.inner_text()
        await shot(page, "app-settings-keys")
        async with httpx.AsyncClient(base_url=server.url) as api:
            assert (await api.get("/api/settings", headers=bearer(key))).status_code == 401
        await page.close()
