"""🏠 Home: the dashboard in one message, and 📈 a chart of the last 30 days as a photo."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bots import texts
from bots.chart import DAYS, chart_of, chart_png
from bots.keyboards import MenuCb, PayoutCb
from bots.middlewares import Actor
from bots.routers.balance import balance_button, home_lines
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.access.permissions import Permission
from core.lookups.use_cases import balances
from core.money import format_cents, format_kes
from core.notify.texts import local_phone
from core.payments.use_cases import home_view, payment_days

router = Router(name="home")

NO_CHART = f"📈 No finished payments in the last {DAYS} days yet: nothing to chart."


class HomeCb(CallbackData, prefix="hc"):
    action: str  # chart


# Buttons built once (packing callback data validates a pydantic model each time); only serialised after.
_CHART = InlineKeyboardButton(text="📈 Chart", callback_data=HomeCb(action="chart").pack())
_PAY_OUT = InlineKeyboardButton(text="💸 Pay out", callback_data=PayoutCb(action="start").pack())


@router.message(Command("home"))
@router.callback_query(MenuCb.filter(F.action == "home"))
async def home(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.wallet_read)
    if isinstance(event, CallbackQuery):
        await event.answer()
    view = await home_view(actor.core, chart_days=0, recent=5)  # the chart is its own button
    s, wallet, commission, recent = view.summary, view.wallet, view.commission, view.recent_customers or []
    assert wallet is not None and commission is not None  # wallet_read: the manager's view
    rate = f"{100 * s.success_rate:.0f}%" if s.success_rate is not None else "–"
    lines = [
        f"🏠 <b>{escape(actor.business)}</b>",
        f"Total received: <b>{format_kes(s.total_processed)}</b>",
        f"Payments: {s.transactions} ({s.paid} paid, {s.not_paid} not paid, "
        f"{s.pending} waiting) · success {rate}",
        *texts.home_commission(commission.from_wallet_cents, commission.owed_cents),
        f"Wallet: {format_cents(wallet.balance_cents)}",
    ]
    money_out: list[InlineKeyboardButton] = []
    if actor.core.can(Permission.balance_read):  # the owner's and manager's: M-Pesa's own figure
        m_pesa = await balances(actor.core)
        lines += home_lines(m_pesa)
        if m_pesa.channels:
            money_out.append(balance_button())
            if actor.core.can(Permission.payouts_request):
                money_out.append(_PAY_OUT)
    if recent:
        lines.append("\n<b>Recent customers</b>")
        lines += [
            f"• {escape(c.name or '–')} {local_phone(c.phone)}: {format_kes(c.paid_total)}" for c in recent
        ]
    chart_button = _CHART
    if (target := _target(event)) is not None:
        await target.answer(
            "\n".join(lines),
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[row for row in ([chart_button], money_out, _back()) if row]
            ),
        )


@router.callback_query(HomeCb.filter(F.action == "chart"))
async def send_chart(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.wallet_read)
    await query.answer()
    if (target := _target(query)) is None:
        return
    data = chart_of(await payment_days(actor.core, days=DAYS))
    if data.empty:
        await target.answer(NO_CHART, reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]))
        return
    png = await chart_png(data, business=actor.business)
    rate = 100 * data.paid / data.finished
    await target.answer_photo(
        BufferedInputFile(png, filename="lipapush-chart.png"),
        caption=f"📈 <b>Last {DAYS} days</b> (EAT): {format_kes(data.paid_kes)} received in "
        f"{data.paid} of {data.finished} finished payments · success {rate:.0f}%\n"
        "<i>Bars: KES paid per day · line: success rate</i>",
    )
