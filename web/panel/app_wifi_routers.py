"""WiFi routers (/app/wifi/routers): the list, add a MikroTik router (the owner's; the password is
never shown again), test the connection, and the RouterOS setup script."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.access.permissions import Permission
from core.errors import Conflict
from core.hotspot import use_cases_routers as router_cases
from core.hotspot.schemas import RouterIn
from web.panel.app_wifi import done_message, provider
from web.panel.forms import parse_whole
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

ROUTER_FIELDS = ("name", "host", "port", "username", "password", "tls", "hotspot_server")


async def _routers_page(
    request: Request,
    viewer: Viewer,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    boxes = await router_cases.list_routers(provider(viewer))
    raw = request.query_params.get("tested", "")
    tested = next((r for r in boxes if str(r.id) == raw), None) if raw else None
    # The password is never put back into the form, not even after an error.
    form = {"name": "", "host": "", "port": "8728", "username": "", "tls": "", "hotspot_server": "hotspot1"}
    form.update({k: v for k, v in (values or {}).items() if k != "password"})
    return render(
        request,
        "app/wifi_routers.html",
        {
            "routers": boxes,
            "form": form,
            "errors": errors or {},
            "tested": tested,
            "is_owner": viewer.actor.shows(Permission.routers_add),
            "done": done_message(request),
            "section": "routers",
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wifi/routers", response_class=HTMLResponse)
async def router_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _routers_page(request, viewer)


@router.post("/app/wifi/routers", response_model=None)
async def router_add(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=100)] = "",
    host: Annotated[str, Form(max_length=300)] = "",
    port: Annotated[str, Form(max_length=10)] = "8728",
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    tls: Annotated[str, Form(max_length=5)] = "",
    hotspot_server: Annotated[str, Form(max_length=100)] = "hotspot1",
) -> Response:
    """Register a MikroTik router (POST /api/routers: the owner's). The password is encrypted by the
    service and never shown again."""
    actor = provider(viewer, Permission.routers_add)
    values = {
        "name": name,
        "host": host.strip(),
        "port": port.strip(),
        "username": username.strip(),
        "tls": tls,
        "hotspot_server": hotspot_server.strip(),
    }
    errors: dict[str, str] = {}
    number = parse_whole(values["port"] or "8728")
    if number is None or not 1 <= number <= 65535:
        errors["port"] = "The API port is a number from 1 to 65535: 8728 (api) or 8729 (api-ssl)."
    data = None
    try:
        data = RouterIn(
            name=name,
            host=values["host"],
            port=number if "port" not in errors else 8728,
            username=values["username"],
            password=password,
            tls=tls == "on",
            hotspot_server=values["hotspot_server"] or "hotspot1",
        )
    except ValidationError as exc:
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "name"
            msg = str(e["msg"]).removeprefix("Value error, ")
            if field == "password" and not password:
                msg = "Type the RouterOS API user's password."
            elif field == "name" and not name.strip():
                msg = "Give the router a name, like 'Stall 42'."
            errors.setdefault(field, msg)
    if errors or data is None:
        return await _routers_page(request, viewer, values=values, errors=errors, status=422)
    try:
        await router_cases.add_router(actor, data)
    except Conflict as exc:
        return await _routers_page(request, viewer, values=values, errors={"name": exc.message}, status=422)
    return RedirectResponse("/app/wifi/routers?done=router_added", status_code=303)


@router.post("/app/wifi/routers/{router_id}/test")
async def router_test(router_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Log in to the router now and record what it says (POST /api/routers/{id}/test, `router test`)."""
    await router_cases.check_router_connection(provider(viewer), router_id)
    return RedirectResponse(f"/app/wifi/routers?tested={router_id}", status_code=303)


@router.get("/app/wifi/routers/{router_id}/setup.rsc", response_class=PlainTextResponse)
async def router_script(router_id: uuid.UUID, viewer: CurrentViewer) -> PlainTextResponse:
    """The RouterOS setup script, as GET /api/routers/{id}/config makes it."""
    script = await router_cases.router_setup_script(provider(viewer), router_id)
    return PlainTextResponse(
        script,
        headers={"Content-Disposition": 'attachment; filename="lipapush.rsc"', "Cache-Control": "no-store"},
    )
