"""What every dashboard tab needs: who may see it, where to answer, the way back to the menu."""

from __future__ import annotations

from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from bots import texts
from bots.keyboards import MenuCb
from bots.middlewares import Actor
from core.auth.models import Role
from core.errors import NotFound, PermissionDenied


def need(actor: Actor | None, *roles: Role) -> Actor:
    if actor is None:
        raise NotFound(texts.UNKNOWN_STRANGER)
    if roles and actor.role not in roles:
        raise PermissionDenied(f"This is for the {' or '.join(r.value for r in roles)} of {actor.business}.")
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
