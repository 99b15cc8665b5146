"""A hotspot provider's WiFi plans, from any entry point: create, change, delete (each audit-logged),
list. Vouchers already sold keep the terms they were sold with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.hotspot.models import Plan, Router
from core.hotspot.plans import plans
from core.hotspot.routers import routers
from core.hotspot.schemas import PlanIn


@use_case(Permission.hotspot_manage, audit="plan.created")
async def create_plan(actor: Actor, data: PlanIn) -> Plan:
    """A new plan; a name the provider already uses is 409, another provider's router 404."""
    async with unit_of_work(actor) as uow:
        plan = await plans.save(uow.session, tenant_id=actor.require_tenant(), data=data)
        await uow.audit(
            "plan.created",
            target=str(plan.id),
            name=plan.name,
            price=plan.price,
            validity_minutes=plan.validity_minutes,
        )
        return plan


@use_case(Permission.hotspot_manage, audit="plan.updated")
async def update_plan(actor: Actor, plan_id: uuid.UUID, data: PlanIn) -> Plan:
    """Change a plan. Vouchers already sold keep the price, validity, data and speed they were sold with."""
    async with unit_of_work(actor) as uow:
        plan = await plans.save(uow.session, tenant_id=actor.require_tenant(), data=data, plan_id=plan_id)
        await uow.audit(
            "plan.updated",
            target=str(plan.id),
            name=plan.name,
            price=plan.price,
            validity_minutes=plan.validity_minutes,
        )
        return plan


@use_case(Permission.hotspot_manage, audit="plan.deleted")
async def delete_plan(actor: Actor, plan_id: uuid.UUID) -> Plan:
    """Remove a plan. Vouchers and orders keep the terms they were sold with."""
    async with unit_of_work(actor) as uow:
        plan = await plans.delete(uow.session, tenant_id=actor.require_tenant(), plan_id=plan_id)
        await uow.audit("plan.deleted", target=str(plan_id), name=plan.name)
        return plan


@use_case(Permission.hotspot_overview, query=True)
async def list_plans(actor: Actor) -> list[Plan]:
    async with unit_of_work(actor, readonly=True) as uow:
        return await plans.list(uow.session, tenant_id=actor.require_tenant())


@dataclass(frozen=True)
class PlansView:
    plans: list[Plan]
    router_names: dict[uuid.UUID, str]
    plan: Plan | None  # the one being edited


@use_case(Permission.hotspot_overview, query=True)
async def plans_view(actor: Actor, *, editing: uuid.UUID | None = None) -> PlansView:
    """The plans with their routers' names, and the plan `editing` (404 if it is not the provider's)."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = actor.require_tenant()
        mine = await plans.list(uow.session, tenant_id=tenant_id)
        names = {r.id: r.name for r in await routers.list(uow.session, tenant_id=tenant_id)}
        plan = await plans.get(uow.session, tenant_id=tenant_id, plan_id=editing) if editing else None
        return PlansView(mine, names, plan)


@dataclass(frozen=True)
class CardChoices:
    """What printed cards can be for: the routers, and once one is chosen, the plans on sale there."""

    routers: list[Router]
    router: Router | None
    plans: list[Plan]


@use_case(Permission.vouchers_issue, query=True)
async def card_choices(actor: Actor, *, router_id: uuid.UUID | None = None) -> CardChoices:
    """The routers, and the active plans sold on `router_id` (or on the only router there is)."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = actor.require_tenant()
        if router_id is not None:
            boxes = [await routers.get(uow.session, tenant_id=tenant_id, router_id=router_id)]
        else:
            boxes = await routers.list(uow.session, tenant_id=tenant_id)
        chosen = boxes[0] if len(boxes) == 1 else None
        sold = (
            await plans.list(uow.session, tenant_id=tenant_id, router_id=chosen.id, active_only=True)
            if chosen is not None
            else []
        )
        return CardChoices(boxes, chosen, sold)
