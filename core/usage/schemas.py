from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from core.tenants.models import Mode


class StatusClass(StrEnum):
    s2xx = "2xx"
    s3xx = "3xx"
    s4xx = "4xx"
    s5xx = "5xx"

    @property
    def bounds(self) -> tuple[int, int]:
        first = int(self.value[0]) * 100
        return first, first + 99


class Counts(BaseModel):
    requests: int = Field(description="Requests made, whatever their answer")
    pushes: int = Field(description="STK pushes accepted: POST /api/stk-push answered 2xx")
    successes: int = Field(description="Requests answered 2xx or 3xx")
    failures: int = Field(description="Requests answered 4xx or 5xx (401: a refused key)")


class AppUsage(Counts):
    app_id: uuid.UUID | None = Field(description="None: requests made with a login token, not a key")
    name: str
    mode: Mode | None


class KeyUsage(Counts):
    key_id: uuid.UUID
    app_id: uuid.UUID | None
    prefix: str = Field(description="The key's first characters, as the key list shows them")
    name: str
    mode: Mode
    revoked: bool


class EndpointUsage(BaseModel):
    method: str
    route: str = Field(description="The route template, e.g. /api/transactions/{payment_id}")
    requests: int
    failures: int
    p50_ms: float = Field(description="Median latency (milliseconds, interpolated)")
    p95_ms: float = Field(description="95th percentile latency (milliseconds, interpolated)")
    avg_ms: float


class PeriodUsage(BaseModel):
    start: datetime = Field(description="Inclusive (UTC)")
    end: datetime = Field(description="Exclusive (UTC): when the figures were read")
    totals: Counts
    apps: list[AppUsage] = Field(description="Per app: every working app, and any other that was used")
    keys: list[KeyUsage] = Field(description="Per key: every working key, and any other that was used")
    endpoints: list[EndpointUsage] = Field(description="Per route and method, the most used first")


class UsageOut(BaseModel):
    app_id: uuid.UUID | None = Field(description="The app the figures are limited to, if any")
    key_id: uuid.UUID | None = Field(description="The key the figures are limited to, if any")
    last_24h: PeriodUsage
    this_month: PeriodUsage = Field(description="Since 00:00 on the 1st, Nairobi time (EAT, UTC+3)")
    month: str = Field(description="This month in Nairobi, e.g. 2026-12")


class RequestOut(BaseModel):
    id: int
    created_at: datetime
    method: str
    route: str
    status_code: int
    latency_ms: int
    api_key_id: uuid.UUID | None = Field(description="None: a login token")
    key_prefix: str | None
    app_id: uuid.UUID | None
    mode: Mode | None
    network: str | None = Field(description="The client's network: an IPv4 /24 or IPv6 /64")
    request_id: str | None = Field(description="The X-Request-Id the response carried")


class RequestPage(BaseModel):
    items: list[RequestOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; None: no more")


class BusinessUsage(BaseModel):
    """One business's API use this month, as the platform admin sees it."""

    tenant_id: uuid.UUID
    name: str
    slug: str
    kind: str
    plan: str | None = Field(description="The plan that applies now; None: not limited (hotspot providers)")
    plan_unpaid: bool = Field(description="Chose a plan with a fee that is not paid: the default applies")
    requests_24h: int
    refused_keys_24h: int = Field(description="Requests answered 401 in the last 24 hours")
    requests_month: int
    api_pushes_month: int = Field(description="STK pushes accepted through the API")
    failures_month: int
    live_pushes_month: int = Field(description="Live pushes from every entry point, as the quota counts")
    live_push_quota: int | None = Field(description="None: no monthly limit")

    @property
    def quota_share(self) -> float | None:
        if not self.live_push_quota:
            return None
        return self.live_pushes_month / self.live_push_quota


class PlatformUsage(BaseModel):
    month: str = Field(description="This month in Nairobi, e.g. 2026-12")
    businesses: int = Field(description="Businesses that used the API or pushed live this month")
    requests_24h: int
    requests_month: int
    live_pushes_month: int
    matching: int = Field(description="Businesses the search matched (all of them without one)")
    rows: list[BusinessUsage] = Field(description="The busiest first")
