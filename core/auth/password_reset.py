"""Forgotten passwords: an emailed link that sets a new one, with nothing stored (no table, no migration).

The link carries a token in the manner of Django's PasswordResetTokenGenerator:
`<user id, url-safe base64>.<expiry, unix seconds>.<HMAC-SHA256, url-safe base64>`. The HMAC is keyed
by SECRET_KEY, starts with a purpose prefix (so no other signature of ours can pass for one), and covers
the user id, the expiry, the user's `token_version`, the current `password_hash` and the email. It is
therefore single use by construction: setting the password changes the hash and bumps the version, and
every token minted before that stops matching. It expires after RESET_TTL, and a removed staff member
(`disabled_at`) or a Telegram-only account (placeholder email) can never use one.

Asking for a link never says whether the address has an account: the caller shows the same answer in
every case. Requests count per email and network, per network, and per email from anywhere
(core.ratelimit): past a limit nothing is sent. The last is only a ceiling on one inbox's mail, high
enough that a stranger cannot cheaply use it to keep the owner from resetting, and a browser the owner
signed in with before (a known device) is never held by it.
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
from core.auth.login_limits import KnownDevice, network_of
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
# Links asked for per address and network, per network, and per address from any network (or from
# one known device), in WINDOW seconds.
PER_EMAIL = 3
PER_IP = 10
PER_EMAIL_ANYWHERE = 10
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
    limited_email = "limited_email"  # too many links for this address (from this network, or at all)
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
    session: AsyncSession,
    *,
    email: str,
    ip: str | None,
    secret: str,
    base_url: str,
    device: KnownDevice | None = None,
) -> Requested:
    """Email a reset link to `email` when it belongs to an active account (in the caller's transaction).
    A `device` that signed in to that account before counts on its own. Raises InvalidInput only for a
    malformed address; everything else returns quietly."""
    address = normalize_email(email)
    user = await auth.get_user_by_email(session, address)
    if device is not None and user is not None and device.user_id == user.id:
        if await ratelimit.hit(f"pwreset:device:{device.device_id}", WINDOW) > PER_EMAIL:
            return Requested.limited_email
    else:
        net = network_of(ip)
        if await ratelimit.hit(f"pwreset:ip:{net}", WINDOW) > PER_IP:
            return Requested.limited_ip
        if await ratelimit.hit(f"pwreset:email:{address}:{net}", WINDOW) > PER_EMAIL:
            return Requested.limited_email
        if await ratelimit.hit(f"pwreset:email:{address}", WINDOW) > PER_EMAIL_ANYWHERE:
            return Requested.limited_email
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
    ends (which also starts its wrong-password counters afresh), sign-in codes already emailed stop
    working, and the user is told by email. Raises ResetLinkInvalid for a bad, expired or used token
    (also when another request used it a moment ago), InvalidInput("password") for a password the
    rules refuse."""
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
        .values(password_hash=new_hash)
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
