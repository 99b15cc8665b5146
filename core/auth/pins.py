"""The USSD PIN: a registered phone plus a 4-digit PIN opens the merchant menu.

A 4-digit PIN has 10,000 values, so its strength is the lockout (3 wrong PINs lock USSD for 30
minutes), not the hash: argon2id with OWASP's minimum parameters (~25 ms) keeps a stolen database
from handing out PINs for free without making every USSD login cost 150 ms of CPU.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth.auditing import Auditor, recorder
from core.auth.models import User
from core.db import platform_scope, utcnow
from core.errors import Conflict, InvalidInput
from core.phones import Msisdn

MAX_PIN_FAILURES = 3
LOCK_FOR = timedelta(minutes=30)
_PIN = re.compile(r"^\d{4}$")
_hasher = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))


@functools.cache
def _dummy() -> str:
    """Compared against when a user has no PIN, so both cases cost the same time."""
    return _hasher.hash("0000")


def validate_new_pin(pin: str, *, field: str = "pin") -> str:
    pin = pin.strip()
    if not _PIN.match(pin):
        raise InvalidInput(field, "The PIN must be exactly 4 digits.")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise InvalidInput(field, "That PIN is too easy to guess (like 1111 or 1234). Choose another.")
    return pin


def hash_pin(pin: str) -> str:
    return _hasher.hash(pin)


# argon2 holds a core for ~25 ms. A burst of logins on the default pool (cores + 4 threads) would take
# every core from the event loop and stall every other hop; one core is left to the loop instead.
_ARGON2_POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="argon2")


async def pin_matches(pin: str, pin_hash: str | None) -> bool:
    if not _PIN.match(pin):
        return False
    loop = asyncio.get_running_loop()
    ok = await loop.run_in_executor(_ARGON2_POOL, _hasher.verify, pin, pin_hash or _dummy())
    return ok and pin_hash is not None


async def hash_pin_async(pin: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_ARGON2_POOL, hash_pin, pin)


async def user_by_ussd_phone(session: AsyncSession, phone: str) -> User | None:
    # A phone opens one account's menu across all businesses: whose it is, is asked of all of them.
    async with platform_scope(session, "account lookup by USSD phone"):
        return await session.scalar(select(User).where(User.ussd_phone == phone))


async def new_pin_hash(pin: str) -> str:
    """Validate and hash a new PIN. Call it before opening the write transaction: on SQLite the
    writer lock would otherwise be held for the whole hash."""
    return await hash_pin_async(validate_new_pin(pin))


PHONE_TAKEN = (
    "That phone already opens another lipapush account's USSD menu. Remove it there first, "
    "or register a different phone."
)


async def register_ussd(
    session: AsyncSession,
    *,
    user: User,
    phone: Msisdn,
    pin_hash: str,
    by: User | None = None,
    audit: Auditor | None = None,
) -> None:
    """Set (or replace) the phone and PIN (hashed by `new_pin_hash`) that open this user's USSD
    menu; clears any lock."""
    if user.tenant_id is None:
        raise InvalidInput("phone", "Platform admins have no USSD menu; use a business account.")
    holder = await user_by_ussd_phone(session, phone)
    if holder is not None and holder.id != user.id:
        raise Conflict(PHONE_TAKEN)
    try:
        async with session.begin_nested():  # two registrations of one phone at once: one wins
            user.ussd_phone = phone
            user.ussd_pin_hash = pin_hash
            user.ussd_pin_failures = 0
            user.ussd_locked_until = None
    except IntegrityError:
        raise Conflict(PHONE_TAKEN) from None
    write = audit or recorder(session, tenant_id=user.tenant_id, user_id=(by or user).id)
    await write("ussd.pin_set", target=str(user.id), phone=phone[:6] + "***" + phone[-3:])


async def remove_ussd(session: AsyncSession, *, user: User, audit: Auditor | None = None) -> None:
    user.ussd_phone = None
    user.ussd_pin_hash = None
    user.ussd_pin_failures = 0
    user.ussd_locked_until = None
    write = audit or recorder(session, tenant_id=user.tenant_id, user_id=user.id)
    await write("ussd.removed")


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    remaining: int = MAX_PIN_FAILURES
    locked_until: datetime | None = None
    just_locked: bool = False


def locked(user: User, now: datetime | None = None) -> datetime | None:
    now = now or utcnow()
    until = user.ussd_locked_until
    return until if until is not None and until > now else None


async def record_pin_attempt(session: AsyncSession, *, user: User, ok: bool) -> PinCheck:
    """Count a PIN attempt whose hash was already checked (see `pin_matches`), in the caller's
    transaction. Load the user FOR UPDATE in that transaction, so two concurrent wrong PINs both
    count."""
    now = utcnow()
    until = locked(user, now)
    if until is not None:
        return PinCheck(ok=False, remaining=0, locked_until=until)
    if ok:
        user.ussd_pin_failures = 0
        return PinCheck(ok=True)
    user.ussd_pin_failures = (user.ussd_pin_failures or 0) + 1
    if user.ussd_pin_failures < MAX_PIN_FAILURES:
        return PinCheck(ok=False, remaining=MAX_PIN_FAILURES - user.ussd_pin_failures)
    user.ussd_pin_failures = 0
    user.ussd_locked_until = now + LOCK_FOR
    await record(session, action="ussd.locked", tenant_id=user.tenant_id, user_id=user.id)
    return PinCheck(ok=False, remaining=0, locked_until=user.ussd_locked_until, just_locked=True)
