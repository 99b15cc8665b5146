"""The Bot API method table, and the bot-level methods: identity, commands, webhook and getUpdates."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sim.telegram import messages
from sim.telegram.params import BotApiError, Params, bad_request
from sim.telegram.state import BotState, Webhook
from sim.telegram.webhook import deliver_forever

Handler = Callable[[BotState, Params], Awaitable[Any]]

_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


async def get_me(bot: BotState, p: Params) -> Any:
    return bot.me


async def log_out(bot: BotState, p: Params) -> Any:
    return True


def _commands_key(p: Params) -> str:
    scope = p.get_json("scope") or {"type": "default"}
    if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True) + "|" + (p.get_str("language_code") or "")


async def set_my_commands(bot: BotState, p: Params) -> Any:
    commands = p.get_json("commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    if len(commands) > 100:
        raise bad_request("too many commands")
    cleaned: list[dict[str, Any]] = []
    for item in commands:
        if not isinstance(item, dict) or not _COMMAND.fullmatch(str(item.get("command", "")).lstrip("/")):
            raise bad_request("BOT_COMMAND_INVALID")
        description = item.get("description")
        if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        cleaned.append({"command": str(item["command"]).lstrip("/"), "description": description})
    key = _commands_key(p)
    if cleaned:
        bot.commands[key] = cleaned
    else:
        bot.commands.pop(key, None)
    return True


async def get_my_commands(bot: BotState, p: Params) -> Any:
    return bot.commands.get(_commands_key(p), [])


async def delete_my_commands(bot: BotState, p: Params) -> Any:
    bot.commands.pop(_commands_key(p), None)
    return True


async def _remove_webhook(bot: BotState, drop_pending: bool) -> None:
    bot.webhook = None
    if drop_pending:
        bot.updates.clear()
    # Wakes the delivery worker so it sees the webhook is gone and stops.
    bot.notify()


async def set_webhook(bot: BotState, p: Params) -> Any:
    url = p.get_str("url") or ""
    if not url:
        await _remove_webhook(bot, p.get_bool("drop_pending_updates"))
        return True
    parts = urlsplit(url)
    # Telegram insists on HTTPS on ports 443/80/88/8443; a local stand-in has to accept plain local URLs.
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.get_str("secret_token")
    if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    max_connections = p.get_int("max_connections", 40) or 40
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    allowed = p.get_json("allowed_updates")
    if allowed is not None:
        if not isinstance(allowed, list):
            raise bad_request("can't parse allowed_updates JSON object")
        bot.allowed_updates = [str(kind) for kind in allowed] or None
    if p.get_bool("drop_pending_updates"):
        bot.updates.clear()
    bot.webhook = Webhook(
        url=url, secret_token=secret, max_connections=max_connections, ip_address=p.get_str("ip_address")
    )
    if bot.worker is None or bot.worker.done():
        bot.worker = asyncio.create_task(deliver_forever(bot, call_method))
    bot.notify()
    return True


async def delete_webhook(bot: BotState, p: Params) -> Any:
    await _remove_webhook(bot, p.get_bool("drop_pending_updates"))
    return True


async def get_webhook_info(bot: BotState, p: Params) -> Any:
    info: dict[str, Any] = {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates),
    }
    hook = bot.webhook
    if hook is None:
        return info
    info.update(url=hook.url, max_connections=hook.max_connections)
    if hook.ip_address:
        info["ip_address"] = hook.ip_address
    if bot.allowed_updates:
        info["allowed_updates"] = bot.allowed_updates
    if hook.last_error_date is not None:
        info["last_error_date"] = hook.last_error_date
        info["last_error_message"] = hook.last_error_message
    return info


async def get_updates(bot: BotState, p: Params) -> Any:
    limit = min(max(p.get_int("limit", 100) or 100, 1), 100)
    timeout = max(p.get_int("timeout", 0) or 0, 0)
    allowed = p.get_json("allowed_updates")
    if allowed is not None and not isinstance(allowed, list):
        raise bad_request("can't parse allowed_updates JSON object")
    kinds = [str(kind) for kind in allowed] if allowed is not None else None
    return await bot.get_updates(p.get_int("offset"), limit, float(timeout), kinds)


def _setting(name: str, default: Any) -> tuple[Handler, Handler]:
    """A pair of set/get methods for a per-bot profile setting nobody asserts on beyond the call log."""

    async def setter(bot: BotState, p: Params) -> Any:
        bot.settings[name] = p.get_json(name) if name == "menu_button" else (p.get_str(name) or "")
        return True

    async def getter(bot: BotState, p: Params) -> Any:
        value = bot.settings.get(name) or default
        return value if name == "menu_button" else {name: value}

    return setter, getter


_set_description, _get_description = _setting("description", "")
_set_short, _get_short = _setting("short_description", "")
_set_menu, _get_menu = _setting("menu_button", {"type": "commands"})

_TABLE: dict[str, Handler] = {
    "getMe": get_me,
    "logOut": log_out,
    "close": log_out,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "setMyDescription": _set_description,
    "getMyDescription": _get_description,
    "setMyShortDescription": _set_short,
    "getMyShortDescription": _get_short,
    "setChatMenuButton": _set_menu,
    "getChatMenuButton": _get_menu,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "getUpdates": get_updates,
    "sendMessage": messages.send_message,
    "editMessageText": messages.edit_message_text,
    "editMessageReplyMarkup": messages.edit_message_reply_markup,
    "deleteMessage": messages.delete_message,
    "answerCallbackQuery": messages.answer_callback_query,
    "sendDocument": messages.send_document,
    "sendPhoto": messages.send_photo,
    "getFile": messages.get_file,
    "sendChatAction": messages.send_chat_action,
}
# Telegram matches method names case-insensitively; the log keeps the documented spelling.
METHODS: dict[str, tuple[str, Handler]] = {name.lower(): (name, handler) for name, handler in _TABLE.items()}


async def call_method(bot: BotState, method: str, params: Params) -> Any:
    entry = METHODS.get(method.lower())
    record: dict[str, Any] = {
        "method": entry[0] if entry else method,
        "params": params.recorded(),
        "at": time.time(),
        "ok": True,
        "error": None,
    }
    bot.calls.append(record)
    try:
        if entry is None:
            raise BotApiError(404, "Not Found")
        return await entry[1](bot, params)
    except BotApiError as exc:
        record["ok"] = False
        record["error"] = exc.description
        raise
