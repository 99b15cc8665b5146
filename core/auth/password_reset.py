"""Forgotten passwords: an emailed link that sets a new one, with nothing stored (no table, no migration).

The link carries a token in the manner of Django's PasswordResetTokenGenerator:
`<user id, url-safe base64>.<expiry, unix seconds>.<HMAC-SHA256, url-safe base64>`. The HMAC is keyed
by SECRET_KEY, starts with a purpose prefix (so no other signature of ours can pass for one), and covers
the user id, the expiry, the user's `token_version`, the current `password_hash` and the email. It is
therefore single use by construction: setting the password changes the hash and bumps the version, and
every token minted before that stops matching. It expires after RESET_TTL, and a removed staff member
(`disabled_at`) or a Telegram-only account (placeholder email) can never use one.

Asking for a link never says whether the address has an account: the caller shows the same answer in
every case. Requests count per email and per network (core.ratelimit): past the limit nothing is sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core import ratelimit
from core.audit.service import record
from core.auth import panel_sessions
from core.auth.models import User
from core.auth.passwords import hash_password, validate_password
from core.auth.service import auth, normalize_email
from core.auth.staff import is_placeholder
from core.auth.twofactor import LoginChallenge
from core.db import utcnow
from core.errors import LipapushError
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify

RESET_TTL = timedelta(minutes=30)
PURPOSE = b"lipapush.password_reset"
# Links asked for per address and per network address, in WINDOW seconds.
PER_EMAIL = 3
PER_IP = 10
WINDOW = 15 * 60
MAX_TOKEN = 200


class ResetLinkInvalid(LipapushError):
    code = "reset_link_invalid"
    status = 404


LINK_GONE = "This password reset link is not valid: it has expired, was used already, or was mistyped."


class Requested(StrEnum):
    """What happened to a request for a link. Only for logs and tests: the person asking is shown
    the same page whatever it is, so the page never tells which addresses have accounts."""

    sent = "sent"
    no_account = "no_account"  # unknown, removed, or a Telegram-only placeholder address
    limited_email = "limited_email"  # too many links for this address
    limited_ip = "limited_ip"  # too many requests from this network


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, user: User, expires: int) -> str:
    message = "|".join(
        (str(user.id), str(expires), str(user.token_version), user.password_hash, user.email.lower())
    )
    mac = hmac.new(secret.encode(), PURPOSE + b"\x00" + message.encode(), hashlib.sha256)
    return _b64(mac.digest())


def make_token(user: User, *, secret: str, expires_at: datetime | None = None) -> str:
    """A reset token for `user` as it is now; it expires at `expires_at` (default: RESET_TTL from now)."""
    expires = int((expires_at or utcnow() + RESET_TTL).timestamp())
    return f"{_b64(user.id.bytes)}.{expires}.{_signature(secret, user, expires)}"


def reset_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/login/reset/{token}"


def _parse(token: str) -> tuple[uuid.UUID, int, str] | None:
    if not token or len(token) > MAX_TOKEN:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    try:
        user_id = uuid.UUID(bytes=_unb64(parts[0]))
    except (binascii.Error, ValueError):
        return None
    return user_id, int(parts[1]), parts[2]


def _can_reset(user: User) -> bool:
    return user.disabled_at is None and not is_placeholder(user.email)


async def user_for_token(session: AsyncSession, *, token: str, secret: str) -> User | None:
    """The user a valid, unexpired, unused token was made for; None for anything else."""
    parsed = _parse(token)
    if parsed is None:
        return None
    user_id, expires, sent = parsed
    if expires <= int(utcnow().timestamp()):
        return None
    user = await session.get(User, user_id)
    if user is None or not _can_reset(user):
        return None
    if not hmac.compare_digest(sent.encode(), _signature(secret, user, expires).encode()):
        return None
    return user


async def request_reset(
    session: AsyncSession, *, email: str, ip: str | None, secret: str, base_url: str
) -> Requested:
    """Email a reset link to `email` when it belongs to an active account (in the caller's transaction).
    Raises InvalidInput only for a malformed address; everything else returns quietly."""
    address = normalize_email(email)
    if ip is not None and await ratelimit.hit(f"pwreset:ip:{ip}", WINDOW) > PER_IP:
        return Requested.limited_ip
    if await ratelimit.hit(f"pwreset:email:{address}", WINDOW) > PER_EMAIL:
        return Requested.limited_email
    user = await auth.get_user_by_email(session, address)
    if user is None or not _can_reset(user):
        return Requested.no_account
    link = reset_link(base_url, make_token(user, secret=secret))
    minutes = int(RESET_TTL.total_seconds() // 60)
    await notify.queue(
        session,
        Notification(
            tenant_id=user.tenant_id,
            kind="auth.reset_link",
            channel=NotifyChannel.email,
            recipient=user.email,
            subject="Reset your lipapush password",
            body=(
                f"Someone asked to reset the password of your lipapush account ({user.email}).\n\n"
                f"To choose a new password, open this link within {minutes} minutes. It works once:\n"
                f"{link}\n\n"
                "If it was not you, ignore this email: your password stays as it is."
            ),
        ),
    )
    await record(session, action="auth.reset_requested", tenant_id=user.tenant_id, user_id=user.id)
    return Requested.sent


async def reset_password(session: AsyncSession, *, token: str, password: str, secret: str) -> User:
    """Set a new password through a reset token. Every panel session and API login token of the user
    ends, sign-in codes already emailed stop working, the lockout is cleared, and the user is told by
    email. Raises ResetLinkInvalid for a bad, expired or used token (also when another request used it
    a moment ago), InvalidInput("password") for a password the rules refuse."""
    user = await user_for_token(session, token=token, secret=secret)
    if user is None:
        raise ResetLinkInvalid(LINK_GONE)
    new_hash = hash_password(validate_password(password))
    # Conditional on the state the token was signed over, so two submissions of one link set one password.
    changed = await session.execute(
        update(User)
        .where(
            User.id == user.id,
            User.password_hash == user.password_hash,
            User.token_version == user.token_version,
        )
        .values(password_hash=new_hash, failed_logins=0, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(changed, "rowcount", 1) != 1:
        raise ResetLinkInvalid(LINK_GONE)
    await session.refresh(user)
    await panel_sessions.end_all(session, user)  # bumps token_version: API tokens end too
    await session.execute(
        update(LoginChallenge)
        .where(LoginChallenge.user_id == user.id, LoginChallenge.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await record(session, action="auth.password_reset", tenant_id=user.tenant_id, user_id=user.id)
    await notify.queue(
        session,
        Notification(
            tenant_id=user.tenant_id,
            kind="auth.password_changed",
            channel=NotifyChannel.email,
            recipient=user.email,
            subject="Your lipapush password was changed",
            body=(
                f"The password of your lipapush account ({user.email}) was changed just now through a "
                "reset link, and every device signed in to it was signed out.\n\n"
                "If it was not you, reset your password again at once and tell us."
            ),
        ),
    )
    return user
