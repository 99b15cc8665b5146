"""📒 Transactions: newest first, eight a page, filtered by status and period (days in Nairobi time);
a detail view per payment, and the filtered list as an Excel document.

The filters ride in the callback data (a letter and a number), so every button, including the
"back to the list" of a detail view, reproduces the exact list it came from. A cashier sees only the
payments they asked for, and cannot export."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
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

from bots.keyboards import MenuCb, PayCb
from bots.middlewares import Actor
from bots.routers.reversals import detail_buttons
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import send_export
from bots.tabs import target as _target
from core.access.permissions import Permission
from core.db import utcnow
from core.exports.use_cases import export_transactions as export_transactions_uc
from core.exports.xlsx import EAT
from core.money import format_kes
from core.notify.texts import local_phone
from core.payments.models import CUSTOMER_SOURCES, NOT_PAID, PaymentSource, PaymentStatus
from core.payments.schemas import PaymentOut
from core.payments.service import TransactionFilter
from core.payments.use_cases import get_payment, payments_page

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
STATUS_LABELS: dict[PaymentStatus, str] = {
    PaymentStatus.pending: "⏳ Waiting",
    PaymentStatus.success: "✅ Paid",
    PaymentStatus.failed: "❌ Not paid",
    PaymentStatus.cancelled: "❌ Cancelled",
    PaymentStatus.timeout: "❌ No response",
    PaymentStatus.expired: "❌ Expired",
    PaymentStatus.reversed: "↩️ Reversed",
}
SOURCE_LABELS: dict[PaymentSource, str] = {
    PaymentSource.api: "API",
    PaymentSource.telegram: "Telegram",
    PaymentSource.ussd: "USSD",
    PaymentSource.portal: "Payment page",
    PaymentSource.onboarding: "Test payment",
    PaymentSource.topup: "Wallet top-up",
    PaymentSource.c2b: "Paid to the till/paybill",
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


def _filter(show: Show, days: int) -> TransactionFilter:
    return TransactionFilter(
        status={Show.paid: PaymentStatus.success, Show.waiting: PaymentStatus.pending}.get(show),
        statuses=NOT_PAID if show is Show.not_paid else (),
        created_from=since(days),
    )


def _title(view: TxCb | TxxCb) -> str:
    return f"{SHOW_LABELS[view.s]} · {PERIOD_LABELS[view.d]}"


def _row(n: int, p: PaymentOut) -> str:
    icon = {PaymentStatus.success: "✅", PaymentStatus.pending: "⏳"}.get(p.status, "❌")
    when = p.created_at.astimezone(EAT).strftime("%d %b %H:%M")
    who = escape(p.customer_name or local_phone(p.phone))
    receipt = f" · {escape(p.receipt)}" if p.receipt else ""
    return f"{n}. {icon} {when} · {format_kes(p.amount)} · {who}{receipt}"


def _choice(text: str, chosen: bool, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=f"✓ {text}" if chosen else text, callback_data=data.pack())


def _keyboard(actor: Actor, view: TxCb, rows: Sequence[PaymentOut], more: bool) -> InlineKeyboardMarkup:
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
    if actor.core.can(Permission.exports) and rows:
        keyboard.append(
            [InlineKeyboardButton(text="📤 Export", callback_data=TxxCb(s=view.s, d=view.d).pack())]
        )
    keyboard.append(_back())
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


async def render_list(actor: Actor, view: TxCb) -> tuple[str, InlineKeyboardMarkup]:
    rows, more = await payments_page(actor.core, filters=_filter(view.s, view.d), page=view.p, per_page=PAGE)
    if not rows and view == TxCb():
        return NO_PAYMENTS, InlineKeyboardMarkup(inline_keyboard=[_back()])
    head = f"📒 <b>Transactions</b> · {_title(view)} · page {view.p}"
    if not rows:
        return f"{head}\n{NO_MATCH}", _keyboard(actor, view, rows, more)
    lines = [head, *(_row(n, p) for n, p in enumerate(rows, start=1)), "", DETAILS_HINT]
    return "\n".join(lines), _keyboard(actor, view, rows, more)


def _moment(at: datetime | None) -> str:
    return at.astimezone(EAT).strftime("%d %b %Y %H:%M:%S EAT") if at else "–"


def render_detail(
    p: PaymentOut, back: TxCb, extra: list[list[InlineKeyboardButton]] | None = None
) -> tuple[str, InlineKeyboardMarkup]:
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
    keyboard += extra or []
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
    payment = await get_payment(actor.core, callback_data.pid)
    await query.answer()
    back = TxCb(s=callback_data.s, d=callback_data.d, p=callback_data.p)
    if (target := _target(query)) is not None:
        await _edit(target, *render_detail(payment, back, detail_buttons(actor, payment)))


@router.callback_query(TxxCb.filter())
async def export_transactions(query: CallbackQuery, callback_data: TxxCb, actor: Actor | None) -> None:
    actor = _need(actor, Permission.exports)
    await query.answer("Preparing your Excel file…")
    target = _target(query)
    if target is None:
        return
    built = await export_transactions_uc(actor.core, filters=_filter(callback_data.s, callback_data.d))
    count = built.rows
    noun = "transaction" if count == 1 else "transactions"
    await send_export(target, built, caption=f"📒 {count:,} {noun} · {_title(callback_data)}")
