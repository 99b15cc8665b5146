from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class Signup(StatesGroup):
    name = State()
    email = State()
    password = State()
    phone = State()


class Link(StatesGroup):
    code = State()


class Onboarding(StatesGroup):
    environment = State()
    kind = State()
    short_code = State()
    till = State()
    key = State()
    secret = State()
    passkey = State()


class Pay(StatesGroup):
    phone = State()
    amount = State()
    name = State()
