"""A typed helper for holding conversations with a bot through the simulator's control API.

    async with TelegramSimClient(sim_url, token) as tg:
        await tg.create_user("Amina")
        reply = await tg.ask("/start ref_abc")
        await tg.press_button("Approve")
        done = await tg.wait_for_bot_message(predicate=lambda m: "approved" in m.content)

Methods that take ``user_id`` or ``chat_id`` default to the most recently created user, which is what a
single-user conversation test wants.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

POLL_INTERVAL = 0.02


class SimControlError(RuntimeError):
    """The simulator refused a control request (unknown user, a button that is not shown, ...)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SimUser:
    id: int
    first_name: str
    username: str | None

    @property
    def chat_id(self) -> int:
        return self.id


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One message of a chat transcript as the simulator holds it now (after any edits)."""

    message_id: int
    sender: str
    text: str | None
    caption: str | None
    reply_markup: dict[str, Any] | None
    document: dict[str, Any] | None
    photo: list[dict[str, Any]] | None
    deleted: bool
    edits: list[str]
    edit_date: int | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimMessage:
        return cls(
            message_id=int(data["message_id"]),
            sender=str(data["sender"]),
            text=data.get("text"),
            caption=data.get("caption"),
            reply_markup=data.get("reply_markup"),
            document=data.get("document"),
            photo=data.get("photo"),
            deleted=bool(data.get("deleted")),
            edits=list(data.get("edits") or []),
            edit_date=data.get("edit_date"),
            raw=data,
        )

    @property
    def is_bot(self) -> bool:
        return self.sender == "bot"

    @property
    def content(self) -> str:
        """Text or caption, whichever the message has; handy in predicates."""
        return self.text or self.caption or ""

    @property
    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]

    @property
    def button_texts(self) -> list[str]:
        return [str(button.get("text")) for button in self.buttons]

    def button(self, text: str) -> dict[str, Any] | None:
        return next((b for b in self.buttons if b.get("text") == text), None)

    def summary(self) -> str:
        flags = " (deleted)" if self.deleted else ""
        line = f"#{self.message_id} {self.sender}{flags}: {self.content!r}"
        if self.document:
            line += f" [document {self.document.get('file_name')}]"
        if self.photo:
            line += " [photo]"
        if self.buttons:
            line += " [buttons: " + " | ".join(self.button_texts) + "]"
        return line


Predicate = Callable[[SimMessage], bool]


class TelegramSimClient:
    def __init__(
        self, base_url: str, token: str, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.user: SimUser | None = None
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def __aenter__(self) -> TelegramSimClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # --- plumbing ------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self._http.request(method, f"{self.base_url}/_sim/bot{self.token}{path}", **kwargs)
        if response.is_error:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise SimControlError(response.status_code, detail)
        return response

    def _user_id(self, user_id: int | None) -> int:
        if user_id is not None:
            return user_id
        if self.user is None:
            raise ValueError("no user yet: call create_user() first or pass user_id")
        return self.user.id

    # --- playing the user ----------------------------------------------------------------------------

    async def create_user(
        self,
        first_name: str = "Test",
        *,
        user_id: int | None = None,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = "en",
        started: bool = False,
    ) -> SimUser:
        """Create (or update) a user with a private chat and make it the default user of this client.

        ``started`` pretends the user already wrote to the bot; otherwise the bot cannot message them until
        they do, as on Telegram."""
        body = {
            "id": user_id,
            "first_name": first_name,
            "username": username,
            "last_name": last_name,
            "language_code": language_code,
            "started": started,
        }
        data = (await self._request("POST", "/users", json=body)).json()
        user = data["user"]
        self.user = SimUser(id=int(user["id"]), first_name=user["first_name"], username=user.get("username"))
        return self.user

    async def send_text(
        self, text: str, *, user_id: int | None = None, reply_to: int | None = None
    ) -> dict[str, Any]:
        """Deliver a text message from the user to the bot; returns the Update the bot will receive."""
        body = {"user_id": self._user_id(user_id), "text": text, "reply_to_message_id": reply_to}
        result: dict[str, Any] = (await self._request("POST", "/message", json=body)).json()
        return result

    async def send_document(
        self,
        data: bytes,
        file_name: str,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """Deliver a file from the user to the bot (📎 → File); returns the Update the bot will receive.
        The bot reads the bytes back through getFile and the file URL, as from Telegram."""
        body = {
            "user_id": self._user_id(user_id),
            "document": {
                "file_name": file_name,
                "data_base64": base64.b64encode(data).decode(),
                "mime_type": mime_type,
            },
            "caption": caption,
        }
        result: dict[str, Any] = (await self._request("POST", "/message", json=body)).json()
        return result

    async def share_contact(self, phone_number: str, *, user_id: int | None = None) -> dict[str, Any]:
        body = {"user_id": self._user_id(user_id), "contact": {"phone_number": phone_number}}
        result: dict[str, Any] = (await self._request("POST", "/message", json=body)).json()
        return result

    async def press(self, message_id: int, data: str, *, user_id: int | None = None) -> dict[str, Any]:
        """Press the button with ``data`` on bot message ``message_id``; it must really be shown there."""
        body = {"user_id": self._user_id(user_id), "message_id": message_id, "data": data}
        result: dict[str, Any] = (await self._request("POST", "/callback", json=body)).json()
        return result

    async def press_button(self, text: str, *, user_id: int | None = None) -> dict[str, Any]:
        """Press the button labelled ``text`` on the newest bot message showing one."""
        chat_id = self._user_id(user_id)
        for message in reversed(await self.transcript(chat_id)):
            button = message.button(text) if message.is_bot and not message.deleted else None
            if button is None:
                continue
            if "callback_data" not in button:
                raise ValueError(f"button {text!r} on message {message.message_id} is not a callback button")
            return await self.press(message.message_id, str(button["callback_data"]), user_id=chat_id)
        shown = [
            m.summary() for m in await self.transcript(chat_id) if m.is_bot and m.buttons and not m.deleted
        ]
        raise LookupError(f"no bot message in chat {chat_id} shows a button {text!r}; buttons shown: {shown}")

    async def block(self, user_id: int | None = None, blocked: bool = True) -> None:
        await self._request("POST", "/block", json={"user_id": self._user_id(user_id), "blocked": blocked})

    # --- reading back --------------------------------------------------------------------------------

    async def transcript(self, chat_id: int | None = None) -> list[SimMessage]:
        data = (await self._request("GET", f"/chats/{self._user_id(chat_id)}")).json()
        return [SimMessage.from_json(item) for item in data["messages"]]

    async def bot_messages(self, chat_id: int | None = None) -> list[SimMessage]:
        """The bot's messages still visible in the chat (deleted ones left out)."""
        return [m for m in await self.transcript(chat_id) if m.is_bot and not m.deleted]

    async def last_bot_message(self, chat_id: int | None = None) -> SimMessage | None:
        visible = await self.bot_messages(chat_id)
        return visible[-1] if visible else None

    async def wait_for_bot_message(
        self,
        chat_id: int | None = None,
        predicate: Predicate | None = None,
        # The deadline bounds a loop of short HTTP polls, and the error names it; a caller-side
        # asyncio.timeout would cancel mid-request and lose the transcript in the message.
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        after: int | None = None,
    ) -> SimMessage:
        """The newest visible bot message matching ``predicate`` (and newer than message ``after``).

        Polls until ``timeout`` seconds pass, then raises TimeoutError with the transcript, so a failing
        conversation test says what the bot did say."""
        deadline = time.monotonic() + timeout
        while True:
            messages = await self.transcript(chat_id)
            for message in reversed(messages):
                if (
                    not message.is_bot
                    or message.deleted
                    or (after is not None and message.message_id <= after)
                ):
                    continue
                if predicate is None or predicate(message):
                    return message
            if time.monotonic() >= deadline:
                shown = "\n  ".join(m.summary() for m in messages) or "(empty)"
                raise TimeoutError(
                    f"no matching bot message in chat {self._user_id(chat_id)} within {timeout}s; "
                    f"transcript:\n  {shown}"
                )
            await asyncio.sleep(POLL_INTERVAL)

    async def ask(
        self,
        text: str,
        predicate: Predicate | None = None,
        *,
        user_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SimMessage:
        """Send ``text`` and wait for a bot message (matching ``predicate``) that came after it."""
        update = await self.send_text(text, user_id=user_id)
        sent_id = int(update["message"]["message_id"])
        return await self.wait_for_bot_message(user_id, predicate, timeout, after=sent_id)

    async def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Bot API calls received for this bot: ``{method, params, ok, error, at}``, oldest first."""
        params = {"method": method} if method else None
        result: list[dict[str, Any]] = (await self._request("GET", "/calls", params=params)).json()
        return result

    async def callback_answer(self, callback_query_id: str) -> dict[str, Any]:
        """How the bot answered a press: ``{answered, text, show_alert, url, ...}``."""
        result: dict[str, Any] = (await self._request("GET", f"/callbacks/{callback_query_id}")).json()
        return result

    async def file_bytes(self, file_id: str) -> bytes:
        return (await self._request("GET", f"/files/{file_id}")).content

    async def reset(self) -> None:
        """Forget this bot's users, chats, updates, webhook and files."""
        await self._request("POST", "/reset")
        self.user = None
