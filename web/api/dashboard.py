from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from core.auth.models import Role
from core.billing.commission import commissions
from core.customers.schemas import CustomerOut
from core.customers.service import customers
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.payments.service import payments
from core.tenants.models import TenantStatus
from core.tenants.service import tenants
from web.deps import CurrentPrincipal, ReadSession

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
async def dashboard(who: CurrentPrincipal, session: ReadSession) -> DashboardOut:
    who.require_role(Role.owner, Role.manager)
    tenant = await tenants.get(session, who.require_tenant())
    s = await payments.summary(session, tenant_id=tenant.id)
    commission = await commissions.split_for(session, tenant_id=tenant.id)
    return DashboardOut(
        business=tenant.name,
        status=tenant.status,
        total_processed=s.total_processed,
        transactions=s.transactions,
        success_count=s.paid,
        failed_count=s.not_paid,
        pending_count=s.pending,
        success_rate=round(s.success_rate, 4) if s.success_rate is not None else None,
        commission_deducted_cents=commission.total_cents,
        commission_from_wallet_cents=commission.from_wallet_cents,
        commission_owed_cents=commission.owed_cents,
        wallet_balance_cents=(await ledger.balance(session, tenant_id=tenant.id, kind=AccountKind.wallet))[0],
        recent_customers=await customers.recent(session, tenant_id=tenant.id),
    )
