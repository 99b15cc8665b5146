"""The scheduler: one leads at a time (a Postgres advisory lock), a standby takes over when the
leader's connection dies, and periods live in the database so a restart or a failover neither repeats
nor forgets a periodic job (core/jobs/scheduler.py).

Two schedulers run here in one process against the test database, each on a lock key of its own test
(the app's own scheduler, started by the `server` fixture, holds the real key meanwhile), with
periodic jobs of their own (no-op jobs under fresh names, so no test sees another's periods)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from core.db import Scope
from core.jobs.models import PeriodicRun
from core.jobs.registry import job
from core.jobs.scheduler import (
    LOCK_KEY,
    AdvisoryLock,
    Periodic,
    Scheduler,
    SoleScheduler,
    claim,
    database_now,
)
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support import services
from tests.support.services import TestDatabase
from tests.support.waiting import wait_until

postgres_only = pytest.mark.skipif(
    not services.PG_URL,
    reason="leader election is a Postgres advisory lock; on SQLite (one machine, `serve`) there is "
    "none to test: set TEST_DATABASE_URL",
)


# Who holds an advisory lock (a bigint key is classid = its high half, objid = its low half) here.
LOCK_HOLDERS = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def _noop() -> None:
    return None


def periodic(server: LiveServer, every: float) -> Periodic:
    """A periodic no-op job under a name no other test uses (its row in periodic_runs is its own)."""
    spec = job(f"tests.scheduler.noop_{uuid.uuid4().hex[:10]}", max_retries=0)(_noop)
    server.rt.jobs.declare_actors()  # the worker runs it: the outbox row goes once it has
    return Periodic(spec, every=every)


def new_key() -> int:
    """A lock key of the test's own: its schedulers never meet the app's (LOCK_KEY) or another test's."""
    return secrets.randbits(62) + 1


def scheduler(
    server: LiveServer, jobs: list[Periodic], *, key: int, name: str, check_every: float = 0.2
) -> tuple[Scheduler, AdvisoryLock]:
    lock = AdvisoryLock(server.rt.db.url, key=key, name=name)
    s = Scheduler(server.rt, jobs, relay_every=3600.0, leadership=lock, standby_retry=check_every, tick=0.05)
    return s, lock


async def last_enqueued(name: str) -> datetime | None:
    async with unit_of_work(readonly=True, scope=Scope.none()) as session:
        return await session.scalar(select(PeriodicRun.last_enqueued_at).where(PeriodicRun.job == name))


@pytest.fixture
async def owner(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    """The schema owner's connection (a superuser on the test server): it may end any backend."""
    assert database.owner_url
    engine = create_async_engine(database.owner_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()


class Running:
    """Schedulers running as tasks until the test ends (stopped even when it fails)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, *schedulers: Scheduler) -> None:
        self.tasks += [asyncio.create_task(s.run(self.stop)) for s in schedulers]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        await r.close()


@postgres_only
class TestLeaderElection:
    async def test_only_the_leader_enqueues_and_the_standby_names_it(
        self, server: LiveServer, running: Running, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="core.jobs.scheduler")
        job_ = periodic(server, every=0.3)
        key = new_key()
        a, lock_a = scheduler(server, [job_], key=key, name="test scheduler a")
        b, _ = scheduler(server, [job_], key=key, name="test scheduler b")
        running.start(a)
        await wait_until(lambda: _true(a.leading))
        running.start(b)
        name = job_.job.name
        # Several periods, and many of the standby's tries (every 0.2 s), go by.
        await wait_until(lambda: _true(a.enqueued[name] >= 4))
        assert a.leading and not b.leading
        assert b.enqueued == Counter()
        standby_lines = [r.getMessage() for r in caplog.records if "stands by" in r.getMessage()]
        assert standby_lines == [
            f"scheduler stands by: test scheduler a (backend pid {lock_a.backend_pid}, from 127.0.0.1) "
            "leads; trying again every 0.2s"
        ]
        assert await last_enqueued(name) is not None

    async def test_a_standby_takes_over_when_the_leaders_connection_dies(
        self, server: LiveServer, running: Running, owner: AsyncEngine, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="core.jobs.scheduler")
        every = 0.5
        job_ = periodic(server, every=every)
        name = job_.job.name
        key = new_key()
        # The old leader checks its connection only every 3 s, so for up to 3 s after the kill it still
        # believes it leads while the standby already does: the overlap a real failover can have.
        a, lock_a = scheduler(server, [job_], key=key, name="test scheduler a", check_every=3.0)
        b, lock_b = scheduler(server, [job_], key=key, name="test scheduler b", check_every=0.1)
        running.start(a)
        await wait_until(lambda: _true(a.enqueued[name] >= 1))
        running.start(b)
        await wait_until(lambda: _true(b.standing_by))

        async with owner.connect() as conn:
            ended = await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": lock_a.backend_pid})
        assert ended is True
        killed_at = asyncio.get_running_loop().time()
        before = a.enqueued[name] + b.enqueued[name]

        await wait_until(lambda: _true(b.leading), timeout=10)
        await wait_until(lambda: _true(not a.leading), timeout=10)  # a noticed at its next check
        await wait_until(lambda: _true(b.enqueued[name] >= 2), timeout=10)  # b does the work now
        elapsed = asyncio.get_running_loop().time() - killed_at
        assert not a.leading and b.leading
        # Through the overlap both called claim() every tick; the conditional UPDATE let one per period.
        assert a.enqueued[name] + b.enqueued[name] - before <= elapsed / every + 1
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("scheduler lost the leader lock") for m in messages), messages
        assert f"scheduler leads (Postgres advisory lock {key}, backend pid {lock_b.backend_pid})" in messages

    async def test_a_stopped_leader_hands_over_at_once(self, server: LiveServer, running: Running) -> None:
        job_ = periodic(server, every=60)
        key = new_key()
        a, _ = scheduler(server, [job_], key=key, name="test scheduler a")
        b, _ = scheduler(server, [job_], key=key, name="test scheduler b")
        await a.step()
        assert a.leading
        running.start(b)
        await wait_until(lambda: _true(b.standing_by))
        await a.leadership.release()  # what run() does when its stop event is set
        await wait_until(lambda: _true(b.leading), timeout=5)
        # The job's period (60 s) had not passed: the new leader does not enqueue it again.
        assert a.enqueued == Counter({job_.job.name: 1}) and b.enqueued == Counter()

    async def test_a_leader_behind_a_transaction_mode_pool_stops_and_says_why(
        self, server: LiveServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="core.jobs.scheduler")
        job_ = periodic(server, every=60)
        a, lock = scheduler(server, [job_], key=new_key(), name="test scheduler a", check_every=0.0)
        await a.step()
        assert a.leading
        # What a transaction-mode PgBouncer does: the next statement is answered by another server
        # session than the one that took the lock (here: the session the lock says it took it on).
        took_it_on = lock.backend_pid
        lock.backend_pid = -1
        await a.step()
        assert not a.leading
        assert (
            f"scheduler's leader-lock connection moved from Postgres backend -1 to {took_it_on}: its "
            "DATABASE_URL goes through a transaction-mode pool"
        ) in caplog.text
        await lock.release()

    async def test_the_apps_own_scheduler_holds_the_real_lock(
        self, server: LiveServer, owner: AsyncEngine
    ) -> None:
        hi, lo = LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF
        async with owner.connect() as conn:
            holders = (await conn.execute(text(LOCK_HOLDERS), {"hi": hi, "lo": lo})).scalars().all()
        assert len(holders) == 1 and holders[0].startswith("lipapush scheduler "), holders


class TestPeriods:
    async def test_a_fresh_scheduler_does_not_enqueue_a_daily_job_again(self, server: LiveServer) -> None:
        daily = periodic(server, every=24 * 3600)
        name = daily.job.name
        first = Scheduler(server.rt, [daily], relay_every=3600.0, leadership=SoleScheduler())
        await first.step()
        await first.step()
        assert first.enqueued == Counter({name: 1})
        enqueued_at = await last_enqueued(name)
        assert enqueued_at is not None
        await first.leadership.release()

        # A restart (or another machine's scheduler after a failover): nothing in its memory.
        again = Scheduler(server.rt, [daily], relay_every=3600.0, leadership=SoleScheduler())
        await again.step()
        assert again.leading
        assert again.enqueued == Counter()
        assert await last_enqueued(name) == enqueued_at

    async def test_a_job_due_again_is_enqueued_again(self, server: LiveServer) -> None:
        quick = periodic(server, every=0.2)
        s = Scheduler(server.rt, [quick], relay_every=3600.0, leadership=SoleScheduler(), tick=0.05)
        await s.step()
        first = await last_enqueued(quick.job.name)

        async def again() -> bool:
            await s.step()
            return s.enqueued[quick.job.name] == 2

        await wait_until(again, interval=0.05)
        second = await last_enqueued(quick.job.name)
        assert first is not None and second is not None
        assert (second - first).total_seconds() >= 0.2

    async def test_two_claims_racing_for_one_period_enqueue_once(
        self, server: LiveServer, database: TestDatabase
    ) -> None:
        hourly = periodic(server, every=3600)
        name = hourly.job.name
        async with unit_of_work(scope=Scope.none()) as session:
            now = await database_now(session)
            assert await claim(session, hourly, now=now) is True  # the first run ever: inserted
            # ... two hours ago, so that it is due again for both claims below.
            await session.execute(
                update(PeriodicRun)
                .where(PeriodicRun.job == name)
                .values(last_enqueued_at=now - timedelta(hours=2))
            )

        async def claim_in_own_transaction() -> tuple[bool, int]:
            async with unit_of_work(scope=Scope.none()) as session:
                got = await claim(session, hourly, now=await database_now(session))
                return got, len(session.info.get("jobs", []))

        # Two schedulers in the instant of a failover: the first has claimed and not yet committed when
        # the second claims. The second waits for the first's row lock (on SQLite, for the one writer),
        # then finds its condition no longer true.
        async with unit_of_work(scope=Scope.none()) as session:
            assert await claim(session, hourly, now=await database_now(session)) is True
            second = asyncio.create_task(claim_in_own_transaction())
            if database.owner_url:
                await wait_until(lambda: _lock_waiters(database.owner_url or ""))
            else:
                await asyncio.sleep(0.2)  # nothing to observe: the second waits inside the pool
            assert not second.done()
        assert await second == (False, 0)  # no outbox row written by the second
        async with unit_of_work(readonly=True, scope=Scope.none()) as session:
            assert await session.scalar(select(PeriodicRun.job).where(PeriodicRun.job == name)) == name

    @pytest.mark.skipif(bool(services.PG_URL), reason="on Postgres the app's scheduler holds the real lock")
    async def test_on_sqlite_the_scheduler_runs_alone(
        self, server: LiveServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="core.jobs.scheduler")
        job_ = periodic(server, every=60)
        s = Scheduler(server.rt, [job_], relay_every=3600.0)  # leadership chosen from DATABASE_URL
        assert isinstance(s.leadership, SoleScheduler)
        await s.step()
        assert s.leading and s.enqueued == Counter({job_.job.name: 1})
        assert "scheduler leads (SQLite: one machine, no leader election)" in caplog.messages


async def _true(value: bool) -> bool:
    return value


async def _lock_waiters(owner_url: str) -> bool:
    """Whether a transaction of this database waits for a row lock (the second claim)."""
    engine = create_async_engine(owner_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
    finally:
        await engine.dispose()
    return bool(waiting)
