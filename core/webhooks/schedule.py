"""When a failed delivery is tried again, and when an endpoint that keeps failing is switched off.

Pure functions over times, so the outbox job, replay and tests share one definition. The schedule is
Svix's published one: eight attempts, each timed from the previous failure, ~27.6 h in all.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# RETRY_SCHEDULE[n] is the wait before attempt n + 1 (attempt 1 goes at once).
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE)
# An endpoint with no successful delivery for this long, while it kept being sent events, is disabled
# and its owner told.
DISABLE_AFTER = timedelta(days=5)


def next_attempt_at(
    attempt_number: int, failed_at: datetime, retry_after: int | None = None
) -> datetime | None:
    """When to make the attempt after attempt `attempt_number` (1-based) failed at `failed_at`; None
    when that was the last one (the message is then marked failed; replay can still send it).

    A receiver's Retry-After (seconds, already capped by delivery.parse_retry_after) can only make the
    wait longer than the schedule's, never shorter: a busy receiver is not hammered by asking.
    """
    if attempt_number < 1:
        raise ValueError("attempts are numbered from 1")
    if attempt_number >= MAX_ATTEMPTS:
        return None
    wait = RETRY_SCHEDULE[attempt_number]
    if retry_after is not None:
        wait = max(wait, timedelta(seconds=retry_after))
    return failed_at + wait


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """Whether an endpoint is switched off at `now` (checked after each failed attempt).

    `failing_since` is the first failure after its last success (None while it is healthy): every
    success clears it, so only an endpoint that delivered nothing for DISABLE_AFTER is disabled, however
    few events it was sent meanwhile. A 410 disables at once, outside this rule.
    """
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
