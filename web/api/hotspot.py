"""Hotspot providers: routers, plans and vouchers."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from core.auth.models import Role
from core.hotspot.plans import plans
from core.hotspot.provision import check_router
from core.hotspot.routers import routers
from core.hotspot.schemas import PlanIn, PlanOut, RouterIn, RouterOut, VoucherOut
from core.hotspot.setup_script import setup_script
from core.hotspot.use_cases import export_voucher_batch, print_voucher_batch
from core.hotspot.vouchers import vouchers
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from web.deps import CurrentActor, CurrentPrincipal, ReadSession
from web.exports import xlsx_response

router = APIRouter(tags=["hotspot"])


@router.post("/routers", status_code=201)
async def add_router(body: RouterIn, who: CurrentPrincipal) -> RouterOut:
    """Register a MikroTik router. The API password is encrypted at rest and never shown again.
    Check it with `POST /api/routers/{id}/test`."""
    who.require_role(Role.owner)
    async with unit_of_work() as session:
        r = await routers.add(
            session, tenant_id=who.require_tenant(), data=body, box=runtime().secrets, by=who.user_id
        )
        return RouterOut.model_validate(r)


@router.get("/routers")
async def list_routers(who: CurrentPrincipal, session: ReadSession) -> list[RouterOut]:
    who.require_role(Role.owner, Role.manager)
    return [RouterOut.model_validate(r) for r in await routers.list(session, tenant_id=who.require_tenant())]


@router.post("/routers/{router_id}/test")
async def test_router(router_id: uuid.UUID, who: CurrentPrincipal) -> RouterOut:
    """Log in to the router and read its identity, RouterOS version and uptime now. A failure is
    answered 200 with `status: down` and `last_error` saying what to check."""
    who.require_role(Role.owner, Role.manager)
    tenant_id = who.require_tenant()
    async with unit_of_work(readonly=True) as session:
        await routers.get(session, tenant_id=tenant_id, router_id=router_id)  # 404 for another tenant's
    await check_router(router_id)
    async with unit_of_work(readonly=True) as session:
        return RouterOut.model_validate(await routers.get(session, tenant_id=tenant_id, router_id=router_id))


@router.get("/routers/{router_id}/config", response_class=PlainTextResponse)
async def router_config(
    router_id: uuid.UUID, who: CurrentPrincipal, session: ReadSession
) -> PlainTextResponse:
    """A RouterOS script that sets the router up for lipapush: plan profiles, walled garden for the
    portal, a least-privilege API group, PAP login and a login page that sends buyers to the portal.
    Upload it and run `/import file-name=lipapush.rsc`."""
    who.require_role(Role.owner, Role.manager)
    tenant_id = who.require_tenant()
    r = await routers.get(session, tenant_id=tenant_id, router_id=router_id)
    tenant = await tenants.get(session, tenant_id)
    sold = await plans.list(session, tenant_id=tenant_id, router_id=r.id, active_only=True)
    script = setup_script(
        router=r, plans=sold, base_url=runtime().settings.base_url, provider_slug=tenant.slug
    )
    return PlainTextResponse(script, headers={"Content-Disposition": 'attachment; filename="lipapush.rsc"'})


@router.post("/plans", status_code=201)
async def create_plan(body: PlanIn, who: CurrentPrincipal) -> PlanOut:
    who.require_role(Role.owner, Role.manager)
    async with unit_of_work() as session:
        return PlanOut.model_validate(await plans.save(session, tenant_id=who.require_tenant(), data=body))


@router.put("/plans/{plan_id}")
async def update_plan(plan_id: uuid.UUID, body: PlanIn, who: CurrentPrincipal) -> PlanOut:
    """Change a plan. Vouchers already sold keep the price, validity, data and speed they were sold with."""
    who.require_role(Role.owner, Role.manager)
    async with unit_of_work() as session:
        plan = await plans.save(session, tenant_id=who.require_tenant(), data=body, plan_id=plan_id)
        return PlanOut.model_validate(plan)


@router.get("/plans")
async def list_plans(who: CurrentPrincipal, session: ReadSession) -> list[PlanOut]:
    return [PlanOut.model_validate(p) for p in await plans.list(session, tenant_id=who.require_tenant())]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan_id: uuid.UUID
    router_id: uuid.UUID
    count: int = Field(ge=1, le=500)


class BatchOut(BaseModel):
    batch_id: uuid.UUID
    vouchers: list[VoucherOut]


@router.post("/vouchers/batch", status_code=201)
async def generate_batch(body: BatchIn, who: CurrentPrincipal) -> BatchOut:
    """Vouchers for printed cards. Each is `issued` until its router acknowledges it (`provisioned`):
    sell only those."""
    who.require_role(Role.owner, Role.manager)
    tenant_id = who.require_tenant()
    async with unit_of_work() as session:
        tenant = await tenants.get(session, tenant_id)
        r = await routers.get(session, tenant_id=tenant_id, router_id=body.router_id)
        plan = await plans.get(session, tenant_id=tenant_id, plan_id=body.plan_id)
        batch, made = await vouchers.issue_batch(
            session, tenant=tenant, router=r, plan=plan, count=body.count
        )
        return BatchOut(batch_id=batch, vouchers=[VoucherOut.model_validate(v) for v in made])


@router.get("/vouchers/batches/{batch_id}/print", response_class=HTMLResponse)
async def print_batch(
    batch_id: uuid.UUID,
    actor: CurrentActor,
    paper: Annotated[
        Literal["a4", "58mm"], Query(description="a4 sheet of cards, or a 58 mm thermal roll")
    ] = "a4",
) -> HTMLResponse:
    """A printable sheet of a batch's cards (open it and print from the browser)."""
    page, _ = await print_voucher_batch(actor, batch_id, paper=paper)
    return HTMLResponse(page)


@router.get("/vouchers/batches/{batch_id}/export-excel", response_class=StreamingResponse)
async def export_batch(batch_id: uuid.UUID, actor: CurrentActor) -> StreamingResponse:
    return xlsx_response(await export_voucher_batch(actor, batch_id))


@router.post("/vouchers/{code}/revoke")
async def revoke_voucher(code: str, who: CurrentPrincipal) -> VoucherOut:
    """Stop a voucher now: it is taken off its router (user and session)."""
    who.require_role(Role.owner, Role.manager)
    async with unit_of_work() as session:
        v = await vouchers.revoke(session, tenant_id=who.require_tenant(), code=code, by=who.user_id)
        return VoucherOut.model_validate(v)


@router.post("/tickets/{code}/activate")
async def activate_ticket(code: str, who: CurrentPrincipal) -> VoucherOut:
    """Support: send a voucher to its router again (for a buyer whose login fails)."""
    who.require_role(Role.owner, Role.manager)
    async with unit_of_work() as session:
        return VoucherOut.model_validate(
            await vouchers.resend(session, tenant_id=who.require_tenant(), code=code)
        )
