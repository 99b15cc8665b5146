"""Declaring and enqueueing jobs.

A job is an async function taking keyword arguments of plain JSON values (ids, never ORM objects).
`@job("payments.process_callback")` registers it; the broker is built later by the composition root,
so nothing is created at import time. `enqueue()` writes an outbox row in the caller's transaction and
arranges for the broker message to be sent only after that transaction commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.context import current_request
from core.db import utcnow
from core.jobs.models import JobOutbox

JobFn = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: JobFn
    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int
    queue: str

    async def __call__(self, **kwargs: Any) -> None:
        await self.fn(**kwargs)


JOBS: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    max_retries: int = 8,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 5 * 60_000,
    queue: str = "default",
) -> Callable[[JobFn], JobSpec]:
    def register(fn: JobFn) -> JobSpec:
        if name in JOBS and JOBS[name].fn is not fn:
            raise RuntimeError(f"job name {name!r} registered twice")
        spec = JobSpec(name, fn, max_retries, min_backoff_ms, max_backoff_ms, queue)
        JOBS[name] = spec
        return spec

    return register


def _request_id() -> str | None:
    req = current_request()
    return req.request_id if req else None


async def enqueue(session: AsyncSession, spec: JobSpec, **kwargs: Any) -> JobOutbox:
    # Marked sent up front, so a normal enqueue costs no second transaction after commit; the
    # after-commit dispatch clears sent_at again if the message could not be sent, and the relay
    # then picks the row up at once.
    row = JobOutbox(actor=spec.name, kwargs=kwargs, sent_at=utcnow(), sends=1, request_id=_request_id())
    session.add(row)
    await session.flush()
    session.info.setdefault("jobs", []).append((row.id, spec.name, kwargs))
    return row


async def enqueue_at(session: AsyncSession, spec: JobSpec, when: datetime, **kwargs: Any) -> JobOutbox:
    """A job that must not run before `when`. It waits as an outbox row (durable: a Redis restart or
    a dead worker loses nothing) and the scheduler's relay sends it once due, so it runs within a relay
    tick of `when`. A time already past is an ordinary enqueue."""
    if when <= utcnow():
        return await enqueue(session, spec, **kwargs)
    row = JobOutbox(actor=spec.name, kwargs=kwargs, not_before=when, sends=0, request_id=_request_id())
    session.add(row)
    await session.flush()
    return row


class RunningJob:
    """The outbox row of the job running in this task. The job's first committed write unit of work
    deletes it in the same transaction (see core.runtime.unit_of_work), so finishing the job and its
    effects commit together; a job that never writes has its row deleted once it returns."""

    def __init__(self, outbox_id: int) -> None:
        self.outbox_id: int | None = outbox_id

    def take(self) -> int | None:
        outbox_id, self.outbox_id = self.outbox_id, None
        return outbox_id


running_job: ContextVar[RunningJob | None] = ContextVar("lipapush_running_job", default=None)
