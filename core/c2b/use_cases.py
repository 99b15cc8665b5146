"""C2B as every entry point uses it (API, CLI; the bot and panel later): register a channel's URLs, see
where it stands, switch validation and its accounts rule, list account numbers and the decisions taken,
read a payment's C2B facts. Changing any of it is the owner's (channel:manage); reading is the owner's
and the manager's (channel:read). Another business's channel is 404 (core.tenants.channels.get)."""

from __future__ import annotations

import uuid

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.c2b import service as c2b
from core.c2b.schemas import (
    C2BAccountOut,
    C2BAccountsIn,
    C2BAccountsOut,
    C2BDecisionOut,
    C2BPaymentOut,
    C2BRegisteredOut,
    C2BRegisterIn,
    C2BSettingsIn,
    C2BStateOut,
)
from core.daraja.errors import DarajaError
from core.errors import NotFound
from core.payments.service import payments
from core.runtime import runtime
from core.tenants.channels import channels

MAX_LIST = 500


@use_case(Permission.channel_manage, audit="c2b.urls_registered")
async def register_urls(actor: Actor, channel_id: uuid.UUID, data: C2BRegisterIn) -> C2BRegisteredOut:
    """Tell M-Pesa where to report payments made straight to this channel's short code (Daraja's
    registerurl, v1 by default), then mark the channel registered. Daraja is called between two
    transactions, never inside one; a refusal changes nothing and says what to do
    (core.c2b.service.registration_refused)."""
    tenant_id = actor.require_tenant()
    rt = runtime()
    async with unit_of_work(actor, readonly=True) as uow:
        channel = await channels.get(uow.session, tenant_id=tenant_id, channel_id=channel_id)
        plan = c2b.plan_registration(
            channel,
            version=data.version,
            response_type=data.response_type,
            key_mode=actor.mode,
            box=rt.secrets,
            settings=rt.settings,
        )
    try:
        answer = await rt.daraja().register_c2b_urls(plan.creds, plan.request)
    except DarajaError as exc:
        raise c2b.registration_refused(exc, plan) from None
    async with unit_of_work(actor) as uow:
        channel = await channels.get(uow.session, tenant_id=tenant_id, channel_id=channel_id)
        c2b.mark_registered(channel, version=data.version)
        await uow.session.flush()
        await uow.audit(
            "c2b.urls_registered",
            target=str(channel.id),
            short_code=plan.short_code,
            version=data.version,
            response_type=data.response_type,
            environment=plan.environment.value,
        )
        return C2BRegisteredOut(
            state=await c2b.state(uow.session, channel, settings=rt.settings),
            originator_conversation_id=answer.originator_conversation_id,
            response_description=answer.response_description,
        )


@use_case(Permission.channel_read, query=True)
async def c2b_state(actor: Actor, channel_id: uuid.UUID) -> C2BStateOut:
    async with unit_of_work(actor, readonly=True) as uow:
        channel = await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
        return await c2b.state(uow.session, channel, settings=runtime().settings)


@use_case(Permission.channel_read, query=True)
async def c2b_overview(actor: Actor) -> list[C2BStateOut]:
    """Every channel of the business that collects, the primary first."""
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await channels.all(uow.session, tenant_id=actor.require_tenant())
        return [
            await c2b.state(uow.session, row, settings=runtime().settings)
            for row in rows
            if row.kind.collects
        ]


@use_case(Permission.channel_manage, audit="c2b.settings_changed")
async def change_c2b_settings(actor: Actor, channel_id: uuid.UUID, data: C2BSettingsIn) -> C2BStateOut:
    """Validation on or off, and the accounts rule. Off by default: Safaricom enables external validation
    per short code on request, and until it does M-Pesa never asks (the answer's notes say so)."""
    async with unit_of_work(actor) as uow:
        channel = await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
        changed = c2b.change_settings(channel, data)
        await uow.session.flush()
        await uow.audit("c2b.settings_changed", target=str(channel.id), **changed)
        return await c2b.state(uow.session, channel, settings=runtime().settings)


@use_case(Permission.channel_manage, audit="c2b.accounts_added")
async def add_c2b_accounts(actor: Actor, channel_id: uuid.UUID, data: C2BAccountsIn) -> C2BAccountsOut:
    async with unit_of_work(actor) as uow:
        channel = await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
        added, total = await c2b.add_accounts(uow.session, channel=channel, references=data.references)
        await uow.audit("c2b.accounts_added", target=str(channel.id), added=added, total=total)
        return C2BAccountsOut(added=added, total=total)


@use_case(Permission.channel_manage, audit="c2b.account_removed")
async def remove_c2b_account(actor: Actor, channel_id: uuid.UUID, reference: str) -> None:
    async with unit_of_work(actor) as uow:
        channel = await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
        removed = await c2b.remove_account(uow.session, channel=channel, reference=reference)
        await uow.audit("c2b.account_removed", target=str(channel.id), reference=removed)


@use_case(Permission.channel_read, query=True)
async def list_c2b_accounts(
    actor: Actor, channel_id: uuid.UUID, *, limit: int = MAX_LIST
) -> list[C2BAccountOut]:
    async with unit_of_work(actor, readonly=True) as uow:
        channel = await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
        rows = await c2b.list_accounts(uow.session, channel_id=channel.id, limit=min(limit, MAX_LIST))
        return [C2BAccountOut.model_validate(r) for r in rows]


@use_case(Permission.channel_read, query=True)
async def list_c2b_decisions(
    actor: Actor,
    channel_id: uuid.UUID,
    *,
    accepted: bool | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[C2BDecisionOut]:
    """The channel's validation answers and refused confirmations, newest first."""
    async with unit_of_work(actor, readonly=True) as uow:
        channel = await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
        rows = await c2b.decisions(
            uow.session,
            channel_id=channel.id,
            accepted=accepted,
            before_id=before_id,
            limit=min(limit, MAX_LIST),
        )
        return [C2BDecisionOut.model_validate(r) for r in rows]


@use_case(Permission.payments_read, query=True)
async def get_c2b_payment(actor: Actor, payment_id: uuid.UUID) -> C2BPaymentOut:
    """A C2B payment's own facts (the full account number, the amount to the cent, the number as sent),
    for whoever may read the payment itself (a cashier: only payments they started, so none of these;
    an API key: only its mode's)."""
    async with unit_of_work(actor, readonly=True) as uow:
        payment = await payments.get(
            uow.session,
            tenant_id=actor.require_tenant(),
            payment_id=payment_id,
            initiated_by=actor.own_payments_only,
            mode=actor.mode,
        )
        facts = await c2b.facts_of(uow.session, payment_id=payment.id)
        if facts is None:
            raise NotFound("This payment was not made by C2B (paid straight to the till or paybill).")
        return C2BPaymentOut.model_validate(facts)
