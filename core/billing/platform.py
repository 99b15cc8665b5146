"""The platform's own Daraja app (PLATFORM_* settings), used for wallet top-ups.

It is stored like any channel, owned by a `platform` tenant, so top-up pushes get the same callback
inbox, reconciliation and audit trail as merchant pushes.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import SANDBOX_PASSKEY, Settings
from core.crypto import SecretBox
from core.db import utcnow
from core.tenants.models import ChannelKind, Environment, MpesaChannel, Tenant, TenantKind, TenantStatus

PLATFORM_SLUG = "lipapush-platform"


async def platform_channel(session: AsyncSession, *, settings: Settings, box: SecretBox) -> MpesaChannel:
    """Get the platform channel, creating it (and the platform tenant) on first use and keeping it in
    step with the settings."""
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == PLATFORM_SLUG))
    if tenant is None:
        tenant = Tenant(
            kind=TenantKind.platform,
            name="lipapush",
            slug=PLATFORM_SLUG,
            email="platform@lipapush.invalid",
            phone="254700000000",
            status=TenantStatus.active,
        )
        session.add(tenant)
        await session.flush()
    channel = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id))
    kind = ChannelKind(settings.PLATFORM_CHANNEL_KIND)
    wanted = {
        "environment": Environment(settings.PLATFORM_ENVIRONMENT),
        "kind": kind,
        "business_short_code": settings.PLATFORM_SHORT_CODE,
        "till_number": settings.PLATFORM_TILL_NUMBER
        or (settings.PLATFORM_SHORT_CODE if kind is ChannelKind.till else None),
    }
    key = settings.PLATFORM_CONSUMER_KEY or "platform-simulator-key"
    secret = settings.PLATFORM_CONSUMER_SECRET or "platform-simulator-secret"
    passkey = settings.PLATFORM_PASSKEY or SANDBOX_PASSKEY
    if channel is None:
        channel = MpesaChannel(
            tenant_id=tenant.id,
            callback_token=secrets.token_hex(24),
            verified_at=utcnow(),
            name="Platform",
            is_primary=True,
        )
        session.add(channel)
    elif (
        all(getattr(channel, k) == v for k, v in wanted.items())
        and box.decrypt(channel.passkey_enc) == passkey
        and (
            box.decrypt(channel.consumer_key_enc) == key
            and box.decrypt(channel.consumer_secret_enc) == secret
        )
    ):
        return channel
    for k, v in wanted.items():
        setattr(channel, k, v)
    channel.consumer_key_enc = box.encrypt(key)
    channel.consumer_secret_enc = box.encrypt(secret)
    channel.passkey_enc = box.encrypt(passkey)
    await session.flush()
    return channel
