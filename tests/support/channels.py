"""A business with two verified channels (a till per branch) and payments recorded through each, for
the channel filter tests (tests/core/test_channel_filters.py, tests/web/test_channel_filters_api.py).

Payments are recorded by the payments service itself (create_pending, then finalize), so the customer
book, the commission and the events follow as they do for a push; no prompt is sent."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from core.db import utcnow
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.service import payments
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, MpesaChannel, Tenant
from core.tenants.service import tenants
from tests.support.factories import make_tenant

WANJIKU = "254722000111"
OTIENO = "254722000222"
AKINYI = "254722000333"
KAMAU = "254722000444"
SECOND = "Westlands till"


async def add_verified_channel(tenant: Tenant, *, name: str) -> MpesaChannel:
    """A second channel, verified, in the primary one's environment (and its app's credentials)."""
    async with unit_of_work() as session:
        primary = await tenants.get_channel(session, tenant.id)
        assert primary is not None
        channel = MpesaChannel(
            tenant_id=tenant.id,
            name=name,
            is_primary=False,
            environment=primary.environment,
            kind=ChannelKind.till,
            business_short_code=primary.business_short_code,
            till_number=primary.business_short_code,
            consumer_key_enc=primary.consumer_key_enc,
            consumer_secret_enc=primary.consumer_secret_enc,
            passkey_enc=primary.passkey_enc,
            callback_token=secrets.token_hex(24),
            verified_at=utcnow(),
        )
        session.add(channel)
        await session.flush()
        return channel


async def record(
    tenant: Tenant,
    channel_id: uuid.UUID,
    phone: str,
    amount: int,
    *,
    status: PaymentStatus = PaymentStatus.success,
    name: str | None = None,
    source: PaymentSource = PaymentSource.api,
) -> uuid.UUID:
    """A payment through `channel_id`, left pending or finalised as `status` (a success with a
    receipt, counted in the book)."""
    rt = runtime()
    async with unit_of_work() as session:
        channel = await session.get(MpesaChannel, channel_id)
        assert channel is not None
        payment, _ = await payments.create_pending(
            session,
            tenant=tenant,
            channel=channel,
            phone=phone,
            amount=amount,
            source=source,
            settings=rt.settings,
            name=name,
        )
        if status is not PaymentStatus.pending:
            await payments.finalize(
                session,
                payment=payment,
                status=status,
                settings=rt.settings,
                result_code="0" if status is PaymentStatus.success else "1032",
                result_desc="Done" if status is PaymentStatus.success else "Request cancelled by user",
                receipt=("T" + secrets.token_hex(5).upper()[:9]) if status is PaymentStatus.success else None,
                paid_amount=amount if status is PaymentStatus.success else None,
                paid_phone=phone if status is PaymentStatus.success else None,
            )
        return payment.id


@dataclass(frozen=True)
class TwoTills:
    """The business, its owner, its two channels and the payments through each:

    Main (primary):  Wanjiku 100 paid · Otieno 30 paid, 20 cancelled · Kamau 40 paid
    Westlands till:  Wanjiku 50 paid · Akinyi 70 pending · Kamau's KES 1 channel test (not a customer
                     payment: onboarding), pending
    """

    tenant: Tenant
    owner_id: uuid.UUID
    owner_email: str
    main: uuid.UUID
    till: uuid.UUID
    main_payments: frozenset[uuid.UUID]
    till_payments: frozenset[uuid.UUID]


async def two_tills(name: str = "Two Tills Duka") -> TwoTills:
    tenant, owner = await make_tenant(name=name)
    async with unit_of_work() as session:
        primary = await tenants.get_channel(session, tenant.id)
        assert primary is not None
        main = primary.id
    till = (await add_verified_channel(tenant, name=SECOND)).id
    main_payments = {
        await record(tenant, main, WANJIKU, 100, name="Wanjiku"),
        await record(tenant, main, OTIENO, 30, name="Otieno"),
        await record(tenant, main, OTIENO, 20, status=PaymentStatus.cancelled),
        await record(tenant, main, KAMAU, 40, name="Kamau"),
    }
    till_payments = {
        await record(tenant, till, WANJIKU, 50),
        await record(tenant, till, AKINYI, 70, status=PaymentStatus.pending, name="Akinyi"),
        await record(tenant, till, KAMAU, 1, status=PaymentStatus.pending, source=PaymentSource.onboarding),
    }
    return TwoTills(
        tenant, owner.id, owner.email, main, till, frozenset(main_payments), frozenset(till_payments)
    )
