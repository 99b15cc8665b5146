"""Request payment: phone (or a recent customer) → amount → optional name → STK push → a status
message that edits itself when M-Pesa answers. "Send again" repeats a failed request."""

from __future__ import annotations

import functools
import uuid

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from bots import texts
from bots.filters import HasText
from bots.keyboards import MenuCb, PayCb, with_cancel
from bots.middlewares import Actor
from bots.states import Pay
from bots.status import post_status
from core.errors import InvalidInput, LipapushError, NotFound
from core.money import parse_shillings
from core.notify.texts import local_phone
from core.payments.models import CUSTOMER_SOURCES
from core.payments.schemas import clean_name
from core.payments.use_cases import get_payment, payee_name, payee_suggestions, request_payment
from core.phones import normalize_msisdn

router = Router(name="pay")


def _require(actor: Actor | None) -> Actor:
    if actor is None:
        raise NotFound(texts.UNKNOWN_STRANGER)
    return actor


async def ask_phone(message: Message, state: FSMContext, actor: Actor) -> None:
    await state.clear()
    await state.set_state(Pay.phone)
    recent = await payee_suggestions(actor.core, limit=5)
    rows = [[_pick_button(c.name, c.phone)] for c in recent]
    await message.answer(texts.PAY_PHONE, reply_markup=with_cancel(rows))


@functools.lru_cache(maxsize=4096)
def _pick_button(name: str | None, phone: str) -> InlineKeyboardButton:
    """A recent customer's button, built once per name and number (packing its callback data
    validates a pydantic model, and so does the button): the same few customers are offered to a
    business again and again. Buttons are only serialised after, never changed."""
    return InlineKeyboardButton(
        text=f"{name or local_phone(phone)} · {local_phone(phone)}",
        callback_data=PayCb(action="pick", pid=phone).pack(),
    )


@router.message(Command("pay"))
async def pay_command(message: Message, state: FSMContext, actor: Actor | None) -> None:
    await ask_phone(message, state, _require(actor))


@router.callback_query(MenuCb.filter(F.action == "pay"))
async def pay_button(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await ask_phone(query.message, state, _require(actor))


@router.callback_query(StateFilter(Pay.phone), PayCb.filter(F.action == "pick"))
async def picked_customer(
    query: CallbackQuery, callback_data: PayCb, state: FSMContext, actor: Actor | None
) -> None:
    actor = _require(actor)
    await query.answer()
    try:
        phone = normalize_msisdn(callback_data.pid)
    except InvalidInput:
        return
    if not isinstance(query.message, Message):
        return
    name = await payee_name(actor.core, phone)
    await state.update_data(phone=phone, name=name)
    await state.set_state(Pay.amount)
    who = f"{name} ({local_phone(phone)})" if name else local_phone(phone)
    await query.message.answer(f"Customer: {who}\n" + texts.PAY_AMOUNT, reply_markup=with_cancel())


@router.message(StateFilter(Pay.phone), HasText())
async def got_phone(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = _require(actor)
    try:
        phone = normalize_msisdn(message.text or "")
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.update_data(phone=phone, name=await payee_name(actor.core, phone))
    await state.set_state(Pay.amount)
    await message.answer(texts.PAY_AMOUNT, reply_markup=with_cancel())


@router.message(StateFilter(Pay.amount), HasText())
async def got_amount(message: Message, state: FSMContext, actor: Actor | None) -> None:
    try:
        amount = parse_shillings((message.text or "").replace(",", "").strip())
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.update_data(amount=amount)
    data = await state.get_data()
    if data.get("name"):
        await push(message, state, data, actor=_require(actor))  # known customer: name already known
        return
    await state.set_state(Pay.name)
    await message.answer(texts.PAY_NAME, reply_markup=_SKIP_NAME)


# Built once: the same buttons for every request (a markup is only serialised after).
_SKIP_NAME = with_cancel(
    [[InlineKeyboardButton(text="Skip ⏭", callback_data=PayCb(action="skipname").pack())]]
)


@router.message(StateFilter(Pay.name), HasText())
async def got_name(message: Message, state: FSMContext, actor: Actor | None) -> None:
    try:
        name = clean_name(message.text)
    except ValueError as exc:
        await message.answer(texts.invalid(str(exc)), reply_markup=with_cancel())
        return
    await state.update_data(name=name)
    await push(message, state, await state.get_data(), actor=_require(actor))


@router.callback_query(StateFilter(Pay.name), PayCb.filter(F.action == "skipname"))
async def skipped_name(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await push(query.message, state, await state.get_data(), actor=_require(actor))


async def push(
    message: Message, state: FSMContext, data: dict[str, object], *, actor: Actor | None = None
) -> None:
    from bots.middlewares import load_actor

    await state.clear()
    user_id = message.chat.id
    actor = actor or await load_actor(user_id)
    if actor is None:
        return
    try:
        payment = await request_payment(
            actor.core,
            phone=str(data["phone"]),
            amount=int(str(data["amount"])),
            name=str(data["name"]) if data.get("name") else None,
        )
    except LipapushError as exc:
        await message.answer(texts.invalid(exc.message))
        return
    await post_status(message, payment, tenant_id=actor.tenant_id)


@router.callback_query(PayCb.filter(F.action == "again"))
async def send_again(
    query: CallbackQuery, callback_data: PayCb, state: FSMContext, actor: Actor | None
) -> None:
    actor = _require(actor)
    try:
        pid = uuid.UUID(callback_data.pid)
    except ValueError:
        await query.answer("This button is no longer valid.", show_alert=True)
        return
    old = await get_payment(actor.core, pid)
    if old.source not in CUSTOMER_SOURCES:
        await query.answer("Only a customer payment can be sent again.", show_alert=True)
        return
    await query.answer("Sending again…")
    if isinstance(query.message, Message):
        await push(
            query.message,
            state,
            {"phone": old.phone, "amount": old.amount, "name": old.customer_name},
            actor=actor,
        )
