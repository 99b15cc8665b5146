"""The dashboard's and the bot's reads, each in as few statements as it takes (bench/bot_updates.py), read
what was committed just before, whoever wrote it: nothing of them is cached.

- The book's mode is read in the same statement as the book (the payee suggestions and names) and with
  the business (the dashboard): a business whose primary channel goes live sees its live book and live
  figures at the very next read; an API key its own mode's, whatever the primary channel.
- The wallet view and the commission split come from one read of the ledger and give the same figures
  as the wallet page's view and `split_for`; a new platform default rate shows at the next read."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from core.access.actor import Actor, Via
from core.access.permissions import ApiScope
from core.auth.models import Role
from core.billing.commission import commissions
from core.billing.wallet import month_start, wallets
from core.customers.models import Customer
from core.customers.service import customers
from core.db import utcnow
from core.ledger.models import AccountKind, Transfer
from core.ledger.service import ledger
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.payments.use_cases import book_mode_sql, home_view, payee_name, payee_suggestions
from core.runtime import runtime, unit_of_work
from core.tenants.channels import channels
from core.tenants.models import BillingMode, ChannelKind, Environment, Mode, MpesaChannel, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import _channel_for, make_tenant, set_billing

TEST_PHONE = "254722000111"
LIVE_PHONE = "254722000222"


def owner(tenant: Tenant, user_id: uuid.UUID) -> Actor:
    return Actor.for_user(user_id=user_id, tenant_id=tenant.id, role=Role.owner, via=Via.telegram)


def api_key(tenant: Tenant, mode: Mode) -> Actor:
    return Actor.for_api_key(api_key_id=uuid.uuid4(), tenant_id=tenant.id, scopes=list(ApiScope), mode=mode)


async def book_row(tenant: Tenant, mode: Mode, phone: str, name: str, paid: int) -> None:
    now = utcnow()
    async with unit_of_work() as session:
        session.add(
            Customer(
                tenant_id=tenant.id,
                mode=mode,
                phone=phone,
                name=name,
                requested_count=1,
                requested_total=paid,
                paid_count=1,
                paid_total=paid,
                first_seen_at=now,
                last_seen_at=now,
                last_paid_at=now,
            )
        )
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        session.add(
            Payment(
                tenant_id=tenant.id,
                channel_id=channel.id,
                mode=mode,
                source=PaymentSource.telegram,
                status=PaymentStatus.success,
                amount=paid,
                phone=phone,
                account_reference="T",
                description="T",
                commission_bps=0,
                commission_cents=0,
                reserved_cents=0,
                completed_at=now,
            )
        )


async def go_live(tenant: Tenant, user_id: uuid.UUID) -> None:
    """A production channel added, verified and made primary: the business's current mode is live."""
    rt = runtime()
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        live = await channels.add(
            session,
            tenant=row,
            name="Live till",
            data=_channel_for(Environment.production, ChannelKind.till),
            box=rt.secrets,
            by=user_id,
        )
        assert live.mode is Mode.live
        await tenants.mark_verified(session, channel=live)
        await channels.make_primary(session, tenant=row, channel=live)


class TestTheBooksModeIsReadWithTheBook:
    async def test_a_business_going_live_reads_its_live_book_at_the_next_update(
        self, server: LiveServer
    ) -> None:
        tenant, user = await make_tenant(environment=Environment.simulator)
        await book_row(tenant, Mode.test, TEST_PHONE, "Wanjiku", 100)
        person = owner(tenant, user.id)
        assert [(p.phone, p.name) for p in await payee_suggestions(person)] == [(TEST_PHONE, "Wanjiku")]
        assert await payee_name(person, TEST_PHONE) == "Wanjiku"
        home = await home_view(person, chart_days=0)
        assert [c.phone for c in home.recent_customers or []] == [TEST_PHONE]
        assert (home.summary.paid, home.summary.total_processed) == (1, 100)

        await go_live(tenant, user.id)
        await book_row(tenant, Mode.live, LIVE_PHONE, "Otieno", 250)
        # the same actor, the very next reads: the live book and figures only
        assert [(p.phone, p.name) for p in await payee_suggestions(person)] == [(LIVE_PHONE, "Otieno")]
        assert await payee_name(person, TEST_PHONE) is None
        assert await payee_name(person, LIVE_PHONE) == "Otieno"
        home = await home_view(person, chart_days=0)
        assert [c.phone for c in home.recent_customers or []] == [LIVE_PHONE]
        assert (home.summary.paid, home.summary.total_processed) == (1, 250)

        # the book's read of one channel's customers takes the mode expression too
        async with unit_of_work(readonly=True) as session:
            live = await tenants.get_channel(session, tenant.id)
            assert live is not None
            through = await customers.recent(
                session, tenant_id=tenant.id, mode=book_mode_sql(person), channel_id=live.id
            )
        assert [c.phone for c in through] == [LIVE_PHONE]  # asked to pay through the live till

        # an API key's actor reads its own mode's book, whatever the primary channel
        test_key = api_key(tenant, Mode.test)
        assert [p.phone for p in await payee_suggestions(test_key)] == [TEST_PHONE]
        assert await payee_name(test_key, TEST_PHONE) == "Wanjiku"
        home = await home_view(test_key, chart_days=0)
        assert [c.phone for c in home.recent_customers or []] == [TEST_PHONE]
        assert home.summary.total_processed == 100

    async def test_a_business_without_a_channel_reads_its_empty_test_book(self, server: LiveServer) -> None:
        tenant, user = await make_tenant(with_channel=False, verified=False)
        person = owner(tenant, user.id)
        assert await payee_suggestions(person) == []
        assert await payee_name(person, TEST_PHONE) is None
        home = await home_view(person, chart_days=0)
        assert home.recent_customers == [] and home.summary.transactions == 0

    async def test_the_primary_channels_environment_changing_is_seen_at_once(
        self, server: LiveServer
    ) -> None:
        tenant, user = await make_tenant(environment=Environment.simulator)
        await book_row(tenant, Mode.test, TEST_PHONE, "Wanjiku", 100)
        person = owner(tenant, user.id)
        assert await payee_name(person, TEST_PHONE) == "Wanjiku"
        async with unit_of_work() as session:  # a write that bypasses every service: still seen
            await session.execute(
                update(MpesaChannel)
                .where(MpesaChannel.tenant_id == tenant.id)
                .values(environment=Environment.production)
            )
        assert await payee_name(person, TEST_PHONE) is None
        assert await payee_suggestions(person) == []


class TestWalletAndSplitInOneRead:
    async def test_the_same_figures_as_the_wallet_view_and_split_for(self, server: LiveServer) -> None:
        tenant, user = await make_tenant()
        await set_billing(tenant, mode=BillingMode.hybrid)
        async with unit_of_work() as session:
            wallet = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.wallet)
            receivable = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.receivable)
            revenue = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.revenue)
            cash = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.cash)
            await ledger.transfer(
                session, tenant_id=tenant.id, cause_type="test", cause_id="fund", kind="topup",
                debit=cash, credit=wallet, amount_cents=50_000,
            )  # fmt: skip
            posted = []
            for i, (kind, debit, cents) in enumerate(
                [
                    ("commission.wallet", wallet, 300),
                    ("commission.wallet", wallet, 200),
                    ("commission.receivable", receivable, 700),
                    ("commission.receivable", receivable, 50),
                ]
            ):
                done = await ledger.transfer(
                    session, tenant_id=tenant.id, cause_type="test", cause_id=f"c{i}", kind=kind,
                    debit=debit, credit=revenue, amount_cents=cents,
                )  # fmt: skip
                assert done is not None
                posted.append(done)
            await ledger.adjust_reserved(session, account_id=wallet.id, delta_cents=120)
        # two of them from last month: the month-to-date figure leaves them out, the split does not
        last_month = month_start(utcnow()) - timedelta(days=3)
        async with unit_of_work() as session:
            await session.execute(
                update(Transfer)
                .where(Transfer.tenant_id == tenant.id, Transfer.cause_id.in_(["c1", "c3"]))
                .values(created_at=last_month)
            )
        settings = runtime().settings
        async with unit_of_work(readonly=True) as session:
            row = await tenants.get(session, tenant.id)
            view = await wallets.view(session, tenant=row, settings=settings)
            split = await commissions.split_for(session, tenant_id=tenant.id)
            both = await wallets.view_and_split(session, tenant=row, settings=settings)
        assert both == (view, split)
        assert (view.balance_cents, view.reserved_cents) == (50_000 - 500, 120)
        assert view.month_to_date_commission_cents == 300 + 700
        assert view.owed_on_invoice_cents == 750
        assert (split.from_wallet_cents, split.on_invoice_cents, split.owed_cents) == (500, 750, 750)
        assert view.commission_bps == settings.COMMISSION_DEFAULT_BPS

        # the platform's default rate changed: the next read has it (read in the same statement)
        async with unit_of_work() as session:
            await commissions.set_default_bps(session, bps=275)
        try:
            home = await home_view(owner(tenant, user.id), chart_days=0)
            assert home.wallet is not None and home.wallet.commission_bps == 275
            assert home.commission == split
        finally:
            async with unit_of_work() as session:
                await commissions.set_default_bps(session, bps=settings.COMMISSION_DEFAULT_BPS)
                # no push holds it: `lipapush ledger check` (other tests) proves every reserve
                await ledger.adjust_reserved(session, account_id=wallet.id, delta_cents=-120)

    async def test_a_business_with_no_ledger_accounts_reads_zeros(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        settings = runtime().settings
        async with unit_of_work(readonly=True) as session:
            row = await tenants.get(session, tenant.id)
            wallet, split = await wallets.view_and_split(session, tenant=row, settings=settings)
        assert (wallet.balance_cents, wallet.reserved_cents, wallet.owed_on_invoice_cents) == (0, 0, 0)
        assert wallet.month_to_date_commission_cents == 0
        assert (split.from_wallet_cents, split.on_invoice_cents, split.owed_cents) == (0, 0, 0)
