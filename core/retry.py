"""A bounded retry for a transaction Postgres aborted to break a deadlock or a serialization conflict.

Our own paths take their row locks in one global order (core/ledger/service.py says which), so they
should never deadlock one another. This is the safety net for what that order does not cover: Postgres
picks one transaction of a cycle as the victim (SQLSTATE 40P01) or refuses a conflicting serializable
write (40001); the victim's work is all rolled back, so running it again is safe. After `ATTEMPTS`
tries it gives up with `Busy` (503, "try again"), never a 500.

Only wrap a callable whose effects are all inside the database: it opens its own unit of work, and
nothing in it reaches the outside before that commits (jobs are sent after commit, so they are fine).
Never wrap a call to Daraja: an STK push has no idempotency key, so running it again sends the customer
a second prompt (DESIGN: a push is never retried automatically). `core.payments.push` retries the
transaction that records a push and, separately, each that records Daraja's answer, never the call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from core.errors import Busy
from core.jobs.registry import running_job

T = TypeVar("T")
log = logging.getLogger(__name__)

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
RETRYABLE_SQLSTATES = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})

ATTEMPTS = 3
# The first retry waits up to 50 ms, the second up to 100 ms: a random share, so the victims of one
# cycle do not all come back at the same instant and collide again.
BACKOFF_SECONDS = 0.05

BUSY_MESSAGE = "Too many changes to the same records at once, so this was not saved. Try again in a moment."


def conflict_sqlstate(exc: BaseException) -> str | None:
    """40P01 or 40001 when `exc` is Postgres aborting a transaction to break a conflict, else None.
    (SQLAlchemy wraps the driver's error; asyncpg's adapter carries the SQLSTATE as `sqlstate`.)"""
    if not isinstance(exc, DBAPIError):
        return None
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code if code in RETRYABLE_SQLSTATES else None


def busy(message: str = BUSY_MESSAGE) -> Busy:
    """The error a front end shows for a conflict that retrying did not resolve. The API also says
    when to come back (`retry_after`, and a Retry-After header): a second is plenty for a lock."""
    return Busy(message, retry_after=1)


async def retrying(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int = ATTEMPTS,
    busy_message: str = BUSY_MESSAGE,
) -> T:
    """Run `work` (which opens and commits its own unit of work) again when Postgres aborted it as a
    deadlock or serialization victim, up to `attempts` times in all; then raise `Busy`. Any other
    error goes straight through. `what` names the work in the log."""
    job = running_job.get()
    outbox_id = job.outbox_id if job is not None else None
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except DBAPIError as exc:
            code = conflict_sqlstate(exc)
            if code is None:
                raise
            if job is not None and job.outbox_id is None:
                # The failed attempt took the job's outbox row to delete with its commit, which never
                # happened: hand it to the next attempt, so finishing the job still deletes it.
                job.outbox_id = outbox_id
            if attempt == attempts:
                log.warning("%s: gave up after %d attempts (SQLSTATE %s)", what, attempts, code)
                raise busy(busy_message) from exc
            log.info("%s: attempt %d aborted by Postgres (SQLSTATE %s); retrying", what, attempt, code)
            await asyncio.sleep(random.uniform(0, BACKOFF_SECONDS * 2 ** (attempt - 1)))
    raise AssertionError("unreachable: the last attempt returns or raises")
