"""🏠 Home: the dashboard in one message."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
)

from bots.keyboards import MenuCb
from bots.middlewares import Actor
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.auth.models import Role
from core.billing.commission import commissions
from core.billing.wallet import wallets
from core.customers.service import customers
from core.money import format_cents, format_kes
from core.notify.texts import local_phone
from core.payments.service import payments
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants

router = Router(name="home")


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
