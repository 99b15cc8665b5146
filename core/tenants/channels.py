"""A business's several M-Pesa channels: listing them, adding one, naming one, choosing the primary.

Each channel is verified by its own KES 1 push (core.payments.push.send_verification_push); its
credentials are saved and replaced by `tenants.save_channel`. Channels are never deleted: payments
point at the channel they went through, and a channel's history is the business's books. One that
is no longer wanted is left unused (no app on it) or given other credentials.
No commit and no permission here: core/tenants/use_cases_channels.py holds those."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.auditing import Auditor
from core.crypto import SecretBox
from core.errors import Conflict, InvalidInput, NotFound
from core.names import ensure_name_free, flush_name
from core.tenants.models import MpesaChannel, Tenant, TenantStatus
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants

NAME_MAX = 60
# A ceiling that no real business reaches (a till per branch): it keeps one owner from filling the
# table, and the lists that show every channel short.
MAX_CHANNELS = 50
NO_SUCH_CHANNEL = "No such channel. List this business's channels with GET /api/channels."


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidInput("name", f"A channel's name is 1 to {NAME_MAX} characters, like “Westlands till”.")
    return name


def name_taken(name: str) -> str:
    return f"This business already has a channel named “{name}”: choose another name, or rename that one."


class ChannelService:
    async def all(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> list[MpesaChannel]:
        """The business's channels, the primary first, then oldest first."""
        rows = await session.scalars(
            select(MpesaChannel)
            .where(MpesaChannel.tenant_id == tenant_id)
            .order_by(MpesaChannel.is_primary.desc(), MpesaChannel.created_at, MpesaChannel.id)
        )
        return list(rows)

    async def get(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, channel_id: uuid.UUID
    ) -> MpesaChannel:
        """The business's channel, or 404 (another business's channel is as unknown as a made-up id)."""
        channel = await session.get(MpesaChannel, channel_id)
        if channel is None or channel.tenant_id != tenant_id:
            raise NotFound(NO_SUCH_CHANNEL)
        return channel

    async def add(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        name: str,
        data: ChannelIn,
        box: SecretBox,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
    ) -> MpesaChannel:
        """A new channel, unverified until its KES 1 push succeeds. The business's first channel is its
        primary one; later ones are not, until the owner says so (`make_primary`)."""
        name = clean_name(name)
        await ensure_name_free(session, MpesaChannel, tenant_id=tenant.id, name=name, taken=name_taken(name))
        count = int(
            await session.scalar(
                select(func.count(MpesaChannel.id)).where(MpesaChannel.tenant_id == tenant.id)
            )
            or 0
        )
        if count >= MAX_CHANNELS:
            raise Conflict(
                f"This business already has {MAX_CHANNELS} channels, the most it may hold. Give an unused "
                "one new credentials (PUT /api/channels/{id}) instead of adding another."
            )
        channel = MpesaChannel(
            tenant_id=tenant.id, callback_token=secrets.token_hex(24), name=name, is_primary=count == 0
        )
        try:
            # Added to the session (and flushed) in save_channel, once its credentials are set: a name
            # another request took a moment ago is then a unique violation, told as the same conflict.
            async with session.begin_nested():
                return await tenants.save_channel(
                    session,
                    tenant=tenant,
                    data=data,
                    box=box,
                    by=by,
                    audit=audit,
                    channel=channel,
                    action="channel.added",
                )
        except IntegrityError:
            raise Conflict(name_taken(name), field="name") from None

    async def rename(self, session: AsyncSession, channel: MpesaChannel, *, name: str) -> str:
        """Returns the old name."""
        name = clean_name(name)
        await ensure_name_free(
            session,
            MpesaChannel,
            tenant_id=channel.tenant_id,
            name=name,
            taken=name_taken(name),
            other_than=channel.id,
        )
        old, channel.name = channel.name, name
        await flush_name(session, name_taken(name))
        return old

    async def make_primary(
        self, session: AsyncSession, *, tenant: Tenant, channel: MpesaChannel
    ) -> tuple[str | None, bool]:
        """Make a verified channel the business's primary one (the bot's, USSD's and the panel's).
        Returns the previous primary channel's name and whether the business became active: one still
        onboarding whose new primary channel is verified is, as its first verification would have made
        it."""
        if channel.verified_at is None:
            raise Conflict(
                f"The channel “{channel.name}” is not verified yet, and the bot, USSD and the panel push "
                "through the primary channel: approve its KES 1 test payment first (POST "
                f"/api/channels/{channel.id}/verify resends it), then make it the primary channel."
            )
        if channel.is_primary:
            return None, False
        old = await tenants.get_channel(session, tenant.id)
        # Clear the old flag first: the partial unique index allows one primary channel per business.
        await session.execute(
            update(MpesaChannel)
            .where(MpesaChannel.tenant_id == tenant.id, MpesaChannel.is_primary)
            .values(is_primary=False)
            .execution_options(synchronize_session=False)
        )
        if old is not None:
            await session.refresh(old, ["is_primary"])
        channel.is_primary = True
        await session.flush()
        activated = tenant.status is TenantStatus.onboarding
        if activated:
            tenant.status = TenantStatus.active
            tenant.status_reason = None
        return (old.name if old is not None else None), activated


channels = ChannelService()
