"""Storing an answer (before Daraja hears 200) and applying it (in a job, once)."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.context import current_request
from core.db import utcnow
from core.jobs.registry import JobSpec, enqueue
from core.mpesa_inbox.kinds import CallbackKind
from core.mpesa_inbox.registry import HANDLERS, NotYetMatched
from core.payments.models import CallbackInbox
from core.tenants.models import MpesaChannel
from core.text import has_unstorable

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
# An answer may beat our record of its request (Daraja answered the POST and called back before we
# committed): it is retried this long before it is called orphaned.
ORPHAN_AFTER = timedelta(minutes=2)


def reference_of(kind: CallbackKind, data: Any) -> str | None:
    """What the answer names: a Result's ConversationID, a C2B confirmation's TransID."""
    if not isinstance(data, dict):
        return None
    if kind is CallbackKind.c2b_confirmation:
        value = data.get("TransID")
    else:
        result = data.get("Result")
        value = result.get("ConversationID") if isinstance(result, dict) else None
    return str(value)[:64] if isinstance(value, str | int) and str(value) else None


async def ingest(
    session: AsyncSession,
    *,
    channel: MpesaChannel,
    kind: CallbackKind,
    body: bytes,
    remote_addr: str | None,
    job: JobSpec,
) -> CallbackInbox:
    """Keep the body as it came and queue its application. A body no database can hold (NUL, lone
    surrogates) is kept with those characters replaced and recorded as rejected, with no job."""
    text = body[:MAX_BODY].decode("utf-8", errors="replace")
    data: Any = None
    with contextlib.suppress(ValueError):
        data = json.loads(text)
    unreadable = "\x00" in text or has_unstorable(data)
    req = current_request()
    row = CallbackInbox(
        channel_id=channel.id,
        kind=kind.value,
        reference=None if unreadable else reference_of(kind, data),
        payload=text.replace("\x00", "\ufffd"),
        remote_addr=remote_addr,
        request_id=req.request_id if req else None,
    )
    session.add(row)
    await session.flush()
    if unreadable:
        _done(row, "rejected", "the body holds text no database can store")
        return row
    await enqueue(session, job, inbox_id=row.id)
    return row


async def process(session: AsyncSession, *, inbox_id: int, settings: Settings) -> str:
    """Apply one stored answer through its kind's handler. Safe to run any number of times: a row is
    applied once (processed_at), and handlers are idempotent on what the answer names, so a second
    delivery of the same answer (another row) changes nothing either."""
    row = await session.get(CallbackInbox, inbox_id, with_for_update=True)
    if row is None or row.processed_at is not None:
        return "skipped"
    try:
        kind = CallbackKind(row.kind)
        data = json.loads(row.payload)
    except ValueError as exc:
        return _done(row, "malformed", str(exc)[:500])
    handler = HANDLERS.get(kind)
    if handler is None:  # a kind whose domain is not installed: kept for when it is
        return _done(row, "unhandled", f"no handler for {kind.value} callbacks")
    try:
        outcome = await handler(session, row, data, settings)
    except NotYetMatched as exc:
        if utcnow() - row.received_at < ORPHAN_AFTER:
            raise
        return _done(row, "orphan", str(exc)[:500] or "it names no request we made")
    except ValueError as exc:  # the handler's parser: not the shape Daraja sends
        return _done(row, "malformed", str(exc)[:500])
    return _done(row, outcome, row.error)  # a handler may have said why (a rejection's reason)


def _done(row: CallbackInbox, outcome: str, error: str | None = None) -> str:
    row.processed_at = utcnow()
    row.outcome = outcome[:32]
    row.error = error
    if error:
        log.warning("daraja answer %s (%s) %s: %s", row.id, row.kind, outcome, error)
    return outcome
