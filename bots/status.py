"""A payment's live status message: sent once, edited when the payment becomes final."""

from __future__ import annotations

import contextlib
import uuid

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from core.db import Scope
from core.notify import texts
from core.payments.schemas import PaymentOut
from core.payments.service import payments
from core.runtime import unit_of_work


def markup(buttons: list[list[str]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d)] for t, d in buttons]
    )


async def post_status(message: Message, payment: PaymentOut, *, tenant_id: uuid.UUID) -> Message:
    """Send the status message and hand it to the payment (`tenant_id`'s, the chat's business). If the
    callback already came in, the message is brought up to date here; otherwise the payment's
    finalisation edits it (via the notification outbox)."""
    sent = await message.answer(
        texts.payment_status(payment), reply_markup=markup(texts.payment_buttons(payment))
    )
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        current = await payments.attach_status_message(
            session, payment_id=payment.id, chat_id=sent.chat.id, message_id=sent.message_id
        )
        final, text, buttons = (
            current.status.is_final,
            texts.payment_status(current),
            texts.payment_buttons(current),
        )
    if final and payment.status != current.status:
        with contextlib.suppress(TelegramBadRequest):
            await sent.edit_text(text, reply_markup=markup(buttons))
    return sent
