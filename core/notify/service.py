from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.models import Role, User
from core.jobs.registry import enqueue
from core.notify import texts
from core.notify.models import Notification, NotifyChannel
from core.payments.models import Payment, PaymentSource
from core.tenants.models import Tenant


class NotifyService:
    async def queue(self, session: AsyncSession, row: Notification) -> Notification:
        """Write an outbox row and its send job in the caller's transaction."""
        from core.notify.jobs import send_notification

        session.add(row)
        await session.flush()
        await enqueue(session, send_notification, notification_id=row.id)
        return row

    async def owner(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> User | None:
        return await session.scalar(
            select(User).where(User.tenant_id == tenant_id, User.role == Role.owner).order_by(User.created_at)
        )

    async def to_owner(
        self, session: AsyncSession, *, tenant: Tenant, kind: str, body: str, subject: str | None = None
    ) -> Notification:
        """Queue a message for the business owner on the best channel they have: Telegram when
        linked, else SMS to the business phone. Written in the caller's transaction; a row is kept
        even when no sender for its channel is configured yet."""
        owner = await self.owner(session, tenant_id=tenant.id)
        if owner is not None and owner.telegram_user_id is not None:
            channel, recipient = NotifyChannel.telegram, str(owner.telegram_user_id)
        else:
            channel, recipient = NotifyChannel.sms, tenant.phone
        return await self.queue(
            session,
            Notification(
                tenant_id=tenant.id,
                kind=kind,
                channel=channel,
                recipient=recipient,
                subject=subject,
                body=body,
            ),
        )

    async def payment_finalised(self, session: AsyncSession, *, payment: Payment, tenant: Tenant) -> None:
        """A push from the bot edits its own status message; a push from the API or USSD is reported
        to the owner's chat when the tenant wants that."""
        if payment.status_chat_id is not None and payment.status_message_id is not None:
            await self.queue(
                session,
                Notification(
                    tenant_id=tenant.id,
                    kind="payment.status",
                    channel=NotifyChannel.telegram,
                    recipient=str(payment.status_chat_id),
                    edit_message_id=payment.status_message_id,
                    payment_id=payment.id,
                    body=texts.payment_status(payment),
                    buttons=texts.payment_buttons(payment),
                ),
            )
            return
        if (
            payment.source not in (PaymentSource.api, PaymentSource.ussd)
            or not tenant.notify_owner_on_payments
        ):
            return
        owner = await self.owner(session, tenant_id=tenant.id)
        if owner is not None and owner.telegram_user_id is not None:
            await self.queue(
                session,
                Notification(
                    tenant_id=tenant.id,
                    kind="payment.result",
                    channel=NotifyChannel.telegram,
                    recipient=str(owner.telegram_user_id),
                    payment_id=payment.id,
                    body=texts.owner_payment_note(payment),
                ),
            )

    async def for_tenant(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, kind: str | None = None
    ) -> list[Notification]:
        stmt = select(Notification).where(Notification.tenant_id == tenant_id)
        if kind:
            stmt = stmt.where(Notification.kind == kind)
        return list(await session.scalars(stmt.order_by(Notification.id)))


notify = NotifyService()
