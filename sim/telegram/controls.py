"""The test-control side (``/_sim/...``): playing the users, and reading back what the bot did.

Nothing here is Bot API. Injected messages and button presses go through the same update queue as real ones,
and a press is only accepted for a button the bot really showed, so a test cannot fake its way past the UI.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from sim.telegram.files import MAX_UPLOAD, guess_mime
from sim.telegram.formatting import command_entities
from sim.telegram.state import BotState, CallbackRecord, Chat, StoredMessage, TgUser, now

BotLookup = Callable[[str], BotState]


class UserIn(BaseModel):
    id: int | None = None
    first_name: str = "Test"
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"
    # A user who never wrote to the bot cannot be messaged by it (403), as on Telegram.
    started: bool = False


class DocumentIn(BaseModel):
    """A file the user attaches (📎 → File): the bot gets a Document and fetches it with getFile."""

    file_name: str
    data_base64: str
    mime_type: str | None = None


class MessageIn(BaseModel):
    user_id: int
    text: str | None = None
    reply_to_message_id: int | None = None
    contact: dict[str, Any] | None = Field(default=None, description="shared contact, e.g. {phone_number}")
    document: DocumentIn | None = None
    caption: str | None = Field(default=None, description="a document's caption")


class CallbackIn(BaseModel):
    user_id: int
    message_id: int
    data: str


class BlockIn(BaseModel):
    user_id: int
    blocked: bool = True


def _chat(bot: BotState, user_id: int) -> Chat:
    chat = bot.chats.get(user_id)
    if chat is None:
        raise HTTPException(404, f"no user {user_id}; create it with POST /_sim/bot<token>/users first")
    return chat


def create_user(bot: BotState, body: UserIn) -> dict[str, Any]:
    user = TgUser(
        id=body.id if body.id is not None else bot.new_user_id(),
        first_name=body.first_name,
        last_name=body.last_name,
        username=body.username,
        language_code=body.language_code,
    )
    chat = bot.upsert_user(user, started=body.started)
    return {"user": user.to_api(), "chat_id": user.id, "started": chat.started, "blocked": chat.blocked}


def inject_message(bot: BotState, body: MessageIn) -> dict[str, Any]:
    chat = _chat(bot, body.user_id)
    if not body.text and body.contact is None and body.document is None:
        raise HTTPException(400, "a message needs text, a contact or a document")
    if body.document is not None and (body.text or body.contact is not None):
        raise HTTPException(400, "a document goes alone, with an optional caption (as on Telegram)")
    if body.caption is not None and body.document is None:
        raise HTTPException(400, "only a document has a caption")
    reply_to = None
    if body.reply_to_message_id is not None:
        reply_to = chat.messages.get(body.reply_to_message_id)
        if reply_to is None or reply_to.deleted:
            raise HTTPException(
                400, f"no message {body.reply_to_message_id} to reply to in chat {chat.user.id}"
            )
    # Writing to a bot you blocked means unblocking it first (Telegram's "Restart" button).
    bot.set_blocked(chat, False)
    chat.started = True
    contact = None
    if body.contact is not None:
        contact = {"first_name": chat.user.first_name, "user_id": chat.user.id, **body.contact}
        if "phone_number" not in contact:
            raise HTTPException(400, "a contact needs phone_number")
    document = _document(bot, body.document) if body.document is not None else None
    message = chat.store(
        StoredMessage(
            message_id=chat.next_message_id(),
            date=now(),
            sender=chat.user.to_api(),
            outgoing=False,
            text=body.text or None,
            entities=command_entities(body.text or ""),
            caption=body.caption or None,
            caption_entities=command_entities(body.caption or ""),
            document=document,
            contact=contact,
            reply_to=reply_to,
        )
    )
    return bot.enqueue("message", message.to_api(chat.to_api()))


def _document(bot: BotState, doc: DocumentIn) -> dict[str, Any]:
    """Store the user's file as Telegram does: the update carries only its Document (id, name, type,
    size); the bytes are fetched with getFile and the file URL, like any other file."""
    try:
        data = base64.b64decode(doc.data_base64, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "data_base64 is not base64") from None
    if not data:
        raise HTTPException(400, "Telegram does not send an empty file")
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, "the file is over the 50 MB a bot can be sent")
    stored = bot.files.add(
        "document", data, file_name=doc.file_name, mime_type=guess_mime(doc.file_name, doc.mime_type)
    )
    return stored.as_document()


def press(bot: BotState, body: CallbackIn) -> dict[str, Any]:
    chat = _chat(bot, body.user_id)
    if chat.blocked:
        raise HTTPException(400, f"user {body.user_id} has blocked the bot; unblock before pressing buttons")
    message = chat.messages.get(body.message_id)
    if message is None or message.deleted or not message.outgoing:
        raise HTTPException(
            400, f"no bot message {body.message_id} in chat {chat.user.id} to press a button on"
        )
    if not message.has_callback(body.data):
        raise HTTPException(
            400, f"message {body.message_id} shows no button with callback_data {body.data!r}"
        )
    record = CallbackRecord(
        id=bot.new_callback_id(), user_id=chat.user.id, message_id=message.message_id, data=body.data
    )
    bot.callbacks[record.id] = record
    payload = {
        "id": record.id,
        "from": chat.user.to_api(),
        "message": message.to_api(chat.to_api()),
        "chat_instance": bot.chat_instance(chat.user.id),
        "data": body.data,
    }
    return bot.enqueue("callback_query", payload)


def transcript(bot: BotState, chat_id: int) -> dict[str, Any]:
    chat = _chat(bot, chat_id)
    return {
        "chat": chat.to_api(),
        "started": chat.started,
        "blocked": chat.blocked,
        "messages": [message.transcript() for message in chat.messages.values()],
    }


def control_router(lookup: BotLookup, reset: Callable[[str | None], Awaitable[None]]) -> APIRouter:
    router = APIRouter(prefix="/_sim")

    @router.post("/reset")
    async def reset_everything() -> dict[str, bool]:
        await reset(None)
        return {"reset": True}

    @router.post("/bot{token}/users")
    async def users(token: str, body: UserIn) -> dict[str, Any]:
        return create_user(lookup(token), body)

    @router.post("/bot{token}/message")
    async def message(token: str, body: MessageIn) -> dict[str, Any]:
        return inject_message(lookup(token), body)

    @router.post("/bot{token}/callback")
    async def callback(token: str, body: CallbackIn) -> dict[str, Any]:
        return press(lookup(token), body)

    @router.post("/bot{token}/block")
    async def block(token: str, body: BlockIn) -> dict[str, Any]:
        bot = lookup(token)
        update = bot.set_blocked(_chat(bot, body.user_id), body.blocked)
        return {"user_id": body.user_id, "blocked": body.blocked, "update": update}

    @router.get("/bot{token}/chats/{chat_id}")
    async def chat(token: str, chat_id: int) -> dict[str, Any]:
        return transcript(lookup(token), chat_id)

    @router.get("/bot{token}/calls")
    async def calls(token: str, method: str | None = None) -> list[dict[str, Any]]:
        log = lookup(token).calls
        return [c for c in log if c["method"].lower() == method.lower()] if method else log

    @router.get("/bot{token}/updates")
    async def updates(token: str) -> list[dict[str, Any]]:
        return lookup(token).history

    @router.get("/bot{token}/callbacks/{callback_id}")
    async def callback_answer(token: str, callback_id: str) -> dict[str, Any]:
        record = lookup(token).callbacks.get(callback_id)
        if record is None:
            raise HTTPException(404, f"no callback query {callback_id}")
        return record.to_json()

    @router.get("/bot{token}/files/{file_id}")
    async def file_bytes(token: str, file_id: str) -> Response:
        stored = lookup(token).files.by_id.get(file_id)
        if stored is None:
            raise HTTPException(404, f"no file {file_id}")
        return Response(stored.data, media_type=stored.mime_type or "application/octet-stream")

    @router.post("/bot{token}/reset")
    async def reset_bot(token: str) -> dict[str, bool]:
        lookup(token)
        await reset(token)
        return {"reset": True}

    return router
