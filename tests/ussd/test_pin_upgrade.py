"""A USSD PIN stored the argon2 way (before core.auth.pins keyed its hashes) still opens the menu, and
the first right PIN rewrites it in the keyed form: same screens, same lockout, no audit row of its own."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import func, select

from core.audit.models import AuditLog
from core.auth.models import User
from core.auth.pins import needs_rehash, pin_matches
from core.runtime import unit_of_work
from sim.africastalking import UssdGateway
from tests.ussd.conftest import PIN, Merchant, intl, make_merchant
from tests.ussd.test_merchant_menu import HOME, PROMPT

ARGON2 = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))


async def _legacy_merchant() -> tuple[Merchant, str]:
    m = await make_merchant()
    legacy = ARGON2.hash(PIN)
    async with unit_of_work() as session:
        row = await session.get(User, m.user.id)
        assert row is not None
        row.ussd_pin_hash = legacy
    return m, legacy


async def _stored(m: Merchant) -> User:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(User, m.user.id)
        assert row is not None
        session.expunge(row)
    return row


async def _audit_rows(m: Merchant) -> int:
    async with unit_of_work(readonly=True) as session:
        count = select(func.count()).select_from(AuditLog).where(AuditLog.user_id == m.user.id)
        return int(await session.scalar(count) or 0)


async def test_an_argon2_pin_opens_the_menu_and_is_rewritten(gateway: UssdGateway) -> None:
    m, legacy = await _legacy_merchant()
    audits = await _audit_rows(m)
    s = gateway.dial(intl(m.phone))
    assert (await s.start()).text == PROMPT
    assert (await s.send(PIN)).text == HOME
    row = await _stored(m)
    assert row.ussd_pin_hash != legacy and row.ussd_pin_hash is not None
    assert row.ussd_pin_hash.startswith("hmac-sha256$") and not needs_rehash(row.ussd_pin_hash)
    assert await pin_matches(PIN, row.ussd_pin_hash)
    assert await _audit_rows(m) == audits
    # The rewritten PIN opens the next dial; nothing is written again.
    s = gateway.dial(intl(m.phone))
    await s.start()
    assert (await s.send(PIN)).text == HOME
    assert (await _stored(m)).ussd_pin_hash == row.ussd_pin_hash


async def test_a_wrong_pin_against_an_argon2_hash_counts_and_rewrites_nothing(gateway: UssdGateway) -> None:
    m, legacy = await _legacy_merchant()
    s = gateway.dial(intl(m.phone))
    await s.start()
    assert (await s.send("1111")).text == "Wrong PIN. 2 tries left.\n" + PROMPT
    row = await _stored(m)
    assert row.ussd_pin_hash == legacy and row.ussd_pin_failures == 1
    assert (await s.send(PIN)).text == HOME
    row = await _stored(m)
    assert row.ussd_pin_failures == 0 and not needs_rehash(row.ussd_pin_hash)
