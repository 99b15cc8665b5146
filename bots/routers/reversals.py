"""↩️ Reversing a received payment from the bot (owner): the payment's details offer it; the owner
says why, confirms on a summary screen, then types the code that comes to this chat and by email.
The same use cases as the API and the panel (core.reversals); the outcome is told here by the
notification that follows M-Pesa's answer."""

from __future__ import annotations

import contextlib
import uuid
from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from bots import texts
from bots.filters import HasText
from bots.keyboards import with_cancel
from bots.middlewares import Actor
from bots.tabs import need, target
from core.access.permissions import Permission
from core.errors import InvalidInput, LipapushError
from core.money import format_kes
from core.notify.texts import local_phone
from core.payments.models import PaymentStatus
from core.payments.schemas import PaymentOut
from core.payments.use_cases import get_payment
from core.reversals import use_cases
from core.reversals.service import REVERSIBLE_SOURCES

router = Router(name="reversals")


class RevCb(CallbackData, prefix="rv"):
    action: str  # start, send
    pid: str = ""


class Reverse(StatesGroup):
    reason = State()
    code = State()


def reverse_button(pid: uuid.UUID) -> InlineKeyboardButton:
    return InlineKeyboardButton(text="↩️ Reverse", callback_data=RevCb(action="start", pid=str(pid)).pack())


def detail_buttons(actor: Actor, p: PaymentOut) -> list[list[InlineKeyboardButton]]:
    """The "Reverse" button on a payment's details: the owner's, on money a customer paid."""
    offered = (
        actor.core.can(Permission.reversals_request)
        and p.status is PaymentStatus.success
        and bool(p.receipt)
        and p.source in REVERSIBLE_SOURCES
    )
    return [[reverse_button(p.id)]] if offered else []


@router.callback_query(RevCb.filter(F.action == "start"))
async def ask_reason(
    query: CallbackQuery, callback_data: RevCb, state: FSMContext, actor: Actor | None
) -> None:
    actor = need(actor, Permission.reversals_request)
    payment = await get_payment(actor.core, uuid.UUID(callback_data.pid))
    await query.answer()
    await state.set_state(Reverse.reason)
    await state.update_data(pid=str(payment.id))
    if (where := target(query)) is not None:
        await where.answer(
            f"↩️ Why reverse {format_kes(payment.amount)} from {local_phone(payment.phone)} "
            f"({escape(payment.receipt or '')})? Send a short reason: it is recorded.",
            reply_markup=with_cancel(),
        )


@router.message(Reverse.reason, HasText())
async def got_reason(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor, Permission.reversals_request)
    data = await state.get_data()
    payment = await get_payment(actor.core, uuid.UUID(data["pid"]))
    reason = " ".join((message.text or "").split())
    await state.update_data(reason=reason)
    send = InlineKeyboardButton(text="✅ Send me the code", callback_data=RevCb(action="send").pack())
    await message.answer(
        f"↩️ Reverse <b>{format_kes(payment.amount)}</b> to {local_phone(payment.phone)} "
        f"({escape(payment.receipt or '')})?\nReason: {escape(reason)}\n"
        "A code goes to this chat and your email; nothing moves until you type it here.",
        reply_markup=with_cancel([[send]]),
    )


@router.callback_query(RevCb.filter(F.action == "send"))
async def send_code(query: CallbackQuery, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor, Permission.reversals_request)
    await query.answer()
    data = await state.get_data()
    where = target(query)
    if "pid" not in data or "reason" not in data:
        await state.clear()
        if where is not None:
            await where.answer(
                "This reversal was already sent or cancelled. Open the payment to start again."
            )
        return
    try:
        started = await use_cases.start_reversal(actor.core, uuid.UUID(data["pid"]), reason=data["reason"])
    except InvalidInput as exc:  # the reason: ask it again
        await state.set_state(Reverse.reason)
        if where is not None:
            await where.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    await state.set_state(Reverse.code)
    await state.update_data(rid=str(started.reversal.id))
    if where is not None:
        sent = " and ".join(started.code_sent_to) or "the owner"
        await where.answer(f"🔐 A 6-digit code went to {sent}. Type it here to send the reversal.")


@router.message(Reverse.code, HasText())
async def got_code(message: Message, state: FSMContext, actor: Actor | None) -> None:
    actor = need(actor, Permission.reversals_request)
    data = await state.get_data()
    # The code is spent or wrong either way: it need not stay in the chat.
    with contextlib.suppress(TelegramBadRequest):
        await message.delete()
    try:
        await use_cases.confirm_reversal(actor.core, uuid.UUID(data["rid"]), code=message.text or "")
    except InvalidInput as exc:  # a wrong code: try again (five at most)
        await message.answer(texts.invalid(exc.message), reply_markup=with_cancel())
        return
    except LipapushError:  # expired, used up, already reversed: the flow is over, the error says why
        await state.clear()
        raise
    await state.clear()
    await message.answer("↩️ Sent to M-Pesa. I will tell you here when M-Pesa confirms the reversal.")
