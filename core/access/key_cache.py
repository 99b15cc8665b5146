"""Who an API key is, remembered per process, so a request with a known key skips its own transaction.

Every API request used to open a transaction of its own to read the key's row by its hash (a pool
checkout, `set_config`, the SELECT, the commit): one of the three transactions of an STK push
(bench/push_roundtrips.py). Here the answer (`Principal`) is kept for
`TTL_SECONDS`, and only while the key set has not changed since:

- Any transaction that changes a key's row (revoke, roll, a bulk UPDATE or DELETE of `api_keys`) or
  deletes a row whose deletion reaches keys by cascade (tenants, apps, users) is noticed by the ORM
  events below. This process forgets every key the moment it commits (`after_commit`); every other
  process learns it from a counter in Redis, incremented once that commit is done
  (`core.runtime.unit_of_work` awaits `changed()` before it returns). Each use of a remembered key
  reads that counter (one Redis GET, far cheaper than the transaction): a revoked key is refused at
  once by every process, as before.
- Without Redis (SQLite, `serve` alone) nothing is remembered: another process (`lipapush apikey revoke`
  in a shell) could revoke a key this one would go on accepting. Redis unreachable: not remembered
  either, for as long as it lasts.
- The TTL is the net under what no event sees (SQL typed by hand): a change made that way reaches a
  process within `TTL_SECONDS`. It also keeps `last_used_at` current: the key's own read, which stamps
  it once a minute (core.auth), runs at least every `TTL_SECONDS` for a key in use.

A key never found is never remembered: a made-up key costs its lookup every time, as before."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from core.auth.models import ApiKey
from core.auth.schemas import Principal

log = logging.getLogger(__name__)

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000  # past this the cache starts over: a bound, not a policy (one entry per live key)
CHANGED = "lipapush_api_keys_changed"  # session.info flag: this transaction changed what keys resolve to
# Tables whose changes reach what a key resolves to: its own row, and (by cascade) its business, app, owner.
CASCADING = frozenset({"tenants", "apps", "users"})
# What the key's own read stamps on its row (core.auth): no change to what the key resolves to.
USE_STAMPS = frozenset({"last_used_at", "last_used_network"})


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    expires_at: datetime | None  # a rolled key's end: past it, the key's own read gives the refusal
    version: bytes
    until: float  # time.monotonic() past which the row is read again


_entries: dict[tuple[str, str], _Entry] = {}


def _version_key(namespace: str) -> str:
    return f"{namespace}:api-keys:version"


async def _version(redis: Any, namespace: str) -> bytes | None:
    """The key set's version, or None when Redis cannot say (then nothing is remembered)."""
    try:
        value = await redis.get(_version_key(namespace))
    except Exception as exc:  # an outage must not refuse keys: read every key's row meanwhile
        log.debug("api key cache: version unavailable (%s)", type(exc).__name__)
        return None
    return value if isinstance(value, bytes) else str(value or "").encode()


async def lookup(
    redis: Any, namespace: str, key_hash: str, now: datetime
) -> tuple[Principal | None, bytes | None]:
    """The remembered principal of `key_hash` when still valid, and the version to store a fresh one
    under (None: do not store)."""
    if redis is None:
        return None, None
    version = await _version(redis, namespace)
    if version is None:
        return None, None
    entry = _entries.get((namespace, key_hash))
    if (
        entry is not None
        and entry.version == version
        and entry.until > time.monotonic()
        and (entry.expires_at is None or entry.expires_at > now)
    ):
        return entry.principal, version
    return None, version


def remember(
    namespace: str, key_hash: str, principal: Principal, *, expires_at: datetime | None, version: bytes
) -> None:
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[(namespace, key_hash)] = _Entry(
        principal, expires_at, version, until=time.monotonic() + TTL_SECONDS
    )


def forget_all() -> None:
    _entries.clear()


async def changed(redis: Any, namespace: str) -> None:
    """After a commit that changed keys: every process reads their rows again."""
    forget_all()
    if redis is None:
        return
    try:
        await redis.incr(_version_key(namespace))
    except Exception as exc:
        # Readers that cannot reach Redis do not use the cache; those that can will see the change
        # within TTL_SECONDS.
        log.warning("api key cache: could not announce a key change (%s)", type(exc).__name__)


# -- noticing changes ------------------------------------------------------------------------------
def _touches_keys(session: Session) -> bool:
    for obj in session.dirty:
        if isinstance(obj, ApiKey):
            state = inspect(obj)
            if any(a.key not in USE_STAMPS and a.history.has_changes() for a in state.attrs):
                return True
    for obj in session.deleted:
        if isinstance(obj, ApiKey) or getattr(obj, "__tablename__", None) in CASCADING:
            return True
    return False


@event.listens_for(Session, "before_flush")
def _note_flush(session: Session, _flush_context: UOWTransaction, _instances: object) -> None:
    if _touches_keys(session):
        session.info[CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    statement = state.statement
    table = getattr(getattr(statement, "table", None), "name", None)
    if state.is_delete and table in CASCADING:
        state.session.info[CHANGED] = True
    elif table == ApiKey.__tablename__:
        # `_values` is the UPDATE's SET clause; a form we cannot read counts as a change.
        values = getattr(statement, "_values", None) or {}
        columns = {getattr(c, "key", None) or getattr(c, "name", None) or str(c) for c in values}
        if state.is_delete or not columns or not columns <= USE_STAMPS:
            state.session.info[CHANGED] = True


@event.listens_for(Session, "after_commit")
def _forget_here(session: Session) -> None:
    # This process at once, whoever committed (a test's own session too); other processes through
    # `changed`, which the unit of work awaits.
    if session.info.get(CHANGED):
        forget_all()
