"""📒 Transactions: newest first, eight a page, filtered by status and period (days in Nairobi time);
a detail view per payment, and the filtered list as an Excel document.

The filters ride in the callback data (a letter and a number), so every button, including the
"back to the list" of a detail view, reproduces the exact list it came from. A cashier sees only the
payments they asked for, and cannot export."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, time, timedelta
from enum import IntEnum, StrEnum
from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from bots.keyboards import MenuCb, PayCb
from bots.middlewares import Actor
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import send_export
from bots.tabs import target as _target
from core.access.permissions import Permission
from core.auth.models import Role
from core.db import utcnow
from core.exports.books import TRANSACTION_COLUMNS, transaction_list
from core.exports.xlsx import EAT, build_xlsx
from core.money import format_kes
from core.notify.texts import local_phone
from core.payments.models import CUSTOMER_SOURCES, Payment, PaymentSource, PaymentStatus
from core.payments.service import TransactionFilter, payments
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants

router = Router(name="transactions")

PAGE = 8
MAX_PAGE = 10_000


class Show(StrEnum):
    """The status filter, one letter in the callback data."""

    all = "a"
    paid = "p"
    not_paid = "n"
    waiting = "w"


class Period(IntEnum):
    """The period filter, in days counted in Nairobi time (0: all time)."""

    today = 1
    week = 7
    month = 30
    all = 0


SHOW_LABELS: dict[Show, str] = {
    Show.all: "All",
    Show.paid: "Paid",
    Show.not_paid: "Not paid",
    Show.waiting: "Waiting",
}
PERIOD_LABELS: dict[Period, str] = {
    Period.today: "Today",
    Period.week: "7 days",
    Period.month: "30 days",
    Period.all: "All time",
}
NOT_PAID = (PaymentStatus.failed, PaymentStatus.cancelled, PaymentStatus.timeout, PaymentStatus.expired)
STATUS_LABELS: dict[PaymentStatus, str] = {
    PaymentStatus.pending: "⏳ Waiting",
    PaymentStatus.success: "✅ Paid",
    PaymentStatus.failed: "❌ Not paid",
    PaymentStatus.cancelled: "❌ Cancelled",
    PaymentStatus.timeout: "❌ No response",
    PaymentStatus.expired: "❌ Expired",
}
SOURCE_LABELS: dict[PaymentSource, str] = {
    PaymentSource.api: "API",
    PaymentSource.telegram: "Telegram",
    PaymentSource.ussd: "USSD",
    PaymentSource.portal: "Payment page",
    PaymentSource.onboarding: "Test payment",
    PaymentSource.topup: "Wallet top-up",
}

NO_PAYMENTS = "📒 No payments yet. Tap 💸 Request payment to start."
NO_MATCH = "No payments match these filters."
DETAILS_HINT = "<i>Tap a number for the details.</i>"


class TxCb(CallbackData, prefix="tx"):
    """A list page: status filter, period, page."""

    s: Show = Show.all
    d: Period = Period.all
    p: int = Field(default=1, ge=1, le=MAX_PAGE)


class TxdCb(CallbackData, prefix="txd"):
    """One payment's details, and the list to go back to."""

    pid: uuid.UUID
    s: Show = Show.all
    d: Period = Period.all
    p: int = Field(default=1, ge=1, le=MAX_PAGE)


class TxxCb(CallbackData, prefix="txx"):
    """Export the filtered list (all pages)."""

    s: Show = Show.all
    d: Period = Period.all


def since(days: int, now: datetime | None = None) -> datetime | None:
    """Start of the period: midnight in Nairobi, `days - 1` days before today (so 1 is today)."""
    if days <= 0:
        return None
    today = (now or utcnow()).astimezone(EAT).date()
    return datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=EAT)


def _filter(actor: Actor, show: Show, days: int) -> TransactionFilter:
    return TransactionFilter(
        status={Show.paid: PaymentStatus.success, Show.waiting: PaymentStatus.pending}.get(show),
        created_from=since(days),
        initiated_by=actor.user_id if actor.role is Role.cashier else None,
    )


def _newest_first(rows: list[Payment]) -> list[Payment]:
    return sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)


async def _page(session: AsyncSession, actor: Actor, view: TxCb) -> tuple[list[Payment], bool]:
    filters = _filter(actor, view.s, view.d)
    if view.s is not Show.not_paid:
        return await payments.page(
            session, tenant_id=actor.tenant_id, filters=filters, page=view.p, per_page=PAGE
        )
    # TransactionFilter takes one status: merge the newest rows of each "not paid" status, as many
    # as this page needs from each (same order as the database: created_at, then id, descending).
    wanted = view.p * PAGE + 1
    rows: list[Payment] = []
    for status in NOT_PAID:
        part, _ = await payments.page(
            session,
            tenant_id=actor.tenant_id,
            filters=replace(filters, status=status),
            page=1,
            per_page=wanted,
        )
        rows += part
    rows = _newest_first(rows)
    start = (view.p - 1) * PAGE
    return rows[start : start + PAGE], len(rows) > start + PAGE


def _title(view: TxCb | TxxCb) -> str:
    return f"{SHOW_LABELS[view.s]} · {PERIOD_LABELS[view.d]}"


def _row(n: int, p: Payment) -> str:
    icon = {PaymentStatus.success: "✅", PaymentStatus.pending: "⏳"}.get(p.status, "❌")
    when = p.created_at.astimezone(EAT).strftime("%d %b %H:%M")
    who = escape(p.customer_name or local_phone(p.phone))
    receipt = f" · {escape(p.receipt)}" if p.receipt else ""
    return f"{n}. {icon} {when} · {format_kes(p.amount)} · {who}{receipt}"


def _choice(text: str, chosen: bool, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=f"✓ {text}" if chosen else text, callback_data=data.pack())


def _keyboard(actor: Actor, view: TxCb, rows: Sequence[Payment], more: bool) -> InlineKeyboardMarkup:
    keyboard = [
        [_choice(label, view.s is show, TxCb(s=show, d=view.d)) for show, label in SHOW_LABELS.items()],
        [_choice(label, view.d is days, TxCb(s=view.s, d=days)) for days, label in PERIOD_LABELS.items()],
    ]
    numbers = [
        InlineKeyboardButton(text=str(n), callback_data=TxdCb(pid=p.id, s=view.s, d=view.d, p=view.p).pack())
        for n, p in enumerate(rows, start=1)
    ]
    keyboard += [numbers[i : i + 4] for i in range(0, len(numbers), 4)]
    nav = []
    if view.p > 1:
        nav.append(
            InlineKeyboardButton(text="‹ Newer", callback_data=TxCb(s=view.s, d=view.d, p=view.p - 1).pack())
        )
    if more:
        nav.append(
            InlineKeyboardButton(text="Older ›", callback_data=TxCb(s=view.s, d=view.d, p=view.p + 1).pack())
        )
    if nav:
        keyboard.append(nav)
    if actor.role is not Role.cashier and rows:
        keyboard.append(
            [InlineKeyboardButton(text="📤 Export", callback_data=TxxCb(s=view.s, d=view.d).pack())]
        )
    keyboard.append(_back())
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


async def render_list(actor: Actor, view: TxCb) -> tuple[str, InlineKeyboardMarkup]:
    async with unit_of_work(readonly=True) as session:
        rows, more = await _page(session, actor, view)
    if not rows and view == TxCb():
        return NO_PAYMENTS, InlineKeyboardMarkup(inline_keyboard=[_back()])
    head = f"📒 <b>Transactions</b> · {_title(view)} · page {view.p}"
    if not rows:
        return f"{head}\n{NO_MATCH}", _keyboard(actor, view, rows, more)
    lines = [head, *(_row(n, p) for n, p in enumerate(rows, start=1)), "", DETAILS_HINT]
    return "\n".join(lines), _keyboard(actor, view, rows, more)


def _moment(at: datetime | None) -> str:
    return at.astimezone(EAT).strftime("%d %b %Y %H:%M:%S EAT") if at else "–"


def render_detail(p: Payment, back: TxCb) -> tuple[str, InlineKeyboardMarkup]:
    lines = [
        f"🧾 <b>{format_kes(p.amount)}</b> · {STATUS_LABELS[p.status]}",
        f"Phone: {local_phone(p.phone)}",
        f"Name: {escape(p.customer_name or '–')}",
    ]
    if p.status is PaymentStatus.pending:
        lines.append(escape(p.result_desc or "Waiting for the customer to enter their PIN…"))
    elif p.status is not PaymentStatus.success:
        lines.append(f"Reason: {escape(p.result_desc or 'M-Pesa did not complete the payment.')}")
    if p.flag:
        lines.append(f"⚠️ {escape(p.flag)}")
    lines += [
        f"Receipt: {escape(p.receipt or '–')}",
        f"Reference: {escape(p.account_reference)}",
        f"Source: {SOURCE_LABELS[p.source]}",
        f"Created: {_moment(p.created_at)}",
        f"Completed: {_moment(p.completed_at)}",
    ]
    keyboard: list[list[InlineKeyboardButton]] = []
    if p.status in NOT_PAID and p.source in CUSTOMER_SOURCES:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text="🔁 Send again", callback_data=PayCb(action="again", pid=str(p.id)).pack()
                )
            ]
        )
    keyboard.append([InlineKeyboardButton(text="‹ Back to the list", callback_data=back.pack())])
    keyboard.append(_back())
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


async def _edit(message: Message, text: str, markup: InlineKeyboardMarkup) -> None:
    # Pressing the filter that is already chosen changes nothing, which Telegram refuses to "edit".
    with contextlib.suppress(TelegramBadRequest):
        await message.edit_text(text, reply_markup=markup)


@router.message(Command("transactions"))
@router.callback_query(MenuCb.filter(F.action == "tx"))
async def transactions(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.payments_read)
    if isinstance(event, CallbackQuery):
        await event.answer()
    if (target := _target(event)) is not None:
        text, markup = await render_list(actor, TxCb())
        await target.answer(text, reply_markup=markup)


@router.callback_query(TxCb.filter())
async def transactions_page(query: CallbackQuery, callback_data: TxCb, actor: Actor | None) -> None:
    actor = _need(actor, Permission.payments_read)
    await query.answer()
    if (target := _target(query)) is not None:
        await _edit(target, *await render_list(actor, callback_data))


@router.callback_query(TxdCb.filter())
async def transaction_detail(query: CallbackQuery, callback_data: TxdCb, actor: Actor | None) -> None:
    actor = _need(actor, Permission.payments_read)
    async with unit_of_work(readonly=True) as session:
        payment = await payments.get(
            session,
            tenant_id=actor.tenant_id,
            payment_id=callback_data.pid,
            initiated_by=actor.user_id if actor.role is Role.cashier else None,
        )
    await query.answer()
    back = TxCb(s=callback_data.s, d=callback_data.d, p=callback_data.p)
    if (target := _target(query)) is not None:
        await _edit(target, *render_detail(payment, back))


async def _not_paid_batches(
    session: AsyncSession, tenant_id: uuid.UUID, filters: TransactionFilter
) -> AsyncIterator[Sequence[Sequence[object]]]:
    """The export rows of every payment that did not go through, newest first (the filter takes one
    status, so the others are skipped here; column 5 is the status)."""
    result = await session.stream(
        payments.export_statement(tenant_id, filters).execution_options(yield_per=2000)
    )
    async for part in result.partitions(2000):
        rows = [tuple(getattr(v, "value", v) for v in r) for r in part if r[4] in NOT_PAID]
        if rows:
            yield rows


@router.callback_query(TxxCb.filter())
async def export_transactions(query: CallbackQuery, callback_data: TxxCb, actor: Actor | None) -> None:
    actor = _need(actor, Permission.exports)
    await query.answer("Preparing your Excel file…")
    target = _target(query)
    if target is None:
        return
    filters = _filter(actor, callback_data.s, callback_data.d)
    directory = runtime().settings.EXPORT_DIR
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, actor.tenant_id)
        if callback_data.s is Show.not_paid:
            path, count = await build_xlsx(
                sheet_title="Transactions",
                columns=TRANSACTION_COLUMNS,
                batches=_not_paid_batches(session, actor.tenant_id, filters),
                directory=directory,
            )
        else:
            path, count = await transaction_list(
                session, tenant_id=actor.tenant_id, filters=filters, directory=directory
            )
    noun = "transaction" if count == 1 else "transactions"
    await send_export(
        target,
        path,
        rows=count,
        name=f"transactions-{tenant.slug}",
        caption=f"📒 {count:,} {noun} · {_title(callback_data)}",
        action="export.transactions",
        actor=actor,
    )
