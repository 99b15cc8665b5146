"""A business's several M-Pesa channels, as every entry point uses them: list, add (with its KES 1
verification push), replace credentials, resend the test, rename, choose the primary one. The
primary channel is also what `core.tenants.use_cases` (the Settings page, POST /api/settings) shows
and saves, so a business with one channel never has to learn the word."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.apps.models import App
from core.errors import LipapushError
from core.payments.push import send_verification_push
from core.payments.schemas import PaymentOut
from core.runtime import runtime
from core.tenants.channels import channels
from core.tenants.models import MpesaChannel
from core.tenants.schemas import ChannelIn, ChannelOut
from core.tenants.service import tenants
from core.tenants.use_cases import Verification, verification_of


@dataclass(frozen=True)
class ChannelView:
    channel: ChannelOut  # secrets masked
    verification: Verification
    app_count: int  # apps (not archived) whose pushes go through it


@dataclass(frozen=True)
class ChannelAdded:
    view: ChannelView
    verification: PaymentOut | None  # the KES 1 push, when it went out
    error: str | None = None  # why it did not


async def _views(session: AsyncSession, tenant_id: uuid.UUID, rows: list[MpesaChannel]) -> list[ChannelView]:
    rt = runtime()
    ids = [c.id for c in rows]
    counts = (
        dict(
            (
                await session.execute(
                    select(App.channel_id, func.count(App.id))
                    .where(App.channel_id.in_(ids), App.archived_at.is_(None))
                    .group_by(App.channel_id)
                )
            ).all()
        )
        if ids
        else {}
    )
    out = []
    for row in rows:
        view = tenants.channel_out(row, box=rt.secrets, settings=rt.settings)
        out.append(
            ChannelView(view, await verification_of(session, tenant_id, view), int(counts.get(row.id, 0)))
        )
    return out


async def _view(session: AsyncSession, tenant_id: uuid.UUID, channel_id: uuid.UUID) -> ChannelView:
    row = await channels.get(session, tenant_id=tenant_id, channel_id=channel_id)
    return (await _views(session, tenant_id, [row]))[0]


@use_case(Permission.channel_read, query=True)
async def list_channels(actor: Actor) -> list[ChannelView]:
    """The business's channels, the primary first, each with where its KES 1 test stands."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = actor.require_tenant()
        return await _views(uow.session, tenant_id, await channels.all(uow.session, tenant_id=tenant_id))


@use_case(Permission.channel_read, query=True)
async def get_channel(actor: Actor, channel_id: uuid.UUID) -> ChannelView:
    async with unit_of_work(actor, readonly=True) as uow:
        return await _view(uow.session, actor.require_tenant(), channel_id)


async def _verify(actor: Actor, channel_id: uuid.UUID) -> tuple[PaymentOut | None, str | None]:
    try:
        return (
            await send_verification_push(
                tenant_id=actor.require_tenant(), by=actor.audit_user_id, channel_id=channel_id
            ),
            None,
        )
    except LipapushError as exc:  # Daraja refused (the reason is kept on the channel) or was unreachable
        return None, exc.message


@use_case(Permission.channel_manage, audit="channel.added")
async def add_channel(actor: Actor, *, name: str, data: ChannelIn) -> ChannelAdded:
    """A new channel (its secrets encrypted), then its KES 1 test push to the owner's phone, whose
    success verifies it. The business's first channel becomes its primary one; a later one waits
    for `make_primary`. When the push cannot go out the channel stays saved and `error` says why."""
    tenant_id = actor.require_tenant()
    rt = runtime()
    async with unit_of_work(actor) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        row = await channels.add(
            uow.session,
            tenant=tenant,
            name=name,
            data=data,
            box=rt.secrets,
            by=actor.audit_user_id,
            audit=uow.audit,
        )
        channel_id = row.id
    payment, error = await _verify(actor, channel_id)
    async with unit_of_work(actor, readonly=True) as uow:
        return ChannelAdded(await _view(uow.session, tenant_id, channel_id), payment, error)


@use_case(Permission.channel_manage, audit="channel.credentials_changed")
async def replace_channel(actor: Actor, channel_id: uuid.UUID, data: ChannelIn) -> ChannelAdded:
    """New credentials (or a new till) for one channel, unverified until its new KES 1 test succeeds;
    the primary channel's send the business back to onboarding until then, like POST /api/settings."""
    tenant_id = actor.require_tenant()
    rt = runtime()
    async with unit_of_work(actor) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        row = await channels.get(uow.session, tenant_id=tenant_id, channel_id=channel_id)
        await tenants.save_channel(
            uow.session,
            tenant=tenant,
            data=data,
            box=rt.secrets,
            by=actor.audit_user_id,
            audit=uow.audit,
            channel=row,
        )
    payment, error = await _verify(actor, channel_id)
    async with unit_of_work(actor, readonly=True) as uow:
        return ChannelAdded(await _view(uow.session, tenant_id, channel_id), payment, error)


@use_case(
    Permission.channel_manage,
    recorded_by="the verification payment (source onboarding, initiated_by); its outcome is audited as "
    "channel.verified or channel.verification_failed",
)
async def resend_channel_test(actor: Actor, channel_id: uuid.UUID) -> PaymentOut:
    """Send one channel's KES 1 test push again (a LipapushError says why not)."""
    async with unit_of_work(actor, readonly=True) as uow:
        await channels.get(uow.session, tenant_id=actor.require_tenant(), channel_id=channel_id)
    return await send_verification_push(
        tenant_id=actor.require_tenant(), by=actor.audit_user_id, channel_id=channel_id
    )


@use_case(Permission.channel_manage, audit="channel.renamed")
async def rename_channel(actor: Actor, channel_id: uuid.UUID, *, name: str) -> ChannelView:
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        row = await channels.get(uow.session, tenant_id=tenant_id, channel_id=channel_id)
        old = await channels.rename(uow.session, row, name=name)
        await uow.audit("channel.renamed", target=str(row.id), old_name=old, name=row.name)
        return (await _views(uow.session, tenant_id, [row]))[0]


@use_case(Permission.channel_manage, audit="channel.primary_changed")
async def make_primary(actor: Actor, channel_id: uuid.UUID) -> ChannelView:
    """The verified channel the bot, USSD and the panel push through from now on. Apps keep the
    channel each one chose."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        row = await channels.get(uow.session, tenant_id=tenant_id, channel_id=channel_id)
        old, activated = await channels.make_primary(uow.session, tenant=tenant, channel=row)
        await uow.audit(
            "channel.primary_changed", target=str(row.id), name=row.name, previous=old, activated=activated
        )
        return (await _views(uow.session, tenant_id, [row]))[0]
