from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from core.customers.schemas import CustomerOut
from core.payments.use_cases import HomeView, business_dashboard
from core.tenants.models import TenantStatus
from web.deps import CurrentActor

router = APIRouter(tags=["dashboard"])


class DashboardOut(BaseModel):
    business: str
    status: TenantStatus
    total_processed: int
    transactions: int
    success_count: int
    failed_count: int
    pending_count: int
    success_rate: float | None
    commission_deducted_cents: int = Field(
        description="All commission charged on successful payments so far, however it is paid: "
        "commission_from_wallet_cents plus all commission put on invoices, paid or not. Kept for "
        "existing clients: despite the name, in hybrid and invoice billing it is not all taken from "
        "the wallet. Show commission_from_wallet_cents and commission_owed_cents instead."
    )
    commission_from_wallet_cents: int = Field(description="Commission taken from the wallet so far")
    commission_owed_cents: int = Field(
        description="Commission owed on the invoice now: not yet invoiced, or invoiced and unpaid"
    )
    wallet_balance_cents: int
    recent_customers: list[CustomerOut]


@router.get("/dashboard")
async def dashboard(
    actor: CurrentActor,
    channel_id: Annotated[
        uuid.UUID | None,
        Query(
            description="The figures of this channel of the business only (GET /api/channels); another "
            "business's channel is 404"
        ),
    ] = None,
) -> DashboardOut:
    """The business's figures in its primary channel's mode (an API key: in its own mode).

    With `channel_id`, the payment figures and recent customers are that channel's: payments through
    it, and the customers asked to pay through it (with their whole book's figures: one customer book
    per business). The wallet and commission stay the business's, since one wallet pays for every
    channel."""
    return render(await business_dashboard(actor, channel_id=channel_id))


def render(d: HomeView) -> DashboardOut:
    """The dashboard's figures as the API (and the MCP tool get_dashboard) show them."""
    s = d.summary
    assert d.commission is not None and d.wallet is not None  # wallet_read: the manager's view
    return DashboardOut(
        business=d.tenant.name,
        status=d.tenant.status,
        total_processed=s.total_processed,
        transactions=s.transactions,
        success_count=s.paid,
        failed_count=s.not_paid,
        pending_count=s.pending,
        success_rate=round(s.success_rate, 4) if s.success_rate is not None else None,
        commission_deducted_cents=d.commission.total_cents,
        commission_from_wallet_cents=d.commission.from_wallet_cents,
        commission_owed_cents=d.commission.owed_cents,
        wallet_balance_cents=d.wallet.balance_cents,
        recent_customers=d.recent_customers or [],
    )
