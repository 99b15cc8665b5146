"""Settings → Payout channels (/app/settings/payout-channels): the channels money goes out through, each
with its M-Pesa initiator (the short code's API operator) and whether a balance check proved it.

Owner and manager see them (payouts:read); the owner adds a B2C (bulk payment) short code with its
initiator, sets or replaces the initiator of any channel (a paybill's serves balance and status
lookups and reversals), and never sees a password again: the field is always empty, even after an
error (core/tenants/use_cases_initiators.py decides and encrypts)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from core.access.permissions import Permission
from core.errors import Conflict, InvalidInput, NotFound
from core.tenants import use_cases_channels
from core.tenants.channels import NAME_MAX, clean_name
from core.tenants.initiator_schemas import InitiatorIn, PayoutChannelIn
from core.tenants.models import Environment
from core.tenants.use_cases_initiators import add_payout_channel, list_payout_channels, set_initiator
from web.panel.app_settings import settings_page
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

PAGE = "/app/settings/payout-channels"
ADD_FIELDS = ("name", "environment", "short_code", "consumer_key", "consumer_secret", "initiator_name")
SECRETS = ("consumer_key", "consumer_secret", "initiator_password")
MESSAGES = {
    "short_code": "The short code is 5 to 7 digits, like 600100.",
    "environment": "Choose one from the list.",
    "consumer_key": "Required for a sandbox or production channel: the Daraja app's consumer key.",
    "consumer_secret": "Required for a sandbox or production channel: the Daraja app's consumer secret.",
}
DONE = {
    "added": "Payout channel added. A balance check is proving its initiator: it shows “verified” within "
    "seconds, and then it can pay out.",
    "initiator": "Initiator saved. A balance check is proving it: it shows “verified” within seconds.",
}


def model_errors(exc: ValidationError) -> dict[str, str]:
    """A model's complaints, each by the field it is about (a rule over several fields names them)."""
    errors: dict[str, str] = {}
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        msg = str(e["msg"]).removeprefix("Value error, ")
        if loc:
            field = loc[0]
            if e["type"] == "missing":
                msg = "Required."
            errors.setdefault(field, MESSAGES.get(field, msg if msg.endswith(".") else msg + "."))
            continue
        for field in ("consumer_key", "consumer_secret"):
            if field in msg:
                errors.setdefault(field, MESSAGES[field])
    return errors


def _validate(model: type[BaseModel], raw: dict[str, str]) -> tuple[Any, dict[str, str]]:
    try:
        return model.model_validate({k: v for k, v in raw.items() if v.strip()}), {}
    except ValidationError as exc:
        return None, model_errors(exc)


async def _page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    business(viewer, Permission.payouts_read)
    actor = viewer.actor
    payout = await list_payout_channels(actor)
    listed = {c.id for c in payout}
    # A collection channel with no initiator yet can be given one (for lookups and reversals).
    others = (
        [v.channel for v in await use_cases_channels.list_channels(actor) if v.channel.id not in listed]
        if actor.shows(Permission.channel_read)
        else []
    )
    values = {k: v for k, v in (values or {}).items() if k not in SECRETS}
    return settings_page(
        request,
        viewer,
        "app/settings_payout_channels.html",
        {
            "channels": payout,
            "others": others,
            "errors": errors or {},
            "values": {"environment": Environment.production.value, **values},
            "environments": [e.value for e in Environment],
            "name_max": NAME_MAX,
            "is_owner": actor.shows(Permission.channel_manage),
            "done": DONE.get(request.query_params.get("done", "")),
        },
        status=status,
    )


@router.get(PAGE, response_class=HTMLResponse)
async def payout_channels_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _page(request, viewer)


@router.get(PAGE + "/{channel_id:uuid}/state", response_class=HTMLResponse)
async def initiator_state(request: Request, channel_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    """One channel's initiator state, for data-poll while its balance check is awaited."""
    business(viewer, Permission.payouts_read)
    found = [c for c in await list_payout_channels(viewer.actor) if c.id == channel_id]
    if not found:
        raise NotFound("No such payout channel.")
    return render(request, "app/settings_payout_channel_state.html", {"c": found[0]}, viewer=viewer)


@router.post(PAGE, response_model=None)
async def add(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
    environment: Annotated[str, Form(max_length=40)] = "",
    short_code: Annotated[str, Form(max_length=40)] = "",
    consumer_key: Annotated[str, Form(max_length=200)] = "",
    consumer_secret: Annotated[str, Form(max_length=200)] = "",
    initiator_name: Annotated[str, Form(max_length=200)] = "",
    initiator_password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The same model and use case as POST /api/payout-channels; every complaint at once."""
    viewer.actor.require(Permission.channel_manage)  # before the form's own errors
    raw = {
        "name": name,
        "environment": environment,
        "short_code": short_code.strip(),
        "consumer_key": consumer_key,
        "consumer_secret": consumer_secret,
        "initiator_name": initiator_name,
        "initiator_password": initiator_password,
    }
    data, errors = _validate(PayoutChannelIn, raw)
    try:
        clean_name(name)
    except InvalidInput as exc:
        errors = {exc.field: exc.message, **errors}
    if data is None or errors:
        return await _page(request, viewer, errors=errors, values=raw, status=422)
    try:
        await add_payout_channel(viewer.actor, data)
    except (InvalidInput, Conflict) as exc:
        field = exc.field if isinstance(exc, InvalidInput) and exc.field in ADD_FIELDS else "add"
        status = 422 if isinstance(exc, InvalidInput) else 409
        return await _page(request, viewer, errors={field: exc.message}, values=raw, status=status)
    return RedirectResponse(f"{PAGE}?done=added", status_code=303)


@router.post(PAGE + "/{channel_id:uuid}/initiator", response_model=None)
async def save_initiator(
    request: Request,
    channel_id: uuid.UUID,
    viewer: CurrentViewer,
    initiator_name: Annotated[str, Form(max_length=200)] = "",
    initiator_password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Set or replace a channel's initiator (PUT /api/channels/{id}/initiator); it is unverified until
    its balance check answers. Another business's channel is 404."""
    viewer.actor.require(Permission.channel_manage)
    raw = {"initiator_name": initiator_name, "initiator_password": initiator_password}
    data, found = _validate(InitiatorIn, raw)
    if data is None:
        errors = {f"{key}_{channel_id}": message for key, message in found.items()}
        values = {f"initiator_name_{channel_id}": initiator_name}
        return await _page(request, viewer, errors=errors, values=values, status=422)
    await set_initiator(viewer.actor, channel_id, data)
    return RedirectResponse(f"{PAGE}?done=initiator#channel-{channel_id}", status_code=303)
