from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.webhooks.schedule import MAX_ATTEMPTS, next_attempt_at, should_disable

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_svix_schedule_from_each_failure() -> None:
    waits = []
    for attempt in range(1, MAX_ATTEMPTS):
        at = next_attempt_at(attempt, T0)
        assert at is not None
        waits.append(at - T0)
    assert waits == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    ]
    assert MAX_ATTEMPTS == 8
    assert next_attempt_at(8, T0) is None
    with pytest.raises(ValueError, match="numbered from 1"):
        next_attempt_at(0, T0)


def test_retry_after_only_lengthens_the_wait() -> None:
    assert next_attempt_at(1, T0, retry_after=120) == T0 + timedelta(seconds=120)
    assert next_attempt_at(3, T0, retry_after=120) == T0 + timedelta(minutes=30)
    assert next_attempt_at(2, T0, retry_after=0) == T0 + timedelta(minutes=5)
    assert next_attempt_at(8, T0, retry_after=60) is None


def test_disabled_after_five_days_without_a_success() -> None:
    assert not should_disable(None, T0)
    assert not should_disable(T0, T0 + timedelta(days=5) - timedelta(seconds=1))
    assert should_disable(T0, T0 + timedelta(days=5))
    assert should_disable(T0, T0 + timedelta(days=9))
