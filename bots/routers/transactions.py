"""📒 Transactions: newest first, a page at a time."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bots.keyboards import MenuCb
from bots.middlewares import Actor
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.auth.models import Role
from core.billing.invoices import EAT
from core.money import format_kes
from core.notify.texts import local_phone
from core.payments.service import TransactionFilter, payments
from core.runtime import unit_of_work

router = Router(name="transactions")


class TxCb(CallbackData, prefix="tx"):
    page: int


PAGE = 8


async def _transactions(target: Message, actor: Actor, page: int) -> None:
    mine = actor.user_id if actor.role is Role.cashier else None
    async with unit_of_work(readonly=True) as session:
        rows, more = await payments.page(
            session,
            tenant_id=actor.tenant_id,
            filters=TransactionFilter(initiated_by=mine),
            page=page,
            per_page=PAGE,
        )
    if not rows and page == 1:
        await target.answer(
            "📒 No payments yet. Tap 💸 Request payment to start.",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]),
        )
        return
    icon = {"success": "✅", "pending": "⏳"}
    lines = [f"📒 <b>Transactions</b> (page {page})"]
    for p in rows:
        when = p.created_at.astimezone(EAT).strftime("%d %b %H:%M")
        lines.append(
            f"{icon.get(p.status.value, '❌')} {when} · {format_kes(p.amount)} · "
            f"{escape(p.customer_name or local_phone(p.phone))}" + (f" · {p.receipt}" if p.receipt else "")
        )
    nav = []
    if page > 1:
        nav.append(InlineKeyboardButton(text="‹ Newer", callback_data=TxCb(page=page - 1).pack()))
    if more:
        nav.append(InlineKeyboardButton(text="Older ›", callback_data=TxCb(page=page + 1).pack()))
    await target.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=[nav, _back()]))


@router.message(Command("transactions"))
@router.callback_query(MenuCb.filter(F.action == "tx"))
async def transactions(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor)
    if isinstance(event, CallbackQuery):
        await event.answer()
    if (target := _target(event)) is not None:
        await _transactions(target, actor, 1)


@router.callback_query(TxCb.filter())
async def transactions_page(query: CallbackQuery, callback_data: TxCb, actor: Actor | None) -> None:
    actor = _need(actor)
    await query.answer()
    if (target := _target(query)) is not None:
        await _transactions(target, actor, max(1, callback_data.page))
