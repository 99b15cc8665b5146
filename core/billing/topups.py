from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.payments.models import Payment
from core.tenants.models import Tenant


class TopupService:
    async def credit_wallet(
        self, session: AsyncSession, *, payment: Payment, tenant: Tenant, settings: Settings
    ) -> None:
        """A successful top-up push: money received by the platform, owed to the merchant's wallet.
        Keyed by the payment, so a duplicate callback credits nothing."""
        from core.billing.commission import commissions

        cash = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.cash)
        wallet = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.wallet)
        posted = await ledger.transfer(
            session,
            tenant_id=tenant.id,
            cause_type="payment",
            payment_id=payment.id,
            cause_id=str(payment.id),
            kind="topup",
            debit=cash,
            credit=wallet,
            amount_cents=payment.amount * 100,
            memo=f"M-Pesa top-up {payment.receipt or ''}".strip(),
        )
        if posted is not None:
            await commissions.check_low_balance(
                session, tenant=tenant, settings=settings, balance=posted.balances[wallet.id]
            )


topups = TopupService()
