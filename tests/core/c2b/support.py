"""A business collecting through a channel of its own short code (so no other test's C2B registration or
validation switch on the simulator touches it), and a C2B confirmation as M-Pesa POSTs it."""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from sqlalchemy import func, select

from core.auth.models import User
from core.c2b.models import C2BDecision
from core.config import SANDBOX_PASSKEY
from core.customers.models import Customer
from core.db import Scope, utcnow
from core.ledger.models import Transfer
from core.payments.models import CallbackInbox, Payment
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, ChannelKind, Environment, Mode, MpesaChannel, Tenant
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants
from core.webhooks.models import WebhookMessage
from tests.support.factories import fund_wallet, make_tenant, set_billing

EAT = ZoneInfo("Africa/Nairobi")
SCOPE = Scope.platform("test: C2B")


@dataclass
class Business:
    tenant: Tenant
    owner: User
    channel_id: uuid.UUID
    token: str
    short_code: str
    mode: Mode


def new_short_code() -> str:
    return str(random.randint(3_000_000, 3_999_999))


async def c2b_business(
    *,
    name: str = "C2B Duka",
    environment: Environment = Environment.production,
    kind: ChannelKind = ChannelKind.paybill,
    billing: BillingMode = BillingMode.wallet,
    bps: int = 100,
    wallet_cents: int = 0,
) -> Business:
    """An active business whose primary channel (verified) collects into a short code of its own. Wallet
    billing at 1 % by default; `wallet_cents` funds the wallet first."""
    tenant, owner = await make_tenant(name=name, with_channel=False, verified=False)
    code = new_short_code()
    rt = runtime()
    sim = environment is Environment.simulator
    async with unit_of_work(scope=Scope.tenant(tenant.id)) as session:
        row = await tenants.get(session, tenant.id)
        channel = await tenants.save_channel(
            session,
            tenant=row,
            data=ChannelIn(
                environment=environment,
                kind=kind,
                business_short_code=code,
                till_number=code if kind is ChannelKind.till else None,
                consumer_key=None if sim else SecretStr("test-consumer-key"),
                consumer_secret=None if sim else SecretStr("test-consumer-secret"),
                passkey=None if sim else SecretStr(SANDBOX_PASSKEY),
            ),
            box=rt.secrets,
            by=owner.id,
        )
        await tenants.mark_verified(session, channel=channel)
        channel_id, token = channel.id, channel.callback_token
        await session.refresh(row)
        tenant = row
    await set_billing(tenant, mode=billing, bps=bps)
    if wallet_cents:
        await fund_wallet(tenant, wallet_cents)
    return Business(tenant, owner, channel_id, token, code, environment.mode)


def confirmation(
    short_code: str,
    *,
    trans_id: str | None = None,
    amount: str = "500.00",
    msisdn: str = "254722000111",
    bill_ref: str = "INV1001",
    first: str = "JANE",
    middle: str = "",
    last: str = "WANJIKU",
    at: datetime | None = None,
    kind: str = "Pay Bill",
) -> dict[str, Any]:
    """A confirmation body as refs/daraja.md §6.3 documents it."""
    when = (at or utcnow()).astimezone(EAT)
    return {
        "TransactionType": kind,
        "TransID": trans_id or new_trans_id(),
        "TransTime": when.strftime("%Y%m%d%H%M%S"),
        "TransAmount": amount,
        "BusinessShortCode": short_code,
        "BillRefNumber": bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": "125000.00",
        "ThirdPartyTransID": "",
        "MSISDN": msisdn,
        "FirstName": first,
        "MiddleName": middle,
        "LastName": last,
    }


def new_trans_id() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "UL" + "".join(secrets.choice(alphabet) for _ in range(8))


async def payments_with_receipt(receipt: str) -> list[Payment]:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        return list(await session.scalars(select(Payment).where(Payment.receipt == receipt)))


async def c2b_payments(tenant_id: uuid.UUID) -> list[Payment]:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        return list(
            await session.scalars(
                select(Payment)
                .where(Payment.tenant_id == tenant_id, Payment.source == "c2b")
                .order_by(Payment.created_at)
            )
        )


async def customer(tenant_id: uuid.UUID, phone: str, mode: Mode = Mode.live) -> Customer | None:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        return await session.scalar(
            select(Customer).where(
                Customer.tenant_id == tenant_id, Customer.mode == mode, Customer.phone == phone
            )
        )


async def customer_count(tenant_id: uuid.UUID) -> int:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        return int(
            await session.scalar(select(func.count(Customer.id)).where(Customer.tenant_id == tenant_id)) or 0
        )


async def commission_transfers(payment_id: uuid.UUID) -> list[tuple[str, int]]:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        rows = await session.execute(
            select(Transfer.kind, Transfer.amount_cents)
            .where(Transfer.payment_id == payment_id)
            .order_by(Transfer.id)
        )
        return [(k, int(c)) for k, c in rows.all()]


async def webhook_messages(object_id: uuid.UUID) -> list[str]:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        rows = await session.scalars(
            select(WebhookMessage.event_type)
            .where(WebhookMessage.object_id == str(object_id))
            .order_by(WebhookMessage.id)
        )
        return list(rows)


async def decisions(channel_id: uuid.UUID) -> list[C2BDecision]:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        return list(
            await session.scalars(
                select(C2BDecision).where(C2BDecision.channel_id == channel_id).order_by(C2BDecision.id)
            )
        )


async def inbox_rows(channel_id: uuid.UUID, trans_id: str) -> list[CallbackInbox]:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        return list(
            await session.scalars(
                select(CallbackInbox)
                .where(CallbackInbox.channel_id == channel_id, CallbackInbox.reference == trans_id)
                .order_by(CallbackInbox.id)
            )
        )


async def channel_row(channel_id: uuid.UUID) -> MpesaChannel:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        row = await session.get(MpesaChannel, channel_id)
        assert row is not None
        return row


def minutes_ago(n: float) -> datetime:
    return utcnow() - timedelta(minutes=n)
