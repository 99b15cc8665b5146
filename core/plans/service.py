"""Which plan a business is on, its monthly live-push quota and its per-key push rate.

Months are calendar months in Nairobi (UTC+3 all year): quotas reset at 00:00 EAT on the 1st, never
30 days after a first push (the `limits` library's "month"). No commit and no permission here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.periods import EAT
from core.db import utcnow
from core.errors import NotFound, TooManyRequests
from core.plans.models import ApiPlan, PlanUsage
from core.tenants.models import Tenant
from core.upsert import insert_for

QUOTA_LIMIT = "monthly_live_pushes"


def month_of(at: datetime) -> str:
    """The Nairobi calendar month of `at`: "2026-12"."""
    return at.astimezone(EAT).strftime("%Y-%m")


def next_month_start(at: datetime) -> datetime:
    """00:00 EAT on the 1st of the Nairobi month after `at`, in UTC."""
    local = at.astimezone(EAT)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=EAT).astimezone(UTC)


@dataclass(frozen=True)
class PlanState:
    """What applies to a business now."""

    chosen: ApiPlan  # what it chose (or was given)
    effective: ApiPlan  # what applies: the chosen plan, or the default one while a fee is unpaid
    paid_until: datetime | None
    month: str
    live_pushes: int  # this Nairobi month, so far
    resets_at: datetime  # when the month's count starts again

    @property
    def unpaid(self) -> bool:
        return self.chosen.id != self.effective.id

    @property
    def remaining(self) -> int | None:
        quota = self.effective.live_pushes_per_month
        return None if quota is None else max(0, quota - self.live_pushes)


def is_paid(plan: ApiPlan, tenant: Tenant, now: datetime) -> bool:
    """Whether `plan` applies to `tenant` now: a free one always, one with a fee until it is paid until."""
    return plan.monthly_fee_cents == 0 or (
        tenant.plan_paid_until is not None and tenant.plan_paid_until > now
    )


class PlanService:
    async def default(self, session: AsyncSession) -> ApiPlan:
        plan = await session.scalar(select(ApiPlan).where(ApiPlan.is_default))
        if plan is None:  # the migration makes "free"; a database without it is broken, say which row
            raise NotFound("No default plan: run `lipapush db upgrade`, which makes the Free plan.")
        return plan

    async def by_code(self, session: AsyncSession, code: str) -> ApiPlan:
        plan = await session.scalar(select(ApiPlan).where(ApiPlan.code == code.strip().lower()))
        if plan is None:
            raise NotFound(
                f"No plan {code!r}. List the plans with GET /api/plan/options or `lipapush api-plan list`."
            )
        return plan

    async def all(self, session: AsyncSession, *, public_only: bool = False) -> list[ApiPlan]:
        stmt = select(ApiPlan).order_by(ApiPlan.monthly_fee_cents, ApiPlan.code)
        if public_only:
            stmt = stmt.where(ApiPlan.public)
        return list(await session.scalars(stmt))

    async def plans_of(
        self, session: AsyncSession, tenant: Tenant, *, now: datetime | None = None
    ) -> tuple[ApiPlan, ApiPlan]:
        """(chosen, effective) for the business, read once per transaction: a push asks twice (its
        key's rate, then its quota), and the default plan is read only when it applies."""
        memo: dict[tuple[object, ...], tuple[ApiPlan, ApiPlan]] = session.info.setdefault("plans.of", {})
        key = (tenant.id, tenant.plan_id, tenant.plan_paid_until)
        if (found := memo.get(key)) is not None:
            return found
        now = now or utcnow()
        chosen = await session.get(ApiPlan, tenant.plan_id) if tenant.plan_id is not None else None
        if chosen is not None and is_paid(chosen, tenant, now):
            pair = (chosen, chosen)
        else:
            # No plan chosen, or its fee unpaid: the default plan applies.
            default = await self.default(session)
            pair = (chosen or default, default)
        memo[key] = pair
        return pair

    async def state(self, session: AsyncSession, tenant: Tenant, *, now: datetime | None = None) -> PlanState:
        now = now or utcnow()
        chosen, effective = await self.plans_of(session, tenant, now=now)
        month = month_of(now)
        used = await session.scalar(
            select(PlanUsage.live_pushes).where(PlanUsage.tenant_id == tenant.id, PlanUsage.month == month)
        )
        return self._state(tenant, chosen, effective, now=now, live_pushes=int(used or 0))

    def _state(
        self, tenant: Tenant, chosen: ApiPlan, effective: ApiPlan, *, now: datetime, live_pushes: int
    ) -> PlanState:
        return PlanState(
            chosen=chosen,
            effective=effective,
            paid_until=tenant.plan_paid_until,
            month=month_of(now),
            live_pushes=live_pushes,
            resets_at=next_month_start(now),
        )

    async def count_live_push(self, session: AsyncSession, tenant: Tenant) -> PlanState:
        """Count one new live push against this month's quota, in the transaction that records it; over
        the quota it raises TooManyRequests (429, Retry-After until the month ends), and the caller's
        rollback takes the count back with the payment. The usage row is locked until that
        transaction ends: the last lock of a push (after payment, customer and ledger rows)."""
        now = utcnow()
        chosen, effective = await self.plans_of(session, tenant, now=now)
        table = PlanUsage.__table__
        stmt = insert_for(session, table).values(tenant_id=tenant.id, month=month_of(now), live_pushes=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.month],
            set_={"live_pushes": table.c.live_pushes + 1},
        ).returning(table.c.live_pushes)
        count = int((await session.execute(stmt)).scalar_one())
        state = self._state(tenant, chosen, effective, now=now, live_pushes=count)
        quota = state.effective.live_pushes_per_month
        if quota is not None and count > quota:
            wait = max(1, math.ceil((state.resets_at - now).total_seconds()))
            started = datetime.strptime(state.month, "%Y-%m").replace(tzinfo=EAT)
            raise TooManyRequests(
                quota_message(state, quota),
                limit=QUOTA_LIMIT,
                allowed=quota,
                window_seconds=int((state.resets_at - started).total_seconds()),
                retry_after=wait,
                resets_at=state.resets_at.isoformat().replace("+00:00", "Z"),
            )
        return state

    async def choose(self, session: AsyncSession, tenant: Tenant, plan: ApiPlan) -> None:
        """The business's plan from now on. A plan with a fee applies once paid (`pay`)."""
        tenant.plan_id = plan.id
        await session.flush()


def quota_message(state: PlanState, quota: int) -> str:
    """One sentence for every front end (API detail, bot reply, USSD END line)."""
    when = state.resets_at.astimezone(EAT)
    month = datetime.strptime(state.month, "%Y-%m")
    unpaid = (
        f" Your {state.chosen.name} plan is not paid, so the {state.effective.name} plan applies: pay it to "
        "restore its quota."
        if state.unpaid
        else " Move to a bigger plan (Settings → Plan, or POST /api/plan) to push more."
    )
    return (
        f"This business has used its {quota} live payment requests for {month:%B %Y} on the "
        f"{state.effective.name} plan; the count starts again on {when:%-d %B} at 00:00 (Nairobi).{unpaid}"
    )


plans = PlanService()
