from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound
from core.hotspot.models import Plan, Router
from core.hotspot.schemas import PlanIn


class PlanService:
    async def save(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, data: PlanIn, plan_id: uuid.UUID | None = None
    ) -> Plan:
        """Create a plan, or change one. Vouchers already sold keep the terms they were sold with."""
        if data.router_id is not None:
            router = await session.get(Router, data.router_id)
            if router is None or router.tenant_id != tenant_id:
                raise NotFound("No such router.")
        clash = await session.scalar(
            select(Plan.id).where(Plan.tenant_id == tenant_id, Plan.name == data.name, Plan.id != plan_id)
        )
        if clash is not None:
            raise Conflict(f"You already have a plan called {data.name!r}. Pick another name.")
        plan = (
            await self.get(session, tenant_id=tenant_id, plan_id=plan_id)
            if plan_id
            else Plan(tenant_id=tenant_id)
        )
        for field, value in data.model_dump().items():
            setattr(plan, field, value)
        session.add(plan)
        await session.flush()
        return plan

    async def get(self, session: AsyncSession, *, tenant_id: uuid.UUID, plan_id: uuid.UUID) -> Plan:
        plan = await session.get(Plan, plan_id)
        if plan is None or plan.tenant_id != tenant_id:
            raise NotFound("No such plan.")
        return plan

    async def list(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        router_id: uuid.UUID | None = None,
        active_only: bool = False,
    ) -> list[Plan]:
        stmt = select(Plan).where(Plan.tenant_id == tenant_id)
        if router_id is not None:
            stmt = stmt.where((Plan.router_id.is_(None)) | (Plan.router_id == router_id))
        if active_only:
            stmt = stmt.where(Plan.active.is_(True))
        return list(await session.scalars(stmt.order_by(Plan.sort_order, Plan.price, Plan.name)))

    async def delete(self, session: AsyncSession, *, tenant_id: uuid.UUID, plan_id: uuid.UUID) -> Plan:
        """Remove a plan. Vouchers and orders keep the terms they were sold with (their plan link is
        cleared by the foreign key); to stop selling a plan for a while, save it with active=False."""
        plan = await self.get(session, tenant_id=tenant_id, plan_id=plan_id)
        await session.delete(plan)
        await session.flush()
        return plan


plans = PlanService()
