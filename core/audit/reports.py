"""What the platform admin reads when something went wrong: the error log (Daraja refusals, callbacks
that could not be applied, jobs that failed after their last retry, messages that did not arrive) and
the audit trail. Read-only queries; every list is bounded by a time window or a keyset page so it stays
cheap at millions of rows."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import AuditLog
from core.auth.models import ApiKey, User
from core.daraja.result_codes import classify
from core.db import utcnow
from core.errors import InvalidInput
from core.jobs.models import JobOutbox
from core.notify.models import Notification, NotifyChannel, NotifyStatus
from core.payments.models import CallbackInbox, Payment, PaymentStatus
from core.tenants.models import MpesaChannel, Tenant

MAX_DAYS = 90
PAGE = 50
# With a business filter, this many of the newest failed jobs are looked through for that business's.
JOB_SCAN = 500
# A cancelled prompt is the customer's choice, not an error; timeouts and failures are.
ERROR_STATUSES = (PaymentStatus.failed, PaymentStatus.timeout)
# Callbacks the worker stored but could not apply to a payment.
FAILED_CALLBACK_OUTCOMES = ("malformed", "orphan")
UNDELIVERED = (NotifyStatus.failed, NotifyStatus.undeliverable)

# What the MCP server writes for each tool an AI agent calls with a business's API key (detail: tool,
# arguments already redacted, outcome, error, latency_ms, transport, api_key_id).
MCP_TOOL_CALL = "mcp.tool_call"

# Audit categories the viewer filters on: action prefixes, so a new action of a known family shows up.
AUDIT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "logins": ("auth.login", "auth.code_failed"),
    "credentials": ("auth.password", "secrets.", "channel.", "ussd.pin", "settings."),
    "keys": ("apikey.",),
    "exports": ("export.",),
    "impersonation": ("impersonation.",),
    "suspensions": ("tenant.suspend", "tenant.reactivate"),
    "billing": ("commission.", "wallet.", "invoice.", "subscription."),
    "staff": ("staff.", "telegram.linked"),
    "hotspot": ("router.", "voucher", "plan."),
}


async def resolve_tenant(session: AsyncSession, ref: str) -> Tenant | None:
    """A tenant named by id, slug or business number (what an admin pastes from a ticket)."""
    ref = ref.strip()
    if not ref:
        return None
    try:
        tenant = await session.get(Tenant, uuid.UUID(ref))
    except ValueError:
        tenant = await session.scalar(
            select(Tenant).where(or_(Tenant.slug == ref.lower(), Tenant.business_number == ref))
        )
    if tenant is None:
        raise InvalidInput("tenant", f"No business has the id, slug or number “{ref[:60]}”.")
    return tenant


def window(days: int) -> datetime:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput("days", f"Choose a period of 1 to {MAX_DAYS} days.")
    return utcnow() - timedelta(days=days)


@dataclass
class CodeCount:
    result_code: str
    tenant_id: uuid.UUID
    tenant_name: str
    count: int
    last_at: datetime
    meaning: str


@dataclass
class FailedPayment:
    payment: Payment
    tenant_name: str


@dataclass
class FailedCallback:
    row: CallbackInbox
    tenant_id: uuid.UUID
    tenant_name: str
    payment_id: uuid.UUID | None


@dataclass
class FailedJob:
    row: JobOutbox
    payment_id: str | None
    notification_id: int | None
    inbox_id: int | None


@dataclass
class FailedMessage:
    row: Notification
    tenant_name: str | None


@dataclass
class ErrorLog:
    since: datetime
    by_code: list[CodeCount] = field(default_factory=list)
    payments: list[FailedPayment] = field(default_factory=list)
    callbacks: list[FailedCallback] = field(default_factory=list)
    jobs: list[FailedJob] = field(default_factory=list)
    messages: list[FailedMessage] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.by_code or self.payments or self.callbacks or self.jobs or self.messages)


async def error_log(
    session: AsyncSession, *, days: int = 7, tenant_id: uuid.UUID | None = None, limit: int = 30
) -> ErrorLog:
    since = window(days)
    log = ErrorLog(since=since)

    tenant_cond = [Payment.tenant_id == tenant_id] if tenant_id else []
    codes = await session.execute(
        select(
            Payment.result_code,
            Payment.tenant_id,
            Tenant.name,
            func.count(),
            func.max(Payment.created_at),
        )
        .join(Tenant, Tenant.id == Payment.tenant_id)
        .where(Payment.created_at >= since, Payment.status.in_(ERROR_STATUSES), *tenant_cond)
        .group_by(Payment.result_code, Payment.tenant_id, Tenant.name)
        .order_by(func.count().desc(), func.max(Payment.created_at).desc())
        .limit(limit)
    )
    for code, tid, name, count, last_at in codes:
        code = code or "none"
        meaning = classify(code)[1] if code != "none" else "No answer from M-Pesa (reconciliation gave up)"
        log.by_code.append(CodeCount(code, tid, name, count, last_at, meaning))

    recent = await session.execute(
        select(Payment, Tenant.name)
        .join(Tenant, Tenant.id == Payment.tenant_id)
        .where(
            Payment.created_at >= since,
            or_(Payment.status.in_(ERROR_STATUSES), Payment.flag.is_not(None)),
            *tenant_cond,
        )
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(limit)
    )
    log.payments = [FailedPayment(p, name) for p, name in recent]

    cb_cond = [MpesaChannel.tenant_id == tenant_id] if tenant_id else []
    callbacks = await session.execute(
        select(CallbackInbox, Tenant.id, Tenant.name, Payment.id)
        .join(MpesaChannel, MpesaChannel.id == CallbackInbox.channel_id)
        .join(Tenant, Tenant.id == MpesaChannel.tenant_id)
        .outerjoin(Payment, Payment.checkout_request_id == CallbackInbox.checkout_request_id)
        .where(
            CallbackInbox.received_at >= since,
            or_(CallbackInbox.outcome.in_(FAILED_CALLBACK_OUTCOMES), CallbackInbox.error.is_not(None)),
            *cb_cond,
        )
        .order_by(CallbackInbox.id.desc())
        .limit(limit)
    )
    log.callbacks = [FailedCallback(row, tid, name, pid) for row, tid, name, pid in callbacks]

    # Failed jobs stay in the outbox until someone looks: few, and kept regardless of the window. A
    # job names its business by `tenant_id` or through the payment it is about.
    jobs = list(
        await session.scalars(
            select(JobOutbox)
            .where(JobOutbox.failed_at.is_not(None))
            .order_by(JobOutbox.failed_at.desc())
            .limit(limit if tenant_id is None else JOB_SCAN)
        )
    )
    if tenant_id is not None:
        named = {pid for j in jobs if (pid := _uuid((j.kwargs or {}).get("payment_id")))}
        theirs = (
            set(
                await session.scalars(
                    select(Payment.id).where(Payment.id.in_(named), Payment.tenant_id == tenant_id)
                )
            )
            if named
            else set()
        )
        jobs = [
            j
            for j in jobs
            if str((j.kwargs or {}).get("tenant_id")) == str(tenant_id)
            or _uuid((j.kwargs or {}).get("payment_id")) in theirs
        ][:limit]
    for job in jobs:
        kw: dict[str, Any] = job.kwargs or {}
        log.jobs.append(
            FailedJob(
                job,
                payment_id=_str(kw.get("payment_id")),
                notification_id=_int(kw.get("notification_id")),
                inbox_id=_int(kw.get("inbox_id")),
            )
        )

    msg_cond = [Notification.tenant_id == tenant_id] if tenant_id else []
    messages = await session.execute(
        select(Notification, Tenant.name)
        .outerjoin(Tenant, Tenant.id == Notification.tenant_id)
        .where(Notification.created_at >= since, Notification.status.in_(UNDELIVERED), *msg_cond)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    log.messages = [FailedMessage(n, name) for n, name in messages]
    return log


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _str(value: object) -> str | None:
    return str(value) if value else None


def _int(value: object) -> int | None:
    try:
        return int(value) if value is not None else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


# --- the audit trail -------------------------------------------------------------------------------


def acting_key_id(row: AuditLog) -> uuid.UUID | None:
    """The API key an audited action was done with: `detail["api_key_id"]`, which every row written
    for a key's actor carries (core.access.actor.Actor.audit_detail), MCP tool calls included."""
    return _uuid((row.detail or {}).get("api_key_id"))


def _done_with_keys(ids: Collection[uuid.UUID]) -> ColumnElement[bool]:
    # JSON path equality works alike on SQLite (json_extract) and Postgres (->>); the ids are written
    # as str(uuid), the form compared here.
    return and_(
        # Narrows to the keys' businesses first, so the tenant index does the work, not the JSON.
        AuditLog.tenant_id.in_(select(ApiKey.tenant_id).where(ApiKey.id.in_(ids)).scalar_subquery()),
        AuditLog.detail["api_key_id"].as_string().in_([str(i) for i in ids]),
    )


async def keys_by_id(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, ApiKey]:
    """The key rows a page's audit rows name, in one query (revoked ones too)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {k.id: k for k in await session.scalars(select(ApiKey).where(ApiKey.id.in_(wanted)))}


async def keys_named(session: AsyncSession, ref: str, *, tenant_id: uuid.UUID | None = None) -> list[ApiKey]:
    """The keys an admin means by `ref`: a key id, or a display prefix as lists show it (lp_test_ab12,
    with or without its "…"). A prefix is 4 random characters, so over the whole platform it may name
    more than one key; `tenant_id` narrows it to one business's."""
    ref = ref.strip().removesuffix("…").removesuffix("...")
    if not ref:
        return []
    try:
        stmt = select(ApiKey).where(ApiKey.id == uuid.UUID(ref))
    except ValueError:
        stmt = select(ApiKey).where(ApiKey.prefix == ref[:12])
    if tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == tenant_id)
    return list(await session.scalars(stmt.order_by(ApiKey.created_at)))


@dataclass
class AuditRow:
    row: AuditLog
    email: str | None
    tenant_name: str | None
    key_prefix: str | None = None  # the API key it was done with, when it was done with one


@dataclass
class AuditPage:
    rows: list[AuditRow]
    older: int | None  # the id to continue from, when there are more


async def audit_page(
    session: AsyncSession,
    *,
    category: str = "",
    action: str = "",
    tenant_id: uuid.UUID | None = None,
    email: str = "",
    api_key_ids: Collection[uuid.UUID] | None = None,
    before: int | None = None,
    limit: int = PAGE,
) -> AuditPage:
    """Newest first, a keyset page on the id (the log only grows). `api_key_ids`: only what was done
    with these keys (an empty collection matches nothing; None does not filter)."""
    stmt = (
        select(AuditLog, User.email, Tenant.name)
        .outerjoin(User, User.id == AuditLog.user_id)
        .outerjoin(Tenant, Tenant.id == AuditLog.tenant_id)
    )
    if category:
        prefixes = AUDIT_CATEGORIES.get(category)
        if prefixes is None:
            raise InvalidInput("category", "Choose one of the listed categories.")
        stmt = stmt.where(or_(*(AuditLog.action.startswith(p, autoescape=True) for p in prefixes)))
    if action.strip():
        stmt = stmt.where(AuditLog.action.startswith(action.strip(), autoescape=True))
    if tenant_id:
        stmt = stmt.where(AuditLog.tenant_id == tenant_id)
    if email.strip():
        stmt = stmt.where(func.lower(User.email) == email.strip().lower())
    if api_key_ids is not None:
        if not api_key_ids:
            return AuditPage([], older=None)
        stmt = stmt.where(_done_with_keys(api_key_ids))
    if before is not None:
        stmt = stmt.where(AuditLog.id < before)
    rows = list(await session.execute(stmt.order_by(AuditLog.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    out = [AuditRow(r, e, n) for r, e, n in rows[:limit]]
    keys = await keys_by_id(session, (acting_key_id(a.row) for a in out))
    for a in out:
        if (key_id := acting_key_id(a.row)) is not None and (key := keys.get(key_id)) is not None:
            a.key_prefix = key.prefix
    return AuditPage(out, older=out[-1].row.id if more and out else None)


# --- a business's own activity ---------------------------------------------------------------------


@dataclass
class ActivityRow:
    row: AuditLog
    email: str | None  # the person who did it, when they are one of this business's people
    key: ApiKey | None  # the API key it was done with


@dataclass
class ActivityPage:
    rows: list[ActivityRow]
    older: int | None  # the id to continue from, when there are more


async def activity_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    key_id: uuid.UUID | None = None,
    action: str = "",
    tool_calls_only: bool = False,
    before: int | None = None,
    limit: int = PAGE,
) -> ActivityPage:
    """One business's audit rows, newest first, a keyset page on the id: all of them, or those done
    with one API key, whose action starts with `action`, or only AI agents' tool calls (MCP)."""
    # Only the business's own people are named: a platform admin's account is not the business's to
    # read (on Postgres row-level security hides it anyway; the join says the same on SQLite).
    stmt = (
        select(AuditLog, User.email)
        .outerjoin(User, and_(User.id == AuditLog.user_id, User.tenant_id == tenant_id))
        .where(AuditLog.tenant_id == tenant_id)
    )
    if key_id is not None:
        stmt = stmt.where(AuditLog.detail["api_key_id"].as_string() == str(key_id))
    if action.strip():
        stmt = stmt.where(AuditLog.action.startswith(action.strip(), autoescape=True))
    if tool_calls_only:
        stmt = stmt.where(AuditLog.action == MCP_TOOL_CALL)
    if before is not None:
        stmt = stmt.where(AuditLog.id < before)
    rows = list(await session.execute(stmt.order_by(AuditLog.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    page = rows[:limit]
    keys = await keys_by_id(session, (acting_key_id(r) for r, _ in page))
    out = [ActivityRow(r, e, keys.get(k) if (k := acting_key_id(r)) else None) for r, e in page]
    return ActivityPage(out, older=out[-1].row.id if more and out else None)


# --- the outbox --------------------------------------------------------------------------------------


@dataclass
class OutboxPage:
    rows: list[FailedMessage]
    older: int | None


async def outbox_page(
    session: AsyncSession,
    *,
    channel: NotifyChannel | None = None,
    status: NotifyStatus | None = None,
    tenant_id: uuid.UUID | None = None,
    recipient: str = "",
    before: int | None = None,
    limit: int = PAGE,
) -> OutboxPage:
    """Every email, SMS and Telegram message with its delivery state, newest first."""
    stmt = select(Notification, Tenant.name).outerjoin(Tenant, Tenant.id == Notification.tenant_id)
    if channel:
        stmt = stmt.where(Notification.channel == channel)
    if status:
        stmt = stmt.where(Notification.status == status)
    if tenant_id:
        stmt = stmt.where(Notification.tenant_id == tenant_id)
    needle = recipient.strip().lower()
    if needle.startswith("0") and needle.isdigit():
        needle = needle[1:]  # 0712… is stored as 254712…
    if needle:
        stmt = stmt.where(Notification.recipient.contains(needle, autoescape=True))
    if before is not None:
        stmt = stmt.where(Notification.id < before)
    rows = list(await session.execute(stmt.order_by(Notification.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    out = [FailedMessage(n, name) for n, name in rows[:limit]]
    return OutboxPage(out, older=out[-1].row.id if more and out else None)
