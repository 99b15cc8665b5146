"""/api/apps: a business's apps (core/apps/use_cases.py decides who may)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from core.apps import use_cases
from core.apps.schemas import AppIn, AppOut, AppPatch
from web.deps import CurrentActor

router = APIRouter(tags=["apps"])


@router.post("/apps", status_code=201)
async def create_app(body: AppIn, actor: CurrentActor) -> AppOut:
    """A new app on one of the business's M-Pesa channels (`channel_id`, default its primary one); its
    mode is the channel's (test for the simulator or sandbox, live for production). A name the
    business already uses is refused (409). Owner; an API key needs keys:write."""
    return await use_cases.create_app(
        actor, name=body.name, callback_hosts=body.callback_hosts, channel_id=body.channel_id
    )


@router.get("/apps")
async def list_apps(actor: CurrentActor) -> list[AppOut]:
    """The business's apps, oldest first, with their mode, channel, working keys and webhook endpoints.
    Owner and manager; an API key needs keys:read."""
    return await use_cases.list_apps(actor)


@router.get("/apps/{app_id}")
async def get_app(app_id: uuid.UUID, actor: CurrentActor) -> AppOut:
    return await use_cases.get_app(actor, app_id)


@router.patch("/apps/{app_id}")
async def update_app(app_id: uuid.UUID, body: AppPatch, actor: CurrentActor) -> AppOut:
    """Rename the app, replace its callback hosts (the hosts a push's own callback_url may point at; []
    allows none) and/or move it to another of the business's channels (owner only; to a channel of
    the other mode only while it has no working keys). What is not given stays as it is."""
    if body.name is None and body.callback_hosts is None and body.channel_id is None:
        return await use_cases.get_app(actor, app_id)
    out: AppOut | None = None
    if body.channel_id is not None:
        out = await use_cases.set_app_channel(actor, app_id, channel_id=body.channel_id)
    if body.name is not None:
        out = await use_cases.rename_app(actor, app_id, name=body.name)
    if body.callback_hosts is not None:
        out = await use_cases.set_callback_hosts(actor, app_id, hosts=body.callback_hosts)
    assert out is not None
    return out


@router.delete("/apps/{app_id}")
async def archive_app(app_id: uuid.UUID, actor: CurrentActor) -> AppOut:
    """Archive the app: its API keys are revoked at once and it is no longer listed. Refused (409) for
    the business's last app and for the app of the key making the request."""
    return await use_cases.archive_app(actor, app_id)
