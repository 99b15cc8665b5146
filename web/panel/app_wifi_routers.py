"""WiFi routers (/app/wifi/routers): the list, add a MikroTik router (the owner's; the password is
never shown again), test the connection, and the RouterOS setup script."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.auth.models import Role
from core.errors import Conflict
from core.hotspot.plans import plans
from core.hotspot.provision import check_router
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.hotspot.setup_script import setup_script
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from web.panel.app_wifi import audit, done_message, provider
from web.panel.forms import parse_whole
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

ROUTER_FIELDS = ("name", "host", "port", "username", "password", "tls", "hotspot_server")


async def _routers_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    tested = None
    async with unit_of_work(readonly=True) as session:
        boxes = await routers.list(session, tenant_id=tenant_id)
        raw = request.query_params.get("tested", "")
        if raw:
            tested = next((r for r in boxes if str(r.id) == raw), None)
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
            "is_owner": viewer.business_role is Role.owner,
            "done": done_message(request),
            "section": "routers",
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wifi/routers", response_class=HTMLResponse)
async def router_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = provider(viewer)
    return await _routers_page(request, viewer, tenant_id)


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
    tenant_id = provider(viewer, Role.owner, write=True)
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
        return await _routers_page(request, viewer, tenant_id, values=values, errors=errors, status=422)
    try:
        async with unit_of_work() as session:
            # The service encrypts the password and audits the addition (router.added).
            await routers.add(
                session, tenant_id=tenant_id, data=data, box=runtime().secrets, by=viewer.user_id
            )
    except Conflict as exc:
        return await _routers_page(
            request, viewer, tenant_id, values=values, errors={"name": exc.message}, status=422
        )
    return RedirectResponse("/app/wifi/routers?done=router_added", status_code=303)


@router.post("/app/wifi/routers/{router_id}/test")
async def router_test(router_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Log in to the router now and record what it says (POST /api/routers/{id}/test, `router test`)."""
    tenant_id = provider(viewer, write=True)
    async with unit_of_work(readonly=True) as session:
        await routers.get(session, tenant_id=tenant_id, router_id=router_id)  # 404 for another tenant's
    info, error = await check_router(router_id)
    async with unit_of_work() as session:
        await audit(
            session,
            viewer,
            tenant_id,
            "router.tested",
            str(router_id),
            answered=info is not None,
            error=(error or "")[:200] or None,
        )
    return RedirectResponse(f"/app/wifi/routers?tested={router_id}", status_code=303)


@router.get("/app/wifi/routers/{router_id}/setup.rsc", response_class=PlainTextResponse)
async def router_script(router_id: uuid.UUID, viewer: CurrentViewer) -> PlainTextResponse:
    """The RouterOS setup script, as GET /api/routers/{id}/config makes it."""
    tenant_id = provider(viewer)
    async with unit_of_work(readonly=True) as session:
        r = await routers.get(session, tenant_id=tenant_id, router_id=router_id)
        tenant = await tenants.get(session, tenant_id)
        sold = await plans.list(session, tenant_id=tenant_id, router_id=r.id, active_only=True)
        script = setup_script(
            router=r, plans=sold, base_url=runtime().settings.base_url, provider_slug=tenant.slug
        )
    return PlainTextResponse(
        script,
        headers={"Content-Disposition": 'attachment; filename="lipapush.rsc"', "Cache-Control": "no-store"},
    )
