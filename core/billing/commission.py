"""Commission: what the platform earns on each successful payment.

Rule: commission = amount × rate, in cents, rounded **half up** to the cent:
    cents = (shillings × bps + 50) // 100        (1 bp = 0.01 %, and KES 1 = 100 cents)
e.g. KES 150 at 1 % (100 bps) = 150 cents; KES 1 at 1.5 % = 1.5 cents → 2 cents. Integer maths only.

The rate is captured on the payment when it is created, so a later rate change never alters a
payment already in flight.

Money flow per billing mode:
- wallet: the commission is *reserved* on the wallet when the push is made (refused if the spendable
  balance, balance − reserved, would fall below the floor), then posted wallet → revenue on success,
  or released on failure. Concurrent pushes therefore can never take the wallet below its floor.
- hybrid: whatever part the wallet can cover is reserved; the rest accrues to the receivable.
- invoice: everything accrues to the receivable (receivable → revenue), billed by invoices.
- subscription: no commission (hotspot providers pay a subscription instead).

Test mode (a payment through a simulator or sandbox channel, `Payment.mode`) never touches money,
whatever the billing mode: no commission, nothing reserved, never refused for a low wallet or a billing
hold, so nothing posted to the ledger and no invoice line. Live behaviour is the above.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.auditing import Auditor, recorder
from core.billing.models import PlatformSetting
from core.config import Settings
from core.errors import BillingHold, InsufficientWalletBalance, InvalidInput
from core.ledger.models import AccountKind, Transfer
from core.ledger.service import ledger
from core.money import format_cents
from core.notify.service import notify
from core.payments.models import Payment
from core.tenants.models import BillingMode, Mode, Tenant

DEFAULT_RATE_KEY = "commission_default_bps"
MAX_BPS = 10_000
FROM_WALLET = "commission.wallet"
ON_INVOICE = "commission.receivable"
# The platform's default rate as stored (NULL: the configured one), as an expression for a read that
# takes it along with other figures (core.billing.wallet), and alone.
_DEFAULT_RATE = select(PlatformSetting.value).where(PlatformSetting.key == DEFAULT_RATE_KEY)
DEFAULT_RATE_SQL = _DEFAULT_RATE.scalar_subquery()
# Read after every wallet posting: built once (a Core statement) rather than per payment.
_ALERTED = select(Tenant.low_balance_alerted).where(Tenant.id == bindparam("tenant_id"))


@dataclass(frozen=True)
class CommissionSplit:
    """A business's commission since it started, by how it is paid.

    A hybrid or invoice business can owe commission with an empty wallet, so one "deducted" figure
    next to the wallet balance reads as if the wallet had paid it: the views show the parts."""

    from_wallet_cents: int  # posted wallet → revenue: already paid out of the pre-paid wallet
    on_invoice_cents: int  # accrued to the receivable, invoiced and paid or not
    owed_cents: int  # on the receivable now: not yet invoiced, or invoiced and unpaid

    @property
    def total_cents(self) -> int:
        return self.from_wallet_cents + self.on_invoice_cents


def commission_cents(amount_shillings: int, bps: int) -> int:
    return (amount_shillings * bps + 50) // 100


def percent_to_bps(percent: str | float) -> int:
    """'1.5' → 150. More than two decimals would be a rate we cannot store exactly: refuse it."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(str(percent)) * 100
    except InvalidOperation:
        raise InvalidInput("percent", "Give the rate as a percentage, like 1.5") from None
    if value != value.to_integral_value():
        raise InvalidInput("percent", "The rate can have at most two decimals (0.01 % steps).")
    bps = int(value)
    if not 0 <= bps <= MAX_BPS:
        raise InvalidInput("percent", "The rate must be between 0 and 100 %.")
    return bps


class CommissionService:
    async def default_bps(self, session: AsyncSession, *, settings: Settings) -> int:
        return self.default_from(await session.scalar(_DEFAULT_RATE), settings)

    def default_from(self, value: str | None, settings: Settings) -> int:
        """The platform default rate from its stored setting (`DEFAULT_RATE_SQL`'s value), else the
        configured one."""
        return int(value) if value is not None else settings.COMMISSION_DEFAULT_BPS

    async def set_default_bps(self, session: AsyncSession, *, bps: int) -> None:
        row = await session.get(PlatformSetting, DEFAULT_RATE_KEY)
        if row is None:
            session.add(PlatformSetting(key=DEFAULT_RATE_KEY, value=str(bps)))
        else:
            row.value = str(bps)
        await session.flush()

    async def rate_for(self, session: AsyncSession, *, tenant: Tenant, settings: Settings) -> int:
        own = self.own_rate(tenant)
        return own if own is not None else await self.default_bps(session, settings=settings)

    def own_rate(self, tenant: Tenant) -> int | None:
        """The business's rate when the platform default does not matter to it, else None."""
        if tenant.billing_mode is BillingMode.subscription:
            return 0
        return tenant.commission_bps

    def rate_given(self, tenant: Tenant, *, default_bps: int) -> int:
        """`rate_for` when the platform default is known already (read with other figures)."""
        own = self.own_rate(tenant)
        return own if own is not None else default_bps

    def floor(self, tenant: Tenant, settings: Settings) -> int:
        return (
            tenant.wallet_floor_cents
            if tenant.wallet_floor_cents is not None
            else settings.WALLET_FLOOR_CENTS
        )

    def threshold(self, tenant: Tenant, settings: Settings) -> int:
        t = tenant.low_balance_threshold_cents
        return t if t is not None else settings.LOW_BALANCE_THRESHOLD_CENTS

    async def hold_for_push(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        payment: Payment,
        settings: Settings,
        received: bool = False,
    ) -> None:
        """Price the push and reserve what the wallet must cover. Raises (and so rolls back the
        pending payment) when a wallet-mode business cannot cover the commission. A test payment is
        priced at nothing and holds nothing (`payment.mode` is set before this is called).

        `received`: a C2B payment (core.c2b), priced when it is recorded, already made. It is never
        refused (not for a billing hold, not for a short wallet): the money has moved. Commission
        applies as to a push, and what the wallet cannot cover accrues to the receivable, as in hybrid
        mode, whatever the billing mode."""
        if payment.mode is Mode.test:
            payment.commission_bps = None
            payment.commission_cents = 0
            payment.reserved_cents = 0
            return
        if tenant.billing_hold and not received:
            raise BillingHold(tenant.billing_hold)
        bps = await self.rate_for(session, tenant=tenant, settings=settings)
        cents = commission_cents(payment.amount, bps)
        payment.commission_bps = bps
        payment.commission_cents = cents
        payment.reserved_cents = 0
        if cents == 0 or tenant.billing_mode in (BillingMode.invoice, BillingMode.subscription):
            return
        ref = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.wallet)
        # The usual case, a wallet that covers the commission, in one conditional UPDATE: the check and
        # the hold under the row lock the UPDATE takes, with no SELECT … FOR UPDATE before it.
        if await ledger.try_reserve(
            session, account_id=ref.id, cents=cents, floor_cents=self.floor(tenant, settings)
        ):
            payment.reserved_cents = cents
            return
        partial = tenant.billing_mode is not BillingMode.wallet or received
        if partial and not await ledger.has_spendable(
            session, account_id=ref.id, floor_cents=self.floor(tenant, settings)
        ):
            # Nothing to hold (an empty hybrid wallet: the commission goes on the invoice): no lock
            # taken, so pushes of such a business never queue on its wallet row.
            return
        wallet = await ledger.lock(session, ref.id)
        spendable = wallet.balance_cents - wallet.reserved_cents - self.floor(tenant, settings)
        if not partial:
            held = f" ({format_cents(wallet.reserved_cents)} held for payments in progress)"
            raise InsufficientWalletBalance(
                f"Your wallet has {format_cents(wallet.balance_cents)}"
                f"{held if wallet.reserved_cents else ''}, not enough for this payment's commission of "
                f"{format_cents(cents)}. Top up your wallet (POST /api/wallet/topup, or Wallet → Top up "
                "in the bot) and try again.",
                balance_cents=wallet.balance_cents,
                commission_cents=cents,
            )
        # Hybrid, or a received C2B payment: the wallet covers what it can, the rest is invoiced.
        hold = max(0, min(cents, spendable))
        if hold:
            await ledger.adjust_reserved(session, account_id=wallet.id, delta_cents=hold)
            payment.reserved_cents = hold

    async def settle_success(
        self, session: AsyncSession, *, payment: Payment, tenant: Tenant, settings: Settings
    ) -> None:
        """Post the commission of a payment that just succeeded (called once, by payments.finalize).
        A test payment posts nothing (it was priced at nothing; checked again here all the same)."""
        cents, held = payment.commission_cents, payment.reserved_cents
        if cents <= 0 or payment.mode is Mode.test:
            return
        revenue = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.revenue)
        if held and cents - held > 0:
            # Two transfers (wallet part, invoice part): lock all three accounts first, in id order, or
            # this could hold the wallet and revenue while another success holds the receivable.
            parts = [AccountKind.wallet, AccountKind.receivable]
            refs = [await ledger.account(session, tenant_id=tenant.id, kind=k) for k in parts]
            await ledger.lock_in_order(session, revenue.id, *(r.id for r in refs))
        if held:
            wallet = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.wallet)
            posted = await ledger.transfer(
                session,
                tenant_id=tenant.id,
                cause_type="payment",
                cause_id=str(payment.id),
                payment_id=payment.id,
                kind="commission.wallet",
                debit=wallet,
                credit=revenue,
                amount_cents=held,
                release_reserved_cents=held,
            )
            if posted is not None:
                await self.check_low_balance(
                    session, tenant=tenant, settings=settings, balance=posted.balances[wallet.id]
                )
        if cents - held > 0:
            receivable = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.receivable)
            await ledger.transfer(
                session,
                tenant_id=tenant.id,
                cause_type="payment",
                cause_id=str(payment.id),
                payment_id=payment.id,
                kind="commission.receivable",
                debit=receivable,
                credit=revenue,
                amount_cents=cents - held,
            )

    async def release(self, session: AsyncSession, *, payment: Payment) -> None:
        """A failed payment earns nothing: give back what its push held on the wallet."""
        if payment.reserved_cents and payment.mode is not Mode.test:
            wallet = await ledger.account(session, tenant_id=payment.tenant_id, kind=AccountKind.wallet)
            await ledger.adjust_reserved(session, account_id=wallet.id, delta_cents=-payment.reserved_cents)

    async def check_low_balance(
        self, session: AsyncSession, *, tenant: Tenant, settings: Settings, balance: int | None = None
    ) -> None:
        """One alert per crossing below the threshold; re-armed once the balance is back above it.

        Called after the wallet row was updated in this transaction, so every earlier wallet change has
        committed (it held that row's lock) and the flag read below is current. The flag then flips
        with a conditional UPDATE: two debits crossing at once still send one alert. Nothing is
        written while the flag is already right, so the tenant row is not a hot spot."""
        if balance is None:
            balance, _ = await ledger.balance(session, tenant_id=tenant.id, kind=AccountKind.wallet)
        threshold = self.threshold(tenant, settings)
        alerted = await session.scalar(_ALERTED, {"tenant_id": tenant.id})
        below = balance < threshold
        if below == alerted:
            return
        flipped = await session.execute(
            update(Tenant)
            .where(Tenant.id == tenant.id, Tenant.low_balance_alerted.is_(not below))
            .values(low_balance_alerted=below)
            .execution_options(synchronize_session=False)
        )
        if below and flipped.rowcount == 1:  # type: ignore[attr-defined]
            await notify.to_owner(
                session,
                tenant=tenant,
                kind="wallet.low_balance",
                subject="lipapush wallet is low",
                body=f"{tenant.name}: your lipapush wallet is down to {format_cents(balance)} "
                f"(alert level {format_cents(threshold)}). Top up to keep payments flowing.",
            )

    async def split_for(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> CommissionSplit:
        """The commission posted so far, split by where it was taken from. What is owed is the
        receivable's balance (accruals less invoice payments), the same figure as the wallet view's
        `owed_on_invoice_cents`, so the dashboard and the wallet page cannot disagree."""
        rows = await session.execute(
            select(Transfer.kind, func.coalesce(func.sum(Transfer.amount_cents), 0))
            .where(Transfer.tenant_id == tenant_id, Transfer.kind.in_([FROM_WALLET, ON_INVOICE]))
            .group_by(Transfer.kind)
        )
        sums = {kind: int(total) for kind, total in rows.all()}
        receivable, _ = await ledger.balance(session, tenant_id=tenant_id, kind=AccountKind.receivable)
        return self.split_of(
            from_wallet_cents=sums.get(FROM_WALLET, 0),
            on_invoice_cents=sums.get(ON_INVOICE, 0),
            receivable_cents=receivable,
        )

    def split_of(
        self, *, from_wallet_cents: int, on_invoice_cents: int, receivable_cents: int
    ) -> CommissionSplit:
        """The split from the ledger's figures (read by `split_for`, or with the wallet's by
        core.billing.wallet.view_and_split): what is owed is the receivable's balance, negated."""
        return CommissionSplit(
            from_wallet_cents=from_wallet_cents,
            on_invoice_cents=on_invoice_cents,
            owed_cents=-receivable_cents,
        )

    async def set_tenant_rate(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        percent: str | None,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
    ) -> int | None:
        """A business's own rate from a percentage ("1.5"), or back to the platform default when empty.
        Payments already created keep their rate. Audited; shared by the CLI and the admin panel."""
        text = (percent or "").strip()
        bps = percent_to_bps(text) if text else None
        previous = tenant.commission_bps
        tenant.commission_bps = bps
        await session.flush()
        write = audit or recorder(session, tenant_id=tenant.id, user_id=by)
        await write("commission.set", bps=bps, previous_bps=previous)
        return bps

    async def set_default_rate(
        self, session: AsyncSession, *, percent: str, by: uuid.UUID | None, audit: Auditor | None = None
    ) -> int:
        """The platform default rate from a percentage (audited)."""
        text = (percent or "").strip()
        if not text:
            raise InvalidInput("percent", "Give the rate as a percentage, like 1.5")
        bps = percent_to_bps(text)
        await self.set_default_bps(session, bps=bps)
        write = audit or recorder(session, tenant_id=None, user_id=by)
        await write("commission.default_set", bps=bps)
        return bps


commissions = CommissionService()
