"""What every dashboard tab needs: who may see it, where to answer, the way back to the menu."""

from __future__ import annotations

import asyncio

from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, Message

from bots import texts
from bots.keyboards import MenuCb
from bots.middlewares import Actor
from core.access.permissions import Permission
from core.errors import NotFound
from core.exports.use_cases import BuiltExport
from core.exports.xlsx import export_filename


def need(actor: Actor | None, *wanted: Permission) -> Actor:
    """A known user whom core allows `wanted`: checked before a flow asks its first question, so
    nobody types an amount only to be refused. The use case checks again when it runs."""
    if actor is None:
        raise NotFound(texts.UNKNOWN_STRANGER)
    for permission in wanted:
        actor.core.require(permission)
    return actor


def target(event: Message | CallbackQuery) -> Message | None:
    """The message to answer: the user's own, or the bot message whose button was pressed."""
    return (
        event
        if isinstance(event, Message)
        else (event.message if isinstance(event.message, Message) else None)
    )


_BACK = InlineKeyboardButton(text="⬅ Menu", callback_data=MenuCb(action="home_menu").pack())


def back_row() -> list[InlineKeyboardButton]:
    return [_BACK]  # a fresh row around one button built once: callers may add to the row


async def send_export(target: Message, built: BuiltExport, *, caption: str) -> None:
    """Send an export the use case built and audited to the chat as a document (the file is removed)."""
    try:
        data = await asyncio.to_thread(built.path.read_bytes)  # several MB for a big book: off the loop
    finally:
        await asyncio.to_thread(built.path.unlink, True)
    document = BufferedInputFile(data, filename=export_filename(built.name))
    await target.answer_document(document, caption=caption)
