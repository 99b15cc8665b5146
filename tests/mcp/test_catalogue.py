"""The rules behind the MCP tools: every tool the server has is in the catalogue (an unlisted one
would be invisible to every key, a listed one missing would be refused), each needs a permission an
API key can hold through exactly one scope, and what the audit keeps of arguments hides secrets."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from core.access.actor import Actor
from core.access.permissions import API_KEY_PERMISSIONS, PERMISSION_SCOPE, ApiScope
from core.agents.catalogue import TOOLS, visible
from core.agents.redact import redact
from core.confirmations.models import ConfirmAction, Confirmation
from core.confirmations.service import issue, prune
from core.db import utcnow
from core.runtime import unit_of_work
from core.tenants.models import Environment, TenantKind
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from web.mcp.server import build_server


async def test_the_server_has_exactly_the_catalogued_tools() -> None:
    listed = {t.name for t in await build_server(recorder=None).list_tools()}
    assert listed == set(TOOLS)
    for name, rule in TOOLS.items():
        assert rule.permission in API_KEY_PERMISSIONS, name
        assert rule.permission in PERMISSION_SCOPE, name


def test_money_tools_need_payouts_write_and_hotspot_tools_a_hotspot_provider() -> None:
    def key(*scopes: ApiScope) -> Actor:
        return Actor.for_api_key(api_key_id=uuid.uuid4(), tenant_id=uuid.uuid4(), scopes=scopes)

    every = key(*ApiScope)
    assert visible(every, TenantKind.business) == set(TOOLS) - {
        "list_plans",
        "issue_vouchers",
        "voucher_status",
    }
    assert {"list_plans", "issue_vouchers", "voucher_status"} <= visible(every, TenantKind.hotspot)
    reader = key(ApiScope.payouts_read)
    assert visible(reader, TenantKind.business) == {"get_account_balance", "get_payout"}
    assert {n for n in visible(every, TenantKind.business) if TOOLS[n].money} == {
        "request_payout",
        "reverse_payment",
    }


def test_redaction_hides_secrets_masks_phones_and_bounds_the_row() -> None:
    out = redact(
        {
            "confirmation_token": "cf_abc",
            "code": "123456",
            "phone": "254722000111",
            "idempotency_key": "order-7",
            "reason": "x" * 500,
            "nested": {"password": "p", "list": list(range(50))},
        }
    )
    assert out["confirmation_token"] == "***" and out["code"] == "***"
    assert out["phone"] == "2547****0111"
    assert out["idempotency_key"] == "order-7"
    assert out["reason"] == "x" * 100 + "…"
    assert out["nested"]["password"] == "***" and len(out["nested"]["list"]) == 20


async def test_tokens_expired_over_a_week_ago_are_pruned(server: LiveServer) -> None:
    tenant, _ = await make_tenant(environment=Environment.simulator)
    actor = Actor.for_api_key(api_key_id=uuid.uuid4(), tenant_id=tenant.id, scopes=[ApiScope.payouts_write])
    async with unit_of_work() as session:
        old, _ = await issue(session, actor, action=ConfirmAction.payout, payload={}, ttl=timedelta(days=-8))
        fresh, _ = await issue(session, actor, action=ConfirmAction.payout, payload={})
        old_id, fresh_id = old.id, fresh.id
    async with unit_of_work() as session:
        await prune(session, now=utcnow())
    async with unit_of_work(readonly=True) as session:
        left = set(
            await session.scalars(select(Confirmation.id).where(Confirmation.id.in_([old_id, fresh_id])))
        )
        assert left == {fresh_id}
