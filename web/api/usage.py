"""/api/usage: the business's API usage figures, its request log and the log's export
(core/usage/use_cases.py decides who may and what each sees)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from core.usage import use_cases
from core.usage.schemas import RequestPage, StatusClass, UsageOut
from core.usage.service import RequestFilter
from web.deps import CurrentActor
from web.exports import xlsx_response

router = APIRouter(tags=["usage"])

AppParam = Annotated[
    uuid.UUID | None,
    Query(description="Only this app's requests (an API key: its own app, whatever is given)"),
]
KeyParam = Annotated[uuid.UUID | None, Query(description="Only this key's requests")]
StatusParam = Annotated[StatusClass | None, Query(description="Only answers of this class: 2xx to 5xx")]
RouteParam = Annotated[
    str | None,
    Query(max_length=200, description="Only this route template, e.g. /api/transactions/{payment_id}"),
]
MethodParam = Annotated[str | None, Query(max_length=8, description="Only this HTTP method, e.g. POST")]


def _filters(
    app_id: uuid.UUID | None,
    key_id: uuid.UUID | None,
    status_class: StatusClass | None,
    route: str | None,
    method: str | None,
) -> RequestFilter:
    return RequestFilter(app_id=app_id, key_id=key_id, status_class=status_class, route=route, method=method)


@router.get("/usage")
async def get_usage(actor: CurrentActor, app_id: AppParam = None, key_id: KeyParam = None) -> UsageOut:
    """Requests, STK pushes (POST /api/stk-push answered 2xx), successes (2xx/3xx) and failures
    (4xx/5xx) for the last 24 hours and this calendar month in Nairobi (from 00:00 EAT on the 1st): in
    all, per app, per key and per endpoint with its p50/p95 latency. Requests made in the last second
    or so may not be counted yet. Owner and manager; an API key needs keys:read and sees its own app."""
    return await use_cases.usage_figures(actor, app_id=app_id, key_id=key_id)


@router.get("/usage/requests")
async def list_requests(
    actor: CurrentActor,
    app_id: AppParam = None,
    key_id: KeyParam = None,
    status_class: StatusParam = None,
    route: RouteParam = None,
    method: MethodParam = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RequestPage:
    """The request log, newest first: method, route template, status, latency, key, network and request
    id of each request made with the business's keys or its people's login tokens (kept
    USAGE_RETENTION_DAYS, 90 by default). Pass `next_cursor` as `cursor` for the next page."""
    return await use_cases.list_requests(
        actor, filters=_filters(app_id, key_id, status_class, route, method), cursor=cursor, limit=limit
    )


@router.get("/usage/export.xlsx", response_class=StreamingResponse)
async def export_requests(
    actor: CurrentActor,
    app_id: AppParam = None,
    key_id: KeyParam = None,
    status_class: StatusParam = None,
    route: RouteParam = None,
    method: MethodParam = None,
) -> StreamingResponse:
    """The request log as .xlsx, with the list's filters (no pages). Audited as export.usage."""
    built = await use_cases.export_requests(
        actor, filters=_filters(app_id, key_id, status_class, route, method)
    )
    return xlsx_response(built)
