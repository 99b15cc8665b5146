"""Settings → Apps (/app/settings/apps): a business's apps, each with its channel, mode, keys and
webhook endpoints counted. The owner creates, renames, sets callback hosts and archives (after a
confirmation: archiving revokes the app's keys); managers see the list (core.apps.use_cases decides)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.apps import use_cases
from core.apps.schemas import split_hosts
from core.errors import Conflict, InvalidInput
from web.panel.app_settings import settings_page
from web.panel.security import CurrentViewer, Viewer

router = APIRouter(include_in_schema=False)

DONE = {
    "created": "App created. Make its API keys in Settings → API keys.",
    "renamed": "App renamed.",
    "hosts": "Callback hosts saved.",
    "archived": "App archived: its API keys are revoked and it is no longer listed.",
}


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


async def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    return settings_page(
        request,
        viewer,
        "app/settings_apps.html",
        {
            "apps": await use_cases.list_apps(viewer.actor),
            "errors": errors or {},
            "values": values or {"name": "", "callback_hosts": ""},
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
    shown = {"name": app.name, "callback_hosts": "\n".join(app.callback_hosts)}
    return settings_page(
        request,
        viewer,
        "app/settings_app.html",
        {
            "app": app,
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
) -> Response:
    """Hosts are typed one per line (or comma-separated)."""
    try:
        await use_cases.create_app(viewer.actor, name=name, callback_hosts=split_hosts(callback_hosts))
    except (InvalidInput, Conflict) as exc:
        values: dict[str, Any] = {"name": name, "callback_hosts": callback_hosts}
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


@router.post("/app/settings/apps/{app_id}/archive", response_model=None)
async def archive_app(request: Request, app_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    """The form asks for confirmation first (data-confirm); the last app is refused on the page."""
    try:
        await use_cases.archive_app(viewer.actor, app_id)
    except Conflict as exc:
        return await _app_page(request, viewer, app_id, errors={"archive": exc.message}, status=409)
    return RedirectResponse("/app/settings/apps?done=archived", status_code=303)
