"""People of a business: inviting staff, from the API, the panel or the bot, written once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import Role
from core.auth.staff import STAFF_ROLES, invite_by_email
from core.errors import InvalidInput
from core.runtime import runtime


@dataclass(frozen=True)
class StaffInvite:
    code: str
    role: Role
    expires_at: datetime
    email: str | None = None

    @property
    def start_command(self) -> str:
        return f"/start {self.code}"


def staff_role(value: Role | str) -> Role:
    """Only a cashier or a manager is invited: an owner is made with the business."""
    try:
        role = Role(value)
    except ValueError:
        role = None
    if role not in STAFF_ROLES:
        raise InvalidInput("role", "Invite a cashier or a manager.")
    assert role is not None
    return role


@use_case(Permission.staff_manage, audit="staff.invited")
async def invite_staff(actor: Actor, *, role: Role | str, email: str | None = None) -> StaffInvite:
    """A code the person sends to the bot as `/start <code>` (30 minutes); with `email`, a join link
    by email as well (7 days), whose address is kept on the audit row."""
    tenant_id = actor.require_tenant()
    wanted = staff_role(role)
    async with unit_of_work(actor) as uow:
        if email is None:
            code, expires = await issue_code(
                uow.session,
                purpose=CodePurpose.staff_invite,
                tenant_id=tenant_id,
                role=wanted,
                by=actor.user_id,
            )
            await uow.audit("staff.invited", role=wanted.value)
            return StaffInvite(code, wanted, expires)
        code, expires, target, sent_to = await invite_by_email(
            uow.session,
            tenant_id=tenant_id,
            role=wanted,
            email=email,
            by=actor.audit_user_id,  # type: ignore[arg-type]
            base_url=runtime().settings.base_url,
        )
        await uow.audit("staff.invited", target=target, role=wanted.value, via="email", email=sent_to)
        return StaffInvite(code, wanted, expires, sent_to)
