"""Telegram accounts: which chat belongs to which user, linking by code, and staff invites."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth.codes import CodePurpose, redeem_code
from core.auth.models import Role, User
from core.auth.passwords import hash_password
from core.errors import InvalidInput


async def user_by_telegram(session: AsyncSession, telegram_user_id: int) -> User | None:
    return await session.scalar(
        select(User).where(User.telegram_user_id == telegram_user_id, User.disabled_at.is_(None))
    )


async def _take_telegram_id(session: AsyncSession, telegram_user_id: int, user: User) -> None:
    """One Telegram account drives one lipapush account: a new link replaces an old one."""
    await session.execute(
        update(User)
        .where(User.telegram_user_id == telegram_user_id, User.id != user.id)
        .values(telegram_user_id=None)
        .execution_options(synchronize_session=False)
    )
    user.telegram_user_id = telegram_user_id
    await session.flush()


async def link_chat(session: AsyncSession, *, code: str, telegram_user_id: int) -> User:
    row = await redeem_code(session, code=code, purpose=CodePurpose.telegram_link)
    user = await session.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        raise InvalidInput("code", "This code is not valid any more. Ask for a new one.")
    await _take_telegram_id(session, telegram_user_id, user)
    await record(session, action="telegram.linked", tenant_id=user.tenant_id, user_id=user.id)
    return user


async def attach_owner(session: AsyncSession, *, user: User, telegram_user_id: int) -> None:
    """A business created from the chat: its owner is this Telegram account."""
    await _take_telegram_id(session, telegram_user_id, user)


async def accept_invite(session: AsyncSession, *, code: str, telegram_user_id: int, name: str) -> User:
    """A cashier or manager joins from a staff invite. They sign in only through Telegram, so their
    email is a placeholder and their password random (unusable)."""
    row = await redeem_code(session, code=code, purpose=CodePurpose.staff_invite)
    if row.user_id is not None:
        # A web-access link for someone who already has an account: it opens in a browser, at /join.
        raise InvalidInput("code", "This code gives an existing account web access: open the emailed link.")
    assert row.role in (Role.cashier, Role.manager)
    user = User(
        tenant_id=row.tenant_id,
        email=f"tg-{telegram_user_id}-{uuid.uuid4().hex[:6]}@telegram.lipapush.invalid",
        password_hash=hash_password(secrets.token_urlsafe(24)),
        role=row.role,
    )
    session.add(user)
    await session.flush()
    await _take_telegram_id(session, telegram_user_id, user)
    await record(
        session,
        action="staff.joined",
        tenant_id=row.tenant_id,
        user_id=user.id,
        detail={"role": row.role.value, "name": name[:64], "invited_by": str(row.created_by_id)},
    )
    return user
