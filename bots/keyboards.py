"""Callback-data factories (short prefixes, ids only: Telegram allows 64 bytes) and keyboards."""

from __future__ import annotations

import functools

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.access.actor import Actor as CoreActor
from core.access.permissions import Permission


class MenuCb(CallbackData, prefix="m"):
    action: str  # home, pay, tx, cust, wallet, settings, wifi


class StartCb(CallbackData, prefix="s"):
    action: str  # signup, link


class OnbCb(CallbackData, prefix="onb"):
    action: str  # env, kind, retry
    value: str = ""


class PayCb(CallbackData, prefix="pay"):
    # "pay:again:<uuid>" is also built by core.notify.texts for buttons added by jobs
    action: str  # pick, again, skipname
    pid: str = ""


class CancelCb(CallbackData, prefix="x"):
    pass


class PayoutCb(CallbackData, prefix="po"):
    action: str  # start, ch (a channel, id), skip (the name), send, check (a payout, id)
    id: str = ""


class BatchCb(CallbackData, prefix="pb"):
    # "pb:<action>:<batch id>", short enough for core to build too (buttons on a message a job edits)
    action: str  # start, ch (a channel, id), pay, dup, drop, pause, resume, stop, result, open
    id: str = ""


# Built once: keyboards are sent on almost every update, and nothing changes them once built (a
# markup is only serialised); building one with InlineKeyboardBuilder deep-copies every button.
_CANCEL = InlineKeyboardButton(text="✖ Cancel", callback_data=CancelCb().pack())


def cancel_row() -> list[InlineKeyboardButton]:
    return [_CANCEL]


_MENU_PERMISSIONS = (Permission.customers_read, Permission.wallet_read, Permission.channel_manage)


def main_menu(actor: CoreActor, *, hotspot: bool = False) -> InlineKeyboardMarkup:
    """The buttons this person may use: core's answer, the same as every other entry point's."""
    can = frozenset(p for p in _MENU_PERMISSIONS if actor.can(p))
    return _menu_for(can, hotspot and actor.can(Permission.vouchers_issue))


@functools.lru_cache(maxsize=64)
def _menu_for(can: frozenset[Permission], wifi: bool) -> InlineKeyboardMarkup:
    """One menu per set of rights asked about: `main_menu` keys it by core's answers, not by role."""
    kb = InlineKeyboardBuilder()
    if wifi:
        kb.button(text="📶 WiFi", callback_data=MenuCb(action="wifi"))
    kb.button(text="💸 Request payment", callback_data=MenuCb(action="pay"))
    kb.button(text="📒 Transactions", callback_data=MenuCb(action="tx"))
    if Permission.customers_read in can:
        kb.button(text="👥 Customers", callback_data=MenuCb(action="cust"))
    if Permission.wallet_read in can:
        kb.button(text="👛 Wallet", callback_data=MenuCb(action="wallet"))
        kb.button(text="🏠 Home", callback_data=MenuCb(action="home"))
    if Permission.channel_manage in can:
        kb.button(text="⚙️ Settings", callback_data=MenuCb(action="settings"))
    if wifi:
        kb.adjust(1, 1, 2, 2, 1)
    else:
        kb.adjust(1, 2, 2, 1)
    return kb.as_markup()


@functools.cache
def start_choices() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text="🆕 Create my business", callback_data=StartCb(action="signup"))
    kb.button(text="🔗 Link an existing account", callback_data=StartCb(action="link"))
    kb.adjust(1)
    return kb.as_markup()


def choices(cb: type[OnbCb], action: str, options: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for text, value in options:
        kb.button(text=text, callback_data=cb(action=action, value=value))
    kb.adjust(1)
    kb.row(*cancel_row())
    return kb.as_markup()


def with_cancel(rows: list[list[InlineKeyboardButton]] | None = None) -> InlineKeyboardMarkup:
    if not rows:
        return _CANCEL_ONLY
    return InlineKeyboardMarkup(inline_keyboard=[*rows, cancel_row()])


_CANCEL_ONLY = InlineKeyboardMarkup(inline_keyboard=[cancel_row()])
