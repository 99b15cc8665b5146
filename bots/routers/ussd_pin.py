"""/ussd: set the phone and 4-digit PIN that open the USSD merchant menu on a feature phone.

The PIN message is deleted from the chat as soon as it is read, like the Daraja secrets."""

from __future__ import annotations

import contextlib
from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bots import texts
from bots.filters import HasText
from bots.keyboards import MenuCb, with_cancel
from bots.middlewares import Actor
from bots.tabs import need, target
from core.auth import use_cases as people
from core.auth.use_cases import UssdAccess
from core.errors import InvalidInput, LipapushError
from core.notify.texts import local_phone
from core.phones import Msisdn, normalize_msisdn

router = Router(name="ussd_pin")


class UssdPin(StatesGroup):
    phone = State()
    pin = State()
    code = State()


def ask_pin(phone: str) -> str:
    return (
        f"📟 <b>USSD menu</b> for {local_phone(phone)}\n"
        "Send a new 4-digit PIN (not 1111 or 1234). I will delete your message at once.\n"
        "To use another phone, send its number first."
    )


@router.message(Command("ussd"))
@router.callback_query(MenuCb.filter(F.action == "ussd"))
async def start_ussd(event: Message | CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor)
    if isinstance(event, CallbackQuery):
        await event.answer()
    phone = await people.ussd_phone_offer(actor.core)
    if (msg := target(event)) is None:
        return
    if phone is None:
        await state.set_state(UssdPin.phone)
        await msg.answer(
            "📟 Which phone will you dial from? Send its number (07XXXXXXXX).", reply_markup=with_cancel()
        )
        return
    await state.set_state(UssdPin.pin)
    await state.update_data(ussd_phone=phone)
    await msg.answer(ask_pin(phone), reply_markup=with_cancel())


@router.message(StateFilter(UssdPin.phone, UssdPin.pin), HasText(), F.text.regexp(r"^\+?[0-9 ]{9,16}$"))
async def got_phone(message: Message, state: FSMContext, actor: Actor | None) -> None:
    need(actor)
    try:
        phone = normalize_msisdn(message.text or "")
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.set_state(UssdPin.pin)
    await state.update_data(ussd_phone=phone)
    await message.answer(ask_pin(phone), reply_markup=with_cancel())


@router.message(StateFilter(UssdPin.pin), HasText())
async def got_pin(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor)
    pin = (message.text or "").strip()
    with contextlib.suppress(TelegramBadRequest):
        await message.delete()
    phone = Msisdn(str((await state.get_data())["ussd_phone"]))
    try:
        reg = await people.set_ussd_access(actor.core, pin=pin, phone=phone)
    except InvalidInput as exc:
        if exc.field != "pin":
            await state.clear()
            await message.answer(f"⚠️ {escape(exc.message)}")
            return
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    except LipapushError as exc:
        await state.clear()
        await message.answer(f"⚠️ {escape(exc.message)}")
        return
    if not reg.confirmed:
        await state.set_state(UssdPin.code)
        await message.answer(
            f"📩 I sent a 6-digit code by SMS to {local_phone(phone)}. Send it here to confirm the phone "
            "is yours (it expires in 10 minutes).",
            reply_markup=with_cancel(),
        )
        return
    await state.clear()
    await message.answer(ready_text(actor, reg))


@router.message(StateFilter(UssdPin.code), HasText())
async def got_code(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor)
    try:
        reg = await people.confirm_ussd_phone(actor.core, code=message.text or "")
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.clear()
    await message.answer(ready_text(actor, reg))


def ready_text(actor: Actor, reg: UssdAccess) -> str:
    code = reg.ussd_code
    return (
        f"✅ USSD ready. Dial <b>{escape(code)}</b> from {local_phone(reg.phone)} and enter your PIN.\n"
        f"Customers can pay {escape(actor.business)} from any phone: {escape(code)} → 1 → business number "
        f"<b>{escape(reg.business_number or '')}</b>."
    )
