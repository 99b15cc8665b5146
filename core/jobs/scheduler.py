"""Periodic work: the job-outbox relay and the periodic sweeps, done by one scheduler at a time.

Any number of schedulers may run (`lipapush scheduler` on several machines for failover, `lipapush
serve`); exactly one of them, the leader, acts.

**Leadership on Postgres** is a session-level advisory lock, `pg_try_advisory_lock(LOCK_KEY)`, taken
on a connection of the scheduler's own, outside the pool, and held for as long as it leads. The lock
lives exactly as long as that connection: a scheduler that stops releases it, one that dies (SIGKILL,
OOM) frees it when the kernel closes its socket, and a lost machine frees it when Postgres's TCP
keepalives (set short on that connection) give up on it; no lease to expire, no clock to trust.
Standbys try to take it every `STANDBY_RETRY` seconds; the leader checks its connection as often and
steps down the moment the check fails. Each change is logged: leads, stands by (naming the leader's
host and pid), lost. Advisory locks belong to one database, so deployments on other databases of the
same server never meet; the lock needs a session that stays on one server connection, so the
scheduler must reach Postgres directly or through a session-mode pool, never a transaction-mode one.

**On SQLite** there is no election: SQLite means one machine, and in practice the one `lipapush serve`
that runs the scheduler inside it. Should a second scheduler run on the same file anyway, the periodic
runs below still enqueue each job once per period, and two relays only send some jobs twice.

**Periods** are kept in the database (`periodic_runs`), not in memory: a job is enqueued only when its
period has passed since it was last enqueued by *any* scheduler, so a restart or a failover neither
re-runs a daily job at once nor forgets one. The claim is a conditional UPDATE (`... WHERE
last_enqueued_at <= now - period`) in the same transaction as the job's outbox row: two leaders racing
in the instant of a failover (the old one has not yet noticed its connection died) cannot both enqueue
it, since the second UPDATE waits for the first and then no longer matches. Time is the database's
clock on Postgres (`now()`), so clock skew between scheduler machines cannot shorten a period; on
SQLite (one machine) it is this process's.

**The relay** runs on the leader only (decision). It is safe from several processes but not
exclusive: it selects unsent rows, sends them, then marks them sent, so two relays at the same moment
may both send one row and that job runs twice, which every job tolerates (jobs are idempotent; the
outbox is at-least-once). Standbys not relaying keeps such doubles to the instant of a failover and
keeps N schedulers from scanning the outbox every few seconds. Nothing waits on it meanwhile: the
process that commits a job sends it itself; the relay only re-sends what was lost, a few seconds late
during a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from core.db import Scope, utcnow
from core.jobs.models import PeriodicRun
from core.jobs.registry import JobSpec, enqueue
from core.runtime import Runtime, unit_of_work
from core.upsert import insert_for

log = logging.getLogger(__name__)

# The leader lock's key: the ASCII bytes of "lipapush" (0x6C69706170757368 = 7811898592451720040), the
# same in every process (pg_locks shows it as classid and objid, its high and low halves).
LOCK_KEY = int.from_bytes(b"lipapush", "big")
# How often a standby tries to take the lock, and how often the leader checks it still holds it.
STANDBY_RETRY = 3.0
# A check or a try that takes longer than this counts as failed (a network that drops packets
# instead of refusing them would otherwise hold a leader that no longer leads for minutes).
DB_CALL_TIMEOUT = 5.0
# Postgres drops the lock connection of a machine that vanished without closing it (power, network)
# after idle + interval × count seconds, so a standby takes over within about half a minute.
KEEPALIVES = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


@dataclass(frozen=True)
class Periodic:
    job: JobSpec
    every: float  # seconds between two enqueues, whichever scheduler makes them


# -- leadership ----------------------------------------------------------------------------------------
class Leadership(Protocol):
    async def acquire(self) -> bool:
        """Try to lead now; True when this scheduler leads (again)."""

    async def holds(self) -> bool:
        """Whether this scheduler still leads; False means it lost the lock and must stop acting."""

    async def leader(self) -> str:
        """Who leads instead (for the standby's log line), as far as can be told."""

    async def release(self) -> None:
        """Stop leading (or standing by) and let another take over."""

    def describe(self) -> str: ...


class SoleScheduler:
    """SQLite: one machine, no election (see the module docstring)."""

    async def acquire(self) -> bool:
        return True

    async def holds(self) -> bool:
        return True

    async def leader(self) -> str:
        return "this scheduler"

    async def release(self) -> None:
        return None

    def describe(self) -> str:
        return "SQLite: one machine, no leader election"


class AdvisoryLock:
    """The Postgres leader lock: a session advisory lock on a dedicated connection (module docstring)."""

    def __init__(self, url: str, *, key: int = LOCK_KEY, name: str | None = None) -> None:
        self.url = url
        self.key = key
        # Shown in pg_stat_activity, and in a standby's log line about who leads.
        self.name = (name or f"lipapush scheduler {socket.gethostname()}:{os.getpid()}")[:63]
        self.backend_pid: int | None = None
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        self._unreachable = False  # Postgres was unreachable at the last try: said once, not every try

    def describe(self) -> str:
        held = f", backend pid {self.backend_pid}" if self.backend_pid else ""
        return f"Postgres advisory lock {self.key}{held}"

    async def _connect(self) -> AsyncConnection:
        if self._conn is not None:
            return self._conn
        self._engine = create_async_engine(self.url, poolclass=NullPool)
        conn = await self._engine.connect()
        # No transaction is ever left open on it: the lock is the session's, not a transaction's.
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": self.name})
        for setting, value in KEEPALIVES.items():
            await conn.execute(text(f"SET {setting} = {int(value)}"))
        self.backend_pid = int(await conn.scalar(text("SELECT pg_backend_pid()")) or 0)
        self._conn = conn
        return conn

    async def acquire(self) -> bool:
        try:
            async with asyncio.timeout(DB_CALL_TIMEOUT):
                conn = await self._connect()
                got, pid = (
                    await conn.execute(
                        text("SELECT pg_try_advisory_lock(:key), pg_backend_pid()"), {"key": self.key}
                    )
                ).one()
        except Exception as exc:
            log.log(
                logging.DEBUG if self._unreachable else logging.WARNING,
                "scheduler could not reach Postgres for the leader lock (%s); trying again",
                _why(exc),
            )
            self._unreachable = True
            await self._drop()
            return False
        if self._unreachable:
            log.info("scheduler reaches Postgres again for the leader lock")
            self._unreachable = False
        return bool(got) and await self._same_session(pid)

    async def holds(self) -> bool:
        if self._conn is None:
            return False
        try:
            async with asyncio.timeout(DB_CALL_TIMEOUT):
                pid = await self._conn.scalar(text("SELECT pg_backend_pid()"))
        except Exception as exc:
            log.warning("scheduler's leader-lock connection failed (%s)", _why(exc))
            await self._drop()
            return False
        # A live session keeps its session locks: nothing else can take ours from it.
        return await self._same_session(pid)

    async def _same_session(self, pid: object) -> bool:
        """A session lock is only ours while every statement reaches the server session that took it:
        behind a transaction-mode pool each may run on another one (and the lock stays behind)."""
        if pid == self.backend_pid:
            return True
        log.error(
            "scheduler's leader-lock connection moved from Postgres backend %s to %s: its DATABASE_URL "
            "goes through a transaction-mode pool (PgBouncer pool_mode=transaction?), where a session "
            "lock cannot be held. Give the scheduler a URL that reaches Postgres directly or through a "
            "session-mode pool.",
            self.backend_pid,
            pid,
        )
        await self._drop()
        return False

    async def leader(self) -> str:
        hi, lo = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        try:
            async with asyncio.timeout(DB_CALL_TIMEOUT):
                conn = await self._connect()
                row = (
                    await conn.execute(
                        text(
                            "SELECT a.application_name, a.pid, a.client_addr FROM pg_locks l "
                            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                            "AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1 "
                            # Advisory locks are per database: another deployment's scheduler on the
                            # same server holds the same key in its own database.
                            "AND l.database = "
                            "(SELECT oid FROM pg_database WHERE datname = current_database())"
                        ),
                        {"hi": hi, "lo": lo},
                    )
                ).first()
        except Exception:
            return "another scheduler"
        if row is None:
            return "another scheduler (just gone)"
        who = row.application_name or "another scheduler"
        return f"{who} (backend pid {row.pid}, from {row.client_addr or 'a local socket'})"

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DB_CALL_TIMEOUT):
                    await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        await self._drop()

    async def _drop(self) -> None:
        """Close the lock connection (and with it the lock, server side) however broken it is."""
        conn, engine, self._conn, self._engine, self.backend_pid = self._conn, self._engine, None, None, None
        if conn is not None:
            try:
                async with asyncio.timeout(DB_CALL_TIMEOUT):
                    await conn.close()
            except Exception:
                with contextlib.suppress(Exception):
                    await conn.invalidate()
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.dispose()


def _why(exc: BaseException) -> str:
    """One line about a database error (the driver's message, not SQLAlchemy's wrapping of it)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def leadership_for(database_url: str) -> Leadership:
    return SoleScheduler() if database_url.startswith("sqlite") else AdvisoryLock(database_url)


# -- periods -------------------------------------------------------------------------------------------
async def database_now(session: AsyncSession) -> datetime:
    """The time periods are measured in: Postgres's clock (one for every machine), else ours."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        now = await session.scalar(select(func.now()))
        assert now is not None
        return now
    return utcnow()


async def claim(session: AsyncSession, periodic: Periodic, *, now: datetime) -> bool:
    """Enqueue `periodic.job` in the session's transaction if its period has passed since any
    scheduler last enqueued it; True when this call enqueued it.

    The conditional UPDATE is the whole guarantee: a second claim racing this one waits for this
    transaction and then no longer matches (on SQLite, writers are serialised by BEGIN IMMEDIATE)."""
    name = periodic.job.name
    claimed = await session.scalar(
        update(PeriodicRun)
        .where(
            PeriodicRun.job == name,
            PeriodicRun.last_enqueued_at <= now - timedelta(seconds=periodic.every),
        )
        .values(last_enqueued_at=now)
        .returning(PeriodicRun.job)
        .execution_options(synchronize_session=False)
    )
    if claimed is None:
        # Never enqueued before (a new job, a new database), or not due: only the first is inserted.
        claimed = await session.scalar(
            insert_for(session, PeriodicRun)
            .values(job=name, last_enqueued_at=now)
            .on_conflict_do_nothing(index_elements=["job"])
            .returning(PeriodicRun.job)
        )
    if claimed is None:
        return False
    await enqueue(session, periodic.job)
    return True


# -- the scheduler -------------------------------------------------------------------------------------
class Scheduler:
    def __init__(
        self,
        rt: Runtime,
        periodic: list[Periodic],
        *,
        relay_every: float,
        leadership: Leadership | None = None,
        standby_retry: float = STANDBY_RETRY,
        tick: float = 0.5,
    ) -> None:
        self.rt = rt
        self.periodic = periodic
        self.relay_every = relay_every
        self.leadership = leadership or leadership_for(rt.db.url)
        self.standby_retry = standby_retry
        self.tick = min(tick, relay_every)
        self.leading = False
        # What this scheduler enqueued while it led (by job name): for its tests and its log.
        self.enqueued: Counter[str] = Counter()
        self.standing_by = False  # said so in the log: another scheduler leads
        self._next_leader_check = 0.0
        self._next_relay = 0.0
        # When each periodic job may next be due (monotonic), so a leader reads periodic_runs only
        # when one is, not every tick.
        self._next_claim: dict[str, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.step()
                except Exception:
                    log.exception("scheduler tick failed; retrying")
                wait = self.tick if self.leading else max(0.0, self._next_leader_check - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            if self.leading:
                log.info("scheduler stops leading (shutting down); a standby, if any, takes over")
            self.leading = False
            await self.leadership.release()

    async def step(self) -> None:
        """One tick: keep or seek leadership; as leader, relay and enqueue what is due."""
        now = time.monotonic()
        if now >= self._next_leader_check:
            self._next_leader_check = now + self.standby_retry
            await self._elect()
        if not self.leading:
            return
        if now >= self._next_relay:
            self._next_relay = now + self.relay_every
            await self.rt.jobs.relay()
        due = [p for p in self.periodic if self._next_claim.get(p.job.name, 0.0) <= now]
        if due:
            await self._enqueue_due(due)

    async def _elect(self) -> None:
        if self.leading:
            if await self.leadership.holds():
                return
            self.leading = False
            self.standing_by = False  # say so again at the next try, with who leads by then
            log.warning(
                "scheduler lost the leader lock (%s); trying again in %gs",
                self.leadership.describe(),
                self.standby_retry,
            )
            return  # a standby's turn first: it may be trying already
        if await self.leadership.acquire():
            self.leading = True
            self.standing_by = False
            self._next_claim.clear()  # another leader may have enqueued meanwhile: ask the table
            self._next_relay = 0.0
            log.info("scheduler leads (%s)", self.leadership.describe())
        elif not self.standing_by:
            self.standing_by = True
            log.info(
                "scheduler stands by: %s leads; trying again every %gs",
                await self.leadership.leader(),
                self.standby_retry,
            )

    async def _enqueue_due(self, due: list[Periodic]) -> None:
        claimed: list[str] = []
        # Only platform bookkeeping is written (periodic_runs, the job outbox): no business's rows.
        async with unit_of_work(scope=Scope.none()) as session:
            now = await database_now(session)
            for p in due:
                if await claim(session, p, now=now):
                    claimed.append(p.job.name)
            rows = await session.execute(
                select(PeriodicRun.job, PeriodicRun.last_enqueued_at).where(
                    PeriodicRun.job.in_([p.job.name for p in due])
                )
            )
            last: dict[str, datetime] = {job: at for job, at in rows.all()}
        mono = time.monotonic()
        for p in due:
            since = (now - last[p.job.name]).total_seconds() if p.job.name in last else p.every
            self._next_claim[p.job.name] = mono + max(self.tick, p.every - since)
        for name in claimed:
            self.enqueued[name] += 1
            log.debug("scheduler enqueued %s", name)


async def run_scheduler(
    rt: Runtime, periodic: list[Periodic], *, relay_every: float, stop: asyncio.Event
) -> None:
    """Run a scheduler until `stop` is set: it leads, or stands by until it can (module docstring)."""
    await Scheduler(rt, periodic, relay_every=relay_every).run(stop)
