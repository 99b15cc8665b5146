"""Test mode that is real, through the API: which host each key's push reaches, which keys a business
may make, and that a key never sees the other mode's payments.

The test server runs three Daraja simulators (tests/conftest.py): the one mounted at /sim/daraja (the
`simulator` environment), and one each behind DARAJA_SANDBOX_URL and DARAJA_PRODUCTION_URL. Every
push body each received is listed at its /_sim/requests, so "never reached" is a fact, not a mock."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from core.auth.service import auth
from core.payments.models import Payment
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import _channel_for, make_api_key, make_tenant
from tests.support.services import TestDatabase
from tests.support.waiting import wait_for_final
from tests.web.test_cli_support import Run, clean_env, lipapush


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fresh_phone() -> str:
    """A 07… number of this test alone (last four 5555: the simulators' plain success)."""
    return f"07{10 + secrets.randbelow(20)}{secrets.randbelow(100):02d}5555"


def intl(local: str) -> str:
    return "254" + local[1:]


async def pushes_to(url: str, local_phone: str) -> int:
    """How many STK pushes for this phone the simulator at `url` received."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{url}/_sim/requests")
    r.raise_for_status()
    return sum(1 for body in r.json() if body.get("PhoneNumber") == intl(local_phone))


def hosts(server: LiveServer) -> dict[str, str]:
    return {
        "simulator": f"{server.url}/sim/daraja",
        "sandbox": server.sandbox_url,
        "production": server.production_url,
    }


async def payments_of(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(
            await session.scalar(select(func.count(Payment.id)).where(Payment.tenant_id == tenant.id)) or 0
        )


async def switch_channel(tenant: Tenant, environment: Environment, *, verified: bool = True) -> None:
    """The business saves other channel settings (one channel per business for now)."""
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        channel = await tenants.save_channel(
            session,
            tenant=row,
            data=_channel_for(environment, ChannelKind.paybill),
            box=runtime().secrets,
            by=None,
        )
        if verified:
            await tenants.mark_verified(session, channel=channel)


async def owner_token(client: httpx.AsyncClient, email: str) -> str:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.mark.parametrize(
    ("environment", "prefix", "mode"),
    [
        (Environment.simulator, "lp_test_", "test"),
        (Environment.sandbox, "lp_test_", "test"),
        (Environment.production, "lp_live_", "live"),
    ],
)
async def test_each_key_reaches_only_its_own_host(
    server: LiveServer, client: httpx.AsyncClient, environment: Environment, prefix: str, mode: str
) -> None:
    """A test key's push reaches the simulator or the sandbox and never production; a live key's
    reaches production and never the simulator or the sandbox. The key's mode comes from the
    business's channel when none is asked for."""
    _tenant, owner = await make_tenant(environment=environment)
    token = await owner_token(client, owner.email)
    made = await client.post("/api/api-keys", json={"name": "shop"}, headers=bearer(token))
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith(prefix) and made.json()["mode"] == mode

    phone = fresh_phone()
    r = await client.post("/api/stk-push", json={"phone": phone, "amount": 40}, headers=bearer(key))
    assert r.status_code == 201, r.text
    assert r.json()["mode"] == mode
    final = await wait_for_final(client, key, r.json()["id"])
    assert final["status"] == "success"

    reached = {name: await pushes_to(url, phone) for name, url in hosts(server).items()}
    assert reached == {name: int(name == environment.value) for name in reached}


async def test_apikey_create_defaults_to_the_business_mode(
    server: LiveServer, database: TestDatabase, tmp_path: Path
) -> None:
    """`lipapush apikey create` (the README walk-through) on a simulator business prints a test key,
    on a verified production business a live one; a live key for the simulator business is refused."""
    _, sim_owner = await make_tenant(environment=Environment.simulator)
    _, live_owner = await make_tenant()
    env = clean_env(tmp_path / "home", **database.env(), COLUMNS="250")

    async def cli(*args: str) -> Run:
        return await asyncio.to_thread(lipapush, *args, env=env, cwd=tmp_path)

    made = await cli("apikey", "create", "--tenant", sim_owner.email)
    assert made.returncode == 0, made
    assert made.stdout.strip().startswith("lp_test_")
    made = await cli("apikey", "create", "--tenant", live_owner.email)
    assert made.returncode == 0, made
    assert made.stdout.strip().startswith("lp_live_")
    refused = await cli("apikey", "create", "--tenant", sim_owner.email, "--mode", "live")
    assert refused.returncode == 1, refused
    assert "Live keys push only through a verified production M-Pesa channel" in refused.stderr


async def test_a_key_of_the_other_mode_is_refused_with_what_to_do(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    _sim_tenant, sim_owner = await make_tenant(environment=Environment.simulator)
    token = await owner_token(client, sim_owner.email)
    r = await client.post("/api/api-keys", json={"name": "live", "mode": "live"}, headers=bearer(token))
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "live_mode_not_ready"
    assert r.json()["detail"].startswith(
        "Live keys push only through a verified production M-Pesa channel, and this app's channel is a "
        "simulator one, so its keys are test keys: create a test key (mode test) to try payments now. "
        "To go live, add your production channel (environment production: POST /api/channels, or "
        "Settings → Channels), approve its KES 1 verification payment, and create an app on it"
    )

    _live_tenant, live_owner = await make_tenant()
    token = await owner_token(client, live_owner.email)
    r = await client.post("/api/api-keys", json={"name": "test", "mode": "test"}, headers=bearer(token))
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "mode_mismatch"
    assert r.json()["detail"].startswith(
        "Test keys never reach production, and this app's M-Pesa channel is a production one: its keys "
        "are live keys. Create a live key (mode live) instead."
    )

    # A production channel not verified yet: no live key, and the message says how to verify.
    unverified, unverified_owner = await make_tenant(verified=False)
    token = await owner_token(client, unverified_owner.email)
    r = await client.post("/api/api-keys", json={"name": "live"}, headers=bearer(token))
    assert (r.status_code, r.json()) == (
        409,
        {
            "error": "live_mode_not_ready",
            "detail": "Live keys are refused until the production M-Pesa channel is verified: approve the "
            "KES 1 verification payment sent to the owner's phone (or save the channel settings again to "
            "resend it), then create the live key.",
        },
    )
    async with unit_of_work(readonly=True) as session:
        assert await auth.list_api_keys(session, tenant_id=unverified.id) == []


async def test_pushes_with_a_key_of_the_wrong_mode_write_nothing(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    """The channel changed under a key: its pushes are refused before any payment is recorded and
    before any Daraja host is called."""
    tenant, _ = await make_tenant()
    live_key = await make_api_key(tenant=tenant)
    await switch_channel(tenant, Environment.simulator)
    phone = fresh_phone()
    r = await client.post("/api/stk-push", json={"phone": phone, "amount": 40}, headers=bearer(live_key))
    assert r.status_code == 409, r.text
    assert r.json() == {
        "error": "live_mode_not_ready",
        "detail": "This is a live key (lp_live_…) and its app's M-Pesa channel is a simulator one: live keys "
        "push only through a verified production channel. Use a test key (lp_test_…) to try payments, or "
        "add your production channel (POST /api/channels, environment production), approve its KES 1 "
        "verification payment and use a key of an app on it.",
    }

    test_key = await make_api_key(tenant=tenant)
    assert test_key.startswith("lp_test_")
    await switch_channel(tenant, Environment.production, verified=False)
    r = await client.post("/api/stk-push", json={"phone": phone, "amount": 40}, headers=bearer(test_key))
    assert (r.status_code, r.json()["error"]) == (409, "mode_mismatch")
    assert r.json()["detail"] == (
        "This is a test key (lp_test_…) and its app's M-Pesa channel is a production one: test keys never "
        "reach real money. Use a live key (lp_live_…) for real payments, or an app on a sandbox or simulator "
        "channel for tests."
    )
    # the live key again, now on a production channel that is not verified
    r = await client.post("/api/stk-push", json={"phone": phone, "amount": 40}, headers=bearer(live_key))
    assert (r.status_code, r.json()["error"]) == (409, "live_mode_not_ready")
    assert "production M-Pesa channel is not verified yet: approve the KES 1" in r.json()["detail"]

    assert await payments_of(tenant) == 0
    assert {name: await pushes_to(url, phone) for name, url in hosts(server).items()} == {
        "simulator": 0,
        "sandbox": 0,
        "production": 0,
    }


async def test_a_key_never_sees_the_other_modes_payments(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    """Live payments, then the business moves to the simulator and makes test ones: each key sees its
    own mode only (the other's id is 404, as an unknown one); the owner sees both and may filter."""
    tenant, owner = await make_tenant()
    live_key = await make_api_key(tenant=tenant)
    live = await client.post(
        "/api/stk-push", json={"phone": fresh_phone(), "amount": 40}, headers=bearer(live_key)
    )
    assert live.status_code == 201, live.text
    await wait_for_final(client, live_key, live.json()["id"])

    await switch_channel(tenant, Environment.simulator)
    test_key = await make_api_key(tenant=tenant)
    test = await client.post(
        "/api/stk-push", json={"phone": fresh_phone(), "amount": 30}, headers=bearer(test_key)
    )
    assert test.status_code == 201, test.text
    assert test.json()["mode"] == "test"
    await wait_for_final(client, test_key, test.json()["id"])
    live_id, test_id = live.json()["id"], test.json()["id"]

    unknown = {"error": "not_found", "detail": "No such transaction."}
    r = await client.get(f"/api/transactions/{live_id}", headers=bearer(test_key))
    assert (r.status_code, r.json()) == (404, unknown)
    r = await client.get(f"/api/transactions/{test_id}", headers=bearer(live_key))
    assert (r.status_code, r.json()) == (404, unknown)

    def ids(page: httpx.Response) -> list[str]:
        assert page.status_code == 200, page.text
        return [p["id"] for p in page.json()["items"]]

    assert ids(await client.get("/api/transactions", headers=bearer(test_key))) == [test_id]
    assert ids(await client.get("/api/transactions", headers=bearer(live_key))) == [live_id]
    # a key asking for the other mode still gets only its own
    assert ids(await client.get("/api/transactions?mode=live", headers=bearer(test_key))) == [test_id]

    token = await owner_token(client, owner.email)
    assert set(ids(await client.get("/api/transactions", headers=bearer(token)))) == {live_id, test_id}
    assert test_id in ids(await client.get("/api/transactions?mode=test", headers=bearer(token)))
    assert live_id not in ids(await client.get("/api/transactions?mode=test", headers=bearer(token)))
    r = await client.get(f"/api/transactions/{live_id}", headers=bearer(token))
    assert (r.status_code, r.json()["mode"]) == (200, "live")
