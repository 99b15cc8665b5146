"""Hotspot providers: routers, plans and vouchers."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from core.hotspot import use_cases as voucher_cases
from core.hotspot import use_cases_plans as plan_cases
from core.hotspot import use_cases_routers as router_cases
from core.hotspot.schemas import PlanIn, PlanOut, RouterIn, RouterOut, VoucherOut
from web.deps import CurrentActor
from web.exports import xlsx_response

router = APIRouter(tags=["hotspot"])


@router.post("/routers", status_code=201)
async def add_router(body: RouterIn, actor: CurrentActor) -> RouterOut:
    """Register a MikroTik router. The API password is encrypted at rest and never shown again.
    Check it with `POST /api/routers/{id}/test`."""
    return RouterOut.model_validate(await router_cases.add_router(actor, body))


@router.get("/routers")
async def list_routers(actor: CurrentActor) -> list[RouterOut]:
    return [RouterOut.model_validate(r) for r in await router_cases.list_routers(actor)]


@router.post("/routers/{router_id}/test")
async def test_router(router_id: uuid.UUID, actor: CurrentActor) -> RouterOut:
    """Log in to the router and read its identity, RouterOS version and uptime now. A failure is
    answered 200 with `status: down` and `last_error` saying what to check."""
    checked = await router_cases.check_router_connection(actor, router_id)
    return RouterOut.model_validate(checked.router)


@router.get("/routers/{router_id}/config", response_class=PlainTextResponse)
async def router_config(router_id: uuid.UUID, actor: CurrentActor) -> PlainTextResponse:
    """A RouterOS script that sets the router up for lipapush: plan profiles, walled garden for the
    portal, a least-privilege API group, PAP login and a login page that sends buyers to the portal.
    Upload it and run `/import file-name=lipapush.rsc`."""
    script = await router_cases.router_setup_script(actor, router_id)
    return PlainTextResponse(script, headers={"Content-Disposition": 'attachment; filename="lipapush.rsc"'})


@router.post("/plans", status_code=201)
async def create_plan(body: PlanIn, actor: CurrentActor) -> PlanOut:
    return PlanOut.model_validate(await plan_cases.create_plan(actor, body))


@router.put("/plans/{plan_id}")
async def update_plan(plan_id: uuid.UUID, body: PlanIn, actor: CurrentActor) -> PlanOut:
    """Change a plan. Vouchers already sold keep the price, validity, data and speed they were sold with."""
    return PlanOut.model_validate(await plan_cases.update_plan(actor, plan_id, body))


@router.get("/plans")
async def list_plans(actor: CurrentActor) -> list[PlanOut]:
    return [PlanOut.model_validate(p) for p in await plan_cases.list_plans(actor)]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan_id: uuid.UUID
    router_id: uuid.UUID
    count: int = Field(ge=1, le=500)


class BatchOut(BaseModel):
    batch_id: uuid.UUID
    vouchers: list[VoucherOut]


@router.post("/vouchers/batch", status_code=201)
async def generate_batch(body: BatchIn, actor: CurrentActor) -> BatchOut:
    """Vouchers for printed cards. Each is `issued` until its router acknowledges it (`provisioned`):
    sell only those."""
    issued = await voucher_cases.issue_voucher_batch(
        actor, router_id=body.router_id, plan_id=body.plan_id, count=body.count
    )
    return BatchOut(
        batch_id=issued.batch_id, vouchers=[VoucherOut.model_validate(v) for v in issued.vouchers]
    )


@router.get("/vouchers/batches/{batch_id}/print", response_class=HTMLResponse)
async def print_batch(
    batch_id: uuid.UUID,
    actor: CurrentActor,
    paper: Annotated[
        Literal["a4", "58mm"], Query(description="a4 sheet of cards, or a 58 mm thermal roll")
    ] = "a4",
) -> HTMLResponse:
    """A printable sheet of a batch's cards (open it and print from the browser)."""
    page, _ = await voucher_cases.print_voucher_batch(actor, batch_id, paper=paper)
    return HTMLResponse(page)


@router.get("/vouchers/batches/{batch_id}/export-excel", response_class=StreamingResponse)
async def export_batch(batch_id: uuid.UUID, actor: CurrentActor) -> StreamingResponse:
    return xlsx_response(await voucher_cases.export_voucher_batch(actor, batch_id))


@router.post("/vouchers/{code}/revoke")
async def revoke_voucher(code: str, actor: CurrentActor) -> VoucherOut:
    """Stop a voucher now: it is taken off its router (user and session)."""
    return VoucherOut.model_validate((await voucher_cases.revoke_voucher(actor, code=code)).voucher)


@router.post("/tickets/{code}/activate")
async def activate_ticket(code: str, actor: CurrentActor) -> VoucherOut:
    """Support: send a voucher to its router again (for a buyer whose login fails)."""
    return VoucherOut.model_validate(await voucher_cases.resend_voucher(actor, code=code))
