"""The business's own settings, as every entry point uses them: the M-Pesa channel (viewed with its
secrets masked, saved with the KES 1 verification push, re-verified), the owner's payment alerts and
the customer receipt SMS. The API, the panel and the bot leave the same audit rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.billing.schemas import WalletOut
from core.billing.wallet import wallets
from core.errors import ChannelNotConfigured, LipapushError, NotFound
from core.payments.models import PaymentStatus
from core.payments.push import send_verification_push
from core.payments.schemas import PaymentOut
from core.payments.service import payments
from core.runtime import runtime
from core.tenants.schemas import ChannelIn, ChannelOut, TenantOut
from core.tenants.service import tenants


@dataclass(frozen=True)
class Verification:
    """Where the channel's KES 1 test stands."""

    state: str  # verified, pending (waiting for the owner), failed, unverified (not tried)
    reason: str | None
    verified_at: datetime | None
    phone: str | None  # the phone the test went to


@dataclass(frozen=True)
class BusinessSettings:
    business: TenantOut
    channel: ChannelOut | None  # secrets masked
    verification: Verification | None
    payment_alerts: bool  # the owner's chat hears about API/USSD payments
    own_commission_rate: bool  # a rate of its own rather than the platform's
    wallet: WalletOut | None = None  # with_wallet: the billing lines the bot's settings show


@dataclass(frozen=True)
class ChannelSaved:
    settings: BusinessSettings
    verification: PaymentOut | None  # the KES 1 push, when it went out
    error: str | None = None  # why it did not (Daraja refused or was unreachable)


async def verification_of(session: AsyncSession, tenant_id: uuid.UUID, view: ChannelOut) -> Verification:
    """Where a channel's KES 1 test stands, from the channel and its last verification payment."""
    payment = None
    if view.verification_payment_id is not None:
        try:
            payment = await payments.get(
                session, tenant_id=tenant_id, payment_id=view.verification_payment_id
            )
        except NotFound:
            payment = None
    if view.verified:
        state = "verified"
    elif payment is not None and (
        payment.status is PaymentStatus.pending
        or (payment.status is PaymentStatus.success and not view.verification_error)
    ):
        state = "pending"
    elif view.verification_error or payment is not None:
        state = "failed"
    else:
        state = "unverified"
    reason = view.verification_error
    if state == "failed" and not reason and payment is not None:
        reason = payment.result_desc or payment.status.value
    return Verification(
        state=state,
        reason=reason,
        verified_at=view.verified_at,
        phone=payment.phone if payment is not None else None,
    )


async def _settings(
    session: AsyncSession, tenant_id: uuid.UUID, *, with_wallet: bool = False
) -> BusinessSettings:
    rt = runtime()
    tenant = await tenants.get(session, tenant_id)
    row = await tenants.get_channel(session, tenant_id)
    view = tenants.channel_out(row, box=rt.secrets, settings=rt.settings) if row else None
    return BusinessSettings(
        business=TenantOut.model_validate(tenant),
        channel=view,
        verification=await verification_of(session, tenant_id, view) if view else None,
        payment_alerts=tenant.notify_owner_on_payments,
        own_commission_rate=tenant.commission_bps is not None,
        wallet=await wallets.view(session, tenant=tenant, settings=rt.settings) if with_wallet else None,
    )


@use_case(Permission.channel_read, query=True)
async def view_settings(actor: Actor, *, with_wallet: bool = False) -> BusinessSettings:
    """The business, its channel with the secrets masked and where the KES 1 test stands."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await _settings(uow.session, actor.require_tenant(), with_wallet=with_wallet)


@use_case(Permission.channel_read, query=True)
async def channel_verification(actor: Actor) -> Verification:
    """Only where the KES 1 test stands (polled while it waits); no channel yet is "not found"."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = actor.require_tenant()
        row = await tenants.get_channel(uow.session, tenant_id)
        if row is None:
            raise NotFound("This business has no M-Pesa channel yet.")
        rt = runtime()
        view = tenants.channel_out(row, box=rt.secrets, settings=rt.settings)
        return await verification_of(uow.session, tenant_id, view)


@use_case(Permission.channel_manage, audit="channel.credentials_changed")
async def save_channel(actor: Actor, data: ChannelIn) -> ChannelSaved:
    """Save (create or replace) the channel, its secrets encrypted, then send the KES 1 test push to
    the business phone. Its success verifies the channel and activates the business; when the push
    cannot go out the channel stays saved and `error` says why."""
    tenant_id = actor.require_tenant()
    rt = runtime()
    async with unit_of_work(actor) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        await tenants.save_channel(
            uow.session, tenant=tenant, data=data, box=rt.secrets, by=actor.audit_user_id, audit=uow.audit
        )
    verification: PaymentOut | None = None
    error: str | None = None
    try:
        verification = await send_verification_push(tenant_id=tenant_id, by=actor.audit_user_id)
    except LipapushError as exc:  # Daraja refused (the reason is kept on the channel) or was unreachable
        error = exc.message
    async with unit_of_work(actor, readonly=True) as uow:
        settings = await _settings(uow.session, tenant_id)
    if settings.channel is None:
        raise ChannelNotConfigured("The channel was not saved.")
    return ChannelSaved(settings, verification, error)


@use_case(
    Permission.channel_manage,
    recorded_by="the verification payment (source onboarding, initiated_by); its outcome is audited as "
    "channel.verified or channel.verification_failed",
)
async def verify_channel(actor: Actor) -> PaymentOut:
    """Send the KES 1 test push again through the saved channel (a LipapushError says why not)."""
    return await send_verification_push(tenant_id=actor.require_tenant(), by=actor.audit_user_id)


@use_case(Permission.payment_alerts_manage, audit="settings.payment_alerts")
async def toggle_payment_alerts(actor: Actor) -> bool:
    """Whether the owner's chat hears about payments pushed from the API, the panel or USSD, flipped;
    returns the new value."""
    async with unit_of_work(actor) as uow:
        return await tenants.toggle_payment_alerts(
            uow.session, tenant_id=actor.require_tenant(), by=actor.audit_user_id, audit=uow.audit
        )


@use_case(Permission.sms_settings, audit="settings.sms")
async def change_sms_settings(actor: Actor, *, receipts: bool, receipt_template: str | None) -> TenantOut:
    """Customer receipt SMS on or off, and their text (None: the default one). The template is checked
    by the caller's model (`core.notify.texts.validate_receipt_template`)."""
    async with unit_of_work(actor) as uow:
        tenant = await tenants.get(uow.session, actor.require_tenant())
        tenant.sms_receipts = receipts
        tenant.sms_receipt_template = receipt_template
        await uow.audit("settings.sms", receipts=receipts, receipt_template=receipt_template)
        return TenantOut.model_validate(tenant)
