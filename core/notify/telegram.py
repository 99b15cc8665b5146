"""Sending outbox messages to Telegram over the Bot API (TELEGRAM_API_BASE, the real one or sim/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from core.notify.models import Notification

# Payment status messages are rendered as HTML (escaped, core.notify.texts); every other outbox body
# is plain text shared with SMS, so a business called "A & B <Shop>" cannot break its own alerts.
HTML_KINDS = frozenset({"payment.status", "payment.result", "payout_batch.progress"})


class TelegramUndeliverable(Exception):
    """The chat blocked the bot or no longer exists: retrying cannot help."""


class TelegramRetryLater(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class TelegramSender:
    http: httpx.AsyncClient
    base_url: str
    token: str

    async def _call(self, method: str, params: dict[str, Any], **request: Any) -> dict[str, Any]:
        """One Bot API call. Returns the body (ok, or a refusal worth looking at); raises
        TelegramRetryLater when trying again may help and TelegramUndeliverable when it cannot."""
        url = f"{self.base_url.rstrip('/')}/bot{self.token}/{method}"
        try:
            r = await (self.http.post(url, **request) if request else self.http.post(url, json=params))
        except httpx.HTTPError as exc:
            raise TelegramRetryLater(f"Telegram unreachable: {type(exc).__name__}") from None
        try:
            body: dict[str, Any] = r.json()
        except ValueError:
            raise TelegramRetryLater(f"Telegram answered HTTP {r.status_code} without JSON") from None
        if body.get("ok"):
            return body
        code, desc = int(body.get("error_code", r.status_code)), str(body.get("description", ""))
        if code == 429:
            raise TelegramRetryLater(desc, (body.get("parameters") or {}).get("retry_after"))
        if code == 403 or "chat not found" in desc or "user is deactivated" in desc:
            raise TelegramUndeliverable(desc)
        if code >= 500:
            raise TelegramRetryLater(desc)
        return body

    async def send(self, n: Notification) -> None:
        params: dict[str, Any] = {"chat_id": int(n.recipient), "text": n.body}
        if n.kind in HTML_KINDS:
            params["parse_mode"] = "HTML"
        if n.buttons:
            params["reply_markup"] = {
                "inline_keyboard": [[{"text": t, "callback_data": d}] for t, d in n.buttons]
            }
        if n.edit_message_id is not None:
            body = await self._call("editMessageText", {**params, "message_id": n.edit_message_id})
            if body.get("ok") or "message is not modified" in str(body.get("description", "")):
                return
            # the status message is gone (deleted by the user): say it in a new message instead
        body = await self._call("sendMessage", params)
        if not body.get("ok"):
            raise TelegramUndeliverable(str(body.get("description", "rejected by Telegram")))

    async def send_document(
        self,
        *,
        chat_id: int,
        data: bytes,
        filename: str,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
    ) -> int:
        """Upload a file to the chat (multipart `sendDocument`) and return the new message's id.

        Errors as for `send`: TelegramRetryLater when trying again may help (network, 429, 5xx),
        TelegramUndeliverable when it cannot (blocked bot, deleted chat, file refused)."""
        form = {"chat_id": str(chat_id)}
        if caption:
            form |= {"caption": caption, "parse_mode": "HTML"}
        body = await self._call(
            "sendDocument",
            form,
            data=form,
            files={"document": (filename, data, mime_type)},
            # an upload of several megabytes may take longer than the client's default allows
            timeout=httpx.Timeout(120.0, connect=10.0),
        )
        if not body.get("ok"):
            raise TelegramUndeliverable(str(body.get("description", "")) or "rejected by Telegram")
        return int(body["result"]["message_id"])
