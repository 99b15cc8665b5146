"""📶 WiFi, for hotspot providers: today's sales, router health and who is online, printed voucher
cards (the sheet arrives as a document), revoking a voucher, and paying the subscription.

Router down/up notices come from core.hotspot.provision through the notification outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from html import escape

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
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
from bots.filters import HasText
from bots.keyboards import MenuCb, with_cancel
from bots.middlewares import Actor
from bots.tabs import back_row as _back
from bots.tabs import need
from bots.tabs import target as _target
from core.access.permissions import Permission
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.hotspot import use_cases as voucher_cases
from core.hotspot import use_cases_plans as plan_cases
from core.hotspot import use_cases_provider as provider_cases
from core.hotspot import use_cases_routers as router_cases
from core.hotspot.models import RouterStatus, Voucher, VoucherStatus
from core.hotspot.provision import validity_text
from core.hotspot.reports import EAT, ProviderDay, RouterHealth
from core.hotspot.sheets import sheet
from core.hotspot.vouchers import MAX_BATCH
from core.tenants.models import Tenant

router = Router(name="wifi")

NOT_A_PROVIDER = "📶 WiFi is for hotspot providers. This business collects M-Pesa payments only."
NO_ROUTERS = (
    "No routers yet. Add your MikroTik with <code>lipapush router add</code> or POST /api/routers, "
    "then come back here."
)
NO_PLANS = "No plan is on sale on {router}. Add one (POST /api/plans), then print cards for it."
ASK_COUNT = "How many cards? (1–{max})"
ASK_CODE = "Send the code of the voucher to revoke (as printed or texted, e.g. <code>K7MP3QXA</code>)."
STATUS_ICON = {RouterStatus.up: "🟢", RouterStatus.down: "🔴", RouterStatus.unknown: "⚪"}


class WifiCb(CallbackData, prefix="wf"):
    action: str  # check, batch, brouter, bplan, roll, revoke, rvk, sub, subplan
    value: str = ""


class PrintCards(StatesGroup):
    count = State()


class Revoke(StatesGroup):
    code = State()


def _eat(at: datetime, fmt: str = "%d %b %H:%M") -> str:
    return at.astimezone(EAT).strftime(fmt)


def _button(text: str, action: str, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=WifiCb(action=action, value=value).pack())


def need_provider(actor: Actor | None, permission: Permission = Permission.vouchers_issue) -> Actor:
    actor = need(actor, permission)
    if not actor.hotspot:
        raise PermissionDenied(NOT_A_PROVIDER)
    return actor


def router_line(r: RouterHealth) -> str:
    head = f"{STATUS_ICON[r.status]} <b>{escape(r.name)}</b>"
    if r.status is RouterStatus.unknown:
        parts = ["not checked yet"]
    elif r.status is RouterStatus.down:
        since = f" (last answered {_eat(r.last_seen_at)})" if r.last_seen_at else ""
        parts = [f"not answering{since}: {escape((r.last_error or 'no reply')[:120])}"]
    else:
        online = f"{r.online} online" if r.online is not None else "online count not read yet"
        parts = [online, f"seen {_eat(r.last_seen_at, '%H:%M')}" if r.last_seen_at else ""]
    parts.append(f"{r.active} voucher{'s' if r.active != 1 else ''} in use")
    if r.waiting:
        parts.append(f"⏳ {r.waiting} waiting to reach the router")
    return head + ": " + " · ".join(p for p in parts if p)


def subscription_line(tenant: Tenant) -> str | None:
    sub = provider_cases.subscription_state(tenant)
    if sub.lapsed and sub.trial_until is not None and sub.paid_until is None:
        return (
            "⚠️ <b>Free trial ended</b>: the WiFi page takes no new sales. Vouchers already sold "
            "keep working. Tap 💳 Subscription to subscribe."
        )
    if sub.lapsed:
        return (
            "⚠️ <b>Subscription lapsed</b>: the WiFi page takes no new sales. Vouchers already sold "
            "keep working. Tap 💳 Subscription to renew."
        )
    if sub.trial and sub.trial_until is not None:
        then = (
            f"; paid from then until {_eat(sub.paid_until, '%d %b %Y')}"
            if sub.paid_until
            else ". Subscribe before then to keep selling"
        )
        return f"🎁 Free trial until {_eat(sub.trial_until, '%d %b %Y')}{then}."
    if sub.paid_until is None:
        return None
    return f"💳 Subscription paid until {_eat(sub.paid_until, '%d %b %Y')}"


def wifi_text(business: str, day: ProviderDay, tenant: Tenant) -> str:
    lines = [
        f"📶 <b>{escape(business)}</b> · today, {day.day.strftime('%d %b')}",
        f"Sold: <b>{day.sales.vouchers}</b> voucher{'s' if day.sales.vouchers != 1 else ''} · "
        f"KES {day.sales.kes:,}",
    ]
    lines += [f"• {escape(p.plan)}: {p.vouchers} · KES {p.kes:,}" for p in day.by_plan]
    if day.cards:
        lines.append(f"Printed cards: {day.cards}")
    lines.append("\n<b>Routers</b>")
    lines += [router_line(r) for r in day.routers] if day.routers else [NO_ROUTERS]
    if (sub := subscription_line(tenant)) is not None:
        lines.append("\n" + sub)
    return "\n".join(lines)


def wifi_keyboard(actor: Actor) -> InlineKeyboardMarkup:
    rows = [
        [_button("🔄 Check routers", "check")],
        [_button("🎟 Print vouchers", "batch"), _button("⛔ Revoke a voucher", "revoke")],
    ]
    if actor.core.can(Permission.subscription_manage):
        rows.append([_button("💳 Subscription", "sub")])
    return InlineKeyboardMarkup(inline_keyboard=[*rows, _back()])


async def send_wifi(target: Message, actor: Actor, today: provider_cases.WifiToday | None = None) -> None:
    today = today or await provider_cases.wifi_today(actor.core)
    await target.answer(wifi_text(actor.business, today.day, today.tenant), reply_markup=wifi_keyboard(actor))


@router.message(Command("wifi"))
@router.callback_query(MenuCb.filter(F.action == "wifi"))
async def wifi(event: Message | CallbackQuery, actor: Actor | None) -> None:
    actor = need_provider(actor, Permission.hotspot_overview)
    if isinstance(event, CallbackQuery):
        await event.answer()
    if (target := _target(event)) is not None:
        await send_wifi(target, actor)


@router.callback_query(WifiCb.filter(F.action == "check"))
async def check(query: CallbackQuery, actor: Actor | None) -> None:
    """Log in to every router now; one that answers is also reconciled (online count, drift)."""
    actor = need_provider(actor, Permission.hotspot_manage)
    await query.answer("Checking your routers…")
    today = await router_cases.check_all_routers(actor.core)
    if (target := _target(query)) is not None:
        await send_wifi(target, actor, today)


# -- printed cards ------------------------------------------------------------------------------


@router.callback_query(WifiCb.filter(F.action == "batch"))
async def batch_router(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    actor = need_provider(actor)
    await query.answer()
    choices = await plan_cases.card_choices(actor.core)
    if (target := _target(query)) is None:
        return
    if not choices.routers:
        await target.answer(NO_ROUTERS, reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]))
        return
    if choices.router is not None:
        await _ask_plan(target, state, choices)
        return
    rows = [[_button(f"{STATUS_ICON[r.status]} {r.name}", "brouter", r.id.hex)] for r in choices.routers]
    await target.answer("🎟 Cards for which router?", reply_markup=with_cancel(rows))


@router.callback_query(WifiCb.filter(F.action == "brouter"))
async def batch_router_picked(
    query: CallbackQuery, callback_data: WifiCb, state: FSMContext, actor: Actor | None
) -> None:
    actor = need_provider(actor)
    await query.answer()
    choices = await plan_cases.card_choices(actor.core, router_id=uuid.UUID(hex=callback_data.value))
    if (target := _target(query)) is not None:
        await _ask_plan(target, state, choices)


async def _ask_plan(target: Message, state: FSMContext, choices: plan_cases.CardChoices) -> None:
    r, sold = choices.router, choices.plans
    assert r is not None
    if not sold:
        await target.answer(
            NO_PLANS.format(router=escape(r.name)),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]),
        )
        return
    await state.set_data({"router_id": str(r.id)})
    rows = [
        [_button(f"{p.name} · KES {p.price:,} · {validity_text(p.validity_minutes)}", "bplan", p.id.hex)]
        for p in sold
    ]
    await target.answer(f"🎟 Which plan on <b>{escape(r.name)}</b>?", reply_markup=with_cancel(rows))


@router.callback_query(WifiCb.filter(F.action == "bplan"))
async def batch_plan_picked(
    query: CallbackQuery, callback_data: WifiCb, state: FSMContext, actor: Actor | None
) -> None:
    need_provider(actor)
    await query.answer()
    data = await state.get_data()
    if "router_id" not in data:
        raise InvalidInput("plan", "That choice has expired. Tap 🎟 Print vouchers again.")
    await state.update_data(plan_id=str(uuid.UUID(hex=callback_data.value)))
    await state.set_state(PrintCards.count)
    if (target := _target(query)) is not None:
        await target.answer(ASK_COUNT.format(max=MAX_BATCH), reply_markup=with_cancel())


@router.message(StateFilter(PrintCards.count), HasText())
async def batch_count(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = need_provider(actor)
    raw = (message.text or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BATCH:
        await message.answer(
            texts.invalid(f"Send a whole number of cards from 1 to {MAX_BATCH}."), reply_markup=with_cancel()
        )
        return
    data = await state.get_data()
    await state.clear()
    issued = await voucher_cases.issue_voucher_batch(
        actor.core,
        router_id=uuid.UUID(data["router_id"]),
        plan_id=uuid.UUID(data["plan_id"]),
        count=int(raw),
    )
    made, batch = issued.vouchers, issued.batch_id
    page = sheet(provider=issued.provider, vouchers=sorted(made, key=lambda v: v.code), paper="a4")
    await message.answer_document(
        BufferedInputFile(page.encode(), filename=f"vouchers-{batch.hex[:8]}-a4.html"),
        caption=(
            f"🎟 <b>{len(made)}</b> × {escape(issued.plan_name)} (KES {issued.price:,}) for "
            f"{escape(issued.router_name)}.\n"
            "Open the file and print it on A4, then cut the cards. Each card works once the router "
            "has it, usually within seconds: 📶 WiFi shows any still waiting."
        ),
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[_button("🧾 Same cards for a 58 mm printer", "roll", batch.hex)], _back()]
        ),
    )


@router.callback_query(WifiCb.filter(F.action == "roll"))
async def batch_roll(query: CallbackQuery, callback_data: WifiCb, actor: Actor | None) -> None:
    actor = need_provider(actor)
    await query.answer()
    batch = uuid.UUID(hex=callback_data.value)
    try:
        page, count = await voucher_cases.print_voucher_batch(actor.core, batch, paper="58mm")
    except NotFound:
        page, count = "", 0
    if (target := _target(query)) is None:
        return
    if not count:
        await target.answer(
            "Those cards are gone.", reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()])
        )
        return
    await target.answer_document(
        BufferedInputFile(page.encode(), filename=f"vouchers-{batch.hex[:8]}-58mm.html"),
        caption=f"🧾 The same {count} cards, one under another for a 58 mm thermal printer.",
    )


# -- revoking -----------------------------------------------------------------------------------


def voucher_line(v: Voucher, router_name: str) -> str:
    state = {
        VoucherStatus.issued: "waiting to reach the router",
        VoucherStatus.provisioned: "ready, not used yet",
        VoucherStatus.active: (f"in use since {_eat(v.activated_at)}" if v.activated_at else "in use")
        + (f", ends {_eat(v.expires_at)}" if v.expires_at else ""),
        VoucherStatus.expired: "expired",
        VoucherStatus.revoked: "revoked",
    }[v.status]
    return (
        f"🎟 <code>{v.code}</code> · {escape(v.plan_name)} · KES {v.price:,} · {escape(router_name)}\n{state}"
    )


@router.callback_query(WifiCb.filter(F.action == "revoke"))
async def revoke_ask(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    need_provider(actor)
    await query.answer()
    await state.set_state(Revoke.code)
    if (target := _target(query)) is not None:
        await target.answer(ASK_CODE, reply_markup=with_cancel())


@router.message(StateFilter(Revoke.code), HasText())
async def revoke_code(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = need_provider(actor)
    text = (message.text or "").strip()
    if len(text) > 32:
        await message.answer(
            texts.invalid("That is too long for a voucher code."), reply_markup=with_cancel()
        )
        return
    try:
        found = await voucher_cases.find_voucher(actor.core, text)
    except NotFound as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    v = found.voucher
    await state.clear()
    line = voucher_line(v, found.router_name)
    if v.status in (VoucherStatus.expired, VoucherStatus.revoked):
        await message.answer(
            f"{line}\nNothing to revoke.", reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()])
        )
        return
    await message.answer(
        f"{line}\n\nRevoke it? Whoever uses it is logged out and it stops working at once.",
        reply_markup=with_cancel([[_button("⛔ Yes, revoke it", "rvk", v.code)]]),
    )


@router.callback_query(WifiCb.filter(F.action == "rvk"))
async def revoke_confirmed(query: CallbackQuery, callback_data: WifiCb, actor: Actor | None) -> None:
    actor = need_provider(actor)
    revoked = await voucher_cases.revoke_voucher(actor.core, code=callback_data.value)
    before = revoked.voucher.status if revoked.already else None
    await query.answer("Revoked" if before is not VoucherStatus.revoked else "Already revoked")
    if (target := _target(query)) is not None:
        await target.answer(
            f"⛔ <code>{revoked.voucher.code}</code> is revoked: it is being taken off "
            f"{escape(revoked.router_name)} now.",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[_button("📶 WiFi", "home")], _back()]),
        )


@router.callback_query(WifiCb.filter(F.action == "home"))
async def back_to_wifi(query: CallbackQuery, actor: Actor | None) -> None:
    await wifi(query, actor)


# -- subscription -------------------------------------------------------------------------------


@router.callback_query(WifiCb.filter(F.action == "sub"))
async def subscription(query: CallbackQuery, actor: Actor | None) -> None:
    actor = need_provider(actor, Permission.subscription_manage)
    await query.answer()
    offer = await provider_cases.subscription_offer(actor.core)
    offered = offer.offered
    line = subscription_line(offer.tenant) or "💳 No subscription paid yet."
    if (target := _target(query)) is None:
        return
    if not offered:
        await target.answer(
            f"{line}\nNo subscription plans are on offer yet: ask lipapush support.",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]),
        )
        return
    rows = [[_button(f"{p.name} · KES {p.price:,}", "subplan", p.id.hex)] for p in offered]
    await target.answer(
        f"{line}\nPick a plan to pay through Pesapal (M-Pesa, Airtel Money or card):",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[*rows, _back()]),
    )


@router.callback_query(WifiCb.filter(F.action == "subplan"))
async def subscription_order(query: CallbackQuery, callback_data: WifiCb, actor: Actor | None) -> None:
    actor = need_provider(actor, Permission.subscription_manage)
    await query.answer("Opening an order at Pesapal…")
    order = await provider_cases.start_subscription_order(actor.core, uuid.UUID(hex=callback_data.value))
    if (target := _target(query)) is None or not order.redirect_url:
        return
    await target.answer(
        f"💳 Order <code>{escape(order.merchant_reference)}</code>: KES {order.amount:,}. Pay on Pesapal's "
        "page; your subscription is extended as soon as Pesapal confirms the payment.",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=f"Pay KES {order.amount:,} on Pesapal", url=order.redirect_url)],
                _back(),
            ]
        ),
    )
