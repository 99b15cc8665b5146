"""What the platform's operator reads of the notification outbox from the terminal."""

from __future__ import annotations

from sqlalchemy import select

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.notify.models import Notification


@use_case(Permission.platform_admin, query=True)
async def latest_messages(actor: Actor, *, limit: int = 30) -> list[Notification]:
    """The newest `limit` messages waiting in (or sent from) the outbox: SMS, email, Telegram."""
    async with unit_of_work(actor, readonly=True) as uow:
        return list(
            await uow.session.scalars(select(Notification).order_by(Notification.id.desc()).limit(limit))
        )
