"""Settings → API keys: the owner creates (shown once) and revokes them; managers see the list."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth.models import ApiKeyMode, Role
from core.auth.service import auth
from core.errors import InvalidInput
from core.runtime import unit_of_work
from web.panel.app_settings import MANAGERS, settings_page
from web.panel.security import CurrentViewer, Viewer, business

router = APIRouter(include_in_schema=False)


# -- API keys ---------------------------------------------------------------------------------------
async def _keys_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    created: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with unit_of_work(readonly=True) as session:
        keys = await auth.list_api_keys(session, tenant_id=tenant_id)
    return settings_page(
        request,
        viewer,
        "app/settings_keys.html",
        {
            "keys": keys,
            "errors": errors or {},
            "values": values or {"name": "", "mode": ApiKeyMode.live.value},
            "modes": [m.value for m in ApiKeyMode],
            "is_owner": viewer.business_role is Role.owner,
            "created": created,
        },
        status=status,
    )


@router.get("/app/settings/keys", response_class=HTMLResponse)
async def keys(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer, *MANAGERS)
    return await _keys_page(request, viewer, tenant_id)


@router.post("/app/settings/keys", response_model=None)
async def create_key(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
    mode: Annotated[str, Form(max_length=20)] = "live",
) -> Response:
    """The key is on this response only (never stored in clear, never shown again)."""
    tenant_id = business(viewer, Role.owner, write=True)
    values = {"name": name, "mode": mode}
    try:
        key_mode = ApiKeyMode(mode)
    except ValueError:
        return await _keys_page(
            request, viewer, tenant_id, errors={"mode": "Choose live or test."}, values=values, status=422
        )
    try:
        async with unit_of_work() as session:
            row, key = await auth.create_api_key(
                session, tenant_id=tenant_id, created_by=viewer.user_id, name=name, mode=key_mode
            )
            created = {"key": key, "name": row.name, "prefix": row.prefix, "mode": row.mode.value}
    except InvalidInput as exc:
        return await _keys_page(
            request, viewer, tenant_id, errors={exc.field: exc.message}, values=values, status=422
        )
    return await _keys_page(request, viewer, tenant_id, created=created, status=201)


@router.post("/app/settings/keys/{key_id}/revoke")
async def revoke_key(key_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    tenant_id = business(viewer, Role.owner, write=True)
    async with unit_of_work() as session:
        await auth.revoke_api_key(session, tenant_id=tenant_id, key_id=key_id, by=viewer.user_id)
    return RedirectResponse("/app/settings/keys?done=revoked", status_code=303)
