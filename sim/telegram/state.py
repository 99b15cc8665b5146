"""One simulated bot: its users and private chats, message history, update queue, webhook and files."""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from sim.telegram.files import FileStore
from sim.telegram.params import BotApiError, bad_request

# getUpdates' default when allowed_updates was never set or set to [] (Bot API docs).
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)


def now() -> int:
    return int(time.time())


@dataclass(slots=True)
class TgUser:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    def to_api(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value:
                user[key] = value
        return user


@dataclass(slots=True)
class StoredMessage:
    message_id: int
    date: int
    sender: dict[str, Any]
    outgoing: bool
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    parse_mode: str | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    document: dict[str, Any] | None = None
    photo: list[dict[str, Any]] | None = None
    contact: dict[str, Any] | None = None
    reply_to: StoredMessage | None = None
    edit_date: int | None = None
    deleted: bool = False
    edits: list[str] = field(default_factory=list)

    def to_api(self, chat: dict[str, Any], *, nested: bool = False) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": self.message_id,
            "date": self.date,
            "chat": chat,
            "from": self.sender,
        }
        if self.edit_date is not None:
            msg["edit_date"] = self.edit_date
        for key in ("text", "caption", "document", "photo", "contact"):
            value = getattr(self, key)
            if value is not None:
                msg[key] = value
        if self.entities:
            msg["entities"] = self.entities
        if self.caption_entities:
            msg["caption_entities"] = self.caption_entities
        # Telegram echoes only inline keyboards back; reply keyboards live on the client.
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            msg["reply_markup"] = self.reply_markup
        if self.reply_to is not None and not nested:
            msg["reply_to_message"] = self.reply_to.to_api(chat, nested=True)
        return msg

    def transcript(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "date": self.date,
            "sender": "bot" if self.outgoing else "user",
            "from": self.sender,
            "text": self.text,
            "entities": self.entities,
            "parse_mode": self.parse_mode,
            "caption": self.caption,
            "reply_markup": self.reply_markup,
            "document": self.document,
            "photo": self.photo,
            "contact": self.contact,
            "reply_to_message_id": self.reply_to.message_id if self.reply_to else None,
            "edit_date": self.edit_date,
            "deleted": self.deleted,
            "edits": list(self.edits),
        }

    def has_callback(self, data: str) -> bool:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return any(button.get("callback_data") == data for row in rows for button in row)


@dataclass(slots=True)
class Chat:
    """A private chat; its id is the user's id, and message ids count up across both sides of it."""

    user: TgUser
    started: bool = False
    blocked: bool = False
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    last_message_id: int = 0

    def to_api(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.user.id, "type": "private", "first_name": self.user.first_name}
        if self.user.last_name:
            chat["last_name"] = self.user.last_name
        if self.user.username:
            chat["username"] = self.user.username
        return chat

    def next_message_id(self) -> int:
        self.last_message_id += 1
        return self.last_message_id

    def store(self, message: StoredMessage) -> StoredMessage:
        self.messages[message.message_id] = message
        return message


@dataclass(slots=True)
class CallbackRecord:
    id: str
    user_id: int
    message_id: int
    data: str
    answered: bool = False
    text: str | None = None
    show_alert: bool = False
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "message_id": self.message_id,
            "data": self.data,
            "answered": self.answered,
            "text": self.text,
            "show_alert": self.show_alert,
            "url": self.url,
        }


@dataclass(slots=True)
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    last_error_date: int | None = None
    last_error_message: str | None = None


class BotState:
    def __init__(self, token: str) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.me: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Lipapush Sim",
            "username": f"sim{self.bot_id}_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.chats: dict[int, Chat] = {}
        self.files = FileStore(self.bot_id)
        self.updates: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.allowed_updates: list[str] | None = None
        self.webhook: Webhook | None = None
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.settings: dict[str, Any] = {}
        self.calls: list[dict[str, Any]] = []
        self.callbacks: dict[str, CallbackRecord] = {}
        self.worker: asyncio.Task[None] | None = None
        self._next_update_id = 1
        self._next_user_id = 5_000_000
        self._next_callback = 1
        self._poll_generation = 0
        self._changed = asyncio.Event()

    # --- waking long polls and the webhook worker ----------------------------------------------------

    def notify(self) -> None:
        # Swap the event so that every current waiter wakes and later waiters wait for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, seconds: float) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    # --- updates -------------------------------------------------------------------------------------

    def enqueue(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self.history.append(update)
        allowed = self.allowed_updates
        # Like Telegram, an update of a type the bot did not ask for is never stored at all.
        if kind in (set(allowed) if allowed else DEFAULT_UPDATE_TYPES):
            self.updates.append(update)
            self.notify()
        return update

    def confirm(self, offset: int | None) -> None:
        if offset is None or offset == 0:
            return
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        else:
            self.updates = self.updates[offset:]

    async def get_updates(
        self, offset: int | None, limit: int, wait: float, allowed: list[str] | None
    ) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise BotApiError(409, WEBHOOK_CONFLICT)
        self._poll_generation += 1
        generation = self._poll_generation
        # Ends any poll still waiting, the way Telegram ends the older of two competing pollers.
        self.notify()
        if allowed is not None:
            self.allowed_updates = allowed or None
        self.confirm(offset)
        deadline = time.monotonic() + wait
        while True:
            if generation != self._poll_generation:
                raise BotApiError(409, POLL_CONFLICT)
            if self.webhook is not None:
                raise BotApiError(409, WEBHOOK_CONFLICT)
            if self.updates:
                return self.updates[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self.wait_for_change(remaining)

    # --- users and chats -----------------------------------------------------------------------------

    def chat(self, chat_id: int) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def sendable_chat(self, chat_id: int) -> Chat:
        chat = self.chat(chat_id)
        if chat.blocked:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        if not chat.started:
            raise BotApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    def upsert_user(self, user: TgUser, *, started: bool) -> Chat:
        chat = self.chats.get(user.id)
        if chat is None:
            chat = self.chats[user.id] = Chat(user=user)
        else:
            chat.user = user
        chat.started = chat.started or started
        return chat

    def set_blocked(self, chat: Chat, blocked: bool) -> dict[str, Any] | None:
        """Flip the block flag; like Telegram, announce the change with a ``my_chat_member`` update."""
        if chat.blocked == blocked:
            return None
        chat.blocked = blocked
        bot_user = self.bot_user()
        member = {"status": "member", "user": bot_user}
        kicked = {"status": "kicked", "user": bot_user, "until_date": 0}
        return self.enqueue(
            "my_chat_member",
            {
                "chat": chat.to_api(),
                "from": chat.user.to_api(),
                "date": now(),
                "old_chat_member": member if blocked else kicked,
                "new_chat_member": kicked if blocked else member,
            },
        )

    def new_user_id(self) -> int:
        self._next_user_id += 1
        while self._next_user_id in self.chats:
            self._next_user_id += 1
        return self._next_user_id

    def bot_user(self) -> dict[str, Any]:
        return {k: self.me[k] for k in ("id", "is_bot", "first_name", "username")}

    def new_callback_id(self) -> str:
        self._next_callback += 1
        # Real ids are opaque decimal strings unique per bot.
        return str(self.bot_id * 1_000_003 + self._next_callback * 7919)

    def chat_instance(self, chat_id: int) -> str:
        return str(-(zlib.crc32(f"{self.bot_id}:{chat_id}".encode()) << 20 | abs(chat_id) % 1_048_576))

    async def close(self) -> None:
        self.webhook = None
        self.notify()
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
            self.worker = None
