"""⚙️ Settings (owner only): the M-Pesa channel (secrets masked) and replacing its credentials, the
billing mode, the low-balance alert level, payment alerts for API/USSD pushes, and staff invites."""

from __future__ import annotations

import contextlib
from html import escape

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
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
from pydantic import ValidationError

from bots import texts
from bots.filters import HasText
from bots.keyboards import MenuCb, with_cancel
from bots.middlewares import Actor
from bots.routers.onboarding import begin_onboarding
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.access.permissions import Permission
from core.auth import use_cases as people
from core.auth.codes import CODE_TTL
from core.auth.models import Role
from core.auth.service import StaffMember
from core.billing.schemas import WalletSettingsIn
from core.billing.use_cases import change_wallet_settings
from core.errors import InvalidInput
from core.money import format_cents
from core.tenants import use_cases as business_settings
from core.tenants.use_cases_channels import list_channels

router = Router(name="settings")

MAX_LEVEL = 10_000_000  # KES, as WalletSettingsIn allows
ASK_LEVEL = "🔔 Alert me when the wallet drops below how many <b>KES</b>? Send a whole number, like 500."
BAD_LEVEL = "Send the alert level as a whole number of shillings, like 500."
TOO_HIGH_LEVEL = f"The alert level can be at most KES {MAX_LEVEL:,}."
STAFF_NOTE = "Invite someone: they get a one-time code to send to this bot."


class SetCb(CallbackData, prefix="st"):
    action: str  # replace, level, alerts, staff


class InviteCb(CallbackData, prefix="sti"):
    role: Role  # cashier or manager


class LowBalanceLevel(StatesGroup):
    amount = State()


def _row(text: str, cb: CallbackData) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=text, callback_data=cb.pack())]


async def settings_view(actor: Actor) -> tuple[str, InlineKeyboardMarkup]:
    settings = await business_settings.view_settings(actor.core, with_wallet=True)
    view, w, alerts = settings.channel, settings.wallet, settings.payment_alerts
    assert w is not None
    own_rate = settings.own_commission_rate
    if view is None:
        text = "⚙️ <b>Settings</b>\nNo M-Pesa channel yet."
    else:
        text = (
            f"⚙️ <b>Settings</b>\n{view.kind.value.title()} {escape(view.business_short_code)}"
            + (f" · till {escape(view.till_number)}" if view.till_number else "")
            + f" · {view.environment.value}\nConsumer key {escape(view.consumer_key or '–')} · "
            f"secret {escape(view.consumer_secret or '–')} · passkey {escape(view.passkey or '–')}\n"
            + ("✅ Verified" if view.verified else "❌ Not verified")
        )
        several = await list_channels(actor.core)
        if len(several) > 1:
            names = " · ".join(
                escape(v.channel.name)
                + (" (primary)" if v.channel.primary else "")
                + (" ✅" if v.channel.verified else " ❌")
                for v in several
            )
            text += f"\n📡 Channels: {names}\nAdd or change them in the web panel: Settings → Channels."
    text += (
        f"\n\n💳 Billing: {w.billing_mode.value} · commission {w.commission_percent}"
        + (" (your rate)" if own_rate else " (platform rate)")
        + f"\n🔔 Low-balance alert below {format_cents(w.low_balance_threshold_cents)}"
        + "\n📣 Results of API/USSD payments: "
        + ("sent to this chat" if alerts else "not sent")
    )
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            _row("🔑 Replace M-Pesa credentials", SetCb(action="replace")),
            _row("✏️ Low-balance alert level", SetCb(action="level")),
            _row(
                "🔕 Stop API/USSD payment alerts" if alerts else "🔔 Tell me about API/USSD payments",
                SetCb(action="alerts"),
            ),
            _row("👥 Staff", SetCb(action="staff")),
            _row("📟 USSD PIN (feature phone)", MenuCb(action="ussd")),
            _back(),
        ]
    )
    return text, markup


@router.message(Command("settings"))
@router.callback_query(MenuCb.filter(F.action == "settings"))
async def settings_tab(event: Message | CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    actor = _need(actor, Permission.channel_manage)
    if isinstance(event, CallbackQuery):
        await event.answer()
    if await state.get_state() == LowBalanceLevel.amount.state:
        await state.clear()
    text, markup = await settings_view(actor)
    if (target := _target(event)) is not None:
        await target.answer(text, reply_markup=markup)


@router.callback_query(SetCb.filter(F.action == "replace"))
async def replace_credentials(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    _need(actor, Permission.channel_manage)
    await query.answer()
    if (target := _target(query)) is not None:
        await begin_onboarding(target, state)


# -- low-balance alert level -----------------------------------------------------------------------
@router.callback_query(SetCb.filter(F.action == "level"))
async def ask_level(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    _need(actor, Permission.wallet_settings)
    await query.answer()
    await state.set_state(LowBalanceLevel.amount)
    if (target := _target(query)) is not None:
        await target.answer(ASK_LEVEL, reply_markup=with_cancel())


def parse_level(text: str) -> WalletSettingsIn:
    raw = text.replace(",", "").replace(" ", "").strip()
    if raw.upper().startswith("KES"):
        raw = raw[3:]
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(BAD_LEVEL)
    try:
        return WalletSettingsIn(low_balance_threshold=int(raw))
    except ValidationError:
        raise ValueError(TOO_HIGH_LEVEL) from None


@router.message(StateFilter(LowBalanceLevel.amount), HasText())
async def got_level(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = _need(actor, Permission.wallet_settings)
    try:
        data = parse_level(message.text or "")
    except ValueError as exc:
        await message.answer(texts.invalid(str(exc)), reply_markup=with_cancel())
        return
    await state.clear()
    await change_wallet_settings(actor.core, data)
    level = format_cents((data.low_balance_threshold or 0) * 100)
    settings_button = InlineKeyboardButton(text="⚙️ Settings", callback_data=MenuCb(action="settings").pack())
    await message.answer(
        f"✅ Low-balance alert level set to {level}. I'll message you here when the wallet drops below it.",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[settings_button], _back()]),
    )


# -- payment alerts for pushes from the API or USSD -----------------------------------------------------
@router.callback_query(SetCb.filter(F.action == "alerts"))
async def alerts(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor)
    on = await business_settings.toggle_payment_alerts(actor.core)
    await query.answer("Payment alerts on" if on else "Payment alerts off")
    text, markup = await settings_view(actor)
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_text(text, reply_markup=markup)


# -- staff ------------------------------------------------------------------------------------------------
def staff_lines(members: list[StaffMember]) -> list[str]:
    """Who signs in for the business now (removed people are not staff any more)."""
    lines = []
    for m in members:
        if m.user.disabled_at is not None:
            continue
        who = m.name or m.email or "Telegram user"
        telegram = "on Telegram" if m.user.telegram_user_id is not None else "not on Telegram"
        lines.append(f"• {m.user.role.value.title()}: {escape(who)} · {telegram}")
    return lines


@router.callback_query(SetCb.filter(F.action == "staff"))
async def staff(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _need(actor, Permission.staff_manage)
    lines = staff_lines(await people.list_staff(actor.core))
    await query.answer()
    text = "\n".join([f"👥 <b>Staff of {escape(actor.business)}</b>", *lines, "", STAFF_NOTE])
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text="➕ Invite cashier", callback_data=InviteCb(role=Role.cashier).pack()
                ),
                InlineKeyboardButton(
                    text="➕ Invite manager", callback_data=InviteCb(role=Role.manager).pack()
                ),
            ],
            _back(),
        ]
    )
    if (target := _target(query)) is not None:
        await target.answer(text, reply_markup=markup)


def invite_text(*, role: Role, business: str, code: str, bot_username: str | None) -> str:
    minutes = int(CODE_TTL.total_seconds() // 60)
    lines = [f"✉️ <b>{role.value.title()} invitation</b> for {escape(business)}"]
    if bot_username:
        lines += [
            "Send this link to the person you are inviting:",
            f"https://t.me/{escape(bot_username)}?start={code}",
            f"or ask them to send <code>/start {code}</code> to @{escape(bot_username)}.",
        ]
    else:
        lines.append(f"Ask the person you are inviting to send <code>/start {code}</code> to this bot.")
    lines.append(f"The code works once, within {minutes} minutes.")
    return "\n".join(lines)


@router.callback_query(InviteCb.filter())
async def invite(query: CallbackQuery, callback_data: InviteCb, actor: Actor | None, bot: Bot) -> None:
    actor = _need(actor, Permission.staff_manage)
    try:
        made = await people.invite_staff(actor.core, role=callback_data.role)
    except InvalidInput as exc:
        await query.answer(exc.message, show_alert=True)
        return
    await query.answer()
    role, code = made.role, made.code
    me = await bot.me()
    if (target := _target(query)) is not None:
        await target.answer(
            invite_text(role=role, business=actor.business, code=code, bot_username=me.username),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[_back()]),
        )
