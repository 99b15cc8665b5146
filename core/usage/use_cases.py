"""API usage, from the API, the panel and the bot, written once: the figures, the request log and its
export.

Who may: whoever may read usage (`usage_read`: owner and manager; a key with keys:read). A person
sees every app of the business; an API key sees its own app only (another app's id, or a key of
another app, is refused with where to look instead), as it manages only its own app's keys."""

from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.apps.models import App
from core.apps.service import apps
from core.auth.models import ApiKey
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.exports.use_cases import BuiltExport
from core.exports.xlsx import Column, build_xlsx
from core.runtime import runtime
from core.tenants.service import tenants
from core.usage.schemas import RequestPage, UsageOut
from core.usage.service import RequestFilter, usage

NO_SUCH_APP = "No such app. List this business's apps with GET /api/apps."
NO_SUCH_KEY = "No such API key. List this business's keys with GET /api/api-keys."
KEY_SEES_OWN_APP = (
    "An API key reads only its own app's usage, and this is another app's: read it in the panel "
    "(Settings → Usage), or with a login token or a key of that app."
)
MAX_PAGE = 200

EXPORT_COLUMNS = [
    Column("Time (EAT)", "datetime", 20),
    Column("Method", "text", 8),
    Column("Route", "text", 40),
    Column("Status", "int", 8),
    Column("Latency (ms)", "int", 12),
    Column("Key", "text", 16),
    Column("App", "text", 20),
    Column("Mode", "text", 8),
    Column("Network", "text", 20),
    Column("Request id", "text", 20),
]


async def _scoped(session: AsyncSession, actor: Actor, f: RequestFilter) -> RequestFilter:
    """The filter as the actor may ask it: the app and key must be the business's (404), and an API
    key's questions are about its own app (403 for another; its own when it names none)."""
    tenant_id = actor.require_tenant()
    app = await session.get(App, f.app_id) if f.app_id is not None else None
    if f.app_id is not None and (app is None or app.tenant_id != tenant_id):
        raise NotFound(NO_SUCH_APP)
    key = await session.get(ApiKey, f.key_id) if f.key_id is not None else None
    if f.key_id is not None and (key is None or key.tenant_id != tenant_id):
        raise NotFound(NO_SUCH_KEY)
    if actor.api_key_id is None:
        return f
    own = await apps.key_app_id(session, tenant_id=tenant_id, app_id=actor.app_id)
    if own is None:  # a key of a business with no app yet: its own requests only
        if key is not None and key.id != actor.api_key_id:
            raise PermissionDenied(KEY_SEES_OWN_APP)
        return dataclasses.replace(f, key_id=actor.api_key_id)
    if (app is not None and app.id != own) or (key is not None and key.app_id != own):
        raise PermissionDenied(KEY_SEES_OWN_APP)
    return dataclasses.replace(f, app_id=own)


@use_case(Permission.usage_read, query=True)
async def usage_figures(
    actor: Actor, *, app_id: uuid.UUID | None = None, key_id: uuid.UUID | None = None
) -> UsageOut:
    """Requests, pushes, successes and failures for the last 24 hours and this Nairobi month: in all,
    per app, per key and per endpoint (with its latency)."""
    async with unit_of_work(actor, readonly=True) as uow:
        f = await _scoped(uow.session, actor, RequestFilter(app_id=app_id, key_id=key_id))
        return await usage.figures(
            uow.session, tenant_id=actor.require_tenant(), app_id=f.app_id, key_id=f.key_id
        )


@use_case(Permission.usage_read, query=True)
async def list_requests(
    actor: Actor, *, filters: RequestFilter, cursor: str | None = None, limit: int = 50
) -> RequestPage:
    """The request log, newest first, `limit` (1 to 200) a page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"A page holds 1 to {MAX_PAGE} requests.")
    async with unit_of_work(actor, readonly=True) as uow:
        f = await _scoped(uow.session, actor, filters)
        return await usage.page(
            uow.session, tenant_id=actor.require_tenant(), filters=f, cursor=cursor, limit=limit
        )


@use_case(Permission.usage_read, audit="export.usage")
async def export_requests(actor: Actor, *, filters: RequestFilter) -> BuiltExport:
    """The request log as .xlsx, with the list's filters: everything kept (USAGE_RETENTION_DAYS),
    newest first. Built while the request waits: one business's log for that long is a few hundred
    thousand rows at most, written a batch at a time."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        f = await _scoped(uow.session, actor, filters)
        path, count = await build_xlsx(
            sheet_title="API requests",
            columns=EXPORT_COLUMNS,
            batches=usage.export_batches(uow.session, tenant_id=tenant_id, filters=f),
            directory=runtime().settings.EXPORT_DIR,
        )
    async with unit_of_work(actor) as uow:
        await uow.audit(
            "export.usage",
            rows=count,
            app_id=str(f.app_id) if f.app_id else None,
            key_id=str(f.key_id) if f.key_id else None,
        )
    return BuiltExport(path, count, f"api-usage-{tenant.slug}")
