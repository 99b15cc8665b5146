"""The deadlock safety net (core.retry): two transactions that lock the same two rows in opposite
orders deadlock for real; Postgres aborts one, and `retrying` runs it again so both land. Out of
attempts, the victim is `Busy` (503 "try again"), never a raw database error (a 500).

Postgres only: SQLite serialises writers, so two transactions can never hold a lock each.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import REGISTRY, use_case
from core.customers.models import Customer
from core.customers.service import customers
from core.db import utcnow
from core.errors import Busy
from core.retry import DEADLOCK_DETECTED, conflict_sqlstate, retrying
from core.runtime import unit_of_work
from core.tenants.models import Mode
from tests.conftest import LiveServer
from tests.support import services
from tests.support.factories import make_tenant

pytestmark = pytest.mark.skipif(
    not services.PG_URL, reason="Postgres only: SQLite serialises writers, so nothing can deadlock"
)

FIRST, SECOND = "254722600001", "254722600002"


async def _two_customers() -> uuid.UUID:
    tenant, _ = await make_tenant(name="Deadlock Duka")
    async with unit_of_work() as session:
        for phone in (FIRST, SECOND, FIRST, SECOND):  # two requests each, for the two payments below
            await customers.record_request(
                session, tenant_id=tenant.id, mode=Mode.live, phone=phone, name=None, amount=10, at=utcnow()
            )
    return tenant.id


Work = Callable[[], Awaitable[str]]


def _crossed(tenant_id: uuid.UUID) -> tuple[Work, Work, list[str]]:
    """Two units of work, each counting a payment on both customers, in opposite orders. On its first
    attempt each waits, holding its first row, until the other holds its own: a certain deadlock."""
    holding = {FIRST: asyncio.Event(), SECOND: asyncio.Event()}
    attempts: list[str] = []

    def work(first: str, then: str) -> Work:
        async def run() -> str:
            attempts.append(first)
            async with unit_of_work() as session:
                await customers.record_paid(
                    session, tenant_id=tenant_id, mode=Mode.live, phone=first, amount=5, at=utcnow()
                )
                holding[first].set()
                await holding[then].wait()
                await customers.record_paid(
                    session, tenant_id=tenant_id, mode=Mode.live, phone=then, amount=5, at=utcnow()
                )
            return first

        return run

    return work(FIRST, SECOND), work(SECOND, FIRST), attempts


async def _paid_counts(tenant_id: uuid.UUID) -> dict[str, int]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.execute(
            select(Customer.phone, Customer.paid_count).where(Customer.tenant_id == tenant_id)
        )
        return {phone: int(count) for phone, count in rows.all()}


class TestRetrying:
    async def test_a_deadlock_victim_runs_again_and_both_land(self, server: LiveServer) -> None:
        tenant_id = await _two_customers()
        one, other, attempts = _crossed(tenant_id)
        done = await asyncio.gather(
            retrying(one, what="first then second"), retrying(other, what="second then first")
        )
        assert sorted(done) == [FIRST, SECOND]
        assert len(attempts) == 3  # each once, and Postgres's victim a second time
        assert await _paid_counts(tenant_id) == {FIRST: 2, SECOND: 2}

    async def test_out_of_attempts_the_victim_is_busy_and_saves_nothing(self, server: LiveServer) -> None:
        tenant_id = await _two_customers()
        one, other, attempts = _crossed(tenant_id)
        outcomes = await asyncio.gather(
            retrying(one, what="first then second", attempts=1),
            retrying(other, what="second then first", attempts=1),
            return_exceptions=True,
        )
        [won] = [o for o in outcomes if isinstance(o, str)]
        [lost] = [o for o in outcomes if not isinstance(o, str)]
        assert isinstance(lost, Busy)
        assert (lost.code, lost.status, lost.fields) == ("busy", 503, {"retry_after": 1})
        assert conflict_sqlstate(lost.__cause__) == DEADLOCK_DETECTED
        assert lost.message == (
            "Too many changes to the same records at once, so this was not saved. Try again in a moment."
        )
        assert len(attempts) == 2
        assert won in (FIRST, SECOND)
        # the winner counted a payment on both; the victim's first row was rolled back with it
        assert await _paid_counts(tenant_id) == {FIRST: 1, SECOND: 1}


class TestUseCaseFrame:
    async def test_a_victim_the_use_case_did_not_retry_is_busy(self, server: LiveServer) -> None:
        """A use case that does not retry (its body may not run twice) still never lets Postgres's
        abort through as an unknown error: the frame turns it into Busy, which every front end renders
        (the API: 503 in the error envelope)."""

        @use_case(Permission.payments_request, recorded_by="nothing: a test of the frame")
        async def crossed(actor: Actor, work: Work) -> str:
            return await work()

        try:
            tenant_id = await _two_customers()
            one, other, attempts = _crossed(tenant_id)
            actor = Actor.system(tenant_id=tenant_id)
            runs = (crossed(actor, one), crossed(actor, other))
            outcomes = await asyncio.gather(*runs, return_exceptions=True)
        finally:
            del REGISTRY[crossed.spec.name]  # type: ignore[attr-defined]
        assert len(attempts) == 2
        [lost] = [o for o in outcomes if not isinstance(o, str)]
        assert isinstance(lost, Busy)
        assert (lost.code, lost.status) == ("busy", 503)
        assert conflict_sqlstate(lost.__cause__) == DEADLOCK_DETECTED
