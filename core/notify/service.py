from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.models import Role, User
from core.db import current_scope, platform_scope, utcnow
from core.jobs.registry import enqueue
from core.notify import texts
from core.notify.jobs import send_notification
from core.notify.models import Notification, NotifyChannel
from core.notify.reports import record_delivery_report
from core.notify.sms import to_gsm_text
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.tenants.models import Tenant

NAIROBI = ZoneInfo("Africa/Nairobi")


class NotifyService:
    async def queue(self, session: AsyncSession, row: Notification) -> Notification:
        """Write an outbox row and its send job in the caller's transaction."""
        if row.tenant_id is None and (scope := current_scope(session)) is not None and not scope.is_platform:
            # lipapush's own message (a USSD phone code) from a business's transaction: it belongs to
            # no business, so the row-level policy lets only a platform scope write it.
            async with platform_scope(session, f"lipapush's own {row.kind} message"):
                session.add(row)
                await session.flush()
        else:
            session.add(row)
            await session.flush()
        await enqueue(session, send_notification, notification_id=row.id)
        return row

    async def owner(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> User | None:
        return await session.scalar(
            select(User).where(User.tenant_id == tenant_id, User.role == Role.owner).order_by(User.created_at)
        )

    async def sms(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant | None,
        to: str,
        kind: str,
        body: str,
        payment_id: uuid.UUID | None = None,
    ) -> Notification:
        """Queue an SMS in the caller's transaction, from the business's own sender id when it has one."""
        return await self.queue(
            session,
            Notification(
                tenant_id=tenant.id if tenant else None,
                kind=kind,
                channel=NotifyChannel.sms,
                recipient=to,
                sender_id=tenant.sms_sender_id if tenant else None,
                payment_id=payment_id,
                body=to_gsm_text(body),
            ),
        )

    async def delivery_report(
        self, session: AsyncSession, *, message_id: str, status: str, failure_reason: str | None
    ) -> None:
        await record_delivery_report(
            session, message_id=message_id, status=status, failure_reason=failure_reason
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
            return await self.sms(session, tenant=tenant, to=tenant.phone, kind=kind, body=body)
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
        """A push from the bot edits its own status message; a push from the USSD menu is reported by
        SMS to the phone that asked; a push from the API or USSD is reported to the owner's chat when
        the tenant wants that; a paying customer gets a receipt SMS when the tenant turned them on."""
        if payment.notify_phone is not None:
            await self.sms(
                session,
                tenant=tenant,
                to=payment.notify_phone,
                kind="payment.sms_result",
                body=texts.sms_payment_result(payment),
                payment_id=payment.id,
            )
        if (
            tenant.sms_receipts
            and payment.status is PaymentStatus.success
            and payment.source not in (PaymentSource.onboarding, PaymentSource.topup)
            # A C2B payer whose number M-Pesa masked (2547*****126) cannot be texted.
            and payment.phone.isdigit()
        ):
            when = (payment.transaction_date or payment.completed_at or utcnow()).astimezone(NAIROBI)
            await self.sms(
                session,
                tenant=tenant,
                to=payment.phone,
                kind="payment.receipt",
                body=texts.receipt_sms(
                    tenant.sms_receipt_template,
                    business=tenant.name,
                    amount=payment.paid_amount or payment.amount,
                    receipt=payment.receipt,
                    date=when.strftime("%d %b %Y %H:%M"),
                ),
                payment_id=payment.id,
            )
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
        # Payments nobody in the chat started: from the API, USSD, or a customer paying the till or
        # paybill straight (C2B).
        if (
            payment.source not in (PaymentSource.api, PaymentSource.ussd, PaymentSource.c2b)
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
