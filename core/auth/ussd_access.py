"""Registering a phone for the USSD merchant menu: a phone must be proven before it opens a menu.

A phone that already approved an M-Pesa prompt for this business (the owner's phone, which paid the
KES 1 channel check) is proven; any other phone gets a 6-digit code by SMS that must come back within
10 minutes (5 tries). Without that, anyone could claim a competitor's or a customer's number: a
payer dialling from it would meet a PIN prompt instead of the payer menu.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.auditing import Auditor
from core.auth.models import PhoneVerification, Role, User
from core.auth.pins import (
    LOCK_FOR,
    PHONE_TAKEN,
    PinCheck,
    pin_matches,
    record_pin_attempt,
    register_ussd,
    user_by_ussd_phone,
)
from core.db import Scope, utcnow
from core.errors import Conflict, InvalidInput
from core.notify.service import notify
from core.notify.texts import local_phone
from core.phones import Msisdn
from core.runtime import unit_of_work
from core.tenants.service import tenants

CODE_TTL = timedelta(minutes=10)
NO_CODE = "No code is waiting (or it expired). Register the phone again for a new one."
MAX_TRIES = 5


@dataclass(frozen=True)
class Registration:
    phone: Msisdn
    confirmed: bool  # False: a code went to the phone by SMS (confirm_phone)
    expires_at: datetime | None = None


def _code_hash(secret: str, verification_id: str, code: str) -> str:
    key = f"ussd-phone-code:{secret}".encode()
    return hmac.new(key, f"{verification_id}:{code}".encode(), hashlib.sha256).hexdigest()


async def _proven(session: AsyncSession, user: User, phone: Msisdn) -> bool:
    if user.role is not Role.owner or user.tenant_id is None:
        return False
    tenant = await tenants.get(session, user.tenant_id)
    channel = await tenants.get_channel(session, tenant.id)
    return tenant.phone == phone and channel is not None and channel.verified_at is not None


async def request_ussd_access(
    session: AsyncSession,
    *,
    user: User,
    phone: Msisdn,
    pin_hash: str,
    secret: str,
    audit: Auditor | None = None,
) -> Registration:
    """Register at once when the phone is proven; else text it a code (in the caller's transaction,
    through the outbox) and keep the PIN waiting for `confirm_phone`."""
    if user.tenant_id is None:
        raise InvalidInput("phone", "Platform admins have no USSD menu; use a business account.")
    holder = await user_by_ussd_phone(session, phone)
    if holder is not None and holder.id != user.id:
        raise Conflict(PHONE_TAKEN)
    if user.ussd_phone == phone or await _proven(session, user, phone):
        await register_ussd(session, user=user, phone=phone, pin_hash=pin_hash, audit=audit)
        return Registration(phone=phone, confirmed=True)
    # One pending code per user: a new request replaces the old one.
    await session.execute(
        update(PhoneVerification)
        .where(PhoneVerification.user_id == user.id, PhoneVerification.confirmed_at.is_(None))
        .values(expires_at=utcnow())
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    expires = utcnow() + CODE_TTL
    row = PhoneVerification(user_id=user.id, phone=phone, pin_hash=pin_hash, code_hash="", expires_at=expires)
    session.add(row)
    await session.flush()
    row.code_hash = _code_hash(secret, str(row.id), code)
    tenant = await tenants.get(session, user.tenant_id)
    await notify.sms(
        session,
        tenant=None,  # the platform's sender id: the code is from lipapush, not the business
        to=phone,
        kind="ussd.phone_code",
        body=(
            f"lipapush code {code}: confirms {local_phone(phone)} for the USSD menu of {tenant.name[:40]}. "
            "Expires in 10 min. Never share it."
        ),
    )
    return Registration(phone=phone, confirmed=False, expires_at=expires)


@dataclass(frozen=True)
class Confirmation:
    phone: Msisdn | None
    error: str | None = None


async def confirm_phone(
    session: AsyncSession, *, user: User, code: str, secret: str, audit: Auditor | None = None
) -> Confirmation:
    """Check the SMS code and register the waiting phone and PIN. A wrong code is returned as an
    error, not raised, so the caller commits the counted try before refusing."""
    row = await session.scalar(
        select(PhoneVerification)
        .where(
            PhoneVerification.user_id == user.id,
            PhoneVerification.confirmed_at.is_(None),
            PhoneVerification.expires_at > utcnow(),
        )
        .order_by(PhoneVerification.created_at.desc())
        .with_for_update()
    )
    if row is None or row.attempts >= MAX_TRIES:
        return Confirmation(None, NO_CODE)
    row.attempts += 1
    if not hmac.compare_digest(row.code_hash, _code_hash(secret, str(row.id), code.strip())):
        left = MAX_TRIES - row.attempts
        return Confirmation(
            None,
            f"That code is not right. {left} {'try' if left == 1 else 'tries'} left."
            if left
            else "That was the last try. Register the phone again for a new code.",
        )
    row.confirmed_at = utcnow()
    phone = Msisdn(row.phone)
    await register_ussd(session, user=user, phone=phone, pin_hash=row.pin_hash, audit=audit)
    return Confirmation(phone)


async def check_ussd_pin(*, user: User, pin: str, phone: str) -> PinCheck:
    """A PIN typed on a dial: counted, and after 3 wrong ones USSD locks for LOCK_FOR and the owner is
    told (Telegram, else SMS). A right PIN with no failures to clear writes nothing, so on SQLite a
    burst of logins does not queue on the single writer lock."""
    ok = await pin_matches(pin, user.ussd_pin_hash)
    if ok and not user.ussd_pin_failures:
        return PinCheck(ok=True, remaining=0, locked_until=None, just_locked=False)
    # The menu is a business's (ussd.merchant ends the dial of a user of none): counted in its scope.
    scope = (
        Scope.tenant(user.tenant_id)
        if user.tenant_id is not None
        else Scope.platform("USSD PIN of an account of no business")
    )
    async with unit_of_work(scope=scope) as session:
        row = await session.get(User, user.id, with_for_update=True)
        assert row is not None
        result = await record_pin_attempt(session, user=row, ok=ok)
        if result.just_locked and row.tenant_id is not None:
            tenant = await tenants.get(session, row.tenant_id)
            minutes = int(LOCK_FOR.total_seconds() // 60)
            await notify.to_owner(
                session,
                tenant=tenant,
                kind="ussd.locked",
                body=(
                    f"lipapush: 3 wrong USSD PINs on {local_phone(phone)} ({row.email}). "
                    f"USSD is locked for {minutes} minutes. If this was not your staff, change the PIN."
                ),
            )
    return result
