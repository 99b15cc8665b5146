"""Settings → API keys: the owner creates (shown once) and revokes them; managers see the list
(core.auth.use_cases decides who may)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.auth import use_cases as people
from core.auth.models import ApiKeyMode
from core.errors import InvalidInput
from web.panel.app_settings import settings_page
from web.panel.security import CurrentViewer, Viewer

router = APIRouter(include_in_schema=False)


# -- API keys ---------------------------------------------------------------------------------------
async def _keys_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    created: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    keys = await people.list_api_keys(viewer.actor)
    return settings_page(
        request,
        viewer,
        "app/settings_keys.html",
        {
            "keys": keys,
            "errors": errors or {},
            "values": values or {"name": "", "mode": ApiKeyMode.live.value},
            "modes": [m.value for m in ApiKeyMode],
            "is_owner": viewer.actor.shows(Permission.api_keys_manage),
            "created": created,
        },
        status=status,
    )


@router.get("/app/settings/keys", response_class=HTMLResponse)
async def keys(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _keys_page(request, viewer)


@router.post("/app/settings/keys", response_model=None)
async def create_key(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
    mode: Annotated[str, Form(max_length=20)] = "live",
) -> Response:
    """The key is on this response only (never stored in clear, never shown again)."""
    values = {"name": name, "mode": mode}
    try:
        row = await people.create_api_key(viewer.actor, name=name, mode=mode)
    except InvalidInput as exc:
        return await _keys_page(request, viewer, errors={exc.field: exc.message}, values=values, status=422)
    created = {"key": row.key, "name": row.name, "prefix": row.prefix, "mode": row.mode.value}
    return await _keys_page(request, viewer, created=created, status=201)


@router.post("/app/settings/keys/{key_id}/revoke")
async def revoke_key(key_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    await people.revoke_api_key(viewer.actor, key_id)
    return RedirectResponse("/app/settings/keys?done=revoked", status_code=303)
