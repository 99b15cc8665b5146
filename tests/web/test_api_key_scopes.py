"""API keys with scopes, rolled with an overlap, and where they were last used from.

A key's actor holds only what its scopes grant (core.access.permissions.SCOPE_PERMISSIONS), and a
refusal names the scope to ask for; a rolled key keeps working until its expiry, then answers 401
saying it was rolled; an overlap of 0 revokes it at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from core.access.actor import Actor
from core.access.permissions import (
    ALL_SCOPES,
    API_KEY_PERMISSIONS,
    PERMISSION_SCOPE,
    SCOPE_PERMISSIONS,
    ApiScope,
    Permission,
    scope_permissions,
)
from core.audit.models import AuditLog
from core.auth.models import ApiKey
from core.db import utcnow
from core.errors import PermissionDenied
from core.payments.models import Payment
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.panel import business_client, csrf_of, text_of
from tests.support.services import TestDatabase
from tests.web.test_cli_support import Run, clean_env, lipapush

VALID = (
    "Valid scopes: payments:read, payments:write, customers:read, exports, webhooks, dashboard:read, "
    "wallet:read, wallet:write, hotspot:read, hotspot:write, business:read, business:write, keys:read, "
    "keys:write, payouts:read, payouts:write."
)


PUSH = {"phone": "0722000111", "amount": 10}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def roll(client: httpx.AsyncClient, admin: str, key_id: str, overlap: int) -> httpx.Response:
    return await client.post(
        f"/api/api-keys/{key_id}/roll", json={"overlap_seconds": overlap}, headers=bearer(admin)
    )


def lacks(scope: str) -> dict[str, str]:
    return {
        "error": "permission_denied",
        "detail": (
            f"This API key lacks the {scope} scope. Create a key with it in the panel (Settings → API keys), "
            f"with `lipapush apikey create --scope {scope}`, or with "
            f'POST /api/api-keys {{"scopes": ["{scope}", …]}}, and use that key.'
        ),
    }


async def payments_of(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        count = select(func.count(Payment.id)).where(Payment.tenant_id == tenant.id)
        return int(await session.scalar(count) or 0)


async def key_row(key_id: str) -> ApiKey:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(ApiKey, uuid.UUID(key_id))
        assert row is not None
        return row


async def audit_actions(tenant: Tenant) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog.action).where(AuditLog.tenant_id == tenant.id).order_by(AuditLog.id)
        )
        return list(rows)


class TestTheVocabulary:
    def test_every_permission_a_key_can_hold_lives_in_exactly_one_scope(self) -> None:
        assert set(PERMISSION_SCOPE) == set(API_KEY_PERMISSIONS)
        assert scope_permissions(ALL_SCOPES) == API_KEY_PERMISSIONS
        assert Permission.account_manage not in scope_permissions(ALL_SCOPES)

    def test_a_write_scope_includes_its_read(self) -> None:
        assert SCOPE_PERMISSIONS[ApiScope.payments_write] == {
            Permission.payments_request,
            Permission.payments_read,
            Permission.transactions_lookup,
        }
        assert SCOPE_PERMISSIONS[ApiScope.payouts_write] == {
            Permission.payouts_request,
            Permission.reversals_request,
            Permission.payouts_read,
            Permission.balance_read,
        }
        assert SCOPE_PERMISSIONS[ApiScope.payments_read] == {Permission.payments_read}
        assert SCOPE_PERMISSIONS[ApiScope.webhooks] == {Permission.webhooks_manage}

    def test_the_actor_of_a_key_holds_only_its_scopes(self) -> None:
        actor = Actor.for_api_key(api_key_id=uuid.uuid4(), tenant_id=uuid.uuid4(), scopes=[ApiScope.exports])
        assert actor.permissions == {Permission.exports}
        with pytest.raises(PermissionDenied, match=r"lacks the customers:read scope"):
            actor.require(Permission.customers_read)


class TestScopes:
    async def test_a_key_without_payments_write_cannot_push_but_reads(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        reader = await make_api_key(tenant=tenant, scopes=[ApiScope.payments_read])
        r = await client.post("/api/stk-push", json=PUSH, headers=bearer(reader))
        assert (r.status_code, r.json()) == (403, lacks("payments:write"))
        assert await payments_of(tenant) == 0
        r = await client.get("/api/transactions", headers=bearer(reader))
        assert r.status_code == 200, r.text
        assert r.json()["items"] == []
        r = await client.get("/api/customers", headers=bearer(reader))
        assert (r.status_code, r.json()) == (403, lacks("customers:read"))

    async def test_payments_write_pushes_and_reads_its_payment(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        pusher = await make_api_key(tenant=tenant, scopes=[ApiScope.payments_write])
        r = await client.post("/api/stk-push", json=PUSH, headers=bearer(pusher))
        assert r.status_code == 201, r.text
        r = await client.get(f"/api/transactions/{r.json()['id']}", headers=bearer(pusher))
        assert r.status_code == 200, r.text
        assert await payments_of(tenant) == 1

    async def test_scopes_are_chosen_listed_and_checked(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        admin = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/api-keys",
            json={"name": "shop", "scopes": ["payments:write", "payments:bogus"]},
            headers=bearer(admin),
        )
        assert (r.status_code, r.json()) == (
            422,
            {
                "error": "invalid_input",
                "detail": f"Unknown scope 'payments:bogus'. {VALID}",
                "errors": {"scopes": f"Unknown scope 'payments:bogus'. {VALID}"},
            },
        )
        r = await client.post(
            "/api/api-keys",
            json={"name": "shop", "scopes": ["customers:read", "payments:write"]},
            headers=bearer(admin),
        )
        assert r.status_code == 201, r.text
        assert r.json()["scopes"] == ["payments:write", "customers:read"]
        # no scopes given: every scope, as keys made before scopes existed, but money out's
        r = await client.post("/api/api-keys", json={"name": "all"}, headers=bearer(admin))
        assert r.json()["scopes"] == [s.value for s in ApiScope if not s.value.startswith("payouts:")]
        r = await client.post(
            "/api/api-keys", json={"name": "payroll", "scopes": ["payouts:write"]}, headers=bearer(admin)
        )
        # a key made without choosing holds no money-out scope, so it cannot give one either
        assert r.status_code == 403, r.text
        assert "cannot give a key scopes it lacks itself (payouts:write)" in r.json()["detail"]
        keys = (await client.get("/api/api-keys", headers=bearer(admin))).json()
        listed = {k["name"]: k["scopes"] for k in keys}
        assert listed["shop"] == ["payments:write", "customers:read"]

    async def test_a_key_cannot_make_a_key_that_may_do_more(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        keys = await make_api_key(tenant=tenant, scopes=[ApiScope.keys_write, ApiScope.payments_read])
        r = await client.post("/api/api-keys", json={"scopes": ["payments:write"]}, headers=bearer(keys))
        assert (r.status_code, r.json()["detail"]) == (
            403,
            "This API key cannot give a key scopes it lacks itself (payments:write): create that key in the "
            "panel (Settings → API keys) or with a key that has them.",
        )
        r = await client.post("/api/api-keys", json={"scopes": ["payments:read"]}, headers=bearer(keys))
        assert r.status_code == 201, r.text


class TestRolling:
    async def test_both_keys_work_during_the_overlap_then_the_old_one_is_refused(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        admin = await make_api_key(tenant=tenant)
        made = await client.post(
            "/api/api-keys", json={"name": "till", "scopes": ["payments:read"]}, headers=bearer(admin)
        )
        old = made.json()
        before = utcnow()
        r = await roll(client, admin, old["id"], 3600)
        assert r.status_code == 201, r.text
        new = r.json()
        assert (new["name"], new["scopes"], new["mode"]) == ("till", ["payments:read"], "live")
        assert new["key"] != old["key"] and new["id"] != old["id"]
        assert new["replaces"]["id"] == old["id"] and new["replaces"]["rolled_to_id"] == new["id"]
        row = await key_row(old["id"])
        assert row.revoked_at is None and row.expires_at is not None
        assert before + timedelta(hours=1) <= row.expires_at <= utcnow() + timedelta(hours=1)
        for key in (old["key"], new["key"]):
            assert (await client.get("/api/transactions", headers=bearer(key))).status_code == 200
        # a key already rolled is not rolled again
        again = await client.post(f"/api/api-keys/{old['id']}/roll", headers=bearer(admin))
        assert again.status_code == 409
        assert "already rolled" in again.json()["detail"]

        expired = utcnow() - timedelta(seconds=1)
        async with unit_of_work() as session:
            await session.execute(
                update(ApiKey).where(ApiKey.id == uuid.UUID(old["id"])).values(expires_at=expired)
            )
        r = await client.get("/api/transactions", headers=bearer(old["key"]))
        assert (r.status_code, r.json()) == (
            401,
            {
                "error": "authentication_failed",
                "detail": f"This API key was rolled and expired at {expired:%Y-%m-%d %H:%M} UTC: use the key "
                "that replaced it (see GET /api/api-keys), or create a new one.",
            },
        )
        assert (await client.get("/api/transactions", headers=bearer(new["key"]))).status_code == 200
        assert (await audit_actions(tenant)).count("apikey.rolled") == 1

    async def test_an_overlap_of_zero_revokes_the_old_key_now(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        admin = await make_api_key(tenant=tenant)
        old = (await client.post("/api/api-keys", json={"name": "leaked"}, headers=bearer(admin))).json()
        r = await roll(client, admin, old["id"], 0)
        assert r.status_code == 201, r.text
        assert r.json()["replaces"]["revoked_at"] is not None
        new = r.json()["key"]
        r = await client.get("/api/dashboard", headers=bearer(old["key"]))
        assert (r.status_code, r.json()["detail"]) == (
            401,
            "This API key is not valid or was revoked: create a new one.",
        )
        assert (await client.get("/api/dashboard", headers=bearer(new))).status_code == 200

    @pytest.mark.parametrize("overlap", [-1, 7 * 86400 + 1])
    async def test_the_overlap_is_bounded(
        self, server: LiveServer, client: httpx.AsyncClient, overlap: int
    ) -> None:
        tenant, _ = await make_tenant()
        admin = await make_api_key(tenant=tenant)
        old = (await client.post("/api/api-keys", json={"name": "x"}, headers=bearer(admin))).json()
        r = await roll(client, admin, old["id"], overlap)
        assert r.status_code == 422
        assert list(r.json()["errors"]) == ["overlap_seconds"]
        assert (await key_row(old["id"])).expires_at is None


class TestLastUsed:
    async def test_time_and_network_of_last_use_are_listed(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        admin = await make_api_key(tenant=tenant)
        made = (await client.post("/api/api-keys", json={"name": "web"}, headers=bearer(admin))).json()
        assert (made["last_used_at"], made["last_used_network"]) == (None, None)
        assert (await client.get("/api/dashboard", headers=bearer(made["key"]))).status_code == 200
        listed = {k["id"]: k for k in (await client.get("/api/api-keys", headers=bearer(admin))).json()}
        assert listed[made["id"]]["last_used_network"] == "127.0.0.1"
        assert listed[made["id"]]["last_used_at"] is not None


class TestCli:
    async def test_create_with_scopes_roll_and_list(
        self, server: LiveServer, client: httpx.AsyncClient, database: TestDatabase, tmp_path: Path
    ) -> None:
        tenant, owner = await make_tenant()
        env = clean_env(tmp_path / "home", **database.env(), COLUMNS="250")

        async def cli(*args: str) -> Run:
            return await asyncio.to_thread(lipapush, *args, env=env, cwd=tmp_path)

        bad = await cli("apikey", "create", "--tenant", owner.email, "--scope", "exports", "--scope", "x")
        assert (bad.returncode, bad.stdout, bad.stderr) == (1, "", f"Unknown scope 'x'. {VALID}\n")
        made = await cli("apikey", "create", "--tenant", owner.email, "--scope", "payments:read")
        assert made.returncode == 0, made
        key = made.stdout.strip()
        r = await client.post("/api/stk-push", json=PUSH, headers=bearer(key))
        assert (r.status_code, r.json()) == (403, lacks("payments:write"))
        async with unit_of_work(readonly=True) as session:
            key_id = await session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id))
        rolled = await cli("apikey", "roll", "--tenant", owner.email, str(key_id), "--overlap", "30m")
        assert rolled.returncode == 0, rolled
        assert "works until" in rolled.stderr
        new = rolled.stdout.strip()
        for k in (key, new):
            assert (await client.get("/api/transactions", headers=bearer(k))).status_code == 200
        listed = await cli("apikey", "list", "--tenant", owner.email)
        assert listed.returncode == 0, listed
        assert listed.stdout.count("payments:read") == 2
        assert "127.0.0.1" in listed.stdout and "expires" in listed.stdout


class TestPanel:
    async def test_scopes_ticked_listed_and_a_key_rolled(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        panel = await business_client(server.url, owner)
        try:
            page = await panel.get("/app/settings/keys")
            # every box is ticked for a new key
            assert page.text.count('name="scope"') == len(ApiScope) == page.text.count(" checked>")
            form = {"name": "till", "mode": "live", "scopes_shown": "1", "csrf_token": csrf_of(page.text)}
            none = await panel.post("/app/settings/keys", data=form)
            assert none.status_code == 422
            assert text_of(none.text, "scopes-error").startswith("Choose at least one scope")
            made = await panel.post(
                "/app/settings/keys", data={**form, "scope": ["payments:read", "customers:read"]}
            )
            assert made.status_code == 201, made.text
            key = text_of(made.text, "new-key")
            async with unit_of_work(readonly=True) as session:
                row = await session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant.id))
            assert row is not None and row.scopes == ["payments:read", "customers:read"]
            r = await panel.post(
                f"/app/settings/keys/{row.id}/roll",
                data={"overlap_seconds": "3600", "csrf_token": form["csrf_token"]},
            )
            assert r.status_code == 201, r.text
            new = text_of(r.text, "new-key")
            note = text_of(r.text, "rolled-note")
            assert note.startswith(f"It replaces {row.prefix}… , which keeps working until"), note
            listed = await panel.get("/app/settings/keys")
            assert "rolled: works until" in text_of(listed.text, f"key-{row.id}")
            for k in (key, new):
                assert (await panel.get("/api/customers", headers=bearer(k))).status_code == 200
        finally:
            await panel.aclose()
        assert (await audit_actions(tenant))[-2:] == ["apikey.created", "apikey.rolled"]
