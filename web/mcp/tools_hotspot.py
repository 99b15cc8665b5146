"""WiFi hotspot providers: their plans and routers, vouchers for printed cards, a voucher's state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from mcp.server import MCPServer
from pydantic import BaseModel, Field

from core.db import utcnow
from core.hotspot import use_cases as vouchers
from core.hotspot import use_cases_plans as plans
from core.hotspot import use_cases_routers as routers
from core.hotspot.models import RouterStatus
from core.hotspot.schemas import PlanOut, VoucherOut
from web.mcp.annotations import READS, WRITES
from web.mcp.context import current_actor
from web.mcp.errors import agent_tool, note_target


class RouterBrief(BaseModel):
    id: uuid.UUID
    name: str
    status: RouterStatus


class PlansOut(BaseModel):
    plans: list[PlanOut] = Field(description="router_id null: the plan is sold on every router")
    routers: list[RouterBrief]


class VouchersOut(BaseModel):
    batch_id: uuid.UUID
    vouchers: list[VoucherOut] = Field(description="Each `issued` until its router has it (`provisioned`)")


class VoucherState(BaseModel):
    voucher: VoucherOut
    router_name: str
    checked_at: datetime


@agent_tool
async def list_plans() -> PlansOut:
    """The provider's WiFi plans (price, validity, data) and its routers."""
    actor = current_actor()
    return PlansOut(
        plans=[PlanOut.model_validate(p) for p in await plans.list_plans(actor)],
        routers=[
            RouterBrief.model_validate(r, from_attributes=True) for r in await routers.list_routers(actor)
        ],
    )


@agent_tool
async def issue_vouchers(
    plan_id: uuid.UUID,
    router_id: uuid.UUID,
    count: Annotated[int, Field(ge=1, le=100, description="How many vouchers (1 to 100)")],
) -> VouchersOut:
    """Issue vouchers of a plan on a router, for printed cards (not sold to anyone yet)."""
    issued = await vouchers.issue_voucher_batch(
        current_actor(), router_id=router_id, plan_id=plan_id, count=count
    )
    note_target(issued.batch_id)
    return VouchersOut(
        batch_id=issued.batch_id, vouchers=[VoucherOut.model_validate(v) for v in issued.vouchers]
    )


@agent_tool
async def voucher_status(
    code: Annotated[
        str, Field(description="The voucher code as printed or texted (any case)", max_length=40)
    ],
) -> VoucherState:
    """A voucher's state: issued, provisioned on its router, active (in use), expired or revoked."""
    found = await vouchers.find_voucher(current_actor(), code)
    note_target(found.voucher.id)
    return VoucherState(
        voucher=VoucherOut.model_validate(found.voucher), router_name=found.router_name, checked_at=utcnow()
    )


def register(server: MCPServer) -> None:
    server.add_tool(list_plans, annotations=READS)
    server.add_tool(issue_vouchers, annotations=WRITES)
    server.add_tool(voucher_status, annotations=READS)
