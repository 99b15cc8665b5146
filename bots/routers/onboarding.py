"""The channel wizard: environment, Till or Paybill, short codes, Daraja keys (deleted from the chat as
soon as read), then the KES 1 test push with a live status message."""

from __future__ import annotations

import contextlib
import re

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from pydantic import SecretStr, ValidationError

from bots import texts
from bots.filters import HasText
from bots.keyboards import OnbCb, choices, with_cancel
from bots.middlewares import Actor
from bots.states import Onboarding
from bots.status import post_status
from bots.tabs import need
from core.access.permissions import Permission
from core.errors import LipapushError
from core.payments.schemas import PaymentOut
from core.runtime import runtime
from core.tenants import use_cases as business_settings
from core.tenants.models import ChannelKind, Environment
from core.tenants.schemas import ChannelIn

router = Router(name="onboarding")
SHORT_CODE = re.compile(r"^\d{5,7}$")
SECRET_FIELDS = ("key", "secret", "passkey")


async def begin_onboarding(message: Message, state: FSMContext) -> None:
    await state.clear()
    await state.set_state(Onboarding.environment)
    await message.answer(
        texts.ONB_ENV,
        reply_markup=choices(
            OnbCb,
            "env",
            [
                ("🧪 Simulator (test money)", "simulator"),
                ("Sandbox", "sandbox"),
                ("Production", "production"),
            ],
        ),
    )


def _owner(actor: Actor | None) -> Actor:
    """Checked at each step, before the next question; saving checks again."""
    return need(actor, Permission.channel_manage)


@router.callback_query(StateFilter(Onboarding.environment), OnbCb.filter(F.action == "env"))
async def chose_environment(
    query: CallbackQuery, callback_data: OnbCb, state: FSMContext, actor: Actor | None
) -> None:
    _owner(actor)
    await query.answer()
    env = Environment(callback_data.value)
    await state.update_data(environment=env.value)
    await state.set_state(Onboarding.kind)
    if isinstance(query.message, Message):
        await query.message.edit_text(
            texts.ONB_KIND,
            reply_markup=choices(OnbCb, "kind", [("Paybill", "paybill"), ("Till (Buy Goods)", "till")]),
        )


@router.callback_query(StateFilter(Onboarding.kind), OnbCb.filter(F.action == "kind"))
async def chose_kind(
    query: CallbackQuery, callback_data: OnbCb, state: FSMContext, actor: Actor | None
) -> None:
    actor = _owner(actor)
    await query.answer()
    kind = ChannelKind(callback_data.value)
    await state.update_data(kind=kind.value)
    data = await state.get_data()
    if not isinstance(query.message, Message):
        return
    if data["environment"] == Environment.simulator.value:
        await query.message.edit_text("🧪 Simulator channel: no Daraja keys needed.")
        await save_and_test(query.message, state, actor)
        return
    await state.set_state(Onboarding.short_code)
    prompt = texts.ONB_SHORT_CODE_TILL if kind is ChannelKind.till else texts.ONB_SHORT_CODE_PAYBILL
    await query.message.edit_text(prompt, reply_markup=with_cancel())


@router.message(StateFilter(Onboarding.short_code), HasText())
async def got_short_code(message: Message, state: FSMContext) -> None:
    value = (message.text or "").strip()
    if not SHORT_CODE.match(value):
        await message.answer(texts.invalid("A short code is 5 to 7 digits."), reply_markup=with_cancel())
        return
    await state.update_data(short_code=value)
    data = await state.get_data()
    if data["kind"] == ChannelKind.till.value:
        await state.set_state(Onboarding.till)
        await message.answer(texts.ONB_TILL, reply_markup=with_cancel())
    else:
        await state.set_state(Onboarding.key)
        await message.answer(texts.ONB_KEY, reply_markup=with_cancel())


@router.message(StateFilter(Onboarding.till), HasText())
async def got_till(message: Message, state: FSMContext) -> None:
    value = (message.text or "").strip()
    if not SHORT_CODE.match(value):
        await message.answer(texts.invalid("A till number is 5 to 7 digits."), reply_markup=with_cancel())
        return
    await state.update_data(till=value)
    await state.set_state(Onboarding.key)
    await message.answer(texts.ONB_KEY, reply_markup=with_cancel())


async def _secret_step(message: Message, state: FSMContext, field: str) -> str | None:
    """Read a secret, delete it from the chat at once, keep it only encrypted in the FSM data."""
    value = (message.text or "").strip()
    with contextlib.suppress(TelegramBadRequest):
        await message.delete()
    if not 1 <= len(value) <= 200:
        await message.answer(texts.invalid("That does not look right: paste the value again."))
        return None
    await state.update_data({field: runtime().secrets.encrypt(value)})
    return value


@router.message(StateFilter(Onboarding.key), HasText())
async def got_key(message: Message, state: FSMContext) -> None:
    if await _secret_step(message, state, "key") is not None:
        await state.set_state(Onboarding.secret)
        await message.answer(texts.SECRET_DELETED + "\n\n" + texts.ONB_SECRET, reply_markup=with_cancel())


@router.message(StateFilter(Onboarding.secret), HasText())
async def got_secret(message: Message, state: FSMContext) -> None:
    if await _secret_step(message, state, "secret") is not None:
        await state.set_state(Onboarding.passkey)
        await message.answer(texts.SECRET_DELETED + "\n\n" + texts.ONB_PASSKEY, reply_markup=with_cancel())


@router.message(StateFilter(Onboarding.passkey), HasText())
async def got_passkey(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = _owner(actor)
    if await _secret_step(message, state, "passkey") is not None:
        await message.answer(texts.SECRET_DELETED)
        await save_and_test(message, state, actor)


async def save_and_test(message: Message, state: FSMContext, actor: Actor) -> None:
    rt = runtime()
    data = await state.get_data()
    await state.clear()

    def secret(name: str) -> SecretStr | None:
        return SecretStr(rt.secrets.decrypt(data[name])) if data.get(name) else None

    try:
        channel_in = ChannelIn(
            environment=Environment(data["environment"]),
            kind=ChannelKind(data["kind"]),
            business_short_code=data.get("short_code"),
            till_number=data.get("till"),
            consumer_key=secret("key"),
            consumer_secret=secret("secret"),
            passkey=secret("passkey"),
        )
    except ValidationError as exc:
        await message.answer(
            texts.invalid("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
        )
        return
    saved = await business_settings.save_channel(actor.core, channel_in)
    await _tested(message, actor, saved.verification, saved.error)


async def _tested(message: Message, actor: Actor, payment: PaymentOut | None, error: str | None) -> None:
    """The live status of the KES 1 test, or why it could not be sent and a button to try again."""
    if payment is None:
        await message.answer(
            texts.onb_failed(error or "The test payment could not be sent."),
            reply_markup=choices(OnbCb, "retry", [("🔁 Retry the test", "")]),
        )
        return
    await post_status(message, payment, tenant_id=actor.tenant_id)


async def test_channel(message: Message, actor: Actor) -> None:
    try:
        payment = await business_settings.verify_channel(actor.core)
    except LipapushError as exc:
        await _tested(message, actor, None, exc.message)
        return
    await _tested(message, actor, payment, None)


@router.callback_query(OnbCb.filter(F.action == "retry"))
async def retry_test(query: CallbackQuery, actor: Actor | None) -> None:
    actor = _owner(actor)
    await query.answer("Sending a new test payment…")
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_reply_markup(reply_markup=None)
        await test_channel(query.message, actor)
