"""⚙️ Settings: the M-Pesa channel (secrets masked) and replacing its credentials."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bots.keyboards import MenuCb
from bots.middlewares import Actor
from bots.routers.onboarding import begin_onboarding
from bots.tabs import back_row as _back
from bots.tabs import need as _need
from bots.tabs import target as _target
from core.auth.models import Role
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants

router = Router(name="settings")


class SetCb(CallbackData, prefix="st"):
    action: str  # replace


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
