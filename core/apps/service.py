"""Finding a business's apps and the channel (and mode) each one uses."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.apps.models import App
from core.errors import NotFound
from core.tenants.models import Mode, MpesaChannel

DEFAULT_APP_NAME = "Default app"


class AppService:
    async def get(self, session: AsyncSession, *, tenant_id: uuid.UUID, app_id: uuid.UUID) -> App:
        """The business's app, or 404 (another business's app id is as unknown as a made-up one)."""
        app = await session.get(App, app_id)
        if app is None or app.tenant_id != tenant_id or app.archived_at is not None:
            raise NotFound("No such app. List this business's apps with GET /api/apps.")
        return app

    async def default_app(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> App:
        """The business's first app, made ("Default app", on its channel) when it has none: keys and
        webhook endpoints made without naming an app belong to it."""
        app = await session.scalar(
            select(App)
            .where(App.tenant_id == tenant_id, App.archived_at.is_(None))
            .order_by(App.created_at, App.id)
            .limit(1)
        )
        if app is not None:
            return app
        channel_id = await session.scalar(select(MpesaChannel.id).where(MpesaChannel.tenant_id == tenant_id))
        app = App(tenant_id=tenant_id, name=DEFAULT_APP_NAME, channel_id=channel_id, callback_hosts=[])
        session.add(app)
        await session.flush()
        return app

    async def channel_of(self, session: AsyncSession, app: App) -> MpesaChannel | None:
        """The channel the app's pushes go through (None until the business has one)."""
        if app.channel_id is not None:
            return await session.get(MpesaChannel, app.channel_id)
        return await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == app.tenant_id))

    async def mode_of(self, session: AsyncSession, app: App) -> Mode:
        """An app's mode is its channel's: test for a simulator or sandbox channel, live for
        production. An app without a channel yet is a test app: it can reach no money."""
        channel = await self.channel_of(session, app)
        return channel.mode if channel is not None else Mode.test


apps = AppService()
