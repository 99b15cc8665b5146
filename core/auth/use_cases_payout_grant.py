"""The owner's grant that lets a manager or cashier pay out (`users.may_pay_out`), from every entry point.

Paying out is the owner's (core.access.permissions); core.payouts.use_cases.with_payout_grant reads
this flag on every payout, batch and batch action, so turning it off takes effect at the person's next
request. Reversals stay the owner's alone whatever the grant says. Only the owner sets it (or a key
with business:write and payouts:write), only for an active manager or cashier of the same business:
anyone else's id is "not found", as for every other staff action. Setting it to what it already is
writes nothing."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.auth.models import Role, User
from core.auth.staff import STAFF_ROLES
from core.errors import NotFound

NO_SUCH_STAFF = (
    "No such manager or cashier in this business: Settings → Staff lists the people you can allow to pay out."
)


class PayoutGrantOut(BaseModel):
    user_id: uuid.UUID
    role: Role = Field(description="manager or cashier")
    may_pay_out: bool = Field(
        description="Whether this person may pay out (single payouts and batches) within the business's "
        "limits; reversals stay the owner's"
    )


class _Unchanged(Exception):
    """Raised inside the unit of work when the grant already is what was asked: the transaction rolls
    back (nothing written, so nothing to audit) and the use case returns `value`."""

    def __init__(self, value: PayoutGrantOut) -> None:
        super().__init__()
        self.value = value


def _out(user: User) -> PayoutGrantOut:
    return PayoutGrantOut(user_id=user.id, role=user.role, may_pay_out=user.may_pay_out)


@use_case(Permission.staff_manage, audit="staff.payout_grant")
async def set_payout_grant(actor: Actor, user_id: uuid.UUID, *, allowed: bool) -> PayoutGrantOut:
    """Allow (or stop) a manager or cashier paying out. The owner needs no grant; a removed person, the
    owner and another business's user are "not found". An API key also needs payouts:write: money out
    is reached only through a key given it on purpose, never by granting it to a person through a key
    that holds business:write alone."""
    tenant_id = actor.require_tenant()
    if actor.api_key_id is not None:
        actor.require(Permission.payouts_request)
    try:
        async with unit_of_work(actor) as uow:
            user = await uow.session.get(User, user_id, with_for_update=True)
            if (
                user is None
                or user.tenant_id != tenant_id
                or user.role not in STAFF_ROLES
                or user.disabled_at is not None
            ):
                raise NotFound(NO_SUCH_STAFF)
            if user.may_pay_out is allowed:
                raise _Unchanged(_out(user))
            user.may_pay_out = allowed
            await uow.session.flush()
            await uow.audit(
                "staff.payout_grant",
                target=str(user.id),
                allowed=allowed,
                role=user.role.value,
                email=user.email,
            )
            return _out(user)
    except _Unchanged as same:
        return same.value
