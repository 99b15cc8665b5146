"""Exceptions become chat replies: a domain error's message, or a generic apology (never a trace)."""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from bots import texts
from core.errors import LipapushError

log = logging.getLogger(__name__)


async def domain_error(event: ErrorEvent, bot: Bot) -> None:
    assert isinstance(event.exception, LipapushError)
    update = event.update
    if update.callback_query is not None:
        await update.callback_query.answer(event.exception.message[:190], show_alert=True)
    elif update.message is not None:
        await update.message.answer(texts.invalid(event.exception.message))


async def unexpected(event: ErrorEvent, bot: Bot) -> None:
    log.error("bot update %s failed", event.update.update_id, exc_info=event.exception)
    update = event.update
    chat_id = (
        update.message.chat.id
        if update.message
        else update.callback_query.from_user.id
        if update.callback_query
        else None
    )
    if update.callback_query is not None:
        await update.callback_query.answer()
    if chat_id is not None:
        await bot.send_message(chat_id, texts.SOMETHING_WRONG)


def register_errors(dp: Dispatcher) -> None:
    dp.errors.register(domain_error, ExceptionTypeFilter(LipapushError))
    dp.errors.register(unexpected)
