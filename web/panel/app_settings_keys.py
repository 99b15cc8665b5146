"""Settings → API keys: the owner creates (shown once) and revokes them; managers see the list
(core.auth.use_cases decides who may)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import ApiScope, Permission
from core.auth import use_cases as people
from core.auth.models import ApiKeyMode
from core.errors import InvalidInput, LiveModeNotReady, ModeMismatch
from web.panel.app_settings import settings_page
from web.panel.security import CurrentViewer, Viewer

router = APIRouter(include_in_schema=False)

SCOPE_LABELS: list[tuple[str, str]] = [
    (ApiScope.payments_write.value, "request payments (STK push)"),
    (ApiScope.payments_read.value, "read payments"),
    (ApiScope.customers_read.value, "read the customer book"),
    (ApiScope.exports.value, "exports"),
    (ApiScope.webhooks.value, "webhook endpoints"),
    (ApiScope.dashboard_read.value, "the dashboard"),
    (ApiScope.wallet_read.value, "read the wallet and invoices"),
    (ApiScope.wallet_write.value, "top up the wallet, its alert"),
    (ApiScope.hotspot_read.value, "read WiFi hotspots and vouchers"),
    (ApiScope.hotspot_write.value, "manage WiFi hotspots, issue vouchers"),
    (ApiScope.business_read.value, "read the M-Pesa channel and staff"),
    (ApiScope.business_write.value, "change the channel, staff and settings"),
    (ApiScope.keys_read.value, "list API keys"),
    (ApiScope.keys_write.value, "create, roll and revoke API keys"),
    (ApiScope.payouts_read.value, "read payouts and the M-Pesa balance"),
    (ApiScope.payouts_write.value, "pay out and reverse payments (money leaves the business)"),
]
# How long a rolled key keeps working: the form offers these (the API takes any number of seconds).
OVERLAPS: list[tuple[int, str]] = [
    (0, "stop it now (the key leaked)"),
    (3600, "1 hour"),
    (86400, "24 hours"),
    (7 * 86400, "7 days"),
]


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
            # "" is the app's own mode (its channel's): test on the simulator or sandbox, live on production
            "values": values or {"name": "", "mode": ""},
            "modes": [m.value for m in ApiKeyMode],
            # new keys start with every scope ticked, as keys made elsewhere without choosing
            "chosen_scopes": (values or {}).get("scopes", [s.value for s in ApiScope]),
            "scopes": SCOPE_LABELS,
            "all_scopes": {s.value for s in ApiScope},
            "overlaps": OVERLAPS,
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
    mode: Annotated[str, Form(max_length=20)] = "",
    scope: Annotated[list[str] | None, Form(max_length=40)] = None,
    scopes_shown: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    """The key is on this response only (never stored in clear, never shown again). Its mode is the
    business's (its channel's) unless another is chosen, which is refused when the channel cannot
    serve it (a live key needs a verified production channel; a test key never reaches one). Its
    scopes are the boxes ticked; none ticked is refused (a key that may do nothing). A form without
    the boxes (one posted before they existed) makes a key with every scope, as elsewhere."""
    chosen = scope or ([] if scopes_shown else None)
    values: dict[str, Any] = {"name": name, "mode": mode, "scopes": scope or []}
    try:
        row = await people.create_api_key(viewer.actor, name=name, mode=mode, scopes=chosen)
    except InvalidInput as exc:
        return await _keys_page(request, viewer, errors={exc.field: exc.message}, values=values, status=422)
    except (ModeMismatch, LiveModeNotReady) as exc:
        # the app's channel cannot serve that mode: said next to the mode, with what to do
        return await _keys_page(request, viewer, errors={"mode": exc.message}, values=values, status=409)
    created = {
        "key": row.key,
        "name": row.name,
        "prefix": row.prefix,
        "mode": row.mode.value,
        "scopes": row.scopes,
    }
    return await _keys_page(request, viewer, created=created, status=201)


@router.post("/app/settings/keys/{key_id}/roll", response_model=None)
async def roll_key(
    request: Request,
    key_id: uuid.UUID,
    viewer: CurrentViewer,
    overlap_seconds: Annotated[int, Form(ge=0, le=7 * 86400)] = 86400,
) -> Response:
    """The new key is on this response only; the old one works for the chosen overlap."""
    row = await people.roll_api_key(viewer.actor, key_id, overlap_seconds=overlap_seconds)
    old = row.replaces
    created = {
        "key": row.key,
        "name": row.name,
        "prefix": row.prefix,
        "mode": row.mode.value,
        "scopes": row.scopes,
        "replaces": old.prefix,
        "old_until": old.expires_at if old.revoked_at is None else None,
    }
    return await _keys_page(request, viewer, created=created, status=201)


@router.post("/app/settings/keys/{key_id}/revoke")
async def revoke_key(key_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    await people.revoke_api_key(viewer.actor, key_id)
    return RedirectResponse("/app/settings/keys?done=revoked", status_code=303)
