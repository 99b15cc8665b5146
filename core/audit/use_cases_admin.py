"""What a platform administrator reads in the logs: the error log, the audit trail and the message
outbox. A filter that cannot be understood comes back by field, and nothing is listed rather than
guessed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.audit import reports
from core.errors import InvalidInput
from core.notify.models import NotifyChannel, NotifyStatus

T = TypeVar("T")


@dataclass(frozen=True)
class Filtered(Generic[T]):
    found: T | None  # None when a filter could not be understood
    errors: dict[str, str] = field(default_factory=dict)  # by form field


async def _tenant(session: AsyncSession, ref: str, errors: dict[str, str]) -> uuid.UUID | None:
    try:
        tenant = await reports.resolve_tenant(session, ref)
    except InvalidInput as exc:
        errors["tenant"] = exc.message
        return None
    return tenant.id if tenant else None


async def _keys(
    session: AsyncSession, ref: str, tenant_id: uuid.UUID | None, errors: dict[str, str]
) -> list[uuid.UUID] | None:
    """The keys a key filter names (None: no filter). A prefix two businesses' keys share names both,
    unless a business is chosen too; each row shows its business."""
    if not ref.strip():
        return None
    found = [k.id for k in await reports.keys_named(session, ref, tenant_id=tenant_id)]
    if not found:
        where = " in this business" if tenant_id else ""
        errors["key"] = (
            f"No API key{where} has the id or prefix “{ref.strip()[:60]}”. Paste a key id, or a prefix "
            "as lists show it (lp_live_ or lp_test_ and 4 more characters)."
        )
    return found


@use_case(Permission.platform_admin, query=True)
async def error_log(
    actor: Actor, *, tenant: str = "", days: int = 7, list_rows: bool = True
) -> Filtered[reports.ErrorLog]:
    """Failed payments, callbacks, jobs and messages of the last `days` days, for one business (id,
    slug or business number) or all. `list_rows=False`: the caller found a filter it could not parse."""
    errors: dict[str, str] = {}
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = await _tenant(uow.session, tenant, errors)
        if errors or not list_rows:
            return Filtered(None, errors)
        return Filtered(await reports.error_log(uow.session, days=days, tenant_id=tenant_id))


@use_case(Permission.platform_admin, query=True)
async def audit_trail(
    actor: Actor,
    *,
    category: str = "",
    action: str = "",
    tenant: str = "",
    email: str = "",
    key: str = "",
    before: int | None = None,
    list_rows: bool = True,
) -> Filtered[reports.AuditPage]:
    """The audit log, newest first, a keyset page on the id. `key`: only what was done with an API key
    (its id or its prefix, e.g. lp_test_ab12), MCP tool calls included."""
    errors: dict[str, str] = {}
    if category and category not in reports.AUDIT_CATEGORIES:
        errors["category"] = "Choose one of the listed categories."
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = await _tenant(uow.session, tenant, errors)
        key_ids = await _keys(uow.session, key, tenant_id, errors) if "tenant" not in errors else None
        if errors or not list_rows:
            return Filtered(None, errors)
        return Filtered(
            await reports.audit_page(
                uow.session,
                category=category,
                action=action,
                tenant_id=tenant_id,
                email=email,
                api_key_ids=key_ids,
                before=before,
            )
        )


@use_case(Permission.platform_admin, query=True)
async def message_outbox(
    actor: Actor,
    *,
    channel: NotifyChannel | None = None,
    status: NotifyStatus | None = None,
    tenant: str = "",
    recipient: str = "",
    before: int | None = None,
    list_rows: bool = True,
) -> Filtered[reports.OutboxPage]:
    """Every email, SMS and Telegram message with its delivery state, newest first."""
    errors: dict[str, str] = {}
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = await _tenant(uow.session, tenant, errors)
        if errors or not list_rows:
            return Filtered(None, errors)
        return Filtered(
            await reports.outbox_page(
                uow.session,
                channel=channel,
                status=status,
                tenant_id=tenant_id,
                recipient=recipient,
                before=before,
            )
        )
