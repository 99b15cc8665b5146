"""📦 /plan (owner and manager): the business's API plan, this month's live payment requests against
its quota and when the count starts again. The owner also pays it (from the wallet, after a
confirmation, or by an M-Pesa prompt to the business phone) and changes it among the plans on offer.
The same use cases as GET/POST /api/plan and the panel's Settings → Plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bots.middlewares import Actor
from bots.status import post_status
from bots.tabs import back_row, need, target
from core.access.permissions import Permission
from core.billing.periods import EAT
from core.money import format_cents
from core.plans import use_cases
from core.plans.schemas import PlanOut, PlanStatusOut

router = Router(name="plan")

PANEL_NOTE = "The plans side by side: web panel, Settings → Plan."
# A chat message holds 4 096 characters and a keyboard should fit a phone: the cheapest plans here,
# every one in the panel.
SHOWN_PLANS = 8


class PlanCb(CallbackData, prefix="pl"):
    action: str  # show, options, choose, wallet, wallet_yes, mpesa
    code: str = ""


def _day(at: datetime) -> str:
    return at.astimezone(EAT).strftime("%-d %B %Y")


def _through(end: datetime) -> str:
    """The last Nairobi day a paid period covers (`end` is the exclusive 00:00), as the panel says it."""
    return _day(end - timedelta(seconds=1))


def fee(plan: PlanOut) -> str:
    return f"{format_cents(plan.monthly_fee_cents)} a month" if plan.monthly_fee_cents else "free"


def quota_line(status: PlanStatusOut) -> str:
    """This month's count in one sentence, the bot's and /usage's."""
    month = datetime.strptime(status.month, "%Y-%m").strftime("%B")
    quota = status.effective.live_pushes_per_month
    if quota is None:
        return f"Live payment requests in {month}: {status.live_pushes:,} (no monthly limit)."
    left = f"{status.remaining:,} left" if status.remaining else "none left"
    return (
        f"Live payment requests in {month}: {status.live_pushes:,} of {quota:,} ({left}); "
        f"the count starts again on {_day(status.resets_at)}."
    )


def plan_text(business: str, status: PlanStatusOut) -> str:
    lines = [f"📦 <b>API plan of {escape(business)}</b>", f"Plan: <b>{escape(status.effective.name)}</b>"]
    if status.unpaid:
        lines.append(
            f"You chose <b>{escape(status.chosen.name)}</b> ({fee(status.chosen)}): it applies once paid. "
            f"Until then the {escape(status.effective.name)} plan does."
        )
    elif status.chosen.monthly_fee_cents and status.paid_until is not None:
        lines.append(f"{fee(status.chosen)}, paid through {_through(status.paid_until)}.")
    lines.append(quota_line(status))
    rate = status.effective.pushes_per_key_per_minute
    if rate is not None:
        lines.append(f"Each API key may start {rate:,} payment requests a minute.")
    lines.append("Test-mode requests never count.")
    return "\n".join(lines)


def _button(text: str, action: str, code: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=PlanCb(action=action, code=code).pack())


def plan_keyboard(status: PlanStatusOut, *, owner: bool) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if owner:
        if status.next_payment_cents is not None:
            rows.append(
                [_button(f"💳 Pay {format_cents(status.next_payment_cents)} from the wallet", "wallet")]
            )
        if status.next_mpesa_amount is not None:
            rows.append([_button(f"📲 Pay KES {status.next_mpesa_amount:,} by M-Pesa", "mpesa")])
        rows.append([_button("🔁 Change plan", "options")])
    rows.append(back_row())
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def _show(where: Message, actor: Actor, *, notice: str | None = None) -> None:
    status = await use_cases.plan_status(actor.core)
    owner = actor.core.can(Permission.plan_manage)
    text = plan_text(actor.business, status) + ("" if owner else f"\n\n{PANEL_NOTE}")
    if notice:
        text = f"{notice}\n\n{text}"
    await where.answer(text, reply_markup=plan_keyboard(status, owner=owner))


@router.message(Command("plan"))
async def show_plan(message: Message, actor: Actor | None) -> None:
    await _show(message, need(actor, Permission.plan_read))


@router.callback_query(PlanCb.filter(F.action == "show"))
async def show_again(query: CallbackQuery, actor: Actor | None) -> None:
    actor = need(actor, Permission.plan_read)
    await query.answer()
    if (where := target(query)) is not None:
        await _show(where, actor)


@router.callback_query(PlanCb.filter(F.action == "options"))
async def options(query: CallbackQuery, actor: Actor | None) -> None:
    actor = need(actor, Permission.plan_manage)
    await query.answer()
    offer = await use_cases.plans_on_offer(actor.core)
    status = await use_cases.plan_status(actor.core)
    lines = ["🔁 <b>Plans on offer</b>"]
    rows = []
    for p in offer[:SHOWN_PLANS]:
        quota = (
            "no monthly limit" if p.live_pushes_per_month is None else f"{p.live_pushes_per_month:,} a month"
        )
        current = p.id == status.chosen.id
        lines.append(
            f"• <b>{escape(p.name)}</b>: {fee(p)}, live payment requests {quota}" + (" ✓" if current else "")
        )
        if not current:
            rows.append([_button(f"Move to {p.name}", "choose", p.code)])
    if len(offer) > SHOWN_PLANS:
        lines.append(f"The {SHOWN_PLANS} cheapest of {len(offer)} plans; all of them: {PANEL_NOTE}")
    lines.append("A plan with a fee applies once paid; until then the free one does.")
    rows.append([_button("⬅ Plan", "show")])
    if (where := target(query)) is not None:
        await where.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


@router.callback_query(PlanCb.filter(F.action == "choose"))
async def choose(query: CallbackQuery, callback_data: PlanCb, actor: Actor | None) -> None:
    actor = need(actor, Permission.plan_manage)
    await query.answer()
    status = await use_cases.choose_plan(actor.core, code=callback_data.code)
    notice = f"✅ Your plan is now <b>{escape(status.chosen.name)}</b>."
    if status.unpaid:
        notice += " It applies once paid: pay it below."
    if (where := target(query)) is not None:
        await _show(where, actor, notice=notice)


@router.callback_query(PlanCb.filter(F.action == "wallet"))
async def confirm_wallet(query: CallbackQuery, actor: Actor | None) -> None:
    actor = need(actor, Permission.plan_manage)
    await query.answer()
    status = await use_cases.plan_status(actor.core)
    if status.next_payment_cents is None:
        if (where := target(query)) is not None:
            await _show(where, actor, notice="Nothing to pay now.")
        return
    text = (
        f"Pay {format_cents(status.next_payment_cents)} from the wallet for the "
        f"<b>{escape(status.chosen.name)}</b> plan?"
    )
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[_button("✅ Yes, pay", "wallet_yes"), _button("✖ No", "show")]]
    )
    if (where := target(query)) is not None:
        await where.answer(text, reply_markup=keyboard)


@router.callback_query(PlanCb.filter(F.action == "wallet_yes"))
async def pay_from_wallet(query: CallbackQuery, actor: Actor | None) -> None:
    actor = need(actor, Permission.plan_manage)
    await query.answer()
    paid = await use_cases.pay_plan(actor.core)
    notice = (
        f"✅ Paid {format_cents(paid.amount_cents)} from the wallet: the {escape(paid.status.chosen.name)} "
        f"plan applies through {_through(paid.period_end)}."
    )
    if (where := target(query)) is not None:
        await _show(where, actor, notice=notice)


@router.callback_query(PlanCb.filter(F.action == "mpesa"))
async def pay_by_mpesa(query: CallbackQuery, actor: Actor | None) -> None:
    actor = need(actor, Permission.plan_manage)
    await query.answer()
    payment = await use_cases.pay_plan_by_mpesa(actor.core)
    if (where := target(query)) is not None:
        await post_status(where, payment, tenant_id=actor.tenant_id)
        await where.answer("When the prompt says Paid, the plan applies: tap /plan to see it.")
