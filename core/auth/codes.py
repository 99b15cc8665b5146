"""One-time codes: linking a Telegram chat to an account, and inviting staff.

A code is shown once (as a `/start <code>` deep link), stored as a SHA-256 digest, expires, and is
used at most once: redemption is a conditional UPDATE, so two chats racing for one code cannot both win.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Uuid, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.auth.models import Role
from core.db import Base, BigIntId, UTCDateTime, str_enum, utcnow
from core.errors import InvalidInput

CODE_TTL = timedelta(minutes=30)


class CodePurpose(StrEnum):
    telegram_link = "telegram_link"
    staff_invite = "staff_invite"


class OneTimeCode(Base):
    __tablename__ = "one_time_codes"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[CodePurpose] = mapped_column(str_enum(CodePurpose, "code_purpose"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[Role | None] = mapped_column(str_enum(Role, "code_role"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


async def issue_code(
    session: AsyncSession,
    *,
    purpose: CodePurpose,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None = None,
    role: Role | None = None,
    by: uuid.UUID | None = None,
    ttl: timedelta = CODE_TTL,
) -> tuple[str, datetime]:
    # Deep-link payloads allow [A-Za-z0-9_-] up to 64 characters; 16 url-safe characters carry 96 bits.
    code = secrets.token_urlsafe(12)
    expires = utcnow() + ttl
    session.add(
        OneTimeCode(
            code_hash=_digest(code),
            purpose=purpose,
            tenant_id=tenant_id,
            user_id=user_id,
            role=role,
            created_by_id=by,
            expires_at=expires,
        )
    )
    await session.flush()
    return code, expires


async def redeem_code(session: AsyncSession, *, code: str, purpose: CodePurpose) -> OneTimeCode:
    """Mark the code used and return it; an unknown, expired or used code is refused, with one
    message for all three (telling them apart would help someone guessing codes)."""
    now = utcnow()
    row = await session.scalar(
        update(OneTimeCode)
        .where(
            OneTimeCode.code_hash == _digest(code),
            OneTimeCode.purpose == purpose,
            OneTimeCode.used_at.is_(None),
            OneTimeCode.expires_at > now,
        )
        .values(used_at=now)
        .returning(OneTimeCode)
        .execution_options(synchronize_session=False)
    )
    if row is None:
        raise InvalidInput(
            "code", "This code is not valid: it may have expired or been used. Ask for a new one."
        )
    return row


async def find_code(session: AsyncSession, *, code: str, purpose: CodePurpose) -> OneTimeCode | None:
    """The code if it could still be redeemed (None for unknown, expired or used), without using it:
    for a page that shows what the code is for before the person acts on it."""
    return await session.scalar(
        select(OneTimeCode).where(
            OneTimeCode.code_hash == _digest(code),
            OneTimeCode.purpose == purpose,
            OneTimeCode.used_at.is_(None),
            OneTimeCode.expires_at > utcnow(),
        )
    )
