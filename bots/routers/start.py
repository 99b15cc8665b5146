"""/start: the menu for a known chat; for a new one, sign-up or linking (also by deep link)."""

from __future__ import annotations

import contextlib

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bots import texts
from bots.filters import HasText
from bots.keyboards import MenuCb, StartCb, main_menu, start_choices, with_cancel
from bots.middlewares import Actor, load_actor
from bots.routers.onboarding import begin_onboarding
from bots.states import Link, Signup
from core.auth.passwords import hash_password, validate_password
from core.auth.service import normalize_email
from core.auth.telegram import accept_invite, attach_owner, link_chat
from core.db import Scope
from core.errors import InvalidInput, LipapushError
from core.phones import normalize_msisdn
from core.runtime import unit_of_work
from core.tenants.onboarding import signup
from core.tenants.service import validate_business_name

router = Router(name="start")

# A link or invitation code names no business until it is looked up; a sign-up's email, and the Telegram
# account it attaches, must be free across every business.
BY_CODE = Scope.platform("Telegram link or invitation code")
SIGNUP = Scope.platform("bot sign-up: a new business and its owner")


async def show_menu(message: Message, actor: Actor, *, edit: bool = False) -> None:
    text, markup = (
        texts.menu(actor.business, actor.status.value),
        main_menu(actor.core, hotspot=actor.hotspot),
    )
    if edit:
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_text(text, reply_markup=markup)
            return
    await message.answer(text, reply_markup=markup)


@router.message(CommandStart(deep_link=True))
async def start_with_code(message: Message, command: CommandObject, state: FSMContext) -> None:
    await state.clear()
    assert message.from_user is not None
    code = (command.args or "").strip()
    name = message.from_user.full_name
    async with unit_of_work(scope=BY_CODE) as session:
        try:
            await link_chat(session, code=code, telegram_user_id=message.from_user.id)
        except InvalidInput:
            # not a link code: maybe a staff invitation (both are one-time codes of their own kind)
            await accept_invite(session, code=code, telegram_user_id=message.from_user.id, name=name)
    actor = await load_actor(message.from_user.id)
    assert actor is not None
    await message.answer(texts.linked(actor.business, actor.role.value))
    await show_menu(message, actor)


@router.message(CommandStart())
@router.message(Command("menu"))
async def start(message: Message, state: FSMContext, actor: Actor | None) -> None:
    await state.clear()
    if actor is None:
        await message.answer(texts.WELCOME_STRANGER, reply_markup=start_choices())
    else:
        await show_menu(message, actor)


@router.callback_query(MenuCb.filter(F.action == "home_menu"))
async def menu_button(query: CallbackQuery, actor: Actor | None) -> None:
    await query.answer()
    if actor is not None and isinstance(query.message, Message):
        await show_menu(query.message, actor)


@router.callback_query(StartCb.filter(F.action == "link"))
async def ask_link_code(query: CallbackQuery, state: FSMContext) -> None:
    await query.answer()
    await state.set_state(Link.code)
    if isinstance(query.message, Message):
        await query.message.answer(texts.ASK_LINK_CODE, reply_markup=with_cancel())


@router.message(StateFilter(Link.code), HasText())
async def got_link_code(message: Message, state: FSMContext) -> None:
    assert message.from_user is not None and message.text is not None
    try:
        async with unit_of_work(scope=BY_CODE) as session:
            await link_chat(session, code=message.text.strip(), telegram_user_id=message.from_user.id)
    except LipapushError as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.clear()
    actor = await load_actor(message.from_user.id)
    assert actor is not None
    await message.answer(texts.linked(actor.business, actor.role.value))
    await show_menu(message, actor)


# -- sign-up -------------------------------------------------------------------------------------
@router.callback_query(StartCb.filter(F.action == "signup"))
async def begin_signup(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if actor is not None:
        await show_menu(query.message, actor)
        return
    await state.set_state(Signup.name)
    await query.message.answer(texts.SIGNUP_NAME, reply_markup=with_cancel())


@router.message(StateFilter(Signup.name), HasText())
async def signup_name(message: Message, state: FSMContext) -> None:
    try:
        name = validate_business_name(message.text or "")
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.update_data(name=name)
    await state.set_state(Signup.email)
    await message.answer(texts.SIGNUP_EMAIL, reply_markup=with_cancel())


@router.message(StateFilter(Signup.email), HasText())
async def signup_email(message: Message, state: FSMContext) -> None:
    try:
        email = normalize_email(message.text or "")
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.update_data(email=email)
    await state.set_state(Signup.password)
    await message.answer(texts.SIGNUP_PASSWORD, reply_markup=with_cancel())


@router.message(StateFilter(Signup.password), HasText())
async def signup_password(message: Message, state: FSMContext, bot: Bot) -> None:
    password = message.text or ""
    await delete_quietly(message)
    try:
        validate_password(password)
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    # FSM data may live in Redis: only the argon2 hash is kept there, never the password itself.
    await state.update_data(password_hash=hash_password(password))
    await state.set_state(Signup.phone)
    await message.answer(texts.SECRET_DELETED + "\n\n" + texts.SIGNUP_PHONE, reply_markup=with_cancel())


@router.message(StateFilter(Signup.phone), HasText())
async def signup_phone(message: Message, state: FSMContext) -> None:
    assert message.from_user is not None
    try:
        phone = normalize_msisdn(message.text or "")
    except InvalidInput as exc:
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    data = await state.get_data()
    try:
        async with unit_of_work(scope=SIGNUP) as session:
            tenant, owner = await signup(
                session,
                business_name=data["name"],
                email=data["email"],
                password_hash=data["password_hash"],
                phone=phone,
            )
            await attach_owner(session, user=owner, telegram_user_id=message.from_user.id)
    except LipapushError as exc:
        await state.clear()
        await message.answer(texts.invalid(exc.message) + "\nSend /start to begin again.")
        return
    await state.clear()
    await message.answer(texts.created(tenant.name))
    await begin_onboarding(message, state)


async def delete_quietly(message: Message) -> None:
    """Secrets must leave the chat; if Telegram refuses (too old, already gone), nothing more can be done."""
    with contextlib.suppress(TelegramBadRequest):
        await message.delete()
