"""Building the Bot and the Dispatcher (never at import time) and running them."""

from __future__ import annotations

import json
from typing import Any

from aiogram import Bot, Dispatcher, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import Response
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.methods import TelegramMethod
from aiogram.types import BotCommand

from bots.errors import register_errors
from bots.middlewares import ActorMiddleware, CommandsLeaveFlows
from bots.routers import (
    apps,
    balance,
    batches,
    common,
    customers,
    home,
    onboarding,
    pay,
    payouts,
    plan,
    reversals,
    start,
    transactions,
    usage,
    ussd_pin,
    wallet,
    wifi,
)
from bots.routers import settings as settings_tab
from core.config import Settings
from core.text import has_unstorable, strip_unstorable

COMMANDS = [
    BotCommand(command="start", description="Main menu"),
    BotCommand(command="pay", description="Request a payment"),
    BotCommand(command="transactions", description="Recent payments"),
    BotCommand(command="customers", description="Customer book"),
    BotCommand(command="wallet", description="Wallet and commission"),
    BotCommand(command="balance", description="M-Pesa account balance"),
    BotCommand(command="payout", description="Pay out to an M-Pesa number (owner)"),
    BotCommand(command="payouts_bulk", description="Pay a list from an Excel or CSV file (owner)"),
    BotCommand(command="payouts", description="Payouts and bulk payouts"),
    BotCommand(command="settings", description="M-Pesa settings"),
    BotCommand(command="apps", description="Apps (owner): list, create"),
    BotCommand(command="usage", description="API usage: last 24 hours, this month"),
    BotCommand(command="plan", description="API plan: this month's payment requests, pay, change"),
    BotCommand(command="ussd", description="USSD PIN for a feature phone"),
    BotCommand(command="wifi", description="WiFi hotspot: sales, routers, vouchers"),
    BotCommand(command="help", description="What I can do"),
    BotCommand(command="cancel", description="Stop what you are doing"),
]


def storable_json(text: str | bytes) -> Any:
    """Bot API answers (the updates polled, among them) with NUL and lone surrogates stripped from every
    string: Postgres cannot store them, and refusing an update would not help, as Telegram would only
    deliver it again. Webhook updates get the same in web.telegram."""
    data = json.loads(text)
    return strip_unstorable(data) if has_unstorable(data) else data


# aiogram reads every Bot API answer into `Response[<the method's result type>]`, a pydantic generic class
# that pydantic caches by weak reference only: once the last answer of a type is garbage, the garbage
# collector frees the class and the next call builds it again (~7 ms of schema building; in
# bench/bot_updates.py one sendMessage in ten paid it). Holding each one keeps them cached for good.
_RESPONSE_TYPES: list[type[Any]] = []


def _keep_response_types() -> None:
    if _RESPONSE_TYPES:
        return
    returning: dict[str, Any] = {}
    for cls in vars(methods).values():
        if isinstance(cls, type) and issubclass(cls, TelegramMethod) and cls is not TelegramMethod:
            returning.setdefault(repr(cls.__returning__), cls.__returning__)
    _RESPONSE_TYPES.extend(Response[result] for result in returning.values())  # type: ignore[valid-type]


def build_bot(settings: Settings) -> Bot:
    if not settings.TELEGRAM_BOT_TOKEN:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set")
    _keep_response_types()
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_base), json_loads=storable_json
    )
    return Bot(settings.TELEGRAM_BOT_TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))


def build_storage(settings: Settings) -> BaseStorage:
    if settings.REDIS_URL:
        from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage

        # Flows are short: a half-finished one is forgotten after a day instead of lingering forever.
        return RedisStorage.from_url(
            settings.REDIS_URL,
            key_builder=DefaultKeyBuilder(prefix=f"{settings.REDIS_NAMESPACE}:fsm", with_bot_id=True),
            state_ttl=86_400,
            data_ttl=86_400,
        )
    return MemoryStorage()


def build_dispatcher(settings: Settings) -> Dispatcher:
    dp = Dispatcher(storage=build_storage(settings))
    actor = ActorMiddleware()
    dp.message.outer_middleware(CommandsLeaveFlows())
    dp.message.middleware(actor)
    dp.callback_query.middleware(actor)
    dp.include_routers(
        common.router,
        start.router,
        onboarding.router,
        pay.router,
        home.router,
        transactions.router,
        reversals.router,
        payouts.router,
        batches.router,
        balance.router,
        customers.router,
        wallet.router,
        settings_tab.router,
        apps.router,
        usage.router,
        plan.router,
        ussd_pin.router,
        wifi.router,
        common.fallback,
    )
    register_errors(dp)
    return dp


async def prepare(bot: Bot) -> None:
    await bot.set_my_commands(COMMANDS)
