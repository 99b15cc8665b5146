"""The platform admin's view of hotspot providers: subscriptions, routers up and down, voucher sales.
Data for the admin panel (and for scripts): platform admins only."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.hotspot import reports
from core.hotspot.models import RouterStatus
from core.hotspot.use_cases_admin import every_router, providers_report, sales_by_day
from core.tenants.models import BillingMode, TenantStatus
from web.deps import CurrentActor

router = APIRouter(prefix="/admin", tags=["admin: hotspot"])

MAX_DAYS = 366


class SalesOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    vouchers: int
    kes: int


class ProviderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    slug: str
    status: TenantStatus
    billing_mode: BillingMode
    subscription: str = Field(
        description="active, trial (on the free trial, nothing paid yet), lapsed, "
        "or none (not billed by subscription)"
    )
    subscription_until: datetime | None
    routers: int
    routers_up: int
    routers_down: int
    sales: SalesOut = Field(description="vouchers sold through lipapush in the period, and their KES")


class ProvidersOut(BaseModel):
    first: date
    last: date
    providers: list[ProviderOut]


class RouterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    tenant_id: uuid.UUID
    provider: str
    name: str
    host: str
    status: RouterStatus
    online: int | None = Field(description="sessions the router reported at its last check")
    version: str | None
    last_seen_at: datetime | None
    last_error: str | None


class DailySalesOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    tenant_id: uuid.UUID
    provider: str
    day: date
    vouchers: int
    kes: int


class SalesReportOut(BaseModel):
    first: date
    last: date
    total: SalesOut
    days: list[DailySalesOut]


def _period(first: date | None, last: date | None) -> tuple[date, date]:
    last = last or reports.today_eat()
    first = first or last - timedelta(days=29)
    if first > last:
        raise InvalidInput("from", "`from` is after `to`: swap them.")
    if (last - first).days >= MAX_DAYS:
        raise InvalidInput("from", f"Ask for at most {MAX_DAYS} days at a time.")
    return first, last


From = Annotated[date | None, Query(alias="from", description="first day (EAT), default 29 days before `to`")]
To = Annotated[date | None, Query(alias="to", description="last day (EAT), inclusive; default today")]


@router.get("/providers")
async def list_providers(
    actor: CurrentActor, first: From = None, last: To = None
) -> ProvidersOut:
    """Every hotspot provider: subscription state and paid-through time, routers up/down, and
    voucher sales from `from` to `to` (East African days)."""
    first, last = _period(first, last)
    rows = await providers_report(actor, first=first, last=last)
    return ProvidersOut(first=first, last=last, providers=[ProviderOut.model_validate(r) for r in rows])


@router.get("/routers")
async def list_routers(
    actor: CurrentActor,
    status: Annotated[RouterStatus | None, Query(description="only routers in this state")] = None,
) -> list[RouterOut]:
    """Every provider's routers, down ones first."""
    return [RouterOut.model_validate(r) for r in await every_router(actor, status=status)]


@router.get("/hotspot/sales")
async def hotspot_sales(
    actor: CurrentActor, first: From = None, last: To = None
) -> SalesReportOut:
    """Voucher sales per provider per day (EAT), `from`..`to` inclusive; days without sales are left out."""
    first, last = _period(first, last)
    days = await sales_by_day(actor, first=first, last=last)
    total = SalesOut(vouchers=sum(d.vouchers for d in days), kes=sum(d.kes for d in days))
    return SalesReportOut(
        first=first, last=last, total=total, days=[DailySalesOut.model_validate(d) for d in days]
    )
