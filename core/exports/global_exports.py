"""Platform-wide exports for admins: every business's transactions or customers in one `.xlsx`, with
the business in the first columns.

A request writes an `ExportJob` row and enqueues `exports.build_global` in the same transaction. The
job streams rows from the database in batches into openpyxl's write-only mode (core.exports.xlsx), so
memory stays flat whatever the row count, and records its progress every second in its own small
transaction for the page that follows it. The finished file is kept for `KEEP_HOURS` and then swept.

The progress writes do not end the job (`ends_job=False`) and refresh the outbox row's `sent_at`, so
the relay does not hand a long export to a second worker while the first is still writing; if the
worker dies, the relay re-sends it after the visibility timeout and the export starts again from the
first row (a half-written file is never offered).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import Select, case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.auditing import Auditor, recorder
from core.customers.models import Customer
from core.db import Scope, utcnow
from core.errors import InvalidInput, NotFound
from core.exports import books
from core.exports.links import downloads_dir
from core.exports.models import ExportJob, ExportStatus
from core.exports.xlsx import BATCH_ROWS, EAT, Column, build_xlsx, export_filename
from core.jobs.models import JobOutbox
from core.jobs.registry import enqueue, job, running_job
from core.payments.models import Payment, PaymentStatus
from core.runtime import runtime, unit_of_work
from core.tenants.models import MpesaChannel, Tenant

KEEP_HOURS = 24
MAX_RANGE_DAYS = 366
BATCH = BATCH_ROWS
PROGRESS_EVERY_SECONDS = 1.0
KINDS = ("transactions", "customers")
# At most this many exports queued or running at once across the platform: each holds a database
# cursor and a core for minutes.
MAX_ACTIVE = 3
# An unfinished export not updated for this long was given up on by the job system (retries spent, or
# its worker gone for good): it is shown as failed and no longer holds one of the MAX_ACTIVE places.
STALE_AFTER = timedelta(minutes=15)
GAVE_UP = "The export stopped without finishing (the worker gave up on it). Start it again."
# The build reads every business's rows (an admin asked for them all); its bookkeeping (the export's own
# row, the job's heartbeat) is on platform tables and sees no business's rows.
EVERY_BUSINESS = Scope.platform("exports.build_global: every business's rows, for an admin")

TENANT_COLUMNS = [Column("Business", "text", 28), Column("Business number", "text", 10)]
# The per-business export's columns, with the business first; then, for the platform, the commission,
# whether it was real money (a test payment went through a simulator or sandbox channel) and which of
# the business's channels (tills) it went through. New columns go last: people's sheets read by position.
TRANSACTION_COLUMNS = [
    *TENANT_COLUMNS,
    *books.TRANSACTION_COLUMNS,
    Column("Commission (KES)", "money", 12),
    Column("Mode", "text", 6),
    Column("Channel", "text", 20),
]
_COMMISSION = len(TENANT_COLUMNS) + len(books.TRANSACTION_COLUMNS)
PLATFORM_CHANNEL = "lipapush (top-up)"
# Every business's two books (test and live) in one sheet, told apart by the last column.
CUSTOMER_COLUMNS = [*TENANT_COLUMNS, *books.CUSTOMER_COLUMNS, Column("Mode", "text", 6)]


class ExportRequest(BaseModel):
    """What the admin asked for. Dates are Nairobi calendar days, both included."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    date_from: date | None = None
    date_to: date | None = None
    status: PaymentStatus | None = None

    @model_validator(mode="after")
    def _check(self) -> ExportRequest:
        if self.kind not in KINDS:
            raise InvalidInput("kind", "Choose “All transactions” or “All customers”.")
        if self.date_from and self.date_to:
            if self.date_to < self.date_from:
                raise InvalidInput("date_to", "The end date is before the start date.")
            if (self.date_to - self.date_from).days >= MAX_RANGE_DAYS:
                raise InvalidInput(
                    "date_to", f"Choose at most {MAX_RANGE_DAYS} days, or leave both dates empty."
                )
        return self

    def label(self) -> str:
        parts = ["All transactions" if self.kind == "transactions" else "All customers"]
        if self.kind == "transactions":
            if self.status:
                parts.append(self.status.value)
            if self.date_from or self.date_to:
                parts.append(f"{self.date_from or '…'} to {self.date_to or '…'}")
        return ", ".join(parts)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=EAT)


def _statement(req: ExportRequest) -> Select[*tuple[Any, ...]]:
    if req.kind == "customers":
        # The primary key order: a full index walk with no sort, however many rows.
        return (
            select(
                Tenant.name,
                Tenant.business_number,
                Customer.name,
                Customer.phone,
                Customer.requested_count,
                Customer.paid_count,
                Customer.paid_total,
                Customer.first_seen_at,
                Customer.last_seen_at,
                Customer.mode,
            )
            .join(Tenant, Tenant.id == Customer.tenant_id)
            .order_by(Customer.id)
        )
    stmt = select(
        Tenant.name,
        Tenant.business_number,
        Payment.created_at,
        Payment.phone,
        Payment.customer_name,
        Payment.amount,
        Payment.status,
        Payment.receipt,
        Payment.account_reference,
        Payment.source,
        Payment.result_desc,
        Payment.completed_at,
        Payment.commission_cents,
        Payment.mode,
        # A wallet top-up is the business's payment through the platform's own channel, not one of its
        # tills: named as such, not by that channel's name.
        case(
            (MpesaChannel.tenant_id == Payment.tenant_id, MpesaChannel.name), else_=literal(PLATFORM_CHANNEL)
        ),
    ).join(Tenant, Tenant.id == Payment.tenant_id)
    # By primary key, once per row; a payment always has its channel (channels are never deleted).
    stmt = stmt.join(MpesaChannel, MpesaChannel.id == Payment.channel_id)
    if req.date_from:
        stmt = stmt.where(Payment.created_at >= _day_start(req.date_from))
    if req.date_to:
        stmt = stmt.where(Payment.created_at < _day_start(req.date_to + timedelta(days=1)))
    if req.status:
        stmt = stmt.where(Payment.status == req.status)
    # Oldest first, on (created_at, id): the ix_payments_created index, no sort.
    return stmt.order_by(Payment.created_at, Payment.id)


def _transaction_row(r: Sequence[Any]) -> tuple[object, ...]:
    # Statuses, sources and modes are StrEnums, which text cells write as their values; only the
    # commission needs turning from cents into shillings.
    return (*r[:_COMMISSION], _cents_to_shillings(r[_COMMISSION]), *r[_COMMISSION + 1 :])


def _cents_to_shillings(cents: int | None) -> Decimal:
    return Decimal(cents or 0) / 100


def stale(row: ExportJob, now: datetime | None = None) -> bool:
    if row.status not in (ExportStatus.queued, ExportStatus.running):
        return False
    return (row.updated_at or row.created_at) < (now or utcnow()) - STALE_AFTER


async def fail_stale(session: AsyncSession, now: datetime | None = None) -> int:
    """Mark exports the job system gave up on as failed, so they say so and free their place."""
    cutoff = (now or utcnow()) - STALE_AFTER
    result = await session.execute(
        update(ExportJob)
        .where(
            ExportJob.status.in_((ExportStatus.queued, ExportStatus.running)),
            func.coalesce(ExportJob.updated_at, ExportJob.created_at) < cutoff,
        )
        .values(status=ExportStatus.failed, error=GAVE_UP, finished_at=now or utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def request_export(
    session: AsyncSession, *, req: ExportRequest, user_id: uuid.UUID, audit: Auditor | None = None
) -> ExportJob:
    await fail_stale(session)
    active = await session.scalar(
        select(func.count())
        .select_from(ExportJob)
        .where(ExportJob.status.in_((ExportStatus.queued, ExportStatus.running)))
    )
    if (active or 0) >= MAX_ACTIVE:
        raise InvalidInput(
            "kind", f"{active} exports are already being built. Wait for one to finish, then try again."
        )
    row = ExportJob(
        kind=req.kind, requested_by_id=user_id, filters=req.model_dump(mode="json", exclude={"kind"})
    )
    session.add(row)
    await session.flush()
    write = audit or recorder(session, tenant_id=None, user_id=user_id)
    detail = req.model_dump(mode="json", exclude_none=True)
    await write(f"export.global_{req.kind}", target=str(row.id), **detail)
    await enqueue(session, build_global, export_id=str(row.id))
    return row


async def get_export(session: AsyncSession, export_id: uuid.UUID) -> ExportJob:
    row = await session.get(ExportJob, export_id)
    if row is None:
        raise NotFound("No such export. Exports are kept for 24 hours.")
    return row


async def recent_exports(session: AsyncSession, *, limit: int = 20) -> list[ExportJob]:
    return list(await session.scalars(select(ExportJob).order_by(ExportJob.created_at.desc()).limit(limit)))


def available(row: ExportJob, now: datetime | None = None) -> Path | None:
    """The finished file, while it is kept."""
    if row.status is not ExportStatus.done or not row.path or not row.expires_at:
        return None
    if row.expires_at <= (now or utcnow()):
        return None
    path = Path(row.path)
    return path if path.is_file() else None


async def sweep_expired(session: AsyncSession, now: datetime | None = None) -> int:
    """Delete files past their keep time; the rows stay as history."""
    rows = await session.scalars(
        select(ExportJob).where(
            ExportJob.status == ExportStatus.done,
            ExportJob.expires_at <= (now or utcnow()),
            ExportJob.path.is_not(None),
        )
    )
    count = 0
    for row in rows:
        if row.path:
            shutil.rmtree(Path(row.path).parent, ignore_errors=True)
        row.path = None
        count += 1
    return count


async def _progress(export_id: uuid.UUID, done: int) -> None:
    async with unit_of_work(ends_job=False, scope=Scope.none()) as session:
        await session.execute(
            update(ExportJob).where(ExportJob.id == export_id).values(rows_done=done, updated_at=utcnow())
        )
        running = running_job.get()
        if running is not None and running.outbox_id is not None:
            # A heartbeat: the relay re-sends only jobs whose sent_at is older than the visibility timeout.
            await session.execute(
                update(JobOutbox).where(JobOutbox.id == running.outbox_id).values(sent_at=utcnow())
            )


async def _batches(
    session: AsyncSession, export_id: uuid.UUID, req: ExportRequest
) -> AsyncIterator[Sequence[Sequence[object]]]:
    # Core rows on the session's connection, as core.exports.books streams a business's transactions.
    connection = await session.connection()
    done, last = 0, time.monotonic()
    async with connection.stream(_statement(req).execution_options(yield_per=BATCH)) as result:
        async for part in result.partitions(BATCH):
            yield [_transaction_row(r) for r in part] if req.kind == "transactions" else part
            done += len(part)
            if time.monotonic() - last >= PROGRESS_EVERY_SECONDS:
                await _progress(export_id, done)
                last = time.monotonic()


@job("exports.build_global", max_retries=2, min_backoff_ms=10_000, max_backoff_ms=60_000)
async def build_global(*, export_id: str) -> None:
    rt = runtime()
    eid = uuid.UUID(export_id)
    async with unit_of_work(ends_job=False, scope=EVERY_BUSINESS) as session:
        row = await session.get(ExportJob, eid)
        # Finished, or given up on and shown as failed (fail_stale): never rebuilt behind the page's back.
        if row is None or row.status in (ExportStatus.done, ExportStatus.failed):
            return
        req = ExportRequest(kind=row.kind, **row.filters)
        total = await session.scalar(
            select(func.count()).select_from(_statement(req).order_by(None).subquery())
        )
        row.status, row.started_at, row.rows_total, row.rows_done = ExportStatus.running, utcnow(), total, 0
        row.updated_at = row.started_at
    try:
        async with unit_of_work(readonly=True, scope=EVERY_BUSINESS) as session:
            path, count = await build_xlsx(
                sheet_title="Transactions" if req.kind == "transactions" else "Customers",
                columns=TRANSACTION_COLUMNS if req.kind == "transactions" else CUSTOMER_COLUMNS,
                batches=_batches(session, eid, req),
                directory=rt.settings.EXPORT_DIR,
            )
    except Exception as exc:
        async with unit_of_work(scope=Scope.none()) as session:
            row = await get_export(session, eid)
            row.status, row.error, row.finished_at = ExportStatus.failed, _reason(exc), utcnow()
        return
    name = export_filename(f"all-{req.kind}")
    folder = downloads_dir(rt.settings.EXPORT_DIR) / f"export-{eid.hex}"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    shutil.move(str(path), final)
    async with unit_of_work(scope=Scope.none()) as session:
        row = await get_export(session, eid)
        row.status, row.rows_done, row.file_name, row.path = ExportStatus.done, count, name, str(final)
        row.finished_at = utcnow()
        row.expires_at = row.finished_at + timedelta(hours=KEEP_HOURS)
        await sweep_expired(session)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
