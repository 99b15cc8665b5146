"""Callback-data factories (short prefixes, ids only: Telegram allows 64 bytes) and keyboards."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.auth.models import Role


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


def cancel_row() -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text="✖ Cancel", callback_data=CancelCb().pack())]


def main_menu(role: Role, *, hotspot: bool = False) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    staff = role in (Role.owner, Role.manager)
    if hotspot and staff:
        kb.button(text="📶 WiFi", callback_data=MenuCb(action="wifi"))
    kb.button(text="💸 Request payment", callback_data=MenuCb(action="pay"))
    kb.button(text="📒 Transactions", callback_data=MenuCb(action="tx"))
    if staff:
        kb.button(text="👥 Customers", callback_data=MenuCb(action="cust"))
        kb.button(text="👛 Wallet", callback_data=MenuCb(action="wallet"))
        kb.button(text="🏠 Home", callback_data=MenuCb(action="home"))
    if role is Role.owner:
        kb.button(text="⚙️ Settings", callback_data=MenuCb(action="settings"))
    if hotspot and staff:
        kb.adjust(1, 1, 2, 2, 1)
    else:
        kb.adjust(1, 2, 2, 1)
    return kb.as_markup()


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
    return InlineKeyboardMarkup(inline_keyboard=[*(rows or []), cancel_row()])
