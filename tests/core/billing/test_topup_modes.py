"""A wallet top-up made on a test-mode platform channel moved no money: credited in development (so a
local wallet can be funded), never in production, where a wallet balance pays real commission."""

from __future__ import annotations

from sqlalchemy import select

from core.billing.integrity import check_all
from core.billing.topups import topups
from core.config import AppEnv
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.runtime import unit_of_work
from core.tenants.models import Mode, MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import make_tenant


async def wallet_after_topup(server: LiveServer, *, mode: Mode, env: AppEnv) -> int:
    """The wallet's balance after one KES 500 top-up; the ledger check must find nothing wrong."""
    tenant, _ = await make_tenant()
    settings = server.rt.settings.model_copy(update={"APP_ENV": env})
    async with unit_of_work() as session:
        channel = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id))
        assert channel is not None
        payment = Payment(
            tenant_id=tenant.id,
            channel_id=channel.id,
            source=PaymentSource.topup,
            status=PaymentStatus.success,
            mode=mode,
            amount=500,
            phone="254722000111",
            account_reference="TOPUP",
            description="Wallet",
        )
        session.add(payment)
        await session.flush()
        await topups.credit_wallet(session, payment=payment, tenant=tenant, settings=settings)
        balance, _ = await ledger.balance(session, tenant_id=tenant.id, kind=AccountKind.wallet)
    async with unit_of_work(readonly=True) as session:
        assert await check_all(session, tenant_id=tenant.id) == []
    return balance


async def test_a_test_mode_topup_credits_nothing_in_production(server: LiveServer) -> None:
    assert await wallet_after_topup(server, mode=Mode.test, env=AppEnv.production) == 0
    assert await wallet_after_topup(server, mode=Mode.live, env=AppEnv.production) == 50_000
    assert await wallet_after_topup(server, mode=Mode.test, env=AppEnv.development) == 50_000
