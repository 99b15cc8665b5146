"""Issue 15, finding 8: every accepted push is a prompt on someone's phone, so an API key may start only
so many a minute, and one business may prompt one phone only so many times a minute. The refusal is a
429 with Retry-After and a body naming the limit; it creates nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from core.config import load_settings
from core.payments.models import Payment
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant


async def _payments(tenant_id: object) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).where(Payment.tenant_id == tenant_id)) or 0)


async def _push(
    client: httpx.AsyncClient, key: str, phone: str, *, idempotency_key: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post("/api/stk-push", json={"phone": phone, "amount": 10}, headers=headers)


def _check_refusal(r: httpx.Response, *, limit: str, allowed: int, detail_starts: str) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert set(body) == {"error", "detail", "limit", "allowed", "window_seconds", "retry_after", "resets_at"}
    assert (body["error"], body["limit"], body["allowed"], body["window_seconds"]) == (
        "too_many_requests",
        limit,
        allowed,
        60,
    )
    assert body["detail"].startswith(detail_starts), body["detail"]
    wait = body["retry_after"]
    assert isinstance(wait, int) and 1 <= wait <= 60
    assert r.headers["Retry-After"] == str(wait)
    assert body["detail"].endswith(f"Try again in {wait} second{'s' if wait != 1 else ''}.")
    resets_at = datetime.fromisoformat(body["resets_at"].replace("Z", "+00:00"))
    assert resets_at.tzinfo is not None and resets_at > datetime(2020, 1, 1, tzinfo=UTC)


def test_defaults_are_more_than_a_real_merchant_sends() -> None:
    settings = load_settings()
    assert (settings.STK_PUSHES_PER_KEY_PER_MINUTE, settings.STK_PUSHES_PER_PHONE_PER_MINUTE) == (120, 5)


async def test_a_key_past_its_pushes_a_minute_is_refused(
    server: LiveServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default is 120 a minute; 3 keeps the test short, the rule is the same.
    monkeypatch.setattr(server.settings, "STK_PUSHES_PER_KEY_PER_MINUTE", 3)
    tenant, _ = await make_tenant(name="Flood Key Duka")
    key = await make_api_key(tenant=tenant)
    for n in range(3):
        r = await _push(client, key, f"07221{n:05d}", idempotency_key=f"order-{n}")
        assert r.status_code == 201, r.text
    refused = await _push(client, key, "0722100099")
    _check_refusal(
        refused,
        limit="per_key",
        allowed=3,
        detail_starts="This API key has started 3 payment requests in the last minute, the most it may.",
    )
    assert await _payments(tenant.id) == 3  # the refused push left no row and sent no prompt
    # A replay of an accepted push sends no prompt, so the limit does not refuse it.
    replay = await _push(client, key, "0722100001", idempotency_key="order-1")
    assert replay.status_code == 201, replay.text
    assert await _payments(tenant.id) == 3
    # The limit is the key's: the business's other key still pushes.
    other = await make_api_key(tenant=tenant)
    assert (await _push(client, other, "0722100099")).status_code == 201


async def test_one_phone_gets_five_prompts_a_minute_from_one_business(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, _ = await make_tenant(name="Flood Phone Duka")
    key = await make_api_key(tenant=tenant)
    for n in range(5):
        r = await _push(client, key, "0722200111", idempotency_key=f"order-{n}")
        assert r.status_code == 201, r.text
    refused = await _push(client, key, "0722200111")
    _check_refusal(
        refused,
        limit="per_phone",
        allowed=5,
        detail_starts="2547****0111 has had 5 payment prompts from this business in the last minute, "
        "the most one phone may get.",
    )
    assert await _payments(tenant.id) == 5
    # A replay sends no prompt: it answers the first payment, not 429.
    replay = await _push(client, key, "0722200111", idempotency_key="order-0")
    assert replay.status_code == 201, replay.text
    assert await _payments(tenant.id) == 5
    # Another phone still gets its prompt.
    assert (await _push(client, key, "0722200222")).status_code == 201
    # Counted per business: another business may still prompt that phone.
    other_tenant, _ = await make_tenant(name="Other Duka")
    other_key = await make_api_key(tenant=other_tenant)
    assert (await _push(client, other_key, "0722200111")).status_code == 201


async def test_a_person_shares_the_phone_limit(server: LiveServer, client: httpx.AsyncClient) -> None:
    """The per-phone limit protects the phone's owner, whoever asks: a signed-in person's sixth prompt
    to one phone in a minute is refused too (their own 10 pushes a minute is a separate limit)."""
    _, owner = await make_tenant(name="Flood Person Duka")
    login = await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    for _ in range(5):
        assert (await _push(client, token, "0722300111")).status_code == 201
    refused = await _push(client, token, "0722300111")
    assert (refused.status_code, refused.json()["limit"]) == (429, "per_phone")
