from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import AppEnv, Settings
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.payments.models import Payment
from core.tenants.models import Mode, Tenant

log = logging.getLogger(__name__)


class TopupService:
    async def credit_wallet(
        self, session: AsyncSession, *, payment: Payment, tenant: Tenant, settings: Settings
    ) -> None:
        """A successful top-up push: money received by the platform, owed to the merchant's wallet.
        Keyed by the payment, so a duplicate callback credits nothing.

        A test-mode top-up (the platform's channel is the simulator or the sandbox) moved no money. In
        development it is credited all the same, so a local wallet can be funded; in production it
        never is: a wallet balance pays real commission on live payments."""
        from core.billing.commission import commissions

        if payment.mode is Mode.test and settings.APP_ENV is AppEnv.production:
            log.warning(
                "test-mode wallet top-up %s not credited: the platform channel (PLATFORM_ENVIRONMENT) is "
                "not production",
                payment.id,
            )
            return

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
