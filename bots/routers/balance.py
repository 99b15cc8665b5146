"""💰 /balance (owner and manager): the business's M-Pesa balance per channel, as M-Pesa last gave it
and when, and 🔄 Refresh, which asks M-Pesa again and shows the answer when it comes (within seconds).
The same use cases as GET /api/balance and POST /api/balance/refresh (core.lookups.use_cases); 🏠 Home
carries the short form."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bots.middlewares import Actor
from bots.tabs import back_row, need, target
from core.access.permissions import Permission
from core.billing.periods import EAT
from core.db import utcnow
from core.lookups.schemas import BalancesOut
from core.lookups.use_cases import balances, refresh_balance
from core.money import format_cents
from core.tenants.models import ChannelKind, Mode

router = Router(name="balance")

KINDS = {ChannelKind.b2c: "B2C", ChannelKind.paybill: "Paybill", ChannelKind.till: "Till"}
NO_CHANNEL = (
    "None of your channels has an M-Pesa initiator yet, and M-Pesa tells a balance only through one. "
    "Add your B2C short code with its initiator (web panel or `lipapush payout-channel add`)."
)
# How long 🔄 Refresh waits for M-Pesa's answer before showing what it has (M-Pesa takes seconds).
WAIT = timedelta(seconds=20)
POLL = 0.5


class BalCb(CallbackData, prefix="bal"):
    action: str  # show, refresh


def when(at: datetime, now: datetime | None = None) -> str:
    """`today 14:05`, `yesterday 09:30` or `3 Dec 14:05`, Nairobi time."""
    local, today = at.astimezone(EAT), (now or utcnow()).astimezone(EAT).date()
    if local.date() == today:
        return f"today {local:%H:%M}"
    if local.date() == today - timedelta(days=1):
        return f"yesterday {local:%H:%M}"
    return f"{local.day} {local:%b %H:%M}"


def balance_text(view: BalancesOut) -> str:
    lines = ["💰 <b>M-Pesa balance</b>"]
    if not view.channels:
        return "\n".join([*lines, NO_CHANNEL])
    for c in view.channels:
        test = " · test money" if c.mode is Mode.test else ""
        lines += ["", f"<b>{escape(c.channel_name)}</b> · {KINDS[c.kind]} {c.short_code}{test}"]
        if c.as_of is None:
            lines.append("No balance from M-Pesa yet.")
        else:
            lines.append(
                f"Utility: <b>{format_cents(c.utility_cents or 0)}</b> · "
                f"Working: {format_cents(c.working_cents or 0)}"
            )
            lines.append(f"As of {when(c.as_of)} (EAT)")
        if c.refreshing:
            lines.append("🔄 Asking M-Pesa for a newer one…")
        if c.last_error:
            lines.append(f"⚠️ The last check failed: {escape(c.last_error)}")
    lines += ["", "Payouts are paid from the Utility account."]
    return "\n".join(lines)


def home_lines(view: BalancesOut) -> list[str]:
    """🏠 Home's short form: each channel's Utility account and when M-Pesa gave it."""
    return [
        f"M-Pesa balance, {escape(c.channel_name)}: "
        + (f"{format_cents(c.utility_cents or 0)} ({when(c.as_of)})" if c.as_of else "not known yet")
        for c in view.channels
    ]


def _keyboard() -> InlineKeyboardMarkup:
    refresh = InlineKeyboardButton(text="🔄 Refresh", callback_data=BalCb(action="refresh").pack())
    return InlineKeyboardMarkup(inline_keyboard=[[refresh], back_row()])


def balance_button() -> InlineKeyboardButton:
    return InlineKeyboardButton(text="💰 M-Pesa balance", callback_data=BalCb(action="show").pack())


@router.message(Command("balance"))
@router.callback_query(BalCb.filter(F.action == "show"))
async def show(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = need(actor, Permission.balance_read)
    if isinstance(event, CallbackQuery):
        await event.answer()
    view = await balances(actor.core)
    if (where := target(event)) is not None:
        await where.answer(balance_text(view), reply_markup=_keyboard() if view.channels else None)


@router.callback_query(BalCb.filter(F.action == "refresh"))
async def refresh(query: CallbackQuery, actor: Actor | None) -> None:
    """Ask M-Pesa, show that it was asked, then the answer once it came (or the wait ran out: the
    message then says a newer balance is on its way, and 🔄 Refresh shows it)."""
    actor = need(actor, Permission.balance_read)
    await refresh_balance(actor.core)
    await query.answer("Asking M-Pesa…")
    if (where := target(query)) is None:
        return
    view = await balances(actor.core)
    await _edit(where, view)
    deadline = utcnow() + WAIT
    while any(c.refreshing for c in view.channels) and utcnow() < deadline:
        await asyncio.sleep(POLL)
        view = await balances(actor.core)
    await _edit(where, view)


async def _edit(where: Message, view: BalancesOut) -> None:
    with contextlib.suppress(TelegramBadRequest):  # "not modified": nothing new yet
        await where.edit_text(balance_text(view), reply_markup=_keyboard())
