"""Email one-time codes: the second step of a login (panel or `POST /api/login`) for accounts with 2FA
(always for platform admins).

A challenge is created after the password was right; its six-digit code goes out by email through the
notification outbox. The code is stored as an HMAC under the server's secret (six digits are too few to
survive an unkeyed hash if the table leaked), is single use (redemption is a conditional UPDATE), expires
after CODE_TTL and dies after MAX_ATTEMPTS wrong guesses. At most MAX_CHALLENGES are sent per user per
CHALLENGE_WINDOW, so the login form cannot be used to flood someone's inbox.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, String, Uuid, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.audit.service import record
from core.auth.models import Role, User
from core.auth.service import LoginAttempt
from core.db import Base, UTCDateTime, utcnow
from core.errors import LipapushError
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
MAX_CHALLENGES = 5
CHALLENGE_WINDOW = timedelta(minutes=15)


class TooManyCodes(LipapushError):
    code = "too_many_requests"
    status = 429


class LoginChallenge(Base):
    __tablename__ = "login_challenges"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_mac: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def required(user: User) -> bool:
    """Platform admins always sign in with a code; others when they turned 2FA on."""
    return user.role is Role.platform_admin or user.two_factor_enabled


def _mac(secret: str, challenge_id: uuid.UUID, code: str) -> str:
    return hmac.new(secret.encode(), f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def masked_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


@dataclass(frozen=True)
class Challenge:
    id: uuid.UUID
    sent_to: str  # masked
    expires_at: datetime


async def start(session: AsyncSession, *, user: User, secret: str) -> Challenge:
    """Email a fresh code to `user` (in the caller's transaction) and return the challenge to verify."""
    now = utcnow()
    recent = await session.scalar(
        select(func.count())
        .select_from(LoginChallenge)
        .where(LoginChallenge.user_id == user.id, LoginChallenge.created_at > now - CHALLENGE_WINDOW)
    )
    if (recent or 0) >= MAX_CHALLENGES:
        raise TooManyCodes("Too many sign-in codes were sent. Wait 15 minutes, then sign in again.")
    code = f"{secrets.randbelow(1_000_000):06d}"
    challenge = LoginChallenge(user_id=user.id, code_mac="", expires_at=now + CODE_TTL)
    session.add(challenge)
    await session.flush()
    challenge.code_mac = _mac(secret, challenge.id, code)
    await notify.queue(
        session,
        Notification(
            tenant_id=user.tenant_id,
            kind="auth.code",
            channel=NotifyChannel.email,
            recipient=user.email,
            subject=f"lipapush sign-in code: {code}",
            body=(
                f"Your lipapush sign-in code is {code}. It works once, for 10 minutes.\n\n"
                "If you did not just sign in, someone knows your password: change it now."
            ),
        ),
    )
    return Challenge(challenge.id, masked_email(user.email), challenge.expires_at)


async def verify(session: AsyncSession, *, challenge_id: uuid.UUID, code: str, secret: str) -> LoginAttempt:
    """The user whose challenge this code answers, and the challenge is used up. A failure is returned,
    not raised, so the caller commits the wrong-guess counter (the challenge dies after MAX_ATTEMPTS)."""
    now = utcnow()
    code = code.strip().replace(" ", "")
    gone = "This sign-in code has expired or was used. Sign in again for a new one."
    row = await session.get(LoginChallenge, challenge_id, with_for_update=True)
    if row is None or row.used_at is not None or row.expires_at <= now or row.attempts >= MAX_ATTEMPTS:
        return LoginAttempt(None, gone)
    user = await session.get(User, row.user_id)
    if user is None:
        return LoginAttempt(None, gone)
    if not (
        len(code) == 6 and code.isdigit() and hmac.compare_digest(row.code_mac, _mac(secret, row.id, code))
    ):
        row.attempts += 1
        await record(session, action="auth.code_failed", tenant_id=user.tenant_id, user_id=user.id)
        left = MAX_ATTEMPTS - row.attempts
        return LoginAttempt(
            None,
            f"Wrong code: {left} {'try' if left == 1 else 'tries'} left."
            if left
            else "Wrong code too many times. Sign in again for a new one.",
        )
    used = await session.execute(
        update(LoginChallenge)
        .where(LoginChallenge.id == row.id, LoginChallenge.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(used, "rowcount", 1) != 1:
        return LoginAttempt(None, gone)
    user.last_login_at = now
    await record(session, action="auth.login_2fa", tenant_id=user.tenant_id, user_id=user.id)
    return LoginAttempt(user, None)
