"""Form and query parsing the panel pages share. Each helper reads one kind of field the way people type
it and, when it cannot, puts the page's own message in `errors` by the field's name (the page shows it
next to the field) instead of raising: a page collects every complaint before it answers 422."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, timedelta
from enum import Enum
from typing import TypeVar
from urllib.parse import urlencode

E = TypeVar("E", bound=Enum)

DATE_HINT = "Use a date like 2025-03-31."
END_BEFORE_START = "The end date is before the start date."


def choice(kind: type[E], raw: str, field: str, errors: dict[str, str], message: str) -> E | None:
    """One of an enum's values (a status, source, channel...), or None when left empty; anything else
    puts `message` in errors[field]."""
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        errors[field] = message
        return None


def parse_uuid(raw: str, field: str, errors: dict[str, str], message: str) -> uuid.UUID | None:
    """A form field's id, or None when left empty; a malformed one puts `message` in errors[field]."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        errors[field] = message
        return None


def parse_whole(raw: str, *, max_digits: int | None = 9) -> int | None:
    """A whole number as people type it ("1,000", "KES 20"): shillings, counts, ports. None when it is
    not one (or has more than `max_digits` digits)."""
    text = raw.replace(",", "").replace(" ", "").strip()
    if text.upper().startswith("KES"):
        text = text[3:]
    if not text.isascii() or not text.isdigit():
        return None
    if max_digits is not None and len(text) > max_digits:
        return None
    return int(text)


# -- dates ------------------------------------------------------------------------------------------
def parse_day(
    raw: str, field: str, errors: dict[str, str], message: str = DATE_HINT, *, required: bool = False
) -> date | None:
    """A YYYY-MM-DD field (a Nairobi calendar day), or None when left empty (an error too when
    `required`); a malformed one puts `message` in errors[field]."""
    text = raw.strip()
    if not text:
        if required:
            errors[field] = message
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = message
        return None


def day_range(
    raw_from: str,
    raw_to: str,
    errors: dict[str, str],
    *,
    max_days: int | None = None,
    today: date | None = None,
    default_days: int = 30,
) -> tuple[date | None, date | None]:
    """The "from" and "to" fields as Nairobi days, both included. With `today`, an empty "to" is today
    and an empty "from" starts the `default_days` days that end at "to". When both ends are understood,
    an end before the start is refused on "to", and a period of `max_days` days or more on "from"."""
    found: dict[str, str] = {}
    first = parse_day(raw_from, "from", found)
    last = parse_day(raw_to, "to", found)
    if today is not None:
        last = last or today
        first = first or last - timedelta(days=default_days - 1)
    if not found and first is not None and last is not None:
        if first > last:
            found["to"] = END_BEFORE_START
        elif max_days is not None and (last - first).days >= max_days:
            found["from"] = f"Choose at most {max_days} days."
    errors.update(found)
    return first, last


# -- pages ------------------------------------------------------------------------------------------
def int_cursor(raw: str, errors: dict[str, str], field: str = "before") -> int | None:
    """A numeric keyset cursor (the last row id of the page before), or None for the first page."""
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        errors[field] = "This page link is damaged: go back to the first page."
        return None
    return int(raw)


def page_url(path: str, params: Mapping[str, str], **more: str | int | None) -> str:
    """A link to another page of a list that keeps its filters: the non-empty `params`, then `more`
    (a cursor or page number; None or empty leaves it out)."""
    query = {k: v for k, v in {**params, **more}.items() if v is not None and v != ""}
    return path + ("?" + urlencode(query) if query else "")


# -- passwords --------------------------------------------------------------------------------------
def check_new_password(
    password: str,
    confirm: str,
    errors: dict[str, str],
    *,
    missing: str,
    field: str = "password",
    mismatch: str = "The two passwords are not the same.",
) -> None:
    """A new password typed twice: `missing` on `field` when empty, `mismatch` on confirm_password."""
    if not password:
        errors[field] = missing
    elif password != confirm:
        errors["confirm_password"] = mismatch
