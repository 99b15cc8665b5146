"""What a person or an integration can do with payouts, from any entry point: send one, list, read.

Who may pay out: the owner (`payouts:request` in the role table), an API key with the `payouts:write`
scope, and a manager or cashier only once the owner granted it to them (`users.may_pay_out`, read
here, in `with_payout_grant`, once for every front end). A confirmation step comes before the call in
every front end (the bot's and USSD's confirm screens, the CLI's "Send KES … to …? [y/N]"); for the
API, the explicit POST is the confirmation.

A payout is recorded pending in one transaction with its audit row, its OriginatorConversationID
and its first look-by time, and sent by a job after that commits (core/payouts/send.py): never in the
request, so a slow M-Pesa never holds a person's screen, and a crash mid-call loses nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import replace
from datetime import timedelta

from core.access.actor import Actor, ActorKind, Via
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.auth.models import Role, User
from core.db import utcnow
from core.errors import PermissionDenied, TenantNotActive
from core.jobs.registry import enqueue
from core.payouts import channels as payout_channels
from core.payouts.limits import check_limits, lock_business
from core.payouts.models import PayoutCommand, PayoutSource
from core.payouts.schemas import PayoutFilter, PayoutOut, PayoutPage
from core.payouts.send import send_payout
from core.payouts.service import clean_key, payouts, same
from core.phones import mask_msisdn
from core.retry import retrying
from core.runtime import runtime
from core.tenants.channels import channels
from core.tenants.models import Tenant, TenantStatus
from core.tenants.service import tenants

SOURCE_BY_VIA: dict[Via, PayoutSource] = {
    Via.api: PayoutSource.api,
    Via.mcp: PayoutSource.mcp,
    Via.panel: PayoutSource.panel,
    Via.cli: PayoutSource.cli,
    Via.telegram: PayoutSource.telegram,
    Via.ussd: PayoutSource.ussd,
}
# The reconciler's first look at a payout whose send job has not run by then (it sends it again,
# same id). The send job sets its own time when it runs, which is at once after commit.
SEND_GRACE = timedelta(minutes=2)


def ensure_active(tenant: Tenant) -> Tenant:
    """A suspended business pays nothing out, whoever asks."""
    if tenant.status is TenantStatus.suspended:
        reason = f": {tenant.status_reason}" if tenant.status_reason else ""
        raise TenantNotActive(f"This business is suspended{reason}. Contact lipapush support.")
    return tenant


async def with_payout_grant(actor: Actor) -> Actor:
    """The actor, holding `payouts:request` when it is a manager or cashier the owner allowed to pay
    out (users.may_pay_out, an active account of the same business). Everyone else unchanged: the use
    case's own check then refuses them with the usual sentence."""
    if (
        actor.can(Permission.payouts_request)
        or actor.kind is not ActorKind.user
        or actor.role not in (Role.manager, Role.cashier)
        or actor.user_id is None
    ):
        return actor
    async with unit_of_work(actor, readonly=True) as uow:
        user = await uow.session.get(User, actor.user_id)
        granted = (
            user is not None
            and user.may_pay_out
            and user.disabled_at is None
            and user.tenant_id == actor.tenant_id
        )
        business = actor.tenant_name or (await tenants.get(uow.session, actor.require_tenant())).name
    if not granted:
        raise PermissionDenied(
            f"Paying out is for the owner of {business}, and staff the owner allowed to pay out: ask the "
            "owner to allow it for you."
        )
    # Who may pay out may follow what they paid (their payout, a batch's progress and result).
    return replace(
        actor, permissions=actor.permissions | {Permission.payouts_request, Permission.payouts_read}
    )


async def request_payout(
    actor: Actor,
    *,
    phone: str,
    amount: int,
    name: str | None = None,
    reference: str | None = None,
    occasion: str | None = None,
    command: PayoutCommand = PayoutCommand.business,
    channel_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> PayoutOut:
    """Pay `amount` whole shillings to `phone` (normalised, core.phones) through the business's payout
        channel (`channel_id`, or the one `core.payouts.channels.choose` picks): the one entry point of
    every front end. Staff the owner allowed to pay out get the right here; `record_payout` does the
    rest."""
    return await record_payout(
        await with_payout_grant(actor),
        phone=phone,
        amount=amount,
        name=name,
        reference=reference,
        occasion=occasion,
        command=command,
        channel_id=channel_id,
        idempotency_key=idempotency_key,
    )


@use_case(Permission.payouts_request, audit="payout.requested")
async def record_payout(
    actor: Actor,
    *,
    phone: str,
    amount: int,
    name: str | None,
    reference: str | None,
    occasion: str | None,
    command: PayoutCommand,
    channel_id: uuid.UUID | None,
    idempotency_key: str | None,
) -> PayoutOut:
    """In order, nothing written until all pass: the channel (the caller's mode; its initiator
    proven), a repeated Idempotency-Key (the first payout back, whatever its state: no limit is
    counted twice), the business active, the per-payout and daily limits (the business's row locked
    while the day is added up). Then the pending payout, its audit row and its send job, in one
    transaction; the job runs after commit."""
    tenant_id = actor.require_tenant()
    key = clean_key(idempotency_key)
    rt = runtime()

    async def record() -> PayoutOut:
        async with unit_of_work(actor) as uow:
            session = uow.session
            channel = await payout_channels.choose(
                session, tenant_id=tenant_id, channel_id=channel_id, mode=actor.mode
            )
            if key is not None:
                existing = await payouts.by_idempotency_key(
                    session, tenant_id=tenant_id, mode=channel.mode, key=key
                )
                if existing is not None:
                    same(existing, phone=phone, amount=amount, command=command)
                    await uow.audit("payout.requested", target=str(existing.id), replay=True)
                    return PayoutOut.model_validate(existing)
            payout_channels.ensure_can_pay_out(channel)
            tenant = ensure_active(await lock_business(session, tenant_id))
            await check_limits(session, tenant=tenant, mode=channel.mode, amount=amount, settings=rt.settings)
            payout, created = await payouts.create_pending(
                session,
                tenant=tenant,
                channel=channel,
                phone=phone,
                amount=amount,
                command=command,
                source=SOURCE_BY_VIA.get(actor.via, PayoutSource.api),
                name=name,
                reference=reference,
                occasion=occasion,
                initiated_by=actor.user_id,  # a key: who minted it, as a push records
                idempotency_key=key,
                app_id=actor.app_id,
                first_check_at=utcnow() + SEND_GRACE,
            )
            await uow.audit(
                "payout.requested",
                target=str(payout.id),
                amount=amount,
                phone=mask_msisdn(phone),
                channel=channel.name,
                mode=channel.mode.value,
                command=command.value,
                replay=not created,
            )
            if created:
                await enqueue(session, send_payout, payout_id=str(payout.id))
            return PayoutOut.model_validate(payout)

    return await retrying(record, what="record a payout")


def _scoped(actor: Actor, filters: PayoutFilter) -> PayoutFilter:
    """An API key sees the payouts of its own mode only; a person sees both and may filter."""
    return dataclasses.replace(filters, mode=actor.mode) if actor.mode is not None else filters


@use_case(Permission.payouts_read, query=True)
async def list_payouts(
    actor: Actor, *, filters: PayoutFilter, cursor: str | None = None, limit: int = 50
) -> PayoutPage:
    """Newest first; `filters.channel_id`, when set, must be the business's channel (404 otherwise)."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = actor.require_tenant()
        if filters.channel_id is not None:
            await channels.get(uow.session, tenant_id=tenant_id, channel_id=filters.channel_id)
        return await payouts.list_page(
            uow.session, tenant_id=tenant_id, filters=_scoped(actor, filters), cursor=cursor, limit=limit
        )


@use_case(Permission.payouts_read, query=True)
async def get_payout(actor: Actor, payout_id: uuid.UUID) -> PayoutOut:
    """One payout; another business's id (or another mode's, for an API key) is 404."""
    async with unit_of_work(actor, readonly=True) as uow:
        payout = await payouts.get(
            uow.session, tenant_id=actor.require_tenant(), payout_id=payout_id, mode=actor.mode
        )
        return PayoutOut.model_validate(payout)
