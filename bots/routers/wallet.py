"""👛 Wallet: balance, billing, commission; top up by M-Pesa."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bots import texts
from bots.keyboards import MenuCb, with_cancel
from bots.middlewares import Actor
from bots.status import post_status
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.auth.models import Role
from core.billing.wallet import wallets
from core.errors import InvalidInput, LipapushError
from core.money import format_cents, parse_shillings
from core.payments.push import request_wallet_topup
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants

router = Router(name="wallet")


class WalletCb(CallbackData, prefix="wa"):
    action: str  # topup


class Topup(StatesGroup):
    amount = State()


@router.message(Command("wallet"))
@router.callback_query(MenuCb.filter(F.action == "wallet"))
async def wallet(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner, Role.manager)
    if isinstance(event, CallbackQuery):
        await event.answer()
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, actor.tenant_id)
        w = await wallets.view(session, tenant=tenant, settings=runtime().settings)
    lines = [
        "👛 <b>Wallet</b>",
        f"Balance: <b>{format_cents(w.balance_cents)}</b>"
        + (f" ({format_cents(w.reserved_cents)} held for payments in progress)" if w.reserved_cents else ""),
        f"Billing: {w.billing_mode.value} · commission {w.commission_percent}",
        f"Commission this month: {format_cents(w.month_to_date_commission_cents)}",
        f"Owed on invoice: {format_cents(w.owed_on_invoice_cents)}",
    ]
    if w.billing_hold:
        lines.append(f"⚠️ {escape(w.billing_hold)}")
    topup = InlineKeyboardButton(text="➕ Top up", callback_data=WalletCb(action="topup").pack())
    if (target := _target(event)) is not None:
        await target.answer(
            "\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=[[topup], _back()])
        )


@router.callback_query(WalletCb.filter(F.action == "topup"))
async def topup_ask(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    _need(actor, Role.owner, Role.manager)
    await query.answer()
    await state.set_state(Topup.amount)
    if (target := _target(query)) is not None:
        await target.answer(
            "How much to top up, in KES? The M-Pesa prompt goes to the business phone.",
            reply_markup=with_cancel(),
        )


@router.message(Topup.amount, F.text)
async def topup_amount(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner, Role.manager)
    try:
        amount = parse_shillings((message.text or "").replace(",", "").strip())
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.clear()
    try:
        payment = await request_wallet_topup(
            tenant_id=actor.tenant_id, amount=amount, initiated_by=actor.user_id
        )
    except LipapushError as exc:
        await message.answer(texts.invalid(exc.message))
        return
    await post_status(message, payment)
