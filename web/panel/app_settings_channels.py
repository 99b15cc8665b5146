"""Settings → Channels (/app/settings/channels): a business's several M-Pesa channels (a till per
branch, a paybill beside a till, a sandbox channel for test keys). Owner and manager see them; the
owner adds one (its KES 1 test goes out at once), renames one, resends its test, gives it new
credentials and makes a verified one the primary channel (core.tenants.use_cases_channels decides).

Settings → M-Pesa channel (web/panel/app_settings.py) keeps editing the primary channel, so a business
with one channel never has to come here."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.access.permissions import Permission
from core.errors import Conflict, InvalidInput, LipapushError, NotFound, PermissionDenied
from core.tenants import use_cases_channels as use_cases
from core.tenants.channels import NAME_MAX, clean_name
from core.tenants.models import ChannelKind, Environment
from core.tenants.schemas import ChannelIn, ChannelOut
from web.panel.app_settings import SECRET_FIELDS, channel_errors, settings_page
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

DONE = {
    "added": "Channel added. A KES 1 test prompt went to the business phone: approve it to verify the "
    "channel.",
    "replaced": "Credentials saved. A new KES 1 test prompt went to the business phone: the channel takes "
    "payments again once it is approved.",
    "resent": "KES 1 test prompt sent again: approve it on the business phone.",
    "renamed": "Channel renamed.",
    "primary": "This is now the primary channel: the bot, USSD and “Request payment” push through it. "
    "Apps keep the channel each one chose.",
}


def channel_label(c: ChannelOut) -> str:
    """How a channel reads in a list of choices: "Main: Paybill 174379 (simulator) · test"."""
    if c.kind is ChannelKind.till:
        kind, number = "Till", c.till_number or c.business_short_code
    else:
        kind, number = "Paybill", c.business_short_code
    label = f"{c.name}: {kind} {number} ({c.environment.value}) · {c.mode.value}"
    return label if c.verified else f"{label} · not verified"


def _form(
    environment: str,
    kind: str,
    business_short_code: str,
    till_number: str,
    consumer_key: str,
    consumer_secret: str,
    passkey: str,
) -> tuple[ChannelIn | None, dict[str, str], dict[str, str]]:
    """The channel fields as typed: the model (None when refused), the errors by field, and the values
    to show again (never the secrets)."""
    raw = {
        "environment": environment,
        "kind": kind,
        "business_short_code": business_short_code,
        "till_number": till_number,
        "consumer_key": consumer_key,
        "consumer_secret": consumer_secret,
        "passkey": passkey,
    }
    shown = {k: v for k, v in raw.items() if k not in SECRET_FIELDS}
    try:
        return ChannelIn.model_validate({k: v.strip() for k, v in raw.items() if v.strip()}), {}, shown
    except ValidationError as exc:
        return None, channel_errors(exc), shown


def _conflict_field(exc: InvalidInput | Conflict, default: str) -> dict[str, str]:
    field = exc.field if isinstance(exc, InvalidInput) else str(exc.fields.get("field", default))
    return {field: exc.message}


def _fresh_values(c: ChannelOut | None = None) -> dict[str, str]:
    return {
        "name": c.name if c else "",
        "environment": c.environment.value if c else Environment.simulator.value,
        "kind": c.kind.value if c else ChannelKind.paybill.value,
        "business_short_code": c.business_short_code if c else "",
        "till_number": (c.till_number or "") if c else "",
    }


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
        "app/settings_channels.html",
        {
            "channels": await use_cases.list_channels(viewer.actor),
            "errors": errors or {},
            "values": values or _fresh_values(),
            "environments": [e.value for e in Environment],
            "kinds": [k.value for k in ChannelKind if k.collects],
            "name_max": NAME_MAX,
            "is_owner": viewer.actor.shows(Permission.channel_manage),
            "done": DONE.get(request.query_params.get("done", "")),
        },
        status=status,
    )


async def _channel_page(
    request: Request,
    viewer: Viewer,
    channel_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    not_sent: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """One channel. `not_sent`: why its KES 1 test could not go out just now (said above the forms)."""
    view = await use_cases.get_channel(viewer.actor, channel_id)
    return settings_page(
        request,
        viewer,
        "app/settings_channels_one.html",
        {
            "c": view.channel,
            "v": view.verification,
            "app_count": view.app_count,
            "errors": errors or {},
            "values": {**_fresh_values(view.channel), **(values or {})},
            "environments": [e.value for e in Environment],
            "kinds": [k.value for k in ChannelKind if k.collects],
            "name_max": NAME_MAX,
            "not_sent": not_sent,
            "is_owner": viewer.actor.shows(Permission.channel_manage),
            "done": DONE.get(request.query_params.get("done", "")),
        },
        status=status,
    )


def _back(channel_id: uuid.UUID, done: str) -> RedirectResponse:
    return RedirectResponse(f"/app/settings/channels/{channel_id}?done={done}", status_code=303)


@router.get("/app/settings/channels", response_class=HTMLResponse)
async def channels_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _list_page(request, viewer)


@router.post("/app/settings/channels", response_model=None)
async def add_channel(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
    environment: Annotated[str, Form(max_length=40)] = "",
    kind: Annotated[str, Form(max_length=40)] = "",
    business_short_code: Annotated[str, Form(max_length=40)] = "",
    till_number: Annotated[str, Form(max_length=40)] = "",
    consumer_key: Annotated[str, Form(max_length=400)] = "",
    consumer_secret: Annotated[str, Form(max_length=400)] = "",
    passkey: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """The same model, service and test push as POST /api/channels. Every complaint about the form is
    shown at once: the name's (core's rule) beside the credentials'."""
    viewer.actor.require(Permission.channel_manage)  # before the form's own errors
    data, errors, values = _form(
        environment, kind, business_short_code, till_number, consumer_key, consumer_secret, passkey
    )
    values["name"] = name
    try:
        clean_name(name)
    except InvalidInput as exc:
        errors = {exc.field: exc.message, **errors}
    if data is None or errors:
        return await _list_page(request, viewer, errors=errors, values=values, status=422)
    try:
        added = await use_cases.add_channel(viewer.actor, name=name, data=data)
    except (InvalidInput, Conflict) as exc:
        status = 422 if isinstance(exc, InvalidInput) else 409
        return await _list_page(
            request, viewer, errors=_conflict_field(exc, "add"), values=values, status=status
        )
    channel_id = added.view.channel.id
    if added.error is not None:
        # Saved, but the test did not go out: the reason is on this response (a Daraja outage is
        # not kept on the channel), so the page is rendered here rather than redirected to.
        return await _channel_page(request, viewer, channel_id, not_sent=added.error, status=201)
    return _back(channel_id, "added")


@router.get("/app/settings/channels/{channel_id}", response_class=HTMLResponse)
async def channel_detail(request: Request, channel_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    return await _channel_page(request, viewer, channel_id)


@router.get("/app/settings/channels/{channel_id}/verification", response_class=HTMLResponse)
async def verification_status(request: Request, channel_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    """The fragment data-poll swaps in: it keeps polling while the KES 1 test is waiting."""
    view = await use_cases.get_channel(viewer.actor, channel_id)
    return render(
        request,
        "app/settings_channels_verification.html",
        {
            "c": view.channel,
            "v": view.verification,
            "is_owner": viewer.actor.shows(Permission.channel_manage),
        },
        viewer=viewer,
    )


@router.post("/app/settings/channels/{channel_id}/name", response_model=None)
async def rename_channel(
    request: Request,
    channel_id: uuid.UUID,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        await use_cases.rename_channel(viewer.actor, channel_id, name=name)
    except (InvalidInput, Conflict) as exc:
        status = 422 if isinstance(exc, InvalidInput) else 409
        return await _channel_page(
            request,
            viewer,
            channel_id,
            errors=_conflict_field(exc, "name"),
            values={"name": name},
            status=status,
        )
    return _back(channel_id, "renamed")


@router.post("/app/settings/channels/{channel_id}/verify", response_model=None)
async def resend_test(request: Request, channel_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    try:
        await use_cases.resend_channel_test(viewer.actor, channel_id)
    except (PermissionDenied, NotFound):
        raise  # the error page, as for every other form
    except LipapushError as exc:  # M-Pesa refused or was unreachable, the business is suspended…
        return await _channel_page(request, viewer, channel_id, not_sent=exc.message, status=exc.status)
    return _back(channel_id, "resent")


@router.post("/app/settings/channels/{channel_id}/primary", response_model=None)
async def make_primary(request: Request, channel_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    """The button shows only for a verified channel; a stale page posting for another is told why."""
    try:
        await use_cases.make_primary(viewer.actor, channel_id)
    except Conflict as exc:
        return await _channel_page(request, viewer, channel_id, errors={"primary": exc.message}, status=409)
    return _back(channel_id, "primary")


@router.post("/app/settings/channels/{channel_id}/credentials", response_model=None)
async def replace_channel(
    request: Request,
    channel_id: uuid.UUID,
    viewer: CurrentViewer,
    environment: Annotated[str, Form(max_length=40)] = "",
    kind: Annotated[str, Form(max_length=40)] = "",
    business_short_code: Annotated[str, Form(max_length=40)] = "",
    till_number: Annotated[str, Form(max_length=40)] = "",
    consumer_key: Annotated[str, Form(max_length=400)] = "",
    consumer_secret: Annotated[str, Form(max_length=400)] = "",
    passkey: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """As Settings → M-Pesa channel: every save replaces all the credentials (a blank secret is not
    "keep the old one"), and the channel is unverified until its new KES 1 test succeeds."""
    viewer.actor.require(Permission.channel_manage)  # before the form's own errors
    data, errors, values = _form(
        environment, kind, business_short_code, till_number, consumer_key, consumer_secret, passkey
    )
    if data is None:
        return await _channel_page(request, viewer, channel_id, errors=errors, values=values, status=422)
    saved = await use_cases.replace_channel(viewer.actor, channel_id, data)
    if saved.error is not None:
        return await _channel_page(request, viewer, channel_id, not_sent=saved.error)
    return _back(channel_id, "replaced")
