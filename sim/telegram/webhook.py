"""Delivering queued updates to a bot's webhook the way Telegram does: in order, retried until a 2xx."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import httpx
from starlette.requests import Request

from sim.telegram.params import BotApiError, Params, read_params
from sim.telegram.state import BotState, now

logger = logging.getLogger("sim.telegram")

WEBHOOK_TIMEOUT = 30.0
RETRY_FIRST = 0.1
RETRY_MAX = 2.0

Executor = Callable[[BotState, str, Params], Awaitable[Any]]


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "Connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "Read timeout expired"
    return f"{type(exc).__name__}: {exc}"


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


async def _reply_params(response: httpx.Response) -> Params | None:
    """The Bot API call a webhook may answer with (JSON, or aiogram's multipart form), if any."""
    if not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": response.content, "more_body": False}

    try:
        params = await read_params(Request(scope, receive))
    except (BotApiError, ValueError):
        return None
    return params if params.has("method") else None


async def _answer_reply(bot: BotState, response: httpx.Response, execute: Executor) -> None:
    params = await _reply_params(response)
    if params is None:
        return
    method = params.get_str("method") or ""
    try:
        await execute(bot, method, params)
    except BotApiError as exc:
        # Telegram gives a webhook reply no way to report failure; the call log still shows it.
        logger.info("webhook reply %s failed: %s", method, exc.description)


async def deliver_forever(bot: BotState, execute: Executor) -> None:
    """Runs while a webhook is set; pending updates wait in ``bot.updates`` exactly as for getUpdates."""
    delay = RETRY_FIRST
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, trust_env=False) as client:
        while bot.webhook is not None:
            hook = bot.webhook
            if not bot.updates:
                await bot.wait_for_change(60.0)
                continue
            update = bot.updates[0]
            headers = {"Content-Type": "application/json"}
            if hook.secret_token:
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
            error: str | None = None
            try:
                response = await client.post(hook.url, content=json.dumps(update), headers=headers)
            except httpx.HTTPError as exc:
                error = _describe(exc)
            else:
                if not response.is_success:
                    error = f"Wrong response from the webhook: {_status_line(response.status_code)}"
            if error is None:
                if bot.updates and bot.updates[0] is update:
                    bot.updates.pop(0)
                delay = RETRY_FIRST
                await _answer_reply(bot, response, execute)
                continue
            hook.last_error_date = now()
            hook.last_error_message = error
            logger.info("webhook delivery to %s failed: %s", hook.url, error)
            await bot.wait_for_change(delay)
            delay = min(delay * 2, RETRY_MAX)
