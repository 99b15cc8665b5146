"""A hotspot provider's MikroTik routers, from any entry point: add one (the owner's; the password is
encrypted and never shown again), list them with their health, test the connection now, and the
RouterOS setup script."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.hotspot.models import Router
from core.hotspot.plans import plans
from core.hotspot.provision import check_router, reconcile_router
from core.hotspot.reports import provider_day
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.hotspot.setup_script import setup_script
from core.hotspot.use_cases import provider_of
from core.hotspot.use_cases_provider import WifiToday
from core.runtime import runtime


@use_case(Permission.routers_add, audit="router.added")
async def add_router(actor: Actor, data: RouterIn) -> Router:
    """Register a MikroTik router; a second one with the same name is 409."""
    async with unit_of_work(actor) as uow:
        r = await routers.add(
            uow.session,
            tenant_id=actor.require_tenant(),
            data=data,
            box=runtime().secrets,
            by=actor.audit_user_id,
            audit=False,
        )
        await uow.audit("router.added", target=str(r.id))
        return r


@use_case(Permission.hotspot_overview, query=True)
async def list_routers(actor: Actor) -> list[Router]:
    """The provider's routers by name, with what the last check found (status, last seen, error)."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await routers.list(uow.session, tenant_id=actor.require_tenant())


@dataclass(frozen=True)
class CheckedRouter:
    router: Router
    answered: bool
    error: str | None


@use_case(Permission.hotspot_manage, audit="router.tested")
async def check_router_connection(actor: Actor, router_id: uuid.UUID) -> CheckedRouter:
    """Log in to the router now and record its identity, RouterOS version and uptime, or what failed
    (the router is then shown down at once)."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        await routers.get(uow.session, tenant_id=tenant_id, router_id=router_id)  # 404 for another's
    info, error = await check_router(router_id)
    async with unit_of_work(actor) as uow:
        await uow.audit(
            "router.tested",
            target=str(router_id),
            answered=info is not None,
            error=(error or "")[:200] or None,
        )
        r = await routers.get(uow.session, tenant_id=tenant_id, router_id=router_id)
        return CheckedRouter(r, info is not None, error)


@use_case(Permission.hotspot_manage, audit="router.tested")
async def check_all_routers(actor: Actor) -> WifiToday:
    """Test every router of the provider now; one that answers is also reconciled (online count,
    drift). One `router.tested` row per router; the answer is today's view with what they said."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        ids = [r.id for r in await routers.list(uow.session, tenant_id=tenant_id)]

    async def one(rid: uuid.UUID) -> tuple[uuid.UUID, bool, str | None]:
        info, error = await check_router(rid)
        if info is not None:
            await reconcile_router(router_id=str(rid))
        return rid, info is not None, error

    results = await asyncio.gather(*(one(rid) for rid in ids))
    if results:
        async with unit_of_work(actor) as uow:
            for rid, answered, error in results:
                await uow.audit(
                    "router.tested", target=str(rid), answered=answered, error=(error or "")[:200] or None
                )
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        return WifiToday(tenant, await provider_day(uow.session, tenant_id=tenant.id))


@use_case(Permission.hotspot_overview, query=True)
async def router_setup_script(actor: Actor, router_id: uuid.UUID) -> str:
    """A RouterOS script that sets the router up for lipapush: plan profiles, walled garden for the
    portal, a least-privilege API group, PAP login and a login page that sends buyers to the portal."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        r = await routers.get(uow.session, tenant_id=tenant.id, router_id=router_id)
        sold = await plans.list(uow.session, tenant_id=tenant.id, router_id=r.id, active_only=True)
        return setup_script(
            router=r, plans=sold, base_url=runtime().settings.base_url, provider_slug=tenant.slug
        )
