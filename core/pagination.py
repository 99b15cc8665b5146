"""Keyset-pagination cursors: one encoding for every list (payments, the admin's transactions,
vouchers). A cursor is the sort key of the last row shown — its time and id, and optionally which
way to go — as URL-safe base64 of a JSON list, so it fits in a link and says nothing secret."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from core.errors import InvalidInput

NEWER = "newer"


def encode_cursor(at: datetime, row_id: uuid.UUID, *, newer: bool = False) -> str:
    parts = [at.isoformat(), str(row_id)] + ([NEWER] if newer else [])
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, message: str) -> tuple[datetime, uuid.UUID, bool]:
    """(time, id, newer); anything else (cut short, edited, naive time) is `InvalidInput` on "cursor"
    with `message`, which tells the person what to do in the words of the page they are on."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) not in (2, 3) or parts[2:] not in ([], [NEWER]):
            raise ValueError
        at = datetime.fromisoformat(parts[0])
        if at.tzinfo is None:
            raise ValueError
        return at, uuid.UUID(parts[1]), len(parts) == 3
    except Exception:
        raise InvalidInput("cursor", message) from None
