"""Settings → Apps (/app/settings/apps): a business's apps, each with its channel, mode, keys and
webhook endpoints counted. The owner creates one on any of the business's M-Pesa channels (the
primary one unless another is chosen), renames it, moves it to another channel, sets its callback
hosts and archives it (after a confirmation: archiving revokes the app's keys); managers see the list
(core.apps.use_cases decides)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.apps import use_cases
from core.apps.schemas import split_hosts
from core.errors import Conflict, InvalidInput
from core.tenants import use_cases_channels as channel_cases
from web.panel.app_settings import settings_page
from web.panel.app_settings_channels import channel_label
from web.panel.forms import parse_uuid
from web.panel.security import CurrentViewer, Viewer

router = APIRouter(include_in_schema=False)

DONE = {
    "created": "App created. Make its API keys in Settings → API keys.",
    "renamed": "App renamed.",
    "hosts": "Callback hosts saved.",
    "channel": "Channel changed: this app's payments go through it from now on.",
    "archived": "App archived: its API keys are revoked and it is no longer listed.",
}


CHOOSE_CHANNEL = "Choose a channel from the list."


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


async def _channel_choices(viewer: Viewer) -> list[tuple[str, str, bool]]:
    """(id, label, primary) of each of the business's channels, the primary first, for the owner's
    forms; none for whoever cannot change apps (the forms are not shown)."""
    actor = viewer.actor
    if not (actor.shows(Permission.apps_manage) and actor.can(Permission.channel_read)):
        return []
    return [
        (str(v.channel.id), channel_label(v.channel), v.channel.primary)
        for v in await channel_cases.list_channels(actor)
    ]


async def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    channels = await _channel_choices(viewer)
    primary = next((id_ for id_, _, is_primary in channels if is_primary), "")
    return settings_page(
        request,
        viewer,
        "app/settings_apps.html",
        {
            "apps": await use_cases.list_apps(viewer.actor),
            "channels": channels,
            "errors": errors or {},
            "values": values or {"name": "", "callback_hosts": "", "channel_id": primary},
            "is_owner": viewer.actor.shows(Permission.apps_manage),
            "done": _done(request),
        },
        status=status,
    )


async def _app_page(
    request: Request,
    viewer: Viewer,
    app_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    app = await use_cases.get_app(viewer.actor, app_id)
    shown = {
        "name": app.name,
        "callback_hosts": "\n".join(app.callback_hosts),
        "channel_id": str(app.channel.id) if app.channel else "",
    }
    return settings_page(
        request,
        viewer,
        "app/settings_app.html",
        {
            "app": app,
            "channels": await _channel_choices(viewer),
            "errors": errors or {},
            "values": {**shown, **(values or {})},
            "is_owner": viewer.actor.shows(Permission.apps_manage),
            "done": _done(request),
        },
        status=status,
    )


def _field_error(exc: InvalidInput | Conflict) -> dict[str, str]:
    field = exc.field if isinstance(exc, InvalidInput) else str(exc.fields.get("field", "archive"))
    return {field: exc.message}


@router.get("/app/settings/apps", response_class=HTMLResponse)
async def apps_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _list_page(request, viewer)


@router.post("/app/settings/apps", response_model=None)
async def create_app(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
    callback_hosts: Annotated[str, Form(max_length=6000)] = "",
    channel_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Hosts are typed one per line (or comma-separated). No channel chosen: the primary one."""
    viewer.actor.require(Permission.apps_manage)  # before the form's own errors
    values: dict[str, Any] = {"name": name, "callback_hosts": callback_hosts, "channel_id": channel_id}
    errors: dict[str, str] = {}
    chosen = parse_uuid(channel_id, "channel_id", errors, CHOOSE_CHANNEL)
    if errors:
        return await _list_page(request, viewer, errors=errors, values=values, status=422)
    try:
        await use_cases.create_app(
            viewer.actor, name=name, callback_hosts=split_hosts(callback_hosts), channel_id=chosen
        )
    except (InvalidInput, Conflict) as exc:
        status = 422 if isinstance(exc, InvalidInput) else 409
        return await _list_page(request, viewer, errors=_field_error(exc), values=values, status=status)
    return RedirectResponse("/app/settings/apps?done=created", status_code=303)


@router.get("/app/settings/apps/{app_id}", response_class=HTMLResponse)
async def app_detail(request: Request, app_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    return await _app_page(request, viewer, app_id)


@router.post("/app/settings/apps/{app_id}/name", response_model=None)
async def rename_app(
    request: Request,
    app_id: uuid.UUID,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        await use_cases.rename_app(viewer.actor, app_id, name=name)
    except (InvalidInput, Conflict) as exc:
        status = 422 if isinstance(exc, InvalidInput) else 409
        return await _app_page(
            request, viewer, app_id, errors=_field_error(exc), values={"name": name}, status=status
        )
    return RedirectResponse(f"/app/settings/apps/{app_id}?done=renamed", status_code=303)


@router.post("/app/settings/apps/{app_id}/hosts", response_model=None)
async def set_hosts(
    request: Request,
    app_id: uuid.UUID,
    viewer: CurrentViewer,
    callback_hosts: Annotated[str, Form(max_length=6000)] = "",
) -> Response:
    try:
        await use_cases.set_callback_hosts(viewer.actor, app_id, hosts=split_hosts(callback_hosts))
    except InvalidInput as exc:
        return await _app_page(
            request,
            viewer,
            app_id,
            errors=_field_error(exc),
            values={"callback_hosts": callback_hosts},
            status=422,
        )
    return RedirectResponse(f"/app/settings/apps/{app_id}?done=hosts", status_code=303)


@router.post("/app/settings/apps/{app_id}/channel", response_model=None)
async def move_app(
    request: Request,
    app_id: uuid.UUID,
    viewer: CurrentViewer,
    channel_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A channel of the other mode is refused while the app has working keys (a key's mode never
    changes): the reason, with what to do, is shown beside the choice."""
    viewer.actor.require(Permission.apps_manage)  # before the form's own errors
    errors: dict[str, str] = {}
    chosen = parse_uuid(channel_id, "channel_id", errors, CHOOSE_CHANNEL)
    if chosen is None:
        return await _app_page(
            request,
            viewer,
            app_id,
            errors=errors or {"channel_id": CHOOSE_CHANNEL},
            values={"channel_id": channel_id},
            status=422,
        )
    try:
        await use_cases.set_app_channel(viewer.actor, app_id, channel_id=chosen)
    except Conflict as exc:
        return await _app_page(
            request,
            viewer,
            app_id,
            errors={"channel_id": exc.message},
            values={"channel_id": channel_id},
            status=409,
        )
    return RedirectResponse(f"/app/settings/apps/{app_id}?done=channel", status_code=303)


@router.post("/app/settings/apps/{app_id}/archive", response_model=None)
async def archive_app(request: Request, app_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    """The form asks for confirmation first (data-confirm); the last app is refused on the page."""
    try:
        await use_cases.archive_app(viewer.actor, app_id)
    except Conflict as exc:
        return await _app_page(request, viewer, app_id, errors={"archive": exc.message}, status=409)
    return RedirectResponse("/app/settings/apps?done=archived", status_code=303)
