"""PUT /api/channels/{id}/initiator and /api/payout-channels: the initiator's password is stored
encrypted and never shown, a real balance check through the simulator proves it (or says why not),
setting it again forgets the proof until the new one is proven, and payouts wait for a proven one."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from core.access.permissions import ApiScope
from core.audit.models import AuditLog
from core.auth.models import Role
from core.lookups.models import Lookup, LookupKind, LookupStatus
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment, MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.payouts import PASSWORD, channel_row, initiator_settled, short_code
from tests.support.waiting import wait_until

INVALID = (
    "M-Pesa refused the balance check: The initiator information is invalid: check the initiator name and "
    "password, and that the certificate is the current one for this environment (sandbox or production)."
)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def payout_channel(name: str, code: str, password: str = PASSWORD) -> dict[str, str]:
    return {
        "name": name,
        "environment": "production",
        "short_code": code,
        "consumer_key": "b2c-consumer-key",
        "consumer_secret": "b2c-consumer-secret",
        "initiator_name": "apiop",
        "initiator_password": password,
    }


async def primary_channel(tenant_id: uuid.UUID) -> MpesaChannel:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(
            select(MpesaChannel).where(MpesaChannel.tenant_id == tenant_id, MpesaChannel.is_primary)
        )
        assert row is not None
        return row


async def wait_settled(channel_id: uuid.UUID) -> MpesaChannel:
    await wait_until(lambda: initiator_settled(channel_id))
    return await channel_row(channel_id)


class TestSetInitiator:
    async def test_it_is_encrypted_never_shown_audited_and_proven(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Initiator Duka")
        key = await make_api_key(tenant=tenant)  # business:write holds channel management
        channel = await primary_channel(tenant.id)
        r = await client.put(
            f"/api/channels/{channel.id}/initiator",
            json={"initiator_name": " apiop ", "initiator_password": PASSWORD},
            headers=auth(key),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert PASSWORD not in r.text
        shown = (body["channel_id"], body["initiator_name"], body["verification"], body["initiator_error"])
        assert shown == (
            str(channel.id),
            "apiop",
            "pending",
            None,
        )
        assert body["initiator_set_at"] is not None and body["initiator_verified_at"] is None
        row = await wait_settled(channel.id)
        assert row.initiator_verified_at is not None and row.initiator_error is None
        assert row.initiator_password_enc != PASSWORD
        assert runtime().secrets.decrypt(row.initiator_password_enc or "") == PASSWORD
        async with unit_of_work(readonly=True) as session:
            lookup = await session.get(Lookup, uuid.UUID(body["lookup_id"]))
            audit = await session.scalar(
                select(AuditLog).where(
                    AuditLog.tenant_id == tenant.id, AuditLog.action == "channel.initiator_set"
                )
            )
        assert lookup is not None and (lookup.kind, lookup.status) == (LookupKind.balance, LookupStatus.done)
        assert lookup.utility_cents is not None
        assert audit is not None and PASSWORD not in str(audit.detail)
        assert audit.detail["initiator_name"] == "apiop" and audit.detail["replaced"] is False

        # A new password forgets the proof until its own balance check answers.
        r = await client.put(
            f"/api/channels/{channel.id}/initiator",
            json={"initiator_name": "apiop", "initiator_password": "New-Pass-2027"},
            headers=auth(key),
        )
        assert (r.json()["verification"], r.json()["initiator_verified_at"]) == ("pending", None)
        row = await wait_settled(channel.id)
        assert row.initiator_verified_at is not None

    async def test_a_wrong_password_is_explained_and_payouts_wait(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Wrong Pass Duka")
        key = await make_api_key(tenant=tenant, scopes=[ApiScope.business_write, ApiScope.payouts_write])
        code = short_code()
        # The simulator knows this short code's initiator (with no list it would accept any password).
        async with httpx.AsyncClient() as c:
            r = await c.post(
                f"{server.production_url}/_sim/initiators",
                json={"shortcode": code, "name": "apiop", "password": PASSWORD},
            )
            r.raise_for_status()
        r = await client.post(
            "/api/payout-channels", json=payout_channel("Payouts", code, "Wrong-Pass-1"), headers=auth(key)
        )
        assert r.status_code == 201, r.text
        channel_id = uuid.UUID(r.json()["id"])
        row = await wait_settled(channel_id)
        assert (row.initiator_verified_at, row.initiator_error) == (None, INVALID)
        listed = (await client.get("/api/payout-channels", headers=auth(key))).json()
        states = [
            (c["name"], c["initiator"]["verification"], c["initiator"]["initiator_error"]) for c in listed
        ]
        assert states == [("Payouts", "failed", INVALID)]
        r = await client.post("/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=auth(key))
        assert (r.status_code, r.json()["error"]) == (409, "initiator_not_verified")
        assert r.json()["detail"].startswith(
            f"The channel “Payouts” cannot pay out yet: its M-Pesa initiator is not verified. The last check "
            f"said: {INVALID} To fix it, set its M-Pesa initiator name and password (PUT /api/channels/"
            f"{channel_id}/initiator"
        )
        r = await client.put(
            f"/api/channels/{channel_id}/initiator",
            json={"initiator_name": "apiop", "initiator_password": PASSWORD},
            headers=auth(key),
        )
        assert r.status_code == 200, r.text
        row = await wait_settled(channel_id)
        assert (row.initiator_verified_at is not None, row.initiator_error) == (True, None)
        r = await client.post("/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=auth(key))
        assert r.status_code == 201, r.text

    async def test_another_business_channel_is_not_found_and_a_manager_may_not(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Guarded Duka")
        other, _ = await make_tenant(name="Nosy Duka")
        theirs = await make_api_key(tenant=other)
        channel = await primary_channel(tenant.id)
        body = {"initiator_name": "apiop", "initiator_password": PASSWORD}
        r = await client.put(f"/api/channels/{channel.id}/initiator", json=body, headers=auth(theirs))
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        manager = await make_user(tenant=tenant, role=Role.manager)
        login = await client.post("/api/login", json={"email": manager.email, "password": "secret-pass-1"})
        headers = auth(login.json()["access_token"])
        r = await client.put(f"/api/channels/{channel.id}/initiator", json=body, headers=headers)
        assert (r.status_code, r.json()["detail"]) == (403, "This is for the owner of the business.")
        assert (await channel_row(channel.id)).initiator_name is None


class TestPayoutChannels:
    async def test_a_b2c_channel_is_added_named_and_never_primary(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="B2C Duka")
        key = await make_api_key(tenant=tenant, scopes=[ApiScope.business_write, ApiScope.payouts_read])
        code = short_code()
        r = await client.post(
            "/api/payout-channels", json=payout_channel("Salaries", code), headers=auth(key)
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert PASSWORD not in r.text and "b2c-consumer-secret" not in r.text
        shown = (body["kind"], body["environment"], body["mode"], body["short_code"], body["consumer_key"])
        assert shown == (
            "b2c",
            "production",
            "live",
            code,
            "****-key",
        )
        row = await wait_settled(uuid.UUID(body["id"]))
        assert row.initiator_verified_at is not None
        assert (row.kind, row.is_primary, row.till_number) == (ChannelKind.b2c, False, None)
        assert row.verified_at is None  # never prompted: its initiator is its proof
        assert runtime().secrets.decrypt(row.passkey_enc) == ""
        same = await client.post(
            "/api/payout-channels", json=payout_channel("salaries", code), headers=auth(key)
        )
        assert (same.status_code, same.json()["detail"]) == (
            409,
            "This business already has a channel named “salaries”: choose another name, or rename that one.",
        )
        bare = payout_channel("Bare", code)
        del bare["consumer_secret"]
        r = await client.post("/api/payout-channels", json=bare, headers=auth(key))
        assert r.status_code == 422, r.text
        assert "consumer_secret required for a production channel" in r.text
        simulator = {"name": "Sim", "environment": "simulator", "short_code": short_code()}
        r = await client.post(
            "/api/payout-channels",
            json={**simulator, "initiator_name": "apiop", "initiator_password": PASSWORD},
            headers=auth(key),
        )
        assert (r.status_code, r.json()["mode"]) == (201, "test")
        # the live key sees live channels; the owner both
        assert [c["name"] for c in (await client.get("/api/payout-channels", headers=auth(key))).json()] == [
            "Salaries"
        ]
        login = await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})
        listed = (await client.get("/api/payout-channels", headers=auth(login.json()["access_token"]))).json()
        assert [(c["name"], c["environment"]) for c in listed] == [
            ("Salaries", "production"),
            ("Sim", Environment.simulator.value),
        ]
