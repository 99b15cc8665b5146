"""The dashboard's tabs: home, transactions, customers (with Excel export), wallet (with top-up)
and settings. Every tab answers its slash command and its menu button alike."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bots import texts
from bots.keyboards import MenuCb, with_cancel
from bots.middlewares import Actor
from bots.routers.onboarding import begin_onboarding
from bots.status import post_status
from core.auth.models import Role
from core.billing.commission import commissions
from core.billing.invoices import EAT
from core.billing.wallet import wallets
from core.customers.schemas import CustomerQuery, CustomerSort
from core.customers.service import customers
from core.errors import InvalidInput, LipapushError, NotFound, PermissionDenied
from core.exports.books import customer_book
from core.exports.xlsx import export_filename
from core.money import format_cents, format_kes, parse_shillings
from core.notify.texts import local_phone
from core.payments.push import request_wallet_topup
from core.payments.service import TransactionFilter, payments
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants

router = Router(name="menu")
PAGE = 8


class TxCb(CallbackData, prefix="tx"):
    page: int


class CustCb(CallbackData, prefix="cu"):
    action: str  # export


class WalletCb(CallbackData, prefix="wa"):
    action: str  # topup


class SetCb(CallbackData, prefix="st"):
    action: str  # replace


class Topup(StatesGroup):
    amount = State()


def _need(actor: Actor | None, *roles: Role) -> Actor:
    if actor is None:
        raise NotFound(texts.UNKNOWN_STRANGER)
    if roles and actor.role not in roles:
        raise PermissionDenied(f"This is for the {' or '.join(r.value for r in roles)} of {actor.business}.")
    return actor


def _target(event: Message | CallbackQuery) -> Message | None:
    return (
        event
        if isinstance(event, Message)
        else (event.message if isinstance(event.message, Message) else None)
    )


def _back() -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text="⬅ Menu", callback_data=MenuCb(action="home_menu").pack())]


# -- home --------------------------------------------------------------------------------------------
@router.message(Command("home"))
@router.callback_query(MenuCb.filter(F.action == "home"))
async def home(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner, Role.manager)
    if isinstance(event, CallbackQuery):
        await event.answer()
    async with unit_of_work(readonly=True) as session:
        s = await payments.summary(session, tenant_id=actor.tenant_id)
        tenant = await tenants.get(session, actor.tenant_id)
        wallet = await wallets.view(session, tenant=tenant, settings=runtime().settings)
        commission = await commissions.commission_for(session, tenant_id=actor.tenant_id)
        recent = await customers.recent(session, tenant_id=actor.tenant_id, limit=5)
    failed = s["failed_count"] + s["cancelled_count"] + s["timeout_count"] + s["expired_count"]
    done = s["success_count"] + failed
    rate = f"{100 * s['success_count'] / done:.0f}%" if done else "–"
    lines = [
        f"🏠 <b>{escape(actor.business)}</b>",
        f"Total received: <b>{format_kes(s['total_processed'])}</b>",
        f"Payments: {done + s['pending_count']} ({s['success_count']} paid, {failed} not paid, "
        f"{s['pending_count']} waiting) · success {rate}",
        f"Commission deducted: {format_cents(commission)}",
        f"Wallet: {format_cents(wallet.balance_cents)}",
    ]
    if recent:
        lines.append("\n<b>Recent customers</b>")
        lines += [
            f"• {escape(c.name or '–')} {local_phone(c.phone)}: {format_kes(c.paid_total)}" for c in recent
        ]
    if (target := _target(event)) is not None:
        await target.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]))


# -- transactions ------------------------------------------------------------------------------------
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


# -- customers ---------------------------------------------------------------------------------------
@router.message(Command("customers"))
@router.callback_query(MenuCb.filter(F.action == "cust"))
async def customer_book_tab(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner, Role.manager)
    if isinstance(event, CallbackQuery):
        await event.answer()
    query = CustomerQuery(sort=CustomerSort.paid_total, per_page=10)
    if isinstance(event, Message) and event.text and len(event.text.split(maxsplit=1)) == 2:
        query = CustomerQuery(
            q=event.text.split(maxsplit=1)[1][:100], sort=CustomerSort.paid_total, per_page=10
        )
    async with unit_of_work(readonly=True) as session:
        book = await customers.search(session, tenant_id=actor.tenant_id, query=query)
    head = f"👥 <b>Customers</b> ({book.total})" + (f" matching “{escape(query.q)}”" if query.q else "")
    lines = [head] + [
        f"• {escape(c.name or '–')} {local_phone(c.phone)} · paid {format_kes(c.paid_total)} "
        f"in {c.paid_count}"
        for c in book.items
    ]
    lines.append("\n<i>Search: /customers wanjiku or /customers 0722</i>")
    export = InlineKeyboardButton(text="📤 Export to Excel", callback_data=CustCb(action="export").pack())
    if (target := _target(event)) is not None:
        await target.answer(
            "\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=[[export], _back()])
        )


@router.callback_query(CustCb.filter(F.action == "export"))
async def export_customers(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner, Role.manager)
    await query.answer("Preparing your Excel file…")
    target = _target(query)
    if target is None:
        return
    note = await target.answer("⏳ Preparing the customer book…")
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, actor.tenant_id)
        path, count = await customer_book(
            session, tenant_id=actor.tenant_id, query=CustomerQuery(), directory=runtime().settings.EXPORT_DIR
        )
    try:
        data = path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
    await target.answer_document(
        BufferedInputFile(data, filename=export_filename(f"customers-{tenant.slug}")),
        caption=f"👥 {count} customers",
    )
    await note.delete()


# -- wallet ------------------------------------------------------------------------------------------
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


# -- settings ----------------------------------------------------------------------------------------
@router.message(Command("settings"))
@router.callback_query(MenuCb.filter(F.action == "settings"))
async def settings_tab(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Role.owner)
    if isinstance(event, CallbackQuery):
        await event.answer()
    rt = runtime()
    async with unit_of_work(readonly=True) as session:
        channel = await tenants.get_channel(session, actor.tenant_id)
        view = tenants.channel_out(channel, box=rt.secrets, settings=rt.settings) if channel else None
    if view is None:
        text = "⚙️ <b>Settings</b>\nNo M-Pesa channel yet."
    else:
        text = (
            f"⚙️ <b>Settings</b>\n{view.kind.value.title()} {view.business_short_code}"
            + (f" · till {view.till_number}" if view.till_number else "")
            + f" · {view.environment.value}\nConsumer key {view.consumer_key} · "
            f"secret {view.consumer_secret} · passkey {view.passkey}\n"
            + ("✅ Verified" if view.verified else "❌ Not verified")
        )
    replace = InlineKeyboardButton(
        text="🔑 Replace M-Pesa credentials", callback_data=SetCb(action="replace").pack()
    )
    if (target := _target(event)) is not None:
        await target.answer(text, reply_markup=InlineKeyboardMarkup(inline_keyboard=[[replace], _back()]))


@router.callback_query(SetCb.filter(F.action == "replace"))
async def replace_credentials(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    _need(actor, Role.owner)
    await query.answer()
    if (target := _target(query)) is not None:
        await begin_onboarding(target, state)
