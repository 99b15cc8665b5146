from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.auditing import Auditor, recorder
from core.billing.commission import commissions
from core.config import Settings
from core.errors import InvalidInput
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.tenants.service import tenants


async def adjust_wallet(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    amount_cents: int,
    reason: str,
    by: uuid.UUID | None,
    settings: Settings,
    audit: Auditor | None = None,
) -> int:
    """An admin credit (positive) or debit (negative) of a wallet, with a reason, always audited.
    Returns the transfer id."""
    reason = " ".join(reason.split())
    if not 3 <= len(reason) <= 200:
        raise InvalidInput("reason", "Give a reason of 3 to 200 characters: it goes in the audit log.")
    if amount_cents == 0:
        raise InvalidInput("amount", "An adjustment must be a non-zero amount.")
    tenant = await tenants.get(session, tenant_id)
    wallet = await ledger.account(session, tenant_id=tenant_id, kind=AccountKind.wallet)
    adjustments = await ledger.account(session, tenant_id=tenant_id, kind=AccountKind.adjustments)
    cause_id = str(uuid.uuid4())
    credit = amount_cents > 0
    posted = await ledger.transfer(
        session,
        tenant_id=tenant_id,
        cause_type="adjustment",
        cause_id=cause_id,
        kind="adjustment.credit" if credit else "adjustment.debit",
        debit=adjustments if credit else wallet,
        credit=wallet if credit else adjustments,
        amount_cents=abs(amount_cents),
        memo=reason,
    )
    assert posted is not None
    transfer_id = posted.transfer_id
    write = audit or recorder(session, tenant_id=tenant_id, user_id=by)
    await write(
        "wallet.adjusted", target=cause_id, amount_cents=amount_cents, reason=reason, transfer_id=transfer_id
    )
    await commissions.check_low_balance(
        session, tenant=tenant, settings=settings, balance=posted.balances[wallet.id]
    )
    return transfer_id
