"""The Dramatiq broker, its actors, and the after-commit dispatch / relay of the job outbox.

Redis broker when REDIS_URL is set; otherwise Dramatiq's in-memory broker with a worker inside the
same process (the embedded default). Either way the outbox table is the source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, Middleware
from sqlalchemy import delete, or_, select, update

from core.db import Database, session_scope, utcnow
from core.jobs.models import JobOutbox
from core.jobs.registry import JOBS, JobSpec, RunningJob, running_job

log = logging.getLogger(__name__)

# A job not finished this long after its message was sent is presumed lost (worker died, Redis
# restarted) and is sent again.
VISIBILITY_TIMEOUT = timedelta(minutes=5)
# Rows younger than this are left to the after-commit dispatch of the process that wrote them.
DISPATCH_GRACE = timedelta(seconds=2)
MAX_SENDS = 20


class _RecordFailures(Middleware):
    """Marks the outbox row failed once Dramatiq gives up, so the relay stops and the admin sees it."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def after_nack(self, broker: Any, message: Any) -> None:
        # A nack is Dramatiq's final word on a message (retries exhausted or the job aborted).
        outbox_id = message.kwargs.get("outbox_id")
        thread = get_event_loop_thread()
        if outbox_id is None or thread is None:
            return
        error = str(message.options.get("traceback", "")).strip().splitlines()
        thread.run_coroutine(self.runner.mark_failed(outbox_id, error[-1] if error else "job failed"))


class JobRunner:
    def __init__(
        self,
        db: Database,
        *,
        redis_url: str | None,
        namespace: str = "lipapush",
        visibility: timedelta = VISIBILITY_TIMEOUT,
    ) -> None:
        self.db = db
        self.visibility = visibility
        self.in_process = redis_url is None
        if redis_url is None:
            self.broker: dramatiq.Broker = StubBroker()
        else:
            from dramatiq.brokers.redis import RedisBroker

            self.broker = RedisBroker(url=redis_url, namespace=namespace)
        self.broker.add_middleware(AsyncIO())
        self.broker.add_middleware(_RecordFailures(self))
        self._worker: dramatiq.Worker | None = None
        self._declared: set[str] = set()
        self.declare_actors()

    def declare_actors(self) -> None:
        """Declare every registered job; call again after importing more job modules."""
        for spec in JOBS.values():
            if spec.name in self._declared:
                continue
            dramatiq.Actor(
                self._runner_for(spec),
                broker=self.broker,
                actor_name=spec.name,
                queue_name=spec.queue,
                priority=0,
                options={
                    "max_retries": spec.max_retries,
                    "min_backoff": spec.min_backoff_ms,
                    "max_backoff": spec.max_backoff_ms,
                },
            )
            self._declared.add(spec.name)

    def _runner_for(self, spec: JobSpec) -> Any:
        async def run(*, outbox_id: int | None = None, **kwargs: Any) -> None:
            job = RunningJob(outbox_id) if outbox_id is not None else None
            token = running_job.set(job)
            try:
                await spec.fn(**kwargs)
            finally:
                running_job.reset(token)
            left = job.take() if job else None
            if left is not None:
                async with session_scope(self.db) as session:
                    await session.execute(delete(JobOutbox).where(JobOutbox.id == left))

        run.__name__ = spec.name.replace(".", "_")
        return run

    # -- workers -------------------------------------------------------------------------------
    @property
    def can_dispatch(self) -> bool:
        """An in-memory broker only helps the process whose worker consumes it."""
        return not self.in_process or self._worker is not None

    async def recover_in_process(self) -> int:
        """With the in-process broker, every message a previous process sent died with it: hand its
        unfinished jobs to the relay now instead of after the visibility timeout. Call once at start,
        before this process enqueues anything."""
        if not self.in_process:
            return 0
        async with session_scope(self.db) as session:
            result = await session.execute(
                update(JobOutbox)
                .where(JobOutbox.failed_at.is_(None), JobOutbox.sent_at.is_not(None))
                .values(sent_at=None)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def start_worker(self, *, threads: int = 4) -> None:
        self.declare_actors()
        self.broker.emit_after("process_boot")
        self._worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=250)
        self._worker.start()

    def stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self.broker.close()

    # -- sending -------------------------------------------------------------------------------
    def _send(self, outbox_id: int, actor: str, kwargs: dict[str, Any]) -> None:
        spec = JOBS[actor]
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=spec.queue,
            actor_name=actor,
            args=(),
            kwargs={**kwargs, "outbox_id": outbox_id},
            options={},
        )
        self.broker.enqueue(message)

    async def dispatch(self, rows: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
        """Called after the enqueuing transaction committed. Failure here only delays a job: the
        relay sends any row that never got its message."""
        if not rows:
            return
        unsent: list[int] = []
        for outbox_id, actor, kwargs in rows:
            if not self.can_dispatch:
                unsent.append(outbox_id)
                continue
            try:
                self._send(outbox_id, actor, kwargs)
            except Exception:
                log.warning("job %s could not be sent now; the relay will retry", actor, exc_info=True)
                unsent.append(outbox_id)
        if unsent:
            # enqueue() marked them sent; they were not, so hand them to the relay now
            async with session_scope(self.db) as session:
                await session.execute(
                    update(JobOutbox)
                    .where(JobOutbox.id.in_(unsent))
                    .values(sent_at=None, sends=JobOutbox.sends - 1)
                )

    async def relay(self, *, limit: int = 500) -> int:
        """Send outbox rows whose message never went out, or went out and never finished."""
        if not self.can_dispatch:
            return 0
        now = utcnow()
        async with session_scope(self.db) as session:
            rows = (
                await session.execute(
                    select(JobOutbox.id, JobOutbox.actor, JobOutbox.kwargs, JobOutbox.sends)
                    .where(
                        JobOutbox.failed_at.is_(None),
                        or_(
                            JobOutbox.sent_at.is_(None)
                            & JobOutbox.not_before.is_(None)
                            & (JobOutbox.created_at < now - DISPATCH_GRACE),
                            JobOutbox.sent_at.is_(None) & (JobOutbox.not_before <= now),
                            JobOutbox.sent_at < now - self.visibility,
                        ),
                    )
                    .order_by(JobOutbox.id)
                    .limit(limit)
                    # Two relays at once (a scheduler failover) never pick the same rows; each row
                    # stays locked until its sent mark commits. SQLite has one writer: no clause.
                    .with_for_update(skip_locked=True)
                )
            ).all()
            sent = 0
            for outbox_id, actor, kwargs, sends in rows:
                if actor not in JOBS or sends >= MAX_SENDS:
                    await session.execute(
                        update(JobOutbox)
                        .where(JobOutbox.id == outbox_id)
                        .values(failed_at=now, error="unknown job" if actor not in JOBS else "sent too often")
                    )
                    continue
                try:
                    self._send(outbox_id, actor, kwargs)
                except Exception:
                    log.warning("relay could not reach the broker; will retry", exc_info=True)
                    break
                await session.execute(
                    update(JobOutbox)
                    .where(JobOutbox.id == outbox_id)
                    .values(sent_at=now, sends=JobOutbox.sends + 1)
                )
                sent += 1
        return sent

    async def mark_failed(self, outbox_id: int, error: str) -> None:
        async with session_scope(self.db) as session:
            await session.execute(
                update(JobOutbox)
                .where(JobOutbox.id == outbox_id)
                .values(failed_at=utcnow(), error=error[:2000])
            )
