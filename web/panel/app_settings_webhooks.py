"""Settings → Webhooks: the owner registers the URLs of their own system, reads a secret, rotates it,
sends a test event, switches an endpoint off and on, reads its delivery log and replays what failed
(core.webhooks.use_cases decides everything; this page parses and renders)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.apps import use_cases as app_cases
from core.errors import InvalidInput
from core.webhooks import use_cases as hooks
from core.webhooks.events import EVENT_TYPES
from core.webhooks.schemas import EndpointIn, EndpointPatch
from web.panel.app_settings import settings_page
from web.panel.security import CurrentViewer, Viewer

router = APIRouter(include_in_schema=False)

OVERLAPS: list[tuple[int, str]] = [
    (0, "stop it now (the secret leaked)"),
    (3600, "1 hour"),
    (86400, "24 hours"),
    (7 * 86400, "7 days"),
]
REPLAY_WINDOWS: list[tuple[int, str]] = [
    (1, "the last hour"),
    (24, "the last 24 hours"),
    (72, "the last 3 days"),
]
NOTICES = {
    "created": "Endpoint added. Copy its signing secret below: your receiver verifies each delivery with it.",
    "tested": "Test event queued: it shows in the log below within seconds.",
    "rotated": "New secret made. Until the time shown, deliveries carry two signatures (new and old).",
    "on": "Endpoint switched on: new events are sent to it again.",
    "off": "Endpoint switched off: events for it are recorded as not sent until you switch it on.",
    "replayed": "Sent again: follow it in the log below.",
}


async def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    actor = viewer.actor
    endpoints = await hooks.list_endpoints(actor)
    apps = await app_cases.list_apps(actor)
    return settings_page(
        request,
        viewer,
        "app/settings_webhooks.html",
        {
            "endpoints": endpoints,
            "apps": apps,
            "app_names": {a.id: a.name for a in apps},
            "event_types": list(EVENT_TYPES.items()),
            "errors": errors or {},
            "values": values or {"url": "", "description": "", "types": [], "app_id": ""},
        },
        status=status,
    )


@router.get("/app/settings/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _list_page(request, viewer)


@router.post("/app/settings/webhooks", response_model=None)
async def add_endpoint(
    request: Request,
    viewer: CurrentViewer,
    url: Annotated[str, Form(max_length=2048)] = "",
    description: Annotated[str, Form(max_length=400)] = "",
    event_type: Annotated[list[str] | None, Form(max_length=40)] = None,
    app_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    values = {"url": url, "description": description, "types": event_type or [], "app_id": app_id}
    try:
        chosen_app = uuid.UUID(app_id) if app_id else None
    except ValueError:
        return await _list_page(
            request, viewer, errors={"app_id": "Choose an app from the list."}, values=values
        )
    try:
        created = await hooks.create_endpoint(
            viewer.actor,
            EndpointIn(
                url=url, event_types=event_type or None, description=description or None, app_id=chosen_app
            ),
        )
    except InvalidInput as exc:
        return await _list_page(request, viewer, errors={exc.field: exc.message}, values=values, status=422)
    return RedirectResponse(f"/app/settings/webhooks/{created.id}?done=created", status_code=303)


@router.get("/app/settings/webhooks/{endpoint_id}", response_class=HTMLResponse)
async def endpoint_page(
    request: Request, endpoint_id: uuid.UUID, viewer: CurrentViewer, before_id: int | None = None
) -> HTMLResponse:
    actor = viewer.actor
    endpoint = await hooks.get_endpoint(actor, endpoint_id)
    page = await hooks.list_deliveries(actor, endpoint_id, before_id=before_id, limit=25)
    done = request.query_params.get("done", "")
    # The secret is shown right after the endpoint is made or rotated, and on request (audited).
    secret = (
        await hooks.endpoint_secret(actor, endpoint_id) if done in ("created", "rotated", "secret") else None
    )
    return settings_page(
        request,
        viewer,
        "app/settings_webhook.html",
        {
            "endpoint": endpoint,
            "deliveries": page.items,
            "next_before_id": page.next_before_id,
            "secret": secret,
            "notice": NOTICES.get(done),
            "overlaps": OVERLAPS,
            "replay_windows": REPLAY_WINDOWS,
        },
    )


def _back(endpoint_id: uuid.UUID, done: str) -> RedirectResponse:
    return RedirectResponse(f"/app/settings/webhooks/{endpoint_id}?done={done}", status_code=303)


@router.post("/app/settings/webhooks/{endpoint_id}/secret")
async def show_secret(endpoint_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    await hooks.get_endpoint(viewer.actor, endpoint_id)
    return _back(endpoint_id, "secret")


@router.post("/app/settings/webhooks/{endpoint_id}/rotate")
async def rotate(
    endpoint_id: uuid.UUID,
    viewer: CurrentViewer,
    overlap_seconds: Annotated[int, Form(ge=0, le=7 * 86400)] = 86400,
) -> RedirectResponse:
    await hooks.rotate_secret(viewer.actor, endpoint_id, overlap_seconds=overlap_seconds)
    return _back(endpoint_id, "rotated")


@router.post("/app/settings/webhooks/{endpoint_id}/test")
async def send_test(endpoint_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    await hooks.send_test_event(viewer.actor, endpoint_id)
    return _back(endpoint_id, "tested")


@router.post("/app/settings/webhooks/{endpoint_id}/enabled")
async def switch(
    endpoint_id: uuid.UUID, viewer: CurrentViewer, enabled: Annotated[str, Form(max_length=5)] = ""
) -> RedirectResponse:
    on = enabled == "true"
    await hooks.update_endpoint(viewer.actor, endpoint_id, EndpointPatch(enabled=on))
    return _back(endpoint_id, "on" if on else "off")


@router.post("/app/settings/webhooks/{endpoint_id}/delete")
async def delete(endpoint_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    await hooks.delete_endpoint(viewer.actor, endpoint_id)
    return RedirectResponse("/app/settings/webhooks", status_code=303)


@router.post("/app/settings/webhooks/{endpoint_id}/replay")
async def replay_failed(
    endpoint_id: uuid.UUID, viewer: CurrentViewer, hours: Annotated[int, Form(ge=1, le=24 * 30)] = 24
) -> RedirectResponse:
    since = datetime.now(UTC) - timedelta(hours=hours)
    await hooks.replay_failed(viewer.actor, endpoint_id, since=since)
    return _back(endpoint_id, "replayed")


@router.post("/app/settings/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay")
async def replay_one(endpoint_id: uuid.UUID, delivery_id: int, viewer: CurrentViewer) -> RedirectResponse:
    await hooks.replay_delivery(viewer.actor, delivery_id)
    return _back(endpoint_id, "replayed")
