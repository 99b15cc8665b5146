"""🧩 Apps (owner only): /apps lists the business's apps; "Create app" asks for a name and makes one
with the same use case as the API, the panel and the CLI. Keys, hosts and archiving stay in the panel."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bots import texts
from bots.filters import HasText
from bots.keyboards import with_cancel
from bots.middlewares import Actor
from bots.tabs import back_row, need, target
from core.access.permissions import Permission
from core.apps import use_cases
from core.apps.schemas import AppOut
from core.errors import Conflict, InvalidInput

router = Router(name="apps")

ASK_NAME = "🧩 What is the new app called? Send a name of up to 80 characters, like <i>Shop website</i>."
NO_APPS = "No apps yet. Your first API key makes a “Default app”, or create one here."
PANEL_NOTE = "API keys, callback hosts and archiving are in the web panel: Settings → Apps."


class AppCb(CallbackData, prefix="ap"):
    action: str  # create


class NewApp(StatesGroup):
    name = State()


def app_line(app: AppOut) -> str:
    channel = app.channel.label if app.channel else "no channel yet"
    keys = f"{app.key_count} key" + ("" if app.key_count == 1 else "s")
    return f"• <b>{escape(app.name)}</b> · {app.mode.value} · {escape(channel)} · {keys}"


def _markup() -> InlineKeyboardMarkup:
    create = InlineKeyboardButton(text="➕ Create app", callback_data=AppCb(action="create").pack())
    return InlineKeyboardMarkup(inline_keyboard=[[create], back_row()])


@router.message(Command("apps"))
async def list_apps(message: Message, actor: Actor | None) -> None:
    actor = need(actor, Permission.apps_manage)
    rows = await use_cases.list_apps(actor.core)
    lines = [f"🧩 <b>Apps of {escape(actor.business)}</b>", *(app_line(a) for a in rows)]
    if not rows:
        lines.append(NO_APPS)
    lines += ["", PANEL_NOTE]
    await message.answer("\n".join(lines), reply_markup=_markup())


@router.callback_query(AppCb.filter(F.action == "create"))
async def ask_name(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    need(actor, Permission.apps_manage)
    await query.answer()
    await state.set_state(NewApp.name)
    if (where := target(query)) is not None:
        await where.answer(ASK_NAME, reply_markup=with_cancel())


@router.message(StateFilter(NewApp.name), HasText())
async def got_name(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor, Permission.apps_manage)
    try:
        made = await use_cases.create_app(actor.core, name=message.text or "")
    except (InvalidInput, Conflict) as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.clear()
    await message.answer(
        f"✅ App created.\n{app_line(made)}\nMake its API keys in the web panel: Settings → API keys.",
        reply_markup=_markup(),
    )
