"""The API request log, written off the request path.

The web middleware (web/usage_middleware.py) hands each /api request made by a known caller to
`UsageRecorder.record`, which only appends to a list in memory. A task of the process inserts what
was gathered in one batch every USAGE_FLUSH_SECONDS (and `close()` does at shutdown), so a request
never waits on the log's insert, and the log costs one transaction a second however busy the API is.

What this trades: a process killed outright (SIGKILL, out of memory, power) loses the rows it had not
inserted yet, at most USAGE_FLUSH_SECONDS of its requests. That is acceptable for usage figures and
the request log; nothing that moves or counts money is kept this way (payments, the ledger and the
plan's push quota are written in the request's own transaction). When the database cannot be reached
the rows wait in memory for the next flush, up to MAX_BUFFERED, after which the oldest are dropped
with a warning rather than letting one database outage grow the process without bound.

Whose request it was is settled at flush time, in one query per batch: the edge keeps only the SHA-256
of an API key (as the keys table does, never the key itself) and its 12-character display prefix, or a
login token's business, read from its verified signature. A key found by its hash is the caller; a
refused key whose prefix names exactly one key of one business counts for that business and key (a
system using a revoked, expired or mistyped key, or someone guessing); any other request is not
logged (it belongs to nobody we could tell).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.models import ApiKey
from core.db import Scope
from core.runtime import unit_of_work
from core.tenants.models import Mode, Tenant
from core.usage.alerts import KeyUse, check_batch
from core.usage.models import ApiRequest

log = logging.getLogger(__name__)

# A flush of requests of every business that called in the last second: the keys are looked up by
# their hash across businesses, as at sign-in.
FLUSH_SCOPE = Scope.platform("usage log: a batch of API requests of any business")
MAX_BUFFERED = 50_000
UNMATCHED_ROUTE = "(no route)"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who presented credentials, as far as the edge can tell without the database."""

    key_hash: str | None = None  # an API key: its SHA-256, as api_keys.key_hash
    key_prefix: str | None = None  # its first 12 characters (api_keys.prefix)
    tenant_id: uuid.UUID | None = None  # a login token: the business its verified claims name


@dataclass(frozen=True, slots=True)
class RequestFacts:
    caller: Caller
    method: str
    route: str  # the route template, never the path with its ids
    status_code: int
    latency_ms: int
    request_id: str | None
    network: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class _KeyRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    app_id: uuid.UUID | None
    mode: Mode


async def _keys_by(session: AsyncSession, column: Any, values: set[str]) -> dict[str, list[_KeyRow]]:
    found: dict[str, list[_KeyRow]] = defaultdict(list)
    if not values:
        return found
    rows = await session.execute(
        select(column, ApiKey.id, ApiKey.tenant_id, ApiKey.app_id, ApiKey.mode).where(column.in_(values))
    )
    for value, key_id, tenant_id, app_id, mode in rows:
        found[value].append(_KeyRow(key_id, tenant_id, app_id, mode))
    return found


async def store(batch: list[RequestFacts]) -> tuple[int, list[KeyUse], set[uuid.UUID]]:
    """Insert `batch` into the log in one transaction. Returns how many rows were written, the uses of
    keys that authenticated (for the new-network check) and the businesses whose keys were refused
    in it (for the refused-keys check)."""
    async with unit_of_work(scope=FLUSH_SCOPE) as session:
        by_hash = await _keys_by(
            session, ApiKey.key_hash, {f.caller.key_hash for f in batch if f.caller.key_hash}
        )
        prefixes = {
            f.caller.key_prefix
            for f in batch
            if f.caller.key_hash and f.caller.key_prefix and f.caller.key_hash not in by_hash
        }
        by_prefix = await _keys_by(session, ApiKey.prefix, prefixes)
        # A login token names the business it was signed for, which may have been deleted since: its
        # rows would fail the tenant foreign key and take the whole batch with them.
        named = {f.caller.tenant_id for f in batch if f.caller.tenant_id is not None}
        existing = set(await session.scalars(select(Tenant.id).where(Tenant.id.in_(named))) if named else [])
        rows: list[dict[str, Any]] = []
        uses: list[KeyUse] = []
        refused: set[uuid.UUID] = set()
        for f in batch:
            key: _KeyRow | None = None
            if f.caller.key_hash:
                matches = by_hash.get(f.caller.key_hash) or by_prefix.get(f.caller.key_prefix or "", [])
                if len(matches) != 1:
                    continue  # an unknown key, or a prefix several keys share: nobody's for sure
                key = matches[0]
                tenant_id = key.tenant_id
            elif f.caller.tenant_id in existing:
                tenant_id = f.caller.tenant_id
            else:
                continue
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "api_key_id": key.id if key else None,
                    "app_id": key.app_id if key else None,
                    "mode": key.mode if key else None,
                    "method": f.method[:8],
                    "route": f.route[:200],
                    "status_code": f.status_code,
                    "latency_ms": f.latency_ms,
                    "request_id": f.request_id,
                    "network": f.network,
                    "created_at": f.at,
                }
            )
            if key is None:
                continue
            if f.status_code == 401:
                refused.add(key.tenant_id)
            elif f.network is not None and f.caller.key_hash in by_hash:
                uses.append(KeyUse(key.id, key.tenant_id, f.network, f.at))
        if rows:
            await session.execute(insert(ApiRequest), rows)
    return len(rows), uses, refused


class UsageRecorder:
    """One per process (web/usage_middleware.py makes it with the app). `record` is called on the
    request path and never waits; the flushing task starts with the first request of each loop."""

    def __init__(self, *, flush_every: float, max_buffered: int = MAX_BUFFERED) -> None:
        self.flush_every = flush_every
        self.max_buffered = max_buffered
        self._pending: list[RequestFacts] = []
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, facts: RequestFacts) -> None:
        if len(self._pending) >= self.max_buffered:
            self._pending.pop(0)
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("usage log: %d rows dropped, the database is not taking them", self.dropped)
        self._pending.append(facts)
        if (self._task is None or self._task.done()) and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-log-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            try:
                await self.flush()
            except Exception:
                log.exception("usage log: flush failed; its rows wait for the next one")

    async def flush(self) -> int:
        """Write what was gathered so far (rows recorded while it runs wait for the next flush), then
        run the checks that raise alerts, in a transaction of their own: a failure there must not lose
        the log rows. Flushes run one at a time, so once one returns, everything recorded before it was
        called is written and checked. Returns the number of log rows written."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                written, uses, refused = await store(batch)
            except (IntegrityError, DataError):
                # The database refuses these rows themselves: trying them again would refuse them again,
                # and every later row with them.
                self.dropped += len(batch)
                log.exception("usage log: a batch of %d rows was refused and is dropped", len(batch))
                return 0
            except BaseException:
                # The database could not be reached (or we are stopping): put them back in front of
                # what came meanwhile, still within the bound, for the next flush.
                keep = max(0, self.max_buffered - len(self._pending))
                self._pending[:0] = batch[-keep:] if keep else []
                raise
            try:
                await check_batch(uses=uses, refused=refused)
            except Exception:
                log.exception("usage log: the alert checks failed for a batch (its rows are saved)")
            return written

    async def close(self) -> None:
        """At shutdown: stop the timer and write what is left."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.flush()
        except Exception:
            log.exception("usage log: the last flush at shutdown failed; %d rows lost", len(self._pending))
