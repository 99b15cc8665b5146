"""/api/channels over HTTP: a business with several M-Pesa channels, each verified by its own KES 1
push; apps choose one; the primary one is what the bot, USSD and the panel push through; a
production business tests through a sandbox channel of its own with test keys."""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from core.audit.models import AuditLog
from core.auth.models import Role
from core.config import SANDBOX_PASSKEY
from core.payments.models import Payment
from core.runtime import unit_of_work
from core.tenants.models import Environment, MpesaChannel, Tenant, TenantStatus
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.waiting import wait_for_final, wait_until

SANDBOX = {
    "environment": "sandbox",
    "kind": "paybill",
    "business_short_code": "174379",
    "consumer_key": "sandbox-consumer-key-1",
    "consumer_secret": "sandbox-consumer-secret-1",
    "passkey": SANDBOX_PASSKEY,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


def shop_code() -> str:
    return str(random.randint(3_000_000, 3_999_999))


async def add_verified(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    """POST /api/channels, then wait for its KES 1 test (the owner's phone approves in the simulator)."""
    r = await client.post("/api/channels", json=body, headers=auth)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["verification"]["amount"] == 1 and made["verification_error"] is None
    channel_id = made["channel"]["id"]

    async def verified() -> bool:
        got = (await client.get(f"/api/channels/{channel_id}", headers=auth)).json()
        return bool(got["verified"])

    await wait_until(verified)
    got = (await client.get(f"/api/channels/{channel_id}", headers=auth)).json()
    assert got["verification_state"]["state"] == "verified"
    return got


async def audit_actions(tenant_id: uuid.UUID) -> list[tuple[str, str | None]]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.execute(
            select(AuditLog.action, AuditLog.target)
            .where(AuditLog.tenant_id == tenant_id)
            .order_by(AuditLog.id)
        )
        return [(a, t) for a, t in rows.all()]


async def payment_channel(payment_id: str) -> tuple[uuid.UUID, str]:
    async with unit_of_work(readonly=True) as session:
        p = await session.get(Payment, uuid.UUID(payment_id))
        assert p is not None
        return p.channel_id, p.mode.value


class TestSeveralChannels:
    async def test_a_production_business_tests_through_its_own_sandbox_channel(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Duka Two Modes")
        auth = await login(client, owner.email)
        # Before: a test key is refused, and the message says how to get one.
        r = await client.post("/api/api-keys", json={"name": "t", "mode": "test"}, headers=auth)
        assert (r.status_code, r.json()["error"]) == (409, "mode_mismatch")
        assert "add a sandbox or simulator channel (POST /api/channels" in r.json()["detail"]

        live_key = await make_api_key(tenant=tenant)  # makes the Default app, on the production channel
        assert live_key.startswith("lp_live_")
        sandbox = await add_verified(client, auth, {"name": "Sandbox", **SANDBOX})
        assert (sandbox["name"], sandbox["primary"], sandbox["mode"], sandbox["environment"]) == (
            "Sandbox",
            False,
            "test",
            "sandbox",
        )
        assert sandbox["consumer_secret"] == "****et-1" and "sandbox-consumer-secret-1" not in str(sandbox)
        listed = (await client.get("/api/channels", headers=auth)).json()
        assert [(c["name"], c["primary"], c["mode"], c["verified"], c["app_count"]) for c in listed] == [
            ("Main", True, "live", True, 1),
            ("Sandbox", False, "test", True, 0),
        ]

        r = await client.post(
            "/api/apps", json={"name": "Shop (test)", "channel_id": sandbox["id"]}, headers=auth
        )
        assert r.status_code == 201, r.text
        test_app = r.json()
        assert (test_app["mode"], test_app["channel"]["id"], test_app["channel"]["label"]) == (
            "test",
            sandbox["id"],
            "Sandbox: Paybill 174379 (sandbox)",
        )
        r = await client.post("/api/api-keys", json={"name": "ci", "app_id": test_app["id"]}, headers=auth)
        assert r.status_code == 201, r.text
        test_key = r.json()["key"]
        assert test_key.startswith("lp_test_")

        r = await client.post(
            "/api/stk-push", json={"phone": "0712000678", "amount": 30}, headers=bearer(test_key)
        )
        assert r.status_code == 201, r.text
        test_payment = await wait_for_final(client, test_key, r.json()["id"])
        assert (test_payment["status"], test_payment["mode"]) == ("success", "test")
        assert await payment_channel(test_payment["id"]) == (uuid.UUID(sandbox["id"]), "test")

        r = await client.post(
            "/api/stk-push", json={"phone": "0712000678", "amount": 40}, headers=bearer(live_key)
        )
        assert r.status_code == 201, r.text
        main_id = listed[0]["id"]
        assert await payment_channel(r.json()["id"]) == (uuid.UUID(main_id), "live")

        # a test key sees only test payments (the sandbox channel's KES 1 test is one), a live key only
        # live ones
        tx = (await client.get("/api/transactions", headers=bearer(test_key))).json()
        assert [(t["amount"], t["mode"]) for t in tx["items"]] == [(30, "test"), (1, "test")]
        tx = (await client.get("/api/transactions", headers=bearer(live_key))).json()
        assert [(t["amount"], t["mode"]) for t in tx["items"]] == [(40, "live")]
        acts = [a for a in await audit_actions(tenant.id) if a[0].startswith(("channel.", "app."))]
        assert acts == [
            ("channel.credentials_changed", main_id),
            ("channel.verified", main_id),
            ("channel.added", sandbox["id"]),
            ("channel.verified", sandbox["id"]),
            ("app.created", test_app["id"]),
        ]

    async def test_a_branch_till_verified_apart_then_made_primary(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Duka Branches", environment=Environment.simulator)
        auth = await login(client, owner.email)
        code = shop_code()
        branch = await add_verified(
            client,
            auth,
            {"name": "Westlands till", "environment": "simulator", "kind": "till", "till_number": code},
        )
        assert (branch["kind"], branch["till_number"], branch["primary"]) == ("till", code, False)

        # the primary channel still takes the owner's pushes
        r = await client.post("/api/stk-push", json={"phone": "0712000678", "amount": 10}, headers=auth)
        assert r.status_code == 201, r.text
        main_id = (await client.get("/api/settings", headers=auth)).json()["channel"]["id"]
        assert (await payment_channel(r.json()["id"]))[0] == uuid.UUID(main_id)

        r = await client.post(f"/api/channels/{branch['id']}/primary", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["primary"] is True
        settings = (await client.get("/api/settings", headers=auth)).json()
        assert (settings["channel"]["id"], settings["channel"]["name"]) == (branch["id"], "Westlands till")
        r = await client.post("/api/stk-push", json={"phone": "0712000678", "amount": 11}, headers=auth)
        assert (await payment_channel(r.json()["id"]))[0] == uuid.UUID(branch["id"])
        async with unit_of_work(readonly=True) as session:
            rows = (
                await session.execute(
                    select(MpesaChannel.name, MpesaChannel.is_primary)
                    .where(MpesaChannel.tenant_id == tenant.id)
                    .order_by(MpesaChannel.name)
                )
            ).all()
        assert [tuple(r) for r in rows] == [("Main", False), ("Westlands till", True)]

        r = await client.patch(
            f"/api/channels/{branch['id']}", json={"name": "  Westlands   shop "}, headers=auth
        )
        assert (r.status_code, r.json()["name"]) == (200, "Westlands shop")
        acts = await audit_actions(tenant.id)
        assert acts[-2:] == [("channel.primary_changed", branch["id"]), ("channel.renamed", branch["id"])]

    async def test_replacing_a_branch_channel_leaves_the_business_active(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Duka Replace", environment=Environment.simulator)
        auth = await login(client, owner.email)
        branch = await add_verified(client, auth, {"name": "Branch", "environment": "simulator"})
        app = (
            await client.post(
                "/api/apps", json={"name": "Branch app", "channel_id": branch["id"]}, headers=auth
            )
        ).json()
        key = (
            await client.post("/api/api-keys", json={"name": "k", "app_id": app["id"]}, headers=auth)
        ).json()["key"]

        # the owner's phone answers "wrong PIN" now: the new credentials' test fails
        async with unit_of_work() as session:
            row = await session.get(Tenant, tenant.id)
            assert row is not None
            row.phone = "254712342001"
        r = await client.put(f"/api/channels/{branch['id']}", json={"environment": "simulator"}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["channel"]["verified"] is False
        await wait_for_final(client, key, r.json()["verification"]["id"])
        got = (await client.get(f"/api/channels/{branch['id']}", headers=auth)).json()
        assert got["verification_state"] == {
            "state": "failed",
            "reason": "The customer entered a wrong M-Pesa PIN.",
            "verified_at": None,
            "phone": "254712342001",
        }
        async with unit_of_work(readonly=True) as session:
            assert (await session.get(Tenant, tenant.id)).status is TenantStatus.active  # type: ignore[union-attr]
        r = await client.post(
            "/api/stk-push", json={"phone": "0712000678", "amount": 10}, headers=bearer(key)
        )
        assert (r.status_code, r.json()["error"]) == (409, "channel_not_verified")
        assert r.json()["detail"].startswith("The M-Pesa channel “Branch” is not verified yet")
        assert "The last test failed: The customer entered a wrong M-Pesa PIN." in r.json()["detail"]
        # the primary channel still collects
        r = await client.post("/api/stk-push", json={"phone": "0712000678", "amount": 10}, headers=auth)
        assert r.status_code == 201, r.text
        # an unverified channel cannot become the primary one
        r = await client.post(f"/api/channels/{branch['id']}/primary", headers=auth)
        assert (r.status_code, r.json()["error"]) == (409, "conflict")
        assert r.json()["detail"].startswith("The channel “Branch” is not verified yet")


class TestRefusals:
    async def test_bad_input_and_other_people_change_nothing(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Duka Refusals", environment=Environment.simulator)
        other, other_owner = await make_tenant(name="Other Duka", environment=Environment.simulator)
        auth = await login(client, owner.email)
        other_main = (
            await client.get("/api/channels", headers=await login(client, other_owner.email))
        ).json()[0]

        r = await client.post(
            "/api/channels", json={"name": "main", "environment": "simulator"}, headers=auth
        )
        taken = "This business already has a channel named “main”: choose another name, or rename that one."
        assert (r.status_code, r.json()) == (
            409,
            {"error": "conflict", "detail": taken, "errors": {"name": taken}},
        )
        r = await client.post(
            "/api/channels", json={"name": "Live", "environment": "production"}, headers=auth
        )
        assert r.status_code == 422
        assert (
            "business_short_code, consumer_key, consumer_secret, passkey required for a production channel"
            in r.text
        )
        r = await client.post("/api/channels", json={"name": "   ", "environment": "simulator"}, headers=auth)
        assert (r.status_code, r.json()["error"]) == (422, "invalid_input")
        r = await client.post(
            "/api/channels", json={"name": "x" * 61, "environment": "simulator"}, headers=auth
        )
        assert (r.status_code, r.json()["error"]) == (422, "invalid_input")

        for method, path, body in (
            ("GET", "", None),
            ("PUT", "", {"environment": "simulator"}),
            ("PATCH", "", {"name": "Mine now"}),
            ("POST", "/verify", None),
            ("POST", "/primary", None),
        ):
            r = await client.request(
                method, f"/api/channels/{other_main['id']}{path}", json=body, headers=auth
            )
            assert (r.status_code, r.json()["detail"]) == (
                404,
                "No such channel. List this business's channels with GET /api/channels.",
            ), (method, path)
        r = await client.post(
            "/api/apps", json={"name": "Thief", "channel_id": other_main["id"]}, headers=auth
        )
        assert r.status_code == 404
        r = await client.get("/api/channels/not-a-uuid", headers=auth)
        assert r.status_code == 422

        manager = await make_user(tenant=tenant, role=Role.manager)
        m_auth = await login(client, manager.email)
        assert (await client.get("/api/channels", headers=m_auth)).status_code == 200
        r = await client.post(
            "/api/channels", json={"name": "Mgr", "environment": "simulator"}, headers=m_auth
        )
        assert r.status_code == 403
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        assert (
            await client.get("/api/channels", headers=await login(client, cashier.email))
        ).status_code == 403

        async with unit_of_work(readonly=True) as session:
            names = list(
                await session.scalars(select(MpesaChannel.name).where(MpesaChannel.tenant_id == tenant.id))
            )
            other_names = list(
                await session.scalars(select(MpesaChannel.name).where(MpesaChannel.tenant_id == other.id))
            )
        assert (names, other_names) == (["Main"], ["Main"])

    async def test_an_app_with_keys_keeps_its_mode(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Duka Modes")
        auth = await login(client, owner.email)
        sandbox = await add_verified(client, auth, {"name": "Sandbox", **SANDBOX})
        live_key = await make_api_key(tenant=tenant)
        default_app = (await client.get("/api/apps", headers=auth)).json()[0]
        r = await client.patch(
            f"/api/apps/{default_app['id']}", json={"channel_id": sandbox["id"]}, headers=auth
        )
        assert (r.status_code, r.json()["error"]) == (409, "conflict")
        assert r.json()["detail"] == (
            "“Default app” is a live app with 1 working API key(s), and “Sandbox” is a sandbox channel "
            "(test mode): a key's mode never changes. Create a new app on that channel (its keys will be "
            "test keys), or revoke this app's keys first."
        )
        # the key may not move its own app either, whatever its scopes
        r = await client.patch(
            f"/api/apps/{default_app['id']}", json={"channel_id": sandbox["id"]}, headers=bearer(live_key)
        )
        assert r.status_code == 403
        # an app without keys moves
        r = await client.post("/api/apps", json={"name": "Later"}, headers=auth)
        later = r.json()
        assert later["mode"] == "live"
        r = await client.patch(f"/api/apps/{later['id']}", json={"channel_id": sandbox["id"]}, headers=auth)
        assert (r.status_code, r.json()["mode"], r.json()["channel"]["name"]) == (200, "test", "Sandbox")


async def test_a_b2c_shortcode_is_not_a_collecting_channel(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, owner = await make_tenant(name="B2C Form Duka", environment=Environment.simulator)
    auth = await login(client, owner.email)
    r = await client.post(
        "/api/channels", json={"name": "Payouts", "environment": "simulator", "kind": "b2c"}, headers=auth
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == {
        "kind": "must be paybill or till: a B2C (payout) shortcode is added as a payout channel"
    }
    async with unit_of_work(readonly=True) as session:
        names = list(
            await session.scalars(select(MpesaChannel.name).where(MpesaChannel.tenant_id == tenant.id))
        )
    assert names == ["Main"]
