"""The hotspot use cases: who may run each (the same answer in the API, the panel and the bot), the
audit rows every entry point now leaves, and the anonymous buyer's actor."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from core.access.actor import Actor, Via
from core.access.use_case import REGISTRY
from core.audit.models import AuditLog
from core.auth.models import Role
from core.errors import NotFound, PermissionDenied
from core.hotspot import (
    use_cases,
    use_cases_admin,
    use_cases_plans,
    use_cases_portal,
    use_cases_provider,
    use_cases_routers,
)
from core.hotspot.models import Plan, PlanKind
from core.hotspot.schemas import PlanIn, RouterIn
from core.runtime import unit_of_work
from sim.routeros import RouterSim
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant

# imported for their use cases (REGISTRY)
MODULES = (
    use_cases,
    use_cases_admin,
    use_cases_plans,
    use_cases_portal,
    use_cases_provider,
    use_cases_routers,
)
OWNER, M, C = Role.owner, Role.manager, Role.cashier
# Who may run each hotspot use case: what the API's, the panel's and the bot's checks said before they
# moved into core (the stricter one where they disagreed). "ro" is an admin viewing read-only.
WHO: dict[str, set[object]] = {
    # vouchers
    "issue_voucher_batch": {OWNER, M},
    "view_voucher_batch": {OWNER, M, "ro"},
    "print_voucher_batch": {OWNER, M, "ro"},
    "export_voucher_batch": {OWNER, M, "ro"},
    "voucher_page": {OWNER, M, "ro"},
    "find_voucher": {OWNER, M, "ro"},
    "revoke_voucher": {OWNER, M},
    "resend_voucher": {OWNER, M},
    "text_voucher_again": {OWNER, M},
    # routers
    "add_router": {OWNER},
    "list_routers": {OWNER, M, "ro"},
    "check_router_connection": {OWNER, M},
    "check_all_routers": {OWNER, M},
    "router_setup_script": {OWNER, M, "ro"},
    # plans
    "create_plan": {OWNER, M},
    "update_plan": {OWNER, M},
    "delete_plan": {OWNER, M},
    "list_plans": {OWNER, M, "ro"},
    "plans_view": {OWNER, M, "ro"},
    "card_choices": {OWNER, M},
    # the provider's own view, the subscription
    "wifi_today": {OWNER, M, "ro"},
    "wifi_overview": {OWNER, M, "ro"},
    "wifi_sales": {OWNER, M, "ro"},
    "subscription_offer": {OWNER, "ro"},
    "start_subscription_order": {OWNER},
    "subscription_order": {OWNER, "ro"},
    "subscription_status": {OWNER, "ro"},
    "subscription_plans": {OWNER, "ro"},
    # the platform admin's reports: no business role reads every provider
    "providers_report": set(),
    "every_router": set(),
    "sales_by_day": set(),
}
# The buyer's side runs as the platform (Actor.system); staff may look at it too.
BUYER = {
    "routers_for_sale",
    "plans_for_sale",
    "buy_wifi",
    "portal_view",
    "purchase",
    "voucher_by_code",
    "vouchers_by_receipt",
    "text_vouchers_to_phone",
}


def _actors() -> dict[object, Actor]:
    tid = uuid.uuid4()
    people: dict[object, Actor] = {
        role: Actor.for_user(user_id=uuid.uuid4(), tenant_id=tid, role=role, via=Via.api)
        for role in (OWNER, M, C)
    }
    people["ro"] = Actor.impersonating(admin_id=uuid.uuid4(), tenant_id=tid, writes=False)
    return people


def test_every_hotspot_use_case_is_listed_and_answers_as_before() -> None:
    names = {name.rsplit(".", 1)[1] for name in REGISTRY if name.startswith("hotspot.")}
    assert names == set(WHO) | BUYER
    specs = {name.rsplit(".", 1)[1]: spec for name, spec in REGISTRY.items() if name.startswith("hotspot.")}
    system = Actor.system(via=Via.ussd).acting_for(uuid.uuid4())
    for name, spec in specs.items():
        assert system.can(spec.permission), name
        if name in BUYER:
            continue
        allowed = {who for who, actor in _actors().items() if actor.can(spec.permission)}
        assert allowed == WHO[name], name
        # a change is audit-logged; a read is a query
        assert spec.query or spec.audit, name


async def test_refusals_name_the_roles(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Refusing WiFi")
    manager = Actor.for_user(
        user_id=owner.id, tenant_id=tenant.id, role=M, via=Via.telegram, tenant_name="Refusing WiFi"
    )
    cashier = Actor.for_user(
        user_id=owner.id, tenant_id=tenant.id, role=C, via=Via.panel, tenant_name="Refusing WiFi"
    )
    with pytest.raises(PermissionDenied, match=r"This is for the owner of Refusing WiFi\."):
        await use_cases_routers.add_router(
            manager, RouterIn(name="x", host="10.0.0.1", username="api", password="pw")
        )
    with pytest.raises(PermissionDenied, match=r"This is for the owner or manager of Refusing WiFi\."):
        await use_cases_provider.wifi_overview(cashier)
    ro = Actor.impersonating(admin_id=owner.id, tenant_id=tenant.id, writes=False)
    with pytest.raises(PermissionDenied, match="read-only"):
        await use_cases_plans.create_plan(ro, PlanIn(name="1 hour", price=20, validity_minutes=60))
    async with unit_of_work(readonly=True) as session:
        assert (await session.scalars(select(Plan).where(Plan.tenant_id == tenant.id))).first() is None


HOTSPOT = {"router", "plan", "vouchers", "voucher"}


async def audit_rows(tenant_id: uuid.UUID) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog).where(AuditLog.tenant_id == tenant_id).order_by(AuditLog.id)
            )
        )


async def test_api_changes_are_audited_as_in_the_panel(client: httpx.AsyncClient) -> None:
    """The API wrote no row for plans, batches, resends or router tests; the use cases write them."""
    tenant, _ = await make_tenant(name="Audited WiFi")
    h = {"Authorization": f"Bearer {await make_api_key(tenant=tenant)}"}
    async with RouterSim(username="api", password="pw") as sim:
        r = await client.post(
            "/api/routers",
            json={"name": "gate", "host": "127.0.0.1", "port": sim.port, "username": "api", "password": "pw"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        tested = await client.post(f"/api/routers/{rid}/test", headers=h)
        assert tested.status_code == 200 and tested.json()["status"] == "up"
        plan = await client.post(
            "/api/plans", json={"name": "1 hour", "price": 20, "validity_minutes": 60}, headers=h
        )
        assert plan.status_code == 201
        pid = plan.json()["id"]
        changed = await client.put(
            f"/api/plans/{pid}", json={"name": "1 hour", "price": 25, "validity_minutes": 60}, headers=h
        )
        assert changed.status_code == 200
        batch = await client.post(
            "/api/vouchers/batch", json={"plan_id": pid, "router_id": rid, "count": 2}, headers=h
        )
        assert batch.status_code == 201
        code = batch.json()["vouchers"][0]["code"]
        assert (await client.post(f"/api/tickets/{code}/activate", headers=h)).status_code == 200
        assert (await client.post(f"/api/vouchers/{code}/revoke", headers=h)).status_code == 200
        again = await client.post(f"/api/vouchers/{code}/revoke", headers=h)  # nothing left to change
        assert again.status_code == 200 and again.json()["status"] == "revoked"

        rows = [a for a in await audit_rows(tenant.id) if a.action.split(".")[0] in HOTSPOT]
        actions = [a.action for a in rows]
        assert actions == [
            "router.added",
            "router.tested",
            "plan.created",
            "plan.updated",
            "vouchers.batch",
            "voucher.resent",
            "voucher.revoked",
        ]
        assert all(a.detail["via"] == "api" and a.detail["api_key_id"] for a in rows)
        by = {a.action: a for a in rows}
        assert by["router.added"].target == rid and by["router.tested"].detail["answered"] is True
        assert (by["plan.updated"].target, by["plan.updated"].detail["price"]) == (pid, 25)
        assert (by["vouchers.batch"].target, by["vouchers.batch"].detail["count"]) == (
            batch.json()["batch_id"],
            2,
        )
        assert by["voucher.revoked"].target == code


async def test_buyer_side_runs_as_the_platform_for_one_provider(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Buyer WiFi")
    other, _ = await make_tenant(name="Other WiFi")
    staff = Actor.for_user(user_id=owner.id, tenant_id=tenant.id, role=OWNER, via=Via.api)
    box = await use_cases_routers.add_router(
        staff, RouterIn(name="gate", host="10.0.0.1", username="api", password="pw")
    )
    async with unit_of_work() as session:
        session.add(
            Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        )
    buyer = Actor.system(via=Via.ussd).acting_for(tenant.id)
    assert [r.name for r in await use_cases_portal.routers_for_sale(buyer)] == ["gate"]
    assert [p.name for p in await use_cases_portal.plans_for_sale(buyer, box.id)] == ["1 hour"]
    assert await use_cases_portal.routers_for_sale(Actor.system(via=Via.ussd).acting_for(other.id)) == []
    seen = await use_cases_portal.portal_view(
        Actor.system(via=Via.api), provider=tenant.slug, router_id=box.id
    )
    assert seen.state is use_cases_portal.PortalState.open and [p.name for p in seen.plans] == ["1 hour"]
    elsewhere = await use_cases_portal.portal_view(
        Actor.system(via=Via.api), provider=other.slug, router_id=box.id
    )
    assert elsewhere.state is use_cases_portal.PortalState.unknown
    with pytest.raises(NotFound, match="No voucher has that code"):
        await use_cases_portal.voucher_by_code(buyer, "NOPE2345")
