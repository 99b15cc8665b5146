"""A business that pays out: its payout channel (a B2C short code of its own, so the simulator's
balance is this test's alone) with an initiator proven by the real balance check through the
simulator, and helpers to read the payout rows and the simulator's side."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from core.access.actor import Actor, Via
from core.auth.models import Role, User
from core.lookups.models import Lookup
from core.payments.models import CallbackInbox
from core.payouts.models import Payout, PayoutStatus
from core.runtime import unit_of_work
from core.tenants import use_cases_initiators
from core.tenants.initiator_schemas import PayoutChannelIn
from core.tenants.models import Environment, MpesaChannel, Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until

PASSWORD = "Safaricom999!*!"


def short_code() -> str:
    """A B2C short code no other test uses: the simulator keeps balances per short code."""
    return str(random.randint(1_000_000, 9_999_999))


def owner_actor(tenant: Tenant, owner: User, via: Via = Via.api) -> Actor:
    return Actor.for_user(
        user_id=owner.id, tenant_id=tenant.id, role=Role.owner, via=via, tenant_name=tenant.name
    )


def sim_url(server: LiveServer, environment: Environment) -> str:
    return {
        Environment.simulator: server.settings.simulator_url,
        Environment.sandbox: server.sandbox_url,
        Environment.production: server.production_url,
    }[environment]


@dataclass
class PayingBusiness:
    tenant: Tenant
    owner: User
    channel_id: uuid.UUID
    short_code: str
    environment: Environment
    sim: str  # the simulator this channel reaches

    @property
    def actor(self) -> Actor:
        return owner_actor(self.tenant, self.owner)


async def add_payout_channel(
    server: LiveServer,
    tenant: Tenant,
    owner: User,
    *,
    name: str = "Payouts",
    environment: Environment = Environment.production,
    code: str | None = None,
    password: str = PASSWORD,
    wait: bool = True,
) -> tuple[uuid.UUID, str]:
    code = code or short_code()
    out = await use_cases_initiators.add_payout_channel(
        owner_actor(tenant, owner),
        PayoutChannelIn(
            name=name,
            environment=environment,
            short_code=code,
            consumer_key=None if environment is Environment.simulator else SecretStr("b2c-consumer-key"),
            consumer_secret=None
            if environment is Environment.simulator
            else SecretStr("b2c-consumer-secret"),
            initiator_name="apiop",
            initiator_password=SecretStr(password),
        ),
    )
    if wait:
        await wait_until(lambda: initiator_settled(out.id))
    return out.id, code


async def paying_business(
    server: LiveServer, *, name: str = "Payout Duka", environment: Environment = Environment.production
) -> PayingBusiness:
    """An active business (its collection channel verified) with a verified payout channel. Production
    by default: its payouts are live (the test server's production URL is a simulator), so they post to
    the ledger."""
    tenant, owner = await make_tenant(name=name, environment=environment)
    channel_id, code = await add_payout_channel(server, tenant, owner, environment=environment)
    channel = await channel_row(channel_id)
    assert channel.initiator_verified_at is not None, channel.initiator_error
    return PayingBusiness(tenant, owner, channel_id, code, environment, sim_url(server, environment))


async def channel_row(channel_id: uuid.UUID) -> MpesaChannel:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(MpesaChannel, channel_id)
        assert row is not None
        return row


async def initiator_settled(channel_id: uuid.UUID) -> bool:
    row = await channel_row(channel_id)
    return row.initiator_verified_at is not None or row.initiator_error is not None


async def payout_row(payout_id: uuid.UUID | str) -> Payout:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Payout, uuid.UUID(str(payout_id)))
        assert row is not None
        return row


async def wait_final(payout_id: uuid.UUID | str, *, timeout: float = 20.0) -> Payout:
    async def final() -> bool:
        return (await payout_row(payout_id)).status.is_final

    await wait_until(final, timeout=timeout)
    return await payout_row(payout_id)


async def wait_sent(payout_id: uuid.UUID | str) -> Payout:
    """Until Daraja accepted it (the send job recorded `sent_at`)."""

    async def sent() -> bool:
        row = await payout_row(payout_id)
        return row.sent_at is not None or row.status is not PayoutStatus.pending

    await wait_until(sent)
    return await payout_row(payout_id)


async def lookups_of(payout_id: uuid.UUID | str) -> list[Lookup]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Lookup)
                .where(Lookup.payout_id == uuid.UUID(str(payout_id)))
                .order_by(Lookup.created_at)
            )
        )


async def answers_of(channel_id: uuid.UUID, kind: str) -> list[CallbackInbox]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(CallbackInbox)
                .where(CallbackInbox.channel_id == channel_id, CallbackInbox.kind == kind)
                .order_by(CallbackInbox.id)
            )
        )


async def sim_balance(sim: str, code: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{sim}/_sim/balance/{code}")
        r.raise_for_status()
        return dict(r.json())


async def sim_b2c_requests(sim: str, code: str) -> list[dict[str, Any]]:
    """Every B2C v3 request body the simulator received for this short code, in order."""
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{sim}/_sim/requests", params={"path": "/mpesa/b2c/v3/paymentrequest"})
        r.raise_for_status()
        return [body for body in r.json() if str(body.get("PartyA")) == code]
