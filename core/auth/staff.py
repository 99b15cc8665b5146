"""Staff of a business on the web: invitations by email, web access for staff who joined from
Telegram, joining from an emailed link (/join/{code}), and removing someone who left.

An emailed invitation is a `staff_invite` one-time code like the bot's, so it also still works as a
Telegram `/start <code>` deep link; it only lives longer (EMAIL_INVITE_TTL). A code that carries a
`user_id` gives that existing (Telegram-only) account an email and password instead of creating one.
The address an invitation went to is kept on its `staff.invited` audit row (target `code:<id>`), so
the join page can show it and the account gets exactly that address.

A removed member's row stays (`disabled_at`), so the payments they started keep saying who started
them; everything that lets them in ends at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import AuditLog
from core.audit.service import record
from core.auth import panel_sessions
from core.auth.auditing import Auditor, recorder
from core.auth.codes import CodePurpose, OneTimeCode, find_code, issue_code, redeem_code
from core.auth.models import Role, User
from core.auth.passwords import hash_password, validate_password
from core.auth.service import auth, normalize_email
from core.auth.twofactor import LoginChallenge
from core.db import utcnow
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify
from core.tenants.models import Tenant

EMAIL_INVITE_TTL = timedelta(days=7)
PLACEHOLDER_DOMAIN = "@telegram.lipapush.invalid"
STAFF_ROLES = (Role.cashier, Role.manager)
CODE_GONE = "This invitation is not valid: it may have expired or been used already."


def is_placeholder(email: str) -> bool:
    """A Telegram-only account: its address was made up when it joined from the bot."""
    return email.lower().endswith(PLACEHOLDER_DOMAIN)


@dataclass(frozen=True)
class Invitation:
    """What a join link is for, read before it is used."""

    tenant_name: str
    role: Role
    email: str | None  # the address it was emailed to; the account gets this one
    user_id: uuid.UUID | None  # web access for this existing account
    expires_at: datetime


def join_link(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/join/{code}"


async def _free_email(session: AsyncSession, email: str, *, field: str = "email") -> str:
    email = normalize_email(email, field=field)
    if is_placeholder(email):
        raise InvalidInput(field, "Enter the person's real email address.")
    holder = await auth.get_user_by_email(session, email)
    if holder is not None:
        why = "a removed staff member's" if holder.disabled_at is not None else "an existing"
        raise InvalidInput(field, f"{email} is already {why} lipapush account: use another address.")
    return email


async def _send(
    session: AsyncSession,
    *,
    tenant: Tenant,
    email: str,
    code: str,
    role: Role,
    web_access: bool,
    base_url: str,
) -> Notification:
    link = join_link(base_url, code)
    what = "sign in to" if web_access else f"join as {role.value} of"
    body = (
        f"You are invited to {what} {tenant.name} on lipapush.\n\n"
        f"Open this link to choose your password: {link}\n\n"
        "It works once, for 7 days."
    )
    if not web_access:
        body += f" You can also send /start {code} to the lipapush Telegram bot instead."
    return await notify.queue(
        session,
        Notification(
            tenant_id=tenant.id,
            kind="staff.invite",
            channel=NotifyChannel.email,
            recipient=email,
            subject=f"Join {tenant.name} on lipapush"[:200],
            body=body,
        ),
    )


async def invite_by_email(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    role: Role,
    email: str,
    by: uuid.UUID,
    base_url: str,
) -> tuple[str, datetime, str, str]:
    """Email a join link for a new cashier or manager. The same code works in the bot. Returns the
    code, its expiry, the audit target (`code:<id>`) and the normalised address for the caller's
    `staff.invited` row, which keeps the address (see the module docstring)."""
    if role not in STAFF_ROLES:
        raise InvalidInput("role", "Invite a cashier or a manager.")
    email = await _free_email(session, email)
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such business.")
    code, expires = await issue_code(
        session, purpose=CodePurpose.staff_invite, tenant_id=tenant_id, role=role, by=by, ttl=EMAIL_INVITE_TTL
    )
    row = await find_code(session, code=code, purpose=CodePurpose.staff_invite)
    assert row is not None
    await _send(
        session, tenant=tenant, email=email, code=code, role=role, web_access=False, base_url=base_url
    )
    return code, expires, f"code:{row.id}", email


async def _member(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """A user of this business; another business's user is "not found", never "not allowed"."""
    user = await session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound("No such staff member.")
    return user


async def give_web_access(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    email: str,
    by: uuid.UUID,
    base_url: str,
    audit: Auditor | None = None,
) -> tuple[str, datetime]:
    """Email a link that sets an email and password on a Telegram-only staff member's account."""
    user = await _member(session, tenant_id, user_id)
    if user.role is Role.owner:
        raise PermissionDenied("The owner's own sign-in is changed under Your account.")
    if user.disabled_at is not None:
        raise InvalidInput("email", "This person was removed: invite them again instead.")
    if not is_placeholder(user.email):
        raise InvalidInput("email", "This person already signs in on the web.")
    email = await _free_email(session, email)
    tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None
    code, expires = await issue_code(
        session,
        purpose=CodePurpose.staff_invite,
        tenant_id=tenant_id,
        user_id=user.id,
        role=user.role,
        by=by,
        ttl=EMAIL_INVITE_TTL,
    )
    row = await find_code(session, code=code, purpose=CodePurpose.staff_invite)
    assert row is not None
    write = audit or recorder(session, tenant_id=tenant_id, user_id=by)
    await write(
        "staff.invited",
        target=f"code:{row.id}",
        role=user.role.value,
        via="email",
        email=email,
        web_access_for=str(user.id),
    )
    await _send(
        session, tenant=tenant, email=email, code=code, role=user.role, web_access=True, base_url=base_url
    )
    return code, expires


async def _invited_email(session: AsyncSession, row: OneTimeCode) -> str | None:
    detail = await session.scalar(
        select(AuditLog.detail)
        .where(
            AuditLog.tenant_id == row.tenant_id,
            AuditLog.action == "staff.invited",
            AuditLog.target == f"code:{row.id}",
        )
        .limit(1)
    )
    email = detail.get("email") if isinstance(detail, dict) else None
    return str(email) if email else None


async def _target(session: AsyncSession, row: OneTimeCode) -> User | None:
    """The existing account a web-access code is for, if it may still get it."""
    if row.user_id is None:
        return None
    user = await session.get(User, row.user_id)
    if user is None or user.tenant_id != row.tenant_id or user.disabled_at is not None:
        raise InvalidInput("code", CODE_GONE)
    return user


async def invitation(session: AsyncSession, *, code: str) -> Invitation | None:
    """What this join code is for, or None when it cannot be used (unknown, expired or used)."""
    if not code or len(code) > 64:
        return None
    row = await find_code(session, code=code, purpose=CodePurpose.staff_invite)
    if row is None or row.role is None:
        return None
    try:
        await _target(session, row)
    except InvalidInput:
        return None
    tenant = await session.get(Tenant, row.tenant_id)
    if tenant is None:
        return None
    return Invitation(
        tenant_name=tenant.name,
        role=row.role,
        email=await _invited_email(session, row),
        user_id=row.user_id,
        expires_at=row.expires_at,
    )


async def join(session: AsyncSession, *, code: str, password: str, email: str | None = None) -> User:
    """Use a join code: a new staff account (with the invited address, or `email` for a code made for
    the bot), or an email and password for the existing account the code names. Used once."""
    validate_password(password)
    row = await redeem_code(session, code=code, purpose=CodePurpose.staff_invite)
    if row.role is None:
        raise InvalidInput("code", CODE_GONE)
    invited = await _invited_email(session, row)
    existing = await _target(session, row)
    if invited is None:
        if not email or not email.strip():
            raise InvalidInput("email", "Enter your email address.")
        invited = email
    address = await _free_email(session, invited)
    if existing is not None:
        existing.email = address
        existing.password_hash = hash_password(password)
        # Anything signed in before with this account signs in again; wrong-password counters restart.
        existing.token_version += 1
        await record(
            session,
            action="staff.web_access",
            tenant_id=existing.tenant_id,
            user_id=existing.id,
            detail={"email": address, "invited_by": str(row.created_by_id)},
        )
        return existing
    user = await auth.create_user(
        session, email=address, password_hash=hash_password(password), role=row.role, tenant_id=row.tenant_id
    )
    await record(
        session,
        action="staff.joined",
        tenant_id=row.tenant_id,
        user_id=user.id,
        detail={"role": row.role.value, "via": "email", "invited_by": str(row.created_by_id)},
    )
    return user


async def remove_staff(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    by: uuid.UUID,
    audit: Auditor | None = None,
) -> User:
    """The owner removes a cashier or manager: they can no longer sign in anywhere (panel, API,
    Telegram, USSD), their sessions and tokens end now, and their Telegram account and USSD phone are
    free to be used again. The row stays for the payments they started. Removing someone already
    removed changes nothing and writes no row."""
    user = await _member(session, tenant_id, user_id)
    if user.role is Role.owner or user.id == by:
        raise PermissionDenied("The owner cannot be removed.")
    if user.disabled_at is not None:
        return user
    now = utcnow()
    user.disabled_at = now
    await panel_sessions.end_all(session, user)  # panel sessions deleted, API login tokens (token_version)
    telegram_linked = user.telegram_user_id is not None
    user.telegram_user_id = None
    user.ussd_phone = None
    user.ussd_pin_hash = None
    # A sign-in code already emailed (password typed before the removal) must not finish signing in.
    await session.execute(
        update(LoginChallenge)
        .where(LoginChallenge.user_id == user.id, LoginChallenge.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    # Web-access links not yet used are void too.
    await session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.user_id == user.id, OneTimeCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    write = audit or recorder(session, tenant_id=tenant_id, user_id=by)
    await write(
        "staff.removed", target=str(user.id), role=user.role.value, email=user.email, telegram=telegram_linked
    )
    return user
