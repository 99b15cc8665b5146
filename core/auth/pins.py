"""The USSD PIN: a registered phone plus a 4-digit PIN opens the merchant menu.

What each kind of hash protects against, for a 4-digit PIN (10,000 values):

- Online guessing (someone dialling from the registered phone): only the lockout stops it (3 wrong
  PINs lock USSD for 30 minutes and tell the owner). No hash, slow or fast, changes that.
- A leaked database (a backup, a read replica, an injected query): a slow hash does not help here.
  argon2id at OWASP's minimum (~25 ms of CPU) tries all 10,000 PINs of one user in ~4 minutes on one
  core, every user of a leak in an afternoon on a few cores. Passwords (core.auth.passwords) keep
  argon2: their search space is what the slowness multiplies. For a PIN, what protects the hash is a
  secret the database does not hold: the stored value is HMAC-SHA256(key, salt || PIN), the key
  derived from ENCRYPTION_KEYS (the environment's keys that already guard the channel secrets at
  rest, core.crypto). Without the key the rows give nothing to try PINs against; with the key and
  the database both stolen, argon2 would have held out minutes, so little is lost.
- A per-row random salt still keeps two users with the same PIN from showing equal hashes.

So a USSD login costs microseconds instead of 25 ms of a thread-pool core: 100 sessions sending
their PIN at once no longer queue behind one another (bench/ussd_latency.py, P5).

Stored form: `hmac-sha256$<kid>$<salt hex>$<mac hex>`; `kid` names which ENCRYPTION_KEYS key it
was made with, so keys rotate like the secrets box: the first key hashes, every listed key still
verifies. A PIN hash made with a key since removed from ENCRYPTION_KEYS no longer verifies (that
user sets a new PIN): keep an old key listed until its users have logged in once. Hashes from
before (argon2id, `$argon2id$…`) still verify; `needs_rehash` says when a correct PIN should be
stored again (`upgrade_pin_hash`), in the newest form and under the first key.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

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

log = logging.getLogger(__name__)

MAX_PIN_FAILURES = 3
LOCK_FOR = timedelta(minutes=30)
_PIN = re.compile(r"^\d{4}$")
_SCHEME = "hmac-sha256"
# The argon2id parameters PIN hashes were made with before; kept only to verify those.
_legacy = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))


@functools.lru_cache(maxsize=8)
def _pepper_keys(fernet_keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """(kid, HMAC key) per ENCRYPTION_KEYS key, first (newest) first. A key of its own, derived with
    a purpose label, so a PIN MAC can never pass for anything else made with the Fernet key."""
    out = []
    for k in fernet_keys:
        raw = base64.urlsafe_b64decode(k.encode())
        key = hmac.new(raw, b"lipapush ussd pin v1", hashlib.sha256).digest()
        out.append((hashlib.sha256(key).hexdigest()[:8], key))
    return tuple(out)


def _keys(keys: Sequence[str] | None) -> tuple[tuple[str, bytes], ...]:
    if keys is None:
        from core.runtime import runtime  # not at import: core.runtime's imports reach core.auth

        keys = runtime().settings.ENCRYPTION_KEYS
    return _pepper_keys(tuple(keys))


def _mac(key: bytes, salt: bytes, pin: str) -> str:
    return hmac.new(key, salt + pin.encode(), hashlib.sha256).hexdigest()


def validate_new_pin(pin: str, *, field: str = "pin") -> str:
    pin = pin.strip()
    if not _PIN.match(pin):
        raise InvalidInput(field, "The PIN must be exactly 4 digits.")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise InvalidInput(field, "That PIN is too easy to guess (like 1111 or 1234). Choose another.")
    return pin


def hash_pin(pin: str, *, keys: Sequence[str] | None = None) -> str:
    """The stored form of `pin`, keyed by the first of `keys` (default: the runtime's ENCRYPTION_KEYS)."""
    kid, key = _keys(keys)[0]
    salt = secrets.token_bytes(16)
    return f"{_SCHEME}${kid}${salt.hex()}${_mac(key, salt, pin)}"


def needs_rehash(pin_hash: str | None, *, keys: Sequence[str] | None = None) -> bool:
    """A stored hash that a correct PIN should replace: an argon2 one, or one under an older key."""
    if pin_hash is None:
        return False
    parts = pin_hash.split("$")
    return len(parts) != 4 or parts[0] != _SCHEME or parts[1] != _keys(keys)[0][0]


_DUMMY_SALT = bytes(16)


def _verify_keyed(pin: str, pin_hash: str | None, keys: tuple[tuple[str, bytes], ...]) -> bool:
    """Same work whether or not there is a hash, or its key is known: one MAC and one comparison."""
    parts = (pin_hash or "").split("$")
    found = None
    if len(parts) == 4 and parts[0] == _SCHEME:
        found = next((key for kid, key in keys if kid == parts[1]), None)
        if found is None:
            log.warning(
                "a USSD PIN hash was made with an ENCRYPTION_KEYS key no longer configured "
                "(kid %s): put that key back (after the first), or the user must set a new PIN",
                parts[1],
            )
    try:
        salt = bytes.fromhex(parts[2]) if found is not None else _DUMMY_SALT
    except ValueError:
        salt, found = _DUMMY_SALT, None
    expected = parts[3] if found is not None else ""
    actual = _mac(found or keys[0][1], salt, pin)
    return hmac.compare_digest(actual, expected) and found is not None


# argon2 holds a core for ~25 ms. A burst of logins on the default pool (cores + 4 threads) would take
# every core from the event loop and stall every other hop; one core is left to the loop instead.
# Only hashes from before the keyed form still get here, each once (then it is rewritten).
_ARGON2_POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="argon2")


async def pin_matches(pin: str, pin_hash: str | None, *, keys: Sequence[str] | None = None) -> bool:
    if not _PIN.match(pin):
        return False
    if pin_hash is not None and pin_hash.startswith("$argon2"):
        loop = asyncio.get_running_loop()
        return bool(await loop.run_in_executor(_ARGON2_POOL, _legacy.verify, pin, pin_hash))
    return _verify_keyed(pin, pin_hash, _keys(keys))


async def hash_pin_async(pin: str) -> str:
    """`hash_pin`; kept async for its callers (it took an argon2 thread before)."""
    return hash_pin(pin)


async def user_by_ussd_phone(session: AsyncSession, phone: str) -> User | None:
    # A phone opens one account's menu across all businesses: whose it is, is asked of all of them.
    async with platform_scope(session, "account lookup by USSD phone"):
        return await session.scalar(select(User).where(User.ussd_phone == phone))


async def new_pin_hash(pin: str) -> str:
    """Validate and hash a new PIN (before the write transaction, as when hashing was slow)."""
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


async def upgrade_pin_hash(session: AsyncSession, *, user_id: UUID, pin: str, seen_hash: str) -> bool:
    """Store a PIN that just verified against `seen_hash` (see `needs_rehash`) in the newest form, in
    the caller's transaction. Nothing is written when the PIN changed meanwhile (the row's hash is no
    longer `seen_hash`); no audit row: the PIN is the same, only how it is kept changed."""
    row = await session.get(User, user_id, with_for_update=True, populate_existing=True)
    if row is None or row.ussd_pin_hash != seen_hash:
        return False
    row.ussd_pin_hash = hash_pin(pin)
    return True
