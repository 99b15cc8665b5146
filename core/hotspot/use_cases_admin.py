"""What a platform administrator reads about every hotspot provider."""

from __future__ import annotations

from datetime import date, timedelta

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.hotspot import reports
from core.hotspot.models import RouterStatus


@use_case(Permission.platform_admin, query=True)
async def providers_report(actor: Actor, *, first: date, last: date) -> list[reports.ProviderOverview]:
    """Every provider: subscription, routers up/down, and voucher sales over first..last (EAT days)."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await reports.providers(
            uow.session,
            since=reports.day_start(first),
            until=reports.day_start(last + timedelta(days=1)),
        )


@use_case(Permission.platform_admin, query=True)
async def every_router(actor: Actor, *, status: RouterStatus | None = None) -> list[reports.RouterOverview]:
    async with unit_of_work(actor, readonly=True) as uow:
        return await reports.all_routers(uow.session, status=status)


@use_case(Permission.platform_admin, query=True)
async def sales_by_day(actor: Actor, *, first: date, last: date) -> list[reports.DailySales]:
    async with unit_of_work(actor, readonly=True) as uow:
        return await reports.daily_sales(uow.session, first=first, last=last)
