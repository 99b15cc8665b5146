"""What every dashboard tab needs: who may see it, where to answer, the way back to the menu."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, Message

from bots import texts
from bots.keyboards import MenuCb
from bots.middlewares import Actor
from core.access.permissions import Permission
from core.audit.service import record
from core.auth.models import Role
from core.errors import NotFound, PermissionDenied
from core.exports.xlsx import export_filename
from core.runtime import unit_of_work


def need(actor: Actor | None, *wanted: Permission | Role) -> Actor:
    """A known user whom core allows `wanted`: checked before a flow asks its first question, so
    nobody types an amount only to be refused. The use case checks again when it runs."""
    if actor is None:
        raise NotFound(texts.UNKNOWN_STRANGER)
    roles = [w for w in wanted if isinstance(w, Role)]
    if roles and actor.role not in roles:  # the dashboard's own tabs (bots/routers/home.py)
        raise PermissionDenied(f"This is for the {' or '.join(r.value for r in roles)} of {actor.business}.")
    for permission in wanted:
        if isinstance(permission, Permission):
            actor.core.require(permission)
    return actor


def target(event: Message | CallbackQuery) -> Message | None:
    """The message to answer: the user's own, or the bot message whose button was pressed."""
    return (
        event
        if isinstance(event, Message)
        else (event.message if isinstance(event.message, Message) else None)
    )


def back_row() -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text="⬅ Menu", callback_data=MenuCb(action="home_menu").pack())]


async def send_export(
    target: Message, path: Path, *, rows: int, name: str, caption: str, action: str, actor: Actor
) -> None:
    """Send a built .xlsx to the chat as a document (the file is removed) and audit the export."""
    try:
        data = await asyncio.to_thread(path.read_bytes)  # several MB for a big book: off the loop
    finally:
        await asyncio.to_thread(path.unlink, True)
    async with unit_of_work() as session:
        await record(
            session,
            action=action,
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            detail={"rows": rows, "via": "telegram"},
        )
    await target.answer_document(BufferedInputFile(data, filename=export_filename(name)), caption=caption)
