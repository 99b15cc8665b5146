"""A platform administrator's own powers over accounts: “View as this business” (start it read-only,
ask for write access with a reason, stop it; each audited, as is every request made meanwhile),
creating another platform administrator (the CLI's bootstrap), and a merchant's USSD access set up
or removed by the operator."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.auth import panel_sessions
from core.auth.models import Role, User
from core.auth.panel_sessions import PanelSession
from core.auth.pins import new_pin_hash, register_ussd, remove_ussd
from core.auth.service import auth
from core.db import utcnow
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.phones import Msisdn, normalize_msisdn
from core.tenants.service import tenants

WRITE_REASON_MIN = 5


async def _session_row(session: AsyncSession, panel_token: str) -> PanelSession:
    row = await panel_sessions.row_for(session, panel_token)
    if row is None:
        raise PermissionDenied("This sign-in has ended: sign in again to continue.")
    return row


@use_case(Permission.platform_admin, audit="impersonation.start")
async def start_impersonation(actor: Actor, tenant_id: uuid.UUID, *, panel_token: str) -> uuid.UUID:
    """The admin's panel session (behind `panel_token`) views `tenant_id` as its owner would,
    read-only. An unknown business is 404."""
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        row = await _session_row(uow.session, panel_token)
        row.as_tenant_id, row.as_since, row.as_write, row.as_reason = tenant.id, utcnow(), False, None
        await uow.audit("impersonation.start")
        return tenant.id


@use_case(Permission.platform_admin, audit="impersonation.write")
async def allow_impersonation_writes(actor: Actor, *, panel_token: str, reason: str) -> None:
    """Widen the business being viewed to writes, with a reason (audited)."""
    reason = " ".join(reason.split())
    if len(reason) < WRITE_REASON_MIN:
        raise InvalidInput(
            "reason", "Say why you need to change this business's data (at least 5 characters)."
        )
    async with unit_of_work(actor, readonly=True) as uow:
        row = await _session_row(uow.session, panel_token)
        if not panel_sessions.impersonating(row):
            raise InvalidInput("reason", "You are not viewing a business right now.")
        tenant_id = row.as_tenant_id
    assert tenant_id is not None
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        row = await _session_row(uow.session, panel_token)
        row.as_write, row.as_reason = True, reason
        await uow.audit("impersonation.write", reason=reason)


@use_case(Permission.platform_admin, audit="impersonation.stop")
async def stop_impersonation(actor: Actor, *, panel_token: str) -> uuid.UUID | None:
    """Back to the admin's own view. Returns the business that was being viewed (None: none was)."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = (await _session_row(uow.session, panel_token)).as_tenant_id
    if tenant_id is None:
        return None
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        panel_sessions.end_impersonation(await _session_row(uow.session, panel_token))
        await uow.audit("impersonation.stop")
    return tenant_id


@use_case(Permission.platform_admin, audit="admin.created")
async def create_platform_admin(actor: Actor, *, email: str, password: str) -> User:
    """Another platform administrator (the CLI's bootstrap). An email already taken is refused."""
    async with unit_of_work(actor) as uow:
        user = await auth.create_user(
            uow.session, email=email, password=password, role=Role.platform_admin, tenant_id=None
        )
        await uow.audit("admin.created", target=str(user.id), email=user.email)
        return user


# -- USSD access set up by the operator (a merchant on a feature phone) ------------------------------
@use_case(Permission.platform_admin, audit="ussd.pin_set")
async def set_ussd_access_for(actor: Actor, *, email: str, phone: str | None, pin: str) -> Msisdn:
    """Register the phone (default: the business phone) and PIN that open a business user's USSD
    menu, and clear a lockout. Returns the phone."""
    pin_hash = await new_pin_hash(pin)  # before the write transaction (SQLite's writer lock)
    async with unit_of_work(actor, readonly=True) as uow:
        found = await auth.get_user_by_email(uow.session, email.strip().lower())
        if found is None or found.tenant_id is None:
            raise NotFound(f"No business user has the email {email}.")
        tenant_id = found.tenant_id
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        user = await auth.get_user(uow.session, found.id)
        number = (
            normalize_msisdn(phone) if phone else Msisdn((await tenants.get(uow.session, tenant_id)).phone)
        )
        # writes "ussd.pin_set", its target the user
        await register_ussd(uow.session, user=user, phone=number, pin_hash=pin_hash, audit=uow.audit)
        return number


@use_case(Permission.platform_admin, audit="ussd.removed")
async def remove_ussd_access_of(actor: Actor, *, email: str) -> None:
    """Turn off a user's USSD menu (a lost phone)."""
    async with unit_of_work(actor, readonly=True) as uow:
        found = await auth.get_user_by_email(uow.session, email.strip().lower())
        if found is None:
            raise NotFound(f"No user has the email {email}.")
    async with unit_of_work(actor.acting_for(found.tenant_id) if found.tenant_id else actor) as uow:
        user = await auth.get_user(uow.session, found.id)

        async def audit(action: str, *, target: str | None = None, **detail: Any) -> object:
            return await uow.audit(action, target=target or str(user.id), **detail)  # whose menu

        await remove_ussd(uow.session, user=user, audit=audit)  # writes "ussd.removed"
