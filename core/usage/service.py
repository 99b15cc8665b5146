"""Reading the API request log: the figures (last 24 hours, this Nairobi month), the log itself and the
rows of its export. Every read is of one business (`tenant_id`), optionally one app or one key.

Counted the same way everywhere (the API, the panel, the bot and the export agree because they all
read through here):
- a request: any logged request, whatever its answer;
- a push: POST /api/stk-push answered 2xx (the payment was recorded and sent to M-Pesa), or the MCP
  tool request_payment answered without error (core.agents.calls logs it as `MCP /mcp/request_payment`);
- a success: answered 2xx or 3xx; a failure: 4xx or 5xx (a 401 is a refused key).

Latency percentiles are interpolated between the two nearest requests, as Postgres's percentile_cont:
computed by Postgres there, and from the window's latencies on SQLite (the embedded single-machine
database, whose log is small), with the same result.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.apps.models import App
from core.apps.service import apps as app_service
from core.auth.models import ApiKey
from core.db import utcnow
from core.errors import InvalidInput
from core.tenants.models import Mode
from core.usage.models import ApiRequest
from core.usage.schemas import (
    AppUsage,
    Counts,
    EndpointUsage,
    KeyUsage,
    PeriodUsage,
    RequestOut,
    RequestPage,
    StatusClass,
    UsageOut,
)

NAIROBI = ZoneInfo("Africa/Nairobi")
PUSH_ROUTE = ("POST", "/api/stk-push")
MCP_PUSH_ROUTE = ("MCP", "/mcp/request_payment")
LOGIN_TOKENS = "Signed-in people (login tokens)"
BAD_CURSOR = "This cursor is not one this list gave: start again without it."


def month_start(now: datetime) -> datetime:
    """00:00 on the 1st of `now`'s month in Nairobi (EAT, UTC+3 all year), as a UTC-aware time."""
    local = now.astimezone(NAIROBI)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_label(now: datetime) -> str:
    return now.astimezone(NAIROBI).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which of a business's logged requests: one app's, one key's, of one status class or route."""

    app_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    status_class: StatusClass | None = None
    route: str | None = None
    method: str | None = None


def _where(tenant_id: uuid.UUID, f: RequestFilter) -> list[Any]:
    cond: list[Any] = [ApiRequest.tenant_id == tenant_id]
    if f.app_id is not None:
        cond.append(ApiRequest.app_id == f.app_id)
    if f.key_id is not None:
        cond.append(ApiRequest.api_key_id == f.key_id)
    if f.status_class is not None:
        low, high = f.status_class.bounds
        cond.append(ApiRequest.status_code.between(low, high))
    if f.route is not None:
        cond.append(ApiRequest.route == f.route)
    if f.method is not None:
        cond.append(ApiRequest.method == f.method.upper())
    return cond


def is_push() -> Any:
    return and_(
        or_(
            *(
                and_(ApiRequest.method == method, ApiRequest.route == route)
                for method, route in (PUSH_ROUTE, MCP_PUSH_ROUTE)
            )
        ),
        ApiRequest.status_code.between(200, 299),
    )


def count_where(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def interpolated(values: Sequence[int], q: float) -> float:
    """percentile_cont(q) of `values` (sorted): between the two nearest, as Postgres computes it."""
    if not values:
        return 0.0
    pos = q * (len(values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


class UsageService:
    async def figures(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        app_id: uuid.UUID | None = None,
        key_id: uuid.UUID | None = None,
        now: datetime | None = None,
    ) -> UsageOut:
        now = now or utcnow()
        day_start, mon_start = now - timedelta(hours=24), month_start(now)
        f = RequestFilter(app_id=app_id, key_id=key_id)
        since = min(day_start, mon_start)
        in_day, in_month = ApiRequest.created_at >= day_start, ApiRequest.created_at >= mon_start
        ok, failed = ApiRequest.status_code < 400, ApiRequest.status_code >= 400
        grouped = await session.execute(
            select(
                ApiRequest.app_id,
                ApiRequest.api_key_id,
                *(
                    count_where(and_(window, cond))
                    for window in (in_day, in_month)
                    for cond in (ApiRequest.id.is_not(None), is_push(), ok, failed)
                ),
            )
            .where(*_where(tenant_id, f), ApiRequest.created_at >= since)
            .group_by(ApiRequest.app_id, ApiRequest.api_key_id)
        )
        day: dict[tuple[uuid.UUID | None, uuid.UUID | None], Counts] = {}
        month: dict[tuple[uuid.UUID | None, uuid.UUID | None], Counts] = {}
        for app, key, *n in grouped:
            day[(app, key)] = Counts(requests=n[0], pushes=n[1], successes=n[2], failures=n[3])
            month[(app, key)] = Counts(requests=n[4], pushes=n[5], successes=n[6], failures=n[7])

        keys = await self._keys(session, tenant_id, f, {k for _, k in month if k is not None})
        app_ids = {a for a, _ in month} | {k.app_id for k in keys if k.app_id is not None}
        apps = await self._apps(session, tenant_id, f, app_ids)
        modes = {a.id: await app_service.mode_of(session, a) for a in apps}
        # Both periods list the same apps and keys, in the same order (a screen shows them side by side).
        logins = any(app is None and key is None for app, key in (*day, *month))
        periods = []
        for start, counts in ((day_start, day), (mon_start, month)):
            periods.append(
                PeriodUsage(
                    start=start,
                    end=now,
                    totals=_sum(counts.values()),
                    apps=_per_app(apps, modes, counts, logins=logins),
                    keys=_per_key(keys, counts),
                    endpoints=await self._endpoints(session, tenant_id, f, start),
                )
            )
        return UsageOut(
            app_id=app_id, key_id=key_id, last_24h=periods[0], this_month=periods[1], month=month_label(now)
        )

    async def _keys(
        self, session: AsyncSession, tenant_id: uuid.UUID, f: RequestFilter, used: set[uuid.UUID]
    ) -> list[ApiKey]:
        """The keys the figures list: every working one (of the app or the key asked about) and any
        other that made requests in the window, oldest first."""
        working: ColumnElement[bool] = ApiKey.revoked_at.is_(None)
        if f.app_id is not None:
            working = and_(working, ApiKey.app_id == f.app_id)
        if f.key_id is not None:
            working = and_(working, ApiKey.id == f.key_id)
        stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id, or_(working, ApiKey.id.in_(used)))
        return list(await session.scalars(stmt.order_by(ApiKey.created_at, ApiKey.id)))

    async def _apps(
        self, session: AsyncSession, tenant_id: uuid.UUID, f: RequestFilter, used: set[uuid.UUID | None]
    ) -> list[App]:
        shown: ColumnElement[bool]
        if f.key_id is not None:
            shown = App.id.in_({a for a in used if a is not None})
        else:
            shown = or_(App.archived_at.is_(None), App.id.in_({a for a in used if a is not None}))
            if f.app_id is not None:
                shown = App.id == f.app_id
        stmt = select(App).where(App.tenant_id == tenant_id, shown)
        return list(await session.scalars(stmt.order_by(App.created_at, App.id)))

    async def _endpoints(
        self, session: AsyncSession, tenant_id: uuid.UUID, f: RequestFilter, start: datetime
    ) -> list[EndpointUsage]:
        where = [*_where(tenant_id, f), ApiRequest.created_at >= start]
        latency = ApiRequest.latency_ms
        counted = [
            ApiRequest.method,
            ApiRequest.route,
            func.count(ApiRequest.id),
            count_where(ApiRequest.status_code >= 400),
            func.avg(latency),
        ]
        pg = session.bind is not None and session.bind.dialect.name == "postgresql"
        if pg:
            counted += [
                func.percentile_cont(0.5).within_group(latency),
                func.percentile_cont(0.95).within_group(latency),
            ]
        rows = (
            await session.execute(
                select(*counted).where(*where).group_by(ApiRequest.method, ApiRequest.route)
            )
        ).all()
        spread: dict[tuple[str, str], list[int]] = defaultdict(list)
        if not pg and rows:
            latencies = select(ApiRequest.method, ApiRequest.route, latency).where(*where).order_by(latency)
            for method, route, ms in await session.execute(latencies):
                spread[(method, route)].append(ms)
        out = []
        for row in rows:
            method, route, n, failures, avg = row[:5]
            if pg:
                p50, p95 = float(row[5]), float(row[6])
            else:
                values = spread[(method, route)]
                p50, p95 = interpolated(values, 0.5), interpolated(values, 0.95)
            out.append(
                EndpointUsage(
                    method=method,
                    route=route,
                    requests=n,
                    failures=failures,
                    p50_ms=round(p50, 1),
                    p95_ms=round(p95, 1),
                    avg_ms=round(float(avg), 1),
                )
            )
        out.sort(key=lambda e: (-e.requests, e.route, e.method))
        return out

    # -- the log ------------------------------------------------------------------------------------
    async def page(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        filters: RequestFilter,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RequestPage:
        """Newest first, `limit` at a time; `cursor` (a page's next_cursor) continues after that page."""
        stmt = self.log_statement(tenant_id, filters)
        if cursor:
            at, last_id = decode_cursor(cursor)
            stmt = stmt.where(
                or_(ApiRequest.created_at < at, and_(ApiRequest.created_at == at, ApiRequest.id < last_id))
            )
        rows = (await session.execute(stmt.limit(limit + 1))).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            RequestOut(
                id=r.id,
                created_at=r.created_at,
                method=r.method,
                route=r.route,
                status_code=r.status_code,
                latency_ms=r.latency_ms,
                api_key_id=r.api_key_id,
                key_prefix=r.prefix,
                app_id=r.app_id,
                mode=r.mode,
                network=r.network,
                request_id=r.request_id,
            )
            for r in rows
        ]
        last = items[-1] if more and items else None
        return RequestPage(items=items, next_cursor=encode_cursor(last.created_at, last.id) if last else None)

    def log_statement(self, tenant_id: uuid.UUID, filters: RequestFilter) -> Select[*tuple[Any, ...]]:
        return (
            select(
                ApiRequest.id,
                ApiRequest.created_at,
                ApiRequest.method,
                ApiRequest.route,
                ApiRequest.status_code,
                ApiRequest.latency_ms,
                ApiRequest.api_key_id,
                ApiKey.prefix,
                ApiRequest.app_id,
                App.name.label("app_name"),
                ApiRequest.mode,
                ApiRequest.network,
                ApiRequest.request_id,
            )
            .outerjoin(ApiKey, ApiKey.id == ApiRequest.api_key_id)
            .outerjoin(App, App.id == ApiRequest.app_id)
            .where(*_where(tenant_id, filters))
            .order_by(ApiRequest.created_at.desc(), ApiRequest.id.desc())
        )

    async def export_batches(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, filters: RequestFilter, batch: int = 2000
    ) -> AsyncIterator[Sequence[Sequence[object]]]:
        """The log's rows as the export's columns (EXPORT_COLUMNS), newest first, streamed."""
        stmt = self.log_statement(tenant_id, filters).execution_options(yield_per=batch)
        result = await session.stream(stmt)
        async for part in result.partitions(batch):
            yield [
                (
                    r.created_at,
                    r.method,
                    r.route,
                    r.status_code,
                    r.latency_ms,
                    f"{r.prefix}…" if r.prefix else "login token",
                    r.app_name,
                    r.mode.value if isinstance(r.mode, Mode) else r.mode,
                    r.network,
                    r.request_id,
                )
                for r in part
            ]

    async def prune(self, session: AsyncSession, *, before: datetime, batch: int) -> int:
        """Delete up to `batch` log rows older than `before`, oldest first; returns how many."""
        ids = select(ApiRequest.id).where(ApiRequest.created_at < before).order_by(ApiRequest.id).limit(batch)
        result = await session.execute(delete(ApiRequest).where(ApiRequest.id.in_(ids)))
        return int(getattr(result, "rowcount", 0) or 0)


def _sum(counts: Any) -> Counts:
    total = Counts(requests=0, pushes=0, successes=0, failures=0)
    for c in counts:
        total = _add(total, c)
    return total


def _add(a: Counts, b: Counts) -> Counts:
    return Counts(
        requests=a.requests + b.requests,
        pushes=a.pushes + b.pushes,
        successes=a.successes + b.successes,
        failures=a.failures + b.failures,
    )


def _per_app(
    apps: list[App],
    modes: dict[uuid.UUID, Mode],
    counts: dict[tuple[uuid.UUID | None, uuid.UUID | None], Counts],
    *,
    logins: bool,
) -> list[AppUsage]:
    by_app: dict[uuid.UUID | None, Counts] = defaultdict(lambda: _sum([]))
    for (app, key), c in counts.items():
        if app is not None or key is None:  # None: login tokens (a key in no app is in the totals only)
            by_app[app] = _add(by_app[app], c)
    out = [
        AppUsage(app_id=a.id, name=a.name, mode=modes[a.id], **by_app.get(a.id, _sum([])).model_dump())
        for a in apps
    ]
    if logins:
        out.append(
            AppUsage(app_id=None, name=LOGIN_TOKENS, mode=None, **by_app.get(None, _sum([])).model_dump())
        )
    return out


def _per_key(
    keys: list[ApiKey], counts: dict[tuple[uuid.UUID | None, uuid.UUID | None], Counts]
) -> list[KeyUsage]:
    by_key: dict[uuid.UUID, Counts] = defaultdict(lambda: _sum([]))
    for (_app, key), c in counts.items():
        if key is not None:
            by_key[key] = _add(by_key[key], c)
    return [
        KeyUsage(
            key_id=k.id,
            app_id=k.app_id,
            prefix=k.prefix,
            name=k.name,
            mode=k.mode,
            revoked=k.revoked_at is not None,
            **by_key.get(k.id, _sum([])).model_dump(),
        )
        for k in keys
    ]


def encode_cursor(at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), row_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at_text, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or not isinstance(row_id, int):
            raise ValueError
        return at, row_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor", BAD_CURSOR) from None


usage = UsageService()
