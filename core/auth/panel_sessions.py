"""Web panel sessions: server-side rows behind an opaque cookie.

The cookie carries 256 random bits; the table keeps only their SHA-256, so a leaked table opens no
session. A session is new at every sign-in (never carried over from before it: no fixation), ends after
IDLE of inactivity or ABSOLUTE after sign-in, on logout, and everywhere at once when the user logs out
everywhere or changes password (the user's token_version moves on).

Impersonation lives on the admin's session: which tenant, since when, and whether write access was
asked for (with its reason). It ends with the session, on request, or after IMPERSONATION.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.audit.service import record
from core.auth.models import User
from core.db import Base, UTCDateTime, utcnow

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
IMPERSONATION = timedelta(minutes=30)
# Writing last_seen_at on every page view would make every read a write; a minute is precise enough.
TOUCH_EVERY = timedelta(seconds=60)


class PanelSession(Base):
    __tablename__ = "panel_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_version: Mapped[int] = mapped_column(Integer)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    # "View as this business" (platform admins only)
    as_tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    as_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    as_write: Mapped[bool] = mapped_column(Boolean, default=False)
    as_reason: Mapped[str | None] = mapped_column(Text)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Started:
    token: str  # for the cookie; never stored
    csrf: str


async def start(session: AsyncSession, *, user: User, ip: str | None, user_agent: str | None) -> Started:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        PanelSession(
            token_hash=_digest(token),
            user_id=user.id,
            token_version=user.token_version,
            csrf_token=csrf,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    await session.flush()
    return Started(token, csrf)


async def load(session: AsyncSession, token: str) -> tuple[PanelSession, User] | None:
    """The live session behind a cookie and its user, or None (unknown, timed out, or revoked)."""
    if not token or len(token) > 100:
        return None
    row = await session.get(PanelSession, _digest(token))
    if row is None:
        return None
    now = utcnow()
    user = await session.get(User, row.user_id)
    if (
        user is None
        or user.token_version != row.token_version
        or now - row.last_seen_at > IDLE
        or now - row.created_at > ABSOLUTE
    ):
        return None
    return row, user


async def row_for(session: AsyncSession, token: str) -> PanelSession | None:
    return await session.get(PanelSession, _digest(token))


def needs_touch(row: PanelSession) -> bool:
    return utcnow() - row.last_seen_at > TOUCH_EVERY


async def touch(session: AsyncSession, token: str) -> None:
    row = await session.get(PanelSession, _digest(token))
    if row is not None:
        row.last_seen_at = utcnow()
        if row.as_since is not None and utcnow() - row.as_since > IMPERSONATION:
            end_impersonation(row)


async def end(session: AsyncSession, token: str) -> None:
    await session.execute(delete(PanelSession).where(PanelSession.token_hash == _digest(token)))


async def end_all(session: AsyncSession, user: User) -> None:
    """Log out everywhere: every panel session and every API login token of this user."""
    user.token_version += 1
    await session.execute(delete(PanelSession).where(PanelSession.user_id == user.id))


async def for_user(session: AsyncSession, user_id: uuid.UUID) -> list[PanelSession]:
    return list(
        await session.scalars(
            select(PanelSession)
            .where(PanelSession.user_id == user_id)
            .order_by(PanelSession.created_at.desc())
        )
    )


def impersonating(row: PanelSession) -> bool:
    return (
        row.as_tenant_id is not None and row.as_since is not None and utcnow() - row.as_since <= IMPERSONATION
    )


def end_impersonation(row: PanelSession) -> None:
    row.as_tenant_id, row.as_since, row.as_write, row.as_reason = None, None, False, None


async def record_impersonated_request(
    session: AsyncSession, *, row: PanelSession, user_id: uuid.UUID, method: str, path: str
) -> None:
    """Every request a platform admin makes while viewing as a business leaves an
    `impersonation.request` row (in the caller's transaction): what was asked, and with what rights."""
    await record(
        session,
        action="impersonation.request",
        tenant_id=row.as_tenant_id,
        user_id=user_id,
        target=f"{method} {path}"[:200],
        detail={"write": row.as_write},
    )


async def end_others(session: AsyncSession, *, user: User, keep: str) -> int:
    """Log out everywhere else: every other panel session and every API login token of this user end;
    the session behind `keep` (this browser's cookie) stays signed in. Returns how many ended."""
    user.token_version += 1
    kept = _digest(keep)
    ended = await session.execute(
        delete(PanelSession)
        .where(PanelSession.user_id == user.id, PanelSession.token_hash != kept)
        .execution_options(synchronize_session=False)
    )
    row = await session.get(PanelSession, kept)
    if row is not None and row.user_id == user.id:
        row.token_version = user.token_version
    return int(getattr(ended, "rowcount", 0) or 0)
