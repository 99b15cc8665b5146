"""A person may start 10 pushes a minute, whatever the entry point; an integration's key is not
counted (its limits come with its plan). The 11th is refused with 429 and creates nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from core.payments.models import Payment
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant


async def _payments(tenant_id: object) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).where(Payment.tenant_id == tenant_id)) or 0)


async def _push(client: httpx.AsyncClient, token: str, n: int) -> httpx.Response:
    return await client.post(
        "/api/stk-push",
        json={"phone": f"07220{n:05d}", "amount": 10},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_person_is_limited_and_a_key_is_not(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, owner = await make_tenant(name="Limits Duka")
    login = await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    for n in range(10):
        r = await _push(client, token, n)
        assert r.status_code == 201, r.text
    refused = await _push(client, token, 10)
    assert refused.status_code == 429
    assert refused.json() == {
        "error": "too_many_requests",
        "detail": "Too many payment requests in a minute. Wait a little and try again.",
    }
    assert await _payments(tenant.id) == 10  # the refused one left no row

    key = await make_api_key(tenant=tenant)
    for n in range(11, 23):  # 12 more through an integration's key: none refused
        r = await _push(client, key, n)
        assert r.status_code == 201, r.text
    assert await _payments(tenant.id) == 22
