"""Apps of a business, from the API, the panel, the bot and the CLI, written once: create, list, read,
rename, set the hosts a push's own callback_url may point at, archive.

Who may:
- read (list, one app): whoever may read the API keys (`api_keys_read`: owner and manager; a key with
  keys:read), every app of the business, not only a key's own: a system that manages keys needs to
  see the apps it makes them for;
- create: the owner (`apps_manage`) signed in; never an API key, whatever its scopes;
- change (rename, callback hosts, archive): the owner; a key with keys:write (the scope that already
  makes keys), its own app only: an app's key must not reach into another app of the business.

Archiving an app revokes its keys (each with its own `apikey.revoked` row) and frees its name; it is
refused for the business's last app (keys and webhook endpoints made without naming an app need one)
and for the app of the very key asking (it would lock itself out mid-request), so a key never archives
an app."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.apps.models import App
from core.apps.schemas import AppOut, clean_app_name, clean_callback_hosts
from core.apps.service import apps
from core.auth.service import auth
from core.db import utcnow
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.tenants.channels import channels
from core.tenants.models import Mode, MpesaChannel

KEY_CANNOT_CREATE = (
    "Apps are created by the owner: panel Settings → Apps, `lipapush app create`, or with a login token "
    "(POST /api/login), not with an API key."
)


async def _own_only(actor: Actor, session: AsyncSession, app: App, doing: str) -> None:
    """An API key changes its own app only (`doing` it to another is refused, saying who can)."""
    if actor.api_key_id is None:
        return
    own = await apps.key_app_id(session, tenant_id=app.tenant_id, app_id=actor.app_id)
    if own != app.id:
        raise PermissionDenied(
            f"An API key changes only its own app, and “{app.name}” is another app of this business: "
            f"{doing} it in the panel (Settings → Apps), with `lipapush app`, or with a login token."
        )


class _Unchanged(Exception):
    """Nothing to change: the write transaction rolls back (nothing to audit) and `value` is returned."""

    def __init__(self, value: AppOut) -> None:
        super().__init__()
        self.value = value


@use_case(Permission.api_keys_read, query=True)
async def list_apps(actor: Actor) -> list[AppOut]:
    """The business's apps (archived ones are gone), oldest first: the first is where keys and webhook
    endpoints made without naming an app go."""
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await apps.active(uow.session, tenant_id=actor.require_tenant())
        return await apps.views(uow.session, rows)


@use_case(Permission.api_keys_read, query=True)
async def get_app(actor: Actor, app_id: uuid.UUID) -> AppOut:
    """One app; another business's app, or an archived one, is "not found"."""
    async with unit_of_work(actor, readonly=True) as uow:
        app = await apps.get(uow.session, tenant_id=actor.require_tenant(), app_id=app_id)
        [view] = await apps.views(uow.session, [app])
        return view


@use_case(Permission.apps_manage, audit="app.created")
async def create_app(
    actor: Actor,
    *,
    name: str,
    callback_hosts: Iterable[str] | None = None,
    channel_id: uuid.UUID | None = None,
) -> AppOut:
    """A new app on one of the business's M-Pesa channels (`channel_id`, by default its primary one);
    its mode is that channel's: test for the simulator or sandbox, live for production. Its name is
    unique in the business (409 otherwise). Not with an API key: a key acts for its own app, and a new
    app is the owner's to make."""
    if actor.api_key_id is not None:
        raise PermissionDenied(KEY_CANNOT_CREATE)
    clean_name = clean_app_name(name)
    hosts = clean_callback_hosts(callback_hosts)
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        if channel_id is not None:
            _collecting(await channels.get(uow.session, tenant_id=tenant_id, channel_id=channel_id))
        app, adopted = await apps.create(
            uow.session,
            tenant_id=tenant_id,
            name=clean_name,
            callback_hosts=hosts,
            created_by=actor.audit_user_id,
            channel_id=channel_id,
        )
        detail: dict[str, object] = {
            "name": app.name,
            "callback_hosts": hosts,
            "channel_id": str(app.channel_id),
        }
        if adopted:
            detail["keys_adopted"] = adopted
        await uow.audit("app.created", target=str(app.id), **detail)
        [view] = await apps.views(uow.session, [app])
        return view


@use_case(Permission.apps_manage, audit="app.renamed")
async def rename_app(actor: Actor, app_id: uuid.UUID, *, name: str) -> AppOut:
    """A new name, unique in the business (409 otherwise). The same name again changes nothing."""
    clean_name = clean_app_name(name)
    tenant_id = actor.require_tenant()
    try:
        async with unit_of_work(actor) as uow:
            app = await apps.get(uow.session, tenant_id=tenant_id, app_id=app_id)
            await _own_only(actor, uow.session, app, "rename")
            if app.name == clean_name:
                [view] = await apps.views(uow.session, [app])
                raise _Unchanged(view)
            old = await apps.rename(uow.session, app, name=clean_name)
            await uow.audit("app.renamed", target=str(app.id), old=old, name=clean_name)
            [view] = await apps.views(uow.session, [app])
            return view
    except _Unchanged as same:
        return same.value


@use_case(Permission.apps_manage, audit="app.callback_hosts")
async def set_callback_hosts(actor: Actor, app_id: uuid.UUID, *, hosts: Iterable[str]) -> AppOut:
    """Replace the hosts a push's own callback_url may point at (exact host names, at most 20); an
    empty list allows none. The same list again changes nothing."""
    wanted = clean_callback_hosts(hosts)
    tenant_id = actor.require_tenant()
    try:
        async with unit_of_work(actor) as uow:
            app = await apps.get(uow.session, tenant_id=tenant_id, app_id=app_id)
            await _own_only(actor, uow.session, app, "change the callback hosts of")
            before = list(app.callback_hosts or [])
            if before == wanted:
                [view] = await apps.views(uow.session, [app])
                raise _Unchanged(view)
            app.callback_hosts = wanted
            await uow.session.flush()
            await uow.audit("app.callback_hosts", target=str(app.id), old=before, hosts=wanted)
            [view] = await apps.views(uow.session, [app])
            return view
    except _Unchanged as same:
        return same.value


@use_case(Permission.apps_manage, audit="app.channel_changed")
async def set_app_channel(actor: Actor, app_id: uuid.UUID, *, channel_id: uuid.UUID) -> AppOut:
    """Send the app's pushes through another of the business's channels (a till per branch). The
    owner's, never an API key's: it decides where the money lands. A key's mode never changes, so a
    channel of the other mode (sandbox for a live app, production for a test one) is refused while
    the app has working keys. The same channel again changes nothing."""
    if actor.api_key_id is not None:
        raise PermissionDenied(
            "An app's M-Pesa channel decides where its payments land, so the owner chooses it: panel "
            "Settings → Apps, `lipapush app channel`, or with a login token, not with an API key."
        )
    tenant_id = actor.require_tenant()
    try:
        async with unit_of_work(actor) as uow:
            app = await apps.get(uow.session, tenant_id=tenant_id, app_id=app_id)
            target = _collecting(await channels.get(uow.session, tenant_id=tenant_id, channel_id=channel_id))
            current = await apps.channel_of(uow.session, app)
            if current is not None and current.id == target.id:
                [view] = await apps.views(uow.session, [app])
                raise _Unchanged(view)
            mode = current.mode if current is not None else Mode.test
            keys = await apps.working_keys(uow.session, app)
            if target.mode is not mode and keys:
                raise Conflict(
                    f"“{app.name}” is a {mode.value} app with {len(keys)} working API key(s), and "
                    f"“{target.name}” is a {target.environment.value} channel ({target.mode.value} mode): a "
                    "key's mode never changes. Create a new app on that channel (its keys will be "
                    f"{target.mode.value} keys), or revoke this app's keys first."
                )
            app.channel_id = target.id
            await uow.session.flush()
            await uow.audit(
                "app.channel_changed",
                target=str(app.id),
                old=str(current.id) if current is not None else None,
                channel_id=str(target.id),
                channel=target.name,
            )
            [view] = await apps.views(uow.session, [app])
            return view
    except _Unchanged as same:
        return same.value


@use_case(Permission.apps_manage, audit="app.archived")
async def archive_app(actor: Actor, app_id: uuid.UUID) -> AppOut:
    """Archive an app: its keys are revoked now (a request with one answers 401), its name is free
    again, and it is no longer listed. Not the business's last app; never with an API key (another
    app is not its to change, its own would revoke the key asking)."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        # Lock the business's apps: two archives at once cannot leave it with none.
        await uow.session.execute(
            select(App.id).where(App.tenant_id == tenant_id, App.archived_at.is_(None)).with_for_update()
        )
        app = await apps.get(uow.session, tenant_id=tenant_id, app_id=app_id)
        await _own_only(actor, uow.session, app, "archive")
        if actor.api_key_id is not None:
            raise Conflict(
                f"This API key belongs to the app “{app.name}”: archiving it would revoke this very key. "
                "Archive it in the panel (Settings → Apps), with `lipapush app archive`, or with a login "
                "token."
            )
        if await apps.others_active(uow.session, app) == 0:
            raise Conflict(
                f"“{app.name}” is this business's only app: keys and webhook endpoints need one. Create "
                "another app first, then archive this one."
            )
        keys = await apps.working_keys(uow.session, app)
        for key in keys:
            await auth.revoke_api_key(
                uow.session, tenant_id=tenant_id, key_id=key.id, by=actor.audit_user_id, audit=uow.audit
            )
        old = await apps.mark_archived(uow.session, app, at=utcnow())
        await uow.audit("app.archived", target=str(app.id), name=old, keys_revoked=[k.prefix for k in keys])
        [view] = await apps.views(uow.session, [app])
        return view.model_copy(update={"name": old})


def _collecting(channel: MpesaChannel) -> MpesaChannel:
    """An app pushes through its channel: a B2C (payout) shortcode cannot be prompted for STK."""
    if not channel.kind.collects:
        raise InvalidInput(
            "channel_id",
            f"“{channel.name}” is a B2C (payout) shortcode: an app collects through a paybill or till "
            "channel. Payouts choose their channel themselves (channel_id on POST /api/payouts).",
        )
    return channel
