"""The job outbox: jobs are sent after commit, dropped on rollback, and re-sent if a message is lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import utcnow
from core.jobs.models import JobOutbox
from core.jobs.registry import enqueue, job
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.waiting import wait_until

SEEN: list[str] = []


@job("tests.record", max_retries=0)
async def record_job(tag: str) -> None:
    SEEN.append(tag)


@job("tests.always_fails", max_retries=1, min_backoff_ms=10, max_backoff_ms=20)
async def always_fails(tag: str) -> None:
    raise RuntimeError(f"boom {tag}")


async def outbox_row(row_id: int) -> JobOutbox | None:
    async with unit_of_work(readonly=True) as session:
        return await session.get(JobOutbox, row_id)


class TestOutbox:
    async def test_sent_after_commit_and_row_removed_when_done(self, server: LiveServer) -> None:
        server.rt.jobs.declare_actors()
        async with unit_of_work() as session:
            row = await enqueue(session, record_job, tag="committed")
        await wait_until(lambda: _async(lambda: "committed" in SEEN))
        await wait_until(lambda: _gone(row.id))

    async def test_rolled_back_job_never_runs(self, server: LiveServer) -> None:
        server.rt.jobs.declare_actors()
        with pytest.raises(RuntimeError):
            async with unit_of_work() as session:
                row = await enqueue(session, record_job, tag="rolled-back")
                raise RuntimeError("abort the unit of work")
        assert await outbox_row(row.id) is None
        async with unit_of_work() as session:  # a later job still runs, the rolled-back one never
            await enqueue(session, record_job, tag="after-rollback")
        await wait_until(lambda: _async(lambda: "after-rollback" in SEEN))
        assert "rolled-back" not in SEEN

    async def test_lost_message_is_resent_by_the_relay(self, server: LiveServer) -> None:
        # As if Redis restarted (or a worker died) after the message was sent: the row is still here.
        server.rt.jobs.declare_actors()
        async with unit_of_work() as session:
            row = JobOutbox(
                actor="tests.record",
                kwargs={"tag": "lost"},
                sent_at=utcnow() - timedelta(minutes=10),
                sends=1,
                created_at=utcnow() - timedelta(minutes=10),
            )
            session.add(row)
        await wait_until(lambda: _async(lambda: "lost" in SEEN), timeout=20)
        await wait_until(lambda: _gone(row.id))

    async def test_job_failing_past_retries_is_marked_failed(self, server: LiveServer) -> None:
        server.rt.jobs.declare_actors()
        async with unit_of_work() as session:
            row = await enqueue(session, always_fails, tag="x")

        async def failed() -> bool:
            r = await outbox_row(row.id)
            return r is not None and r.failed_at is not None

        await wait_until(failed, timeout=20)
        r = await outbox_row(row.id)
        assert r is not None and r.error == "RuntimeError: boom x"
        async with unit_of_work(readonly=True) as session:  # the relay leaves failed rows alone
            assert (await session.scalar(select(JobOutbox.sends).where(JobOutbox.id == row.id))) == 1


async def _gone(row_id: int) -> bool:
    return await outbox_row(row_id) is None


async def _async(fn):  # type: ignore[no-untyped-def]
    return fn()
