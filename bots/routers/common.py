"""/cancel, /help, and the fallback for anything unexpected."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bots import texts
from bots.keyboards import CancelCb, main_menu
from bots.middlewares import Actor

router = Router(name="common")
fallback = Router(name="fallback")  # included last


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext, actor: Actor | None) -> None:
    had = await state.get_state()
    await state.clear()
    markup = main_menu(actor.core, hotspot=actor.hotspot) if actor else None
    await message.answer(texts.CANCELLED if had else texts.NOTHING_TO_CANCEL, reply_markup=markup)


@router.callback_query(CancelCb.filter())
async def cancel_button(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    await state.clear()
    await query.answer("Cancelled")
    if isinstance(query.message, Message):
        await query.message.edit_text(
            texts.CANCELLED, reply_markup=main_menu(actor.core, hotspot=actor.hotspot) if actor else None
        )


@router.message(Command("help"))
async def help_(message: Message) -> None:
    await message.answer(texts.HELP)


@fallback.message()
async def anything_else(message: Message, actor: Actor | None) -> None:
    if actor is None:
        await message.answer(texts.UNKNOWN_STRANGER)
    else:
        await message.answer(texts.UNKNOWN_COMMAND, reply_markup=main_menu(actor.core, hotspot=actor.hotspot))


@fallback.callback_query()
async def stale_button(query: CallbackQuery) -> None:
    await query.answer("This button is no longer active. Send /start for the menu.", show_alert=True)
