"""Commission collected by the platform, per tenant and in total, from the ledger's commission
transfers (from a wallet or on an invoice), over an optional time range.

The admin's Commissions page builds on these: core.billing.periods (the period picker),
core.billing.commission_report and core.billing.admin_reports (invoices, wallets, subscriptions)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.integrity import COMMISSION_KINDS, REFUND_KINDS
from core.ledger.models import Transfer
from core.tenants.models import Tenant


@dataclass(frozen=True)
class TenantCommission:
    tenant_id: uuid.UUID
    name: str
    from_wallet_cents: int
    on_invoice_cents: int

    @property
    def total_cents(self) -> int:
        return self.from_wallet_cents + self.on_invoice_cents


async def commissions_by_tenant(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> list[TenantCommission]:
    # A reversed payment's commission comes off, in the period it was given back.
    conds: list[ColumnElement[bool]] = [Transfer.kind.in_(COMMISSION_KINDS + REFUND_KINDS)]
    if since is not None:
        conds.append(Transfer.created_at >= since)
    if until is not None:
        conds.append(Transfer.created_at < until)
    rows = (
        await session.execute(
            select(Transfer.tenant_id, Tenant.name, Transfer.kind, func.sum(Transfer.amount_cents))
            .join(Tenant, Tenant.id == Transfer.tenant_id)
            .where(*conds)
            .group_by(Transfer.tenant_id, Tenant.name, Transfer.kind)
        )
    ).all()
    out: dict[uuid.UUID, TenantCommission] = {}
    for tid, name, kind, cents in rows:
        cur = out.get(tid, TenantCommission(tid, name, 0, 0))
        signed = -int(cents) if kind in REFUND_KINDS else int(cents)
        if kind in ("commission.wallet", "commission.refund.wallet"):
            cur = TenantCommission(tid, name, cur.from_wallet_cents + signed, cur.on_invoice_cents)
        else:
            cur = TenantCommission(tid, name, cur.from_wallet_cents, cur.on_invoice_cents + signed)
        out[tid] = cur
    return sorted(out.values(), key=lambda c: -c.total_cents)


async def commissions_total(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> int:
    return sum(c.total_cents for c in await commissions_by_tenant(session, since=since, until=until))
