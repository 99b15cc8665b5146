"""Finding a business's apps and the channel (and mode) each one uses; making, renaming and archiving
them. No commit here and no permission: the use cases (core/apps/use_cases.py) hold those."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.apps.models import App
from core.apps.schemas import NAME_MAX, AppChannelOut, AppOut
from core.auth.models import ApiKey
from core.db import utcnow
from core.errors import NotFound
from core.names import ensure_name_free, flush_name
from core.tenants.models import ChannelKind, Mode, MpesaChannel
from core.webhooks.models import WebhookEndpoint

DEFAULT_APP_NAME = "Default app"
NO_SUCH_APP = "No such app. List this business's apps with GET /api/apps."


class AppService:
    async def get(self, session: AsyncSession, *, tenant_id: uuid.UUID, app_id: uuid.UUID) -> App:
        """The business's app, or 404 (another business's app id is as unknown as a made-up one)."""
        app = await session.get(App, app_id)
        if app is None or app.tenant_id != tenant_id or app.archived_at is not None:
            raise NotFound(NO_SUCH_APP)
        return app

    async def first(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> App | None:
        """The business's first app that is not archived (its default app), None when it has none."""
        return await session.scalar(
            select(App)
            .where(App.tenant_id == tenant_id, App.archived_at.is_(None))
            .order_by(App.created_at, App.id)
            .limit(1)
        )

    async def key_app_id(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, app_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        """The app a key of `app_id` belongs to: that one, or for a key made before apps (in none yet)
        the business's default app, where it goes (None: the business has no app yet)."""
        if app_id is not None:
            return app_id
        first = await self.first(session, tenant_id=tenant_id)
        return first.id if first is not None else None

    async def default_app(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> App:
        """The business's first app, made ("Default app", on its channel) when it has none: keys and
        webhook endpoints made without naming an app belong to it."""
        app = await self.first(session, tenant_id=tenant_id)
        if app is not None:
            return app
        app = App(
            tenant_id=tenant_id,
            name=DEFAULT_APP_NAME,
            channel_id=await _primary_id(session, tenant_id),
            callback_hosts=[],
        )
        session.add(app)
        await session.flush()
        return app

    async def channel_of(self, session: AsyncSession, app: App) -> MpesaChannel | None:
        """The channel the app's pushes go through: its own, or (an app made before the business had a
        channel) the business's primary one; None until the business has one."""
        if app.channel_id is not None:
            return await session.get(MpesaChannel, app.channel_id)
        return await session.scalar(
            select(MpesaChannel).where(MpesaChannel.tenant_id == app.tenant_id, MpesaChannel.is_primary)
        )

    async def mode_of(self, session: AsyncSession, app: App) -> Mode:
        """An app's mode is its channel's: test for a simulator or sandbox channel, live for
        production. An app without a channel yet is a test app: it can reach no money."""
        channel = await self.channel_of(session, app)
        return channel.mode if channel is not None else Mode.test

    # -- listing ------------------------------------------------------------------------------------
    async def active(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> list[App]:
        """The business's apps that are not archived, oldest first (the first is its default app)."""
        rows = await session.scalars(
            select(App)
            .where(App.tenant_id == tenant_id, App.archived_at.is_(None))
            .order_by(App.created_at, App.id)
        )
        return list(rows)

    async def views(self, session: AsyncSession, rows: Sequence[App]) -> list[AppOut]:
        """Apps as the API shows them: mode, channel, working keys and webhook endpoints counted."""
        if not rows:
            return []
        ids = [a.id for a in rows]
        now = utcnow()
        key_counts = dict(
            (
                await session.execute(
                    select(ApiKey.app_id, func.count(ApiKey.id))
                    .where(
                        ApiKey.app_id.in_(ids),
                        ApiKey.revoked_at.is_(None),
                        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
                    )
                    .group_by(ApiKey.app_id)
                )
            ).all()
        )
        endpoint_counts = dict(
            (
                await session.execute(
                    select(WebhookEndpoint.app_id, func.count(WebhookEndpoint.id))
                    .where(WebhookEndpoint.app_id.in_(ids))
                    .group_by(WebhookEndpoint.app_id)
                )
            ).all()
        )
        out: list[AppOut] = []
        for app in rows:
            channel = await self.channel_of(session, app)
            out.append(
                AppOut(
                    id=app.id,
                    name=app.name,
                    mode=channel.mode if channel is not None else Mode.test,
                    channel=channel_summary(channel) if channel is not None else None,
                    callback_hosts=list(app.callback_hosts or []),
                    key_count=int(key_counts.get(app.id, 0)),
                    webhook_endpoint_count=int(endpoint_counts.get(app.id, 0)),
                    created_at=app.created_at,
                    archived_at=app.archived_at,
                )
            )
        return out

    # -- changes --------------------------------------------------------------------------------------
    async def create(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        name: str,
        callback_hosts: list[str],
        created_by: uuid.UUID | None,
        channel_id: uuid.UUID | None = None,
    ) -> tuple[App, int]:
        """A new app on `channel_id` (checked by the caller to be the business's), by default the
        business's primary channel. The business's first app adopts its keys that belong to no app yet
        (made before apps existed). Returns the app and how many keys it adopted."""
        await ensure_name_free(session, App, tenant_id=tenant_id, name=name, taken=name_taken(name))
        first = await session.scalar(select(App.id).where(App.tenant_id == tenant_id).limit(1)) is None
        if channel_id is None:
            channel_id = await _primary_id(session, tenant_id)
        app = App(
            tenant_id=tenant_id,
            name=name,
            channel_id=channel_id,
            callback_hosts=callback_hosts,
            created_by_id=created_by,
        )
        session.add(app)
        await flush_name(session, name_taken(name))
        adopted = 0
        if first:
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.tenant_id == tenant_id, ApiKey.app_id.is_(None))
                .values(app_id=app.id)
                .execution_options(synchronize_session=False)
            )
            adopted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        return app, adopted

    async def rename(self, session: AsyncSession, app: App, *, name: str) -> str:
        """Returns the old name."""
        await ensure_name_free(
            session, App, tenant_id=app.tenant_id, name=name, taken=name_taken(name), other_than=app.id
        )
        old, app.name = app.name, name
        await flush_name(session, name_taken(name))
        return old

    async def working_keys(self, session: AsyncSession, app: App) -> list[ApiKey]:
        """The app's keys not revoked (a rolled key still in its overlap among them)."""
        rows = await session.scalars(
            select(ApiKey)
            .where(ApiKey.app_id == app.id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at)
        )
        return list(rows)

    async def others_active(self, session: AsyncSession, app: App) -> int:
        """How many other apps of the business are not archived."""
        count = await session.scalar(
            select(func.count(App.id)).where(
                and_(App.tenant_id == app.tenant_id, App.archived_at.is_(None), App.id != app.id)
            )
        )
        return int(count or 0)

    async def mark_archived(self, session: AsyncSession, app: App, *, at: datetime) -> str:
        """Archive the app and free its name for a new app (an archived app is never shown: its old
        name is on its audit row). Returns the old name."""
        old = app.name
        suffix = f" (archived {str(app.id)[:8]})"
        app.name = old[: NAME_MAX - len(suffix)] + suffix
        app.archived_at = at
        await session.flush()
        return old


async def _primary_id(session: AsyncSession, tenant_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(
        select(MpesaChannel.id).where(MpesaChannel.tenant_id == tenant_id, MpesaChannel.is_primary)
    )


def channel_summary(channel: MpesaChannel) -> AppChannelOut:
    """A channel as people read it: "Main: Paybill 174379 (simulator)", "Westlands: Till 5123456
    (production)"."""
    if channel.kind is ChannelKind.till:
        kind, number = "Till", channel.till_number or channel.business_short_code
    else:
        kind, number = "Paybill", channel.business_short_code
    return AppChannelOut(
        id=channel.id,
        name=channel.name,
        primary=channel.is_primary,
        kind=channel.kind,
        number=number,
        environment=channel.environment,
        verified=channel.verified_at is not None,
        label=f"{channel.name}: {kind} {number} ({channel.environment.value})",
    )


def name_taken(name: str) -> str:
    return f"This business already has an app named “{name}”: choose another name, or rename that app."


apps = AppService()
