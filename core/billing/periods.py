"""Report periods in Nairobi calendar days: a preset (this month, last month, the last 7 days) or two
dates, both included, of at most a year. The admin's Commissions page reports over one of these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.errors import InvalidInput

EAT = ZoneInfo("Africa/Nairobi")
MAX_PERIOD_DAYS = 366


def eat_midnight(day: date) -> datetime:
    """The start of a Nairobi calendar day, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=EAT)


@dataclass(frozen=True)
class Period:
    """Nairobi calendar days `first`..`last`, both included; `preset` names how it was chosen."""

    first: date
    last: date
    preset: str = "custom"

    @property
    def since(self) -> datetime:
        return eat_midnight(self.first)

    @property
    def until(self) -> datetime:
        return eat_midnight(self.last + timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


PRESETS = {"this_month": "This month", "last_month": "Last month", "last_7_days": "Last 7 days"}


def preset_period(preset: str, *, today: date) -> Period:
    """This month (to today), last month (whole), or the last 7 days (today included)."""
    if preset == "this_month":
        return Period(today.replace(day=1), today, preset)
    if preset == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last, preset)
    if preset == "last_7_days":
        return Period(today - timedelta(days=6), today, preset)
    raise InvalidInput("period", "Choose one of the listed periods.")


def custom_period(first: date, last: date) -> Period:
    if last < first:
        raise InvalidInput("to", "The end date is before the start date.")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput("to", f"Choose a period of at most {MAX_PERIOD_DAYS} days.")
    return Period(first, last)
