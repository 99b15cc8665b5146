from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.models import Role, User
from core.notify.models import Notification, NotifyChannel
from core.tenants.models import Tenant


class NotifyService:
    async def to_owner(
        self, session: AsyncSession, *, tenant: Tenant, kind: str, body: str, subject: str | None = None
    ) -> Notification:
        """Queue a message for the business owner on the best channel they have: Telegram when
        linked, else SMS to the business phone. Written in the caller's transaction."""
        owner = await session.scalar(
            select(User).where(User.tenant_id == tenant.id, User.role == Role.owner).order_by(User.created_at)
        )
        if owner is not None and owner.telegram_user_id is not None:
            channel, recipient = NotifyChannel.telegram, str(owner.telegram_user_id)
        else:
            channel, recipient = NotifyChannel.sms, tenant.phone
        row = Notification(
            tenant_id=tenant.id, kind=kind, channel=channel, recipient=recipient, subject=subject, body=body
        )
        session.add(row)
        await session.flush()
        return row

    async def for_tenant(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, kind: str | None = None
    ) -> list[Notification]:
        stmt = select(Notification).where(Notification.tenant_id == tenant_id)
        if kind:
            stmt = stmt.where(Notification.kind == kind)
        return list(await session.scalars(stmt.order_by(Notification.id)))


notify = NotifyService()
