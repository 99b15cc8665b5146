"""👛 Wallet: balance, billing, commission; top up by M-Pesa; recent postings; invoices."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
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
from bots.filters import HasText
from bots.keyboards import MenuCb, with_cancel
from bots.middlewares import Actor
from bots.status import post_status
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.access.permissions import Permission
from core.billing import use_cases as billing
from core.billing.invoices import EAT
from core.billing.schemas import InvoiceOut, PostingOut, WalletOut
from core.errors import InvalidInput, LipapushError
from core.money import format_cents, format_kes, parse_shillings
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.schemas import PaymentOut
from core.payments.service import TransactionFilter
from core.payments.use_cases import payments_page

router = Router(name="wallet")

POSTINGS = 10
TOPUP_ASK = "How much to top up, in KES? The M-Pesa prompt goes to the business phone."
TOPUP_SENT = "When the prompt above says Paid, your wallet is credited: tap 👛 Wallet to see the new balance."
NO_POSTINGS = "📜 No postings yet. Top-ups and commission show up here."
POSTING_LABELS = {
    "topup": "Top-up",
    "commission.wallet": "Commission",
    "commission.receivable": "Commission (on invoice)",
    "commission.refund.wallet": "Commission back (reversed payment)",
    "commission.refund.receivable": "Commission back (reversed payment, on invoice)",
    "adjustment.credit": "Adjustment",
    "adjustment.debit": "Adjustment",
    "invoice.payment": "Invoice paid",
}


class WalletCb(CallbackData, prefix="wa"):
    action: str  # topup, postings, invoices


class Topup(StatesGroup):
    amount = State()


def _eat(at: datetime, fmt: str = "%d %b %H:%M") -> str:
    return at.astimezone(EAT).strftime(fmt)


def last_topup_line(p: PaymentOut | None) -> str | None:
    """How the newest top-up ended: the confirmation that its money reached the wallet."""
    if p is None:
        return None
    if p.status is PaymentStatus.success:
        receipt = f" (receipt {escape(p.receipt)})" if p.receipt else ""
        return f"✅ Wallet credited: {format_cents(p.amount * 100)} from your last top-up{receipt}"
    if p.status is PaymentStatus.pending:
        return f"⏳ Top-up of {format_kes(p.amount)} waiting for M-Pesa"
    return f"❌ Last top-up of {format_kes(p.amount)} was not paid: {escape(p.result_desc or p.status.value)}"


def wallet_text(w: WalletOut, last_topup: PaymentOut | None) -> str:
    lines = [
        "👛 <b>Wallet</b>",
        f"Balance: <b>{format_cents(w.balance_cents)}</b>"
        + (f" ({format_cents(w.reserved_cents)} held for payments in progress)" if w.reserved_cents else ""),
        f"Billing: {w.billing_mode.value} · commission {w.commission_percent}",
        f"Commission this month: {format_cents(w.month_to_date_commission_cents)}",
        f"Owed on invoice: {format_cents(w.owed_on_invoice_cents)}",
        f"Low-balance alert below {format_cents(w.low_balance_threshold_cents)}",
    ]
    if (line := last_topup_line(last_topup)) is not None:
        lines.append(line)
    if w.billing_hold:
        lines.append(f"⚠️ {escape(w.billing_hold)}")
    return "\n".join(lines)


def wallet_keyboard() -> InlineKeyboardMarkup:
    def button(text: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, callback_data=WalletCb(action=action).pack())

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button("➕ Top up", "topup")],
            [button("📜 Recent postings", "postings"), button("🧾 Invoices", "invoices")],
            _back(),
        ]
    )


def posting_line(p: PostingOut) -> str:
    label = POSTING_LABELS.get(p.kind, p.kind)
    if p.memo and p.kind != "topup":
        label += f": {p.memo}"
    if p.wallet_effect_cents > 0:
        effect = f"+{format_cents(p.wallet_effect_cents)}"
    elif p.wallet_effect_cents < 0:
        effect = format_cents(p.wallet_effect_cents)
    else:
        effect = f"{format_cents(p.amount_cents)}, wallet unchanged"
    return f"• {_eat(p.created_at)} · {escape(label)} · {effect}"


def invoice_line(i: InvoiceOut) -> str:
    last_day = i.period_end - timedelta(seconds=1)
    return (
        f"• <b>{escape(i.number)}</b> · {_eat(i.period_start, '%d %b')}–{_eat(last_day, '%d %b %Y')} · "
        f"{format_cents(i.total_cents)} · {i.status.value} · due {_eat(i.due_at, '%d %b %Y')}"
    )


@router.message(Command("wallet"))
@router.callback_query(MenuCb.filter(F.action == "wallet"))
async def wallet(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.wallet_read)
    if isinstance(event, CallbackQuery):
        await event.answer()
    w = await billing.view_wallet(actor.core)
    topups, _ = await payments_page(
        actor.core, filters=TransactionFilter(source=PaymentSource.topup), page=1, per_page=1
    )
    last_topup = topups[0] if topups else None
    if (target := _target(event)) is not None:
        await target.answer(wallet_text(w, last_topup), reply_markup=wallet_keyboard())


@router.callback_query(WalletCb.filter(F.action == "postings"))
async def postings(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.wallet_read)
    await query.answer()
    page = await billing.wallet_postings(actor.core, cursor=None, limit=POSTINGS)
    text = (
        "\n".join(
            [f"📜 <b>Recent postings</b> (EAT, newest first, last {POSTINGS})"]
            + [posting_line(p) for p in page.items]
        )
        if page.items
        else NO_POSTINGS
    )
    if (target := _target(query)) is not None:
        await target.answer(text, reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]))


@router.callback_query(WalletCb.filter(F.action == "invoices"))
async def invoice_list(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.invoices_read)
    await query.answer()
    rows = [InvoiceOut.model_validate(i) for i in await billing.list_invoices(actor.core)]
    period = (await billing.view_wallet(actor.core)).invoice_period.value
    if rows:
        text = "\n".join(["🧾 <b>Invoices</b>"] + [invoice_line(i) for i in rows])
    else:
        text = f"🧾 No invoices yet. Commission that goes on the invoice is billed {period}."
    if (target := _target(query)) is not None:
        await target.answer(text, reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]))


@router.callback_query(WalletCb.filter(F.action == "topup"))
async def topup_ask(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    _need(actor, Permission.wallet_topup)
    await query.answer()
    await state.set_state(Topup.amount)
    if (target := _target(query)) is not None:
        await target.answer(TOPUP_ASK, reply_markup=with_cancel())


@router.message(StateFilter(Topup.amount), HasText())
async def topup_amount(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = _need(actor, Permission.wallet_topup)
    try:
        amount = parse_shillings((message.text or "").replace(",", "").strip())
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.clear()
    try:
        payment = await billing.request_topup(actor.core, amount=amount)
    except LipapushError as exc:
        await message.answer(texts.invalid(exc.message))
        return
    await post_status(message, payment, tenant_id=actor.tenant_id)
    see = InlineKeyboardButton(text="👛 Wallet", callback_data=MenuCb(action="wallet").pack())
    await message.answer(TOPUP_SENT, reply_markup=InlineKeyboardMarkup(inline_keyboard=[[see]]))
