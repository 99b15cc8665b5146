"""Exports too big to build while the chat waits: a job builds the file, uploads it to the chat as a
document, and has the "⏳ Preparing…" message edited into the outcome (through the notification
outbox, so that edit is retried like any other message)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from html import escape
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.customers.schemas import CustomerQuery
from core.db import Scope
from core.errors import NotFound
from core.exports.books import customer_book
from core.exports.links import downloads_dir, new_download, sign
from core.exports.xlsx import XLSX_MEDIA_TYPE, export_filename
from core.jobs.registry import enqueue, job
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify
from core.notify.telegram import TelegramSender, TelegramUndeliverable
from core.runtime import runtime, unit_of_work
from core.tenants.models import Mode
from core.tenants.service import tenants

log = logging.getLogger(__name__)


def customer_book_caption(count: int, label: str = "") -> str:
    """The document's caption, the same whether the bot sends it at once or this job does."""
    noun = "customer" if count == 1 else "customers"
    return f"👥 {count:,} {noun}" + (f" · {escape(label)}" if label else "")


def preparing_text(count: int) -> str:
    return (
        f"⏳ Preparing the customer book ({count:,} customers). "
        "I will send the Excel file here as soon as it is ready."
    )


def sent_text(count: int) -> str:
    return f"✅ Sent the customer book: {count:,} customers."


def failed_text(reason: str) -> str:
    return f"❌ The customer book could not be sent: {escape(reason)}"


async def _book(session: AsyncSession, tenant_id: uuid.UUID, mode: str | None) -> Mode:
    """The book a job builds: the one its caller chose (core.payments.use_cases.book_mode). A job
    queued before books had modes carries none; it was asked for by a person in a chat or on USSD,
    whose book is the business's current mode's."""
    if mode is not None:
        return Mode(mode)
    channel = await tenants.get_channel(session, tenant_id)
    return channel.mode if channel is not None else Mode.test


async def queue_customer_book(
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    chat_id: int,
    message_id: int,
    query: CustomerQuery,
    mode: Mode,
    label: str = "",
) -> None:
    """Hand a customer book export to the worker; `message_id` is the "preparing" message to edit.
    `mode`: the book the person was shown and counted (`CustomerPage.mode`), built as it is; `query`
    too, filters and channel included (its channel checked by the search that counted it)."""
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        await enqueue(
            session,
            send_customer_book,
            tenant_id=str(tenant_id),
            user_id=str(user_id) if user_id else None,
            chat_id=chat_id,
            message_id=message_id,
            query=query.model_dump(mode="json", exclude_defaults=True),
            mode=mode.value,
            label=label,
        )


@job("exports.send_customer_book", max_retries=3, min_backoff_ms=5_000, max_backoff_ms=60_000)
async def send_customer_book(
    *,
    tenant_id: str,
    user_id: str | None,
    chat_id: int,
    message_id: int,
    query: dict[str, Any],
    label: str = "",
    mode: str | None = None,
) -> None:
    """Build the customer book (read-only), send it to the chat, then report on the preparing message.

    A failure to build is reported and not retried (it would fail the same way); Telegram being
    unreachable or busy raises, so the job is retried; a chat that refuses the file is told why."""
    rt = runtime()
    token = rt.settings.TELEGRAM_BOT_TOKEN
    if not token:
        log.warning("exports.send_customer_book: TELEGRAM_BOT_TOKEN is not set; nothing sent")
        return
    tid = uuid.UUID(tenant_id)
    try:
        async with unit_of_work(readonly=True, scope=Scope.tenant(tid)) as session:
            tenant = await tenants.get(session, tid)
            path, count = await customer_book(
                session,
                tenant_id=tid,
                mode=await _book(session, tid, mode),
                query=CustomerQuery.model_validate(query),
                directory=rt.settings.EXPORT_DIR,
            )
    except NotFound:
        return  # the business is gone, and its chat with it
    except Exception:
        log.exception("customer book export for tenant %s failed", tenant_id)
        await _finish(tid, None, chat_id, message_id, failed_text("something went wrong. Try again later."))
        return
    try:
        data = await asyncio.to_thread(path.read_bytes)
    finally:
        path.unlink(missing_ok=True)
    sender = TelegramSender(http=rt.http(), base_url=rt.settings.telegram_api_base, token=token)
    try:
        await sender.send_document(
            chat_id=chat_id,
            data=data,
            filename=export_filename(f"customers-{tenant.slug}"),
            caption=customer_book_caption(count, label),
            mime_type=XLSX_MEDIA_TYPE,
        )
    except TelegramUndeliverable as exc:
        await _finish(tid, None, chat_id, message_id, failed_text(str(exc)))
        return
    await _finish(tid, uuid.UUID(user_id) if user_id else None, chat_id, message_id, sent_text(count), count)


async def _finish(
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    chat_id: int,
    message_id: int,
    text: str,
    rows: int | None = None,
) -> None:
    """Audit a sent export and queue the edit of the preparing message, in one transaction (which
    also completes this job: see core.jobs.registry.RunningJob)."""
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        if rows is not None:
            await record(
                session,
                action="export.customers",
                tenant_id=tenant_id,
                user_id=user_id,
                detail={"rows": rows, "via": "telegram"},
            )
        note = Notification(
            tenant_id=tenant_id,
            kind="export.customers",
            channel=NotifyChannel.telegram,
            recipient=str(chat_id),
            edit_message_id=message_id,
            body=text,
        )
        await notify.queue(session, note)


@job("exports.email_customer_book", max_retries=3, min_backoff_ms=5_000, max_backoff_ms=60_000)
async def email_customer_book(
    *, tenant_id: str, user_id: str | None, phone: str, mode: str | None = None
) -> None:
    """The customer book for someone on a feature phone: the file is emailed to the business email,
    and an SMS to `phone` carries a signed link to download it (valid DOWNLOAD_LINK_MINUTES)."""
    rt = runtime()
    s = rt.settings
    tid = uuid.UUID(tenant_id)
    try:
        async with unit_of_work(readonly=True, scope=Scope.tenant(tid)) as session:
            tenant = await tenants.get(session, tid)
            built, count = await customer_book(
                session,
                tenant_id=tid,
                mode=await _book(session, tid, mode),
                query=CustomerQuery(),
                directory=s.EXPORT_DIR,
            )
    except NotFound:
        return
    root = downloads_dir(s.EXPORT_DIR)
    name, path = await asyncio.to_thread(new_download, root, export_filename(f"customers-{tenant.slug}"))
    await asyncio.to_thread(shutil.move, built, path)
    url = f"{s.base_url}/dl/{sign(s.SECRET_KEY, name, ttl_seconds=s.DOWNLOAD_LINK_MINUTES * 60)}"
    noun = "customer" if count == 1 else "customers"
    async with unit_of_work(scope=Scope.tenant(tid)) as session:
        await record(
            session,
            action="export.customers",
            tenant_id=tid,
            user_id=uuid.UUID(user_id) if user_id else None,
            detail={"rows": count, "via": "ussd"},
        )
        await notify.queue(
            session,
            Notification(
                tenant_id=tid,
                kind="export.customers",
                channel=NotifyChannel.email,
                recipient=tenant.email,
                subject=f"{tenant.name}: customer list ({count:,} {noun})",
                body=(
                    f"Your lipapush customer list is attached: {count:,} {noun}.\n\n"
                    f"It was requested from the USSD menu on {phone[:6]}***{phone[-3:]}. "
                    "If that was not you, change your USSD PIN."
                ),
                attachment_path=str(path),
            ),
        )
        await notify.sms(
            session,
            tenant=tenant,
            to=phone,
            kind="export.customers",
            body=(
                f"lipapush: customer list ({count:,} {noun}) emailed to {mask_email(tenant.email)}. "
                f"Download (valid {s.DOWNLOAD_LINK_MINUTES} min): {url}"
            ),
        )


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
