"""Telling a business's owner about activity that may not be theirs.

Three things, each told in one plain sentence that says what happened and what to do, on the owner's
usual channel (Telegram when linked, else SMS to the business phone; `notify.to_owner`) and by email
when the business has a real address:

- a key used from a network it was never used from (`security.new_network`). Every network a key was
  used from is kept (`api_key_networks`); the first one ever is where the key's system lives, not news.
- a burst of refused requests with the business's keys (`security.refused_keys`): at least
  REFUSED_BURST requests answered 401 in REFUSED_WINDOW, told at most once per REFUSED_QUIET. A refused
  key that still names one of the business's keys by its prefix is a system using a revoked, expired or
  mistyped key, or someone guessing.
- a credential or key changed (`security.change`): the audit actions in CHANGE_ACTIONS, watched by one
  hook on every session's flushes rather than in each use case. The hook writes a job into the job
  outbox in the transaction of the change (so an alert exists exactly when the change committed); the
  job writes the messages. Changes made by lipapush itself (the operator's CLI, jobs, set-up scripts:
  an audit row without a person's or key's entry point) and a business's very first channel (setting
  up is not a change) are not told.

The first two are checked after each batch of the request log is written (core.usage.recorder).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from core.audit.models import AuditLog
from core.auth.models import ApiKey, User
from core.auth.staff import is_placeholder
from core.context import current_request
from core.db import Scope, ScopedSession, utcnow
from core.jobs.models import JobOutbox
from core.jobs.registry import job
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel, Tenant
from core.upsert import insert_for
from core.usage.models import ApiKeyNetwork, ApiRequest

NAIROBI = ZoneInfo("Africa/Nairobi")

NEW_NETWORK = "security.new_network"
REFUSED_KEYS = "security.refused_keys"
CHANGE = "security.change"

REFUSED_BURST = 20
REFUSED_WINDOW = timedelta(minutes=5)
REFUSED_QUIET = timedelta(minutes=30)
# How stale a network's last_seen_at may get: writing it on every batch would update a row per key
# every second for nothing anyone reads that closely.
SEEN_STAMP_EVERY = timedelta(hours=1)

CHANGE_ACTIONS = frozenset(
    {
        "channel.credentials_changed",
        "channel.added",
        "apikey.created",
        "apikey.rolled",
        "apikey.revoked",
        "webhook.secret_rotated",
        "webhook.callback_secret_rotated",
    }
)
CHANNEL_ACTIONS = frozenset({"channel.credentials_changed", "channel.added"})
# Entry points of a person or an API key (core.access.actor.Via); "cli" and "job" are lipapush's own.
PEOPLE_VIA = frozenset({"api", "panel", "telegram", "ussd", "mcp"})

KEYS_WHERE = "in the panel (Settings > API keys) or with DELETE /api/api-keys/{id}"
SIGNS = {
    "api": "through the API",
    "panel": "in the panel",
    "telegram": "in the Telegram bot",
    "ussd": "by USSD",
    "mcp": "through the MCP server",
}

# A job is addressed by its name below; the hook writes its outbox row without importing the job
# registry's enqueue (it runs inside a flush, where nothing may be awaited).
ALERT_CHANGES_JOB = "usage.alert_changes"


def _eat(at: datetime) -> str:
    return at.astimezone(NAIROBI).strftime("%d %b %Y %H:%M EAT")


def _key_label(mode: str, prefix: str, name: str | None) -> str:
    named = f" (“{name}”)" if name else ""
    return f"{mode} API key {prefix}…{named}"


async def tell_owner(session: AsyncSession, *, tenant: Tenant, kind: str, body: str) -> list[Notification]:
    """The owner's chat (else an SMS to the business phone), and an email to the owner's real address
    or, failing that, the business's. Outbox rows in this transaction; sent after commit."""
    subject = f"Security alert for {tenant.name}"[:200]
    rows = [await notify.to_owner(session, tenant=tenant, kind=kind, subject=subject, body=body)]
    owner = await notify.owner(session, tenant_id=tenant.id)
    email = owner.email if owner is not None and not is_placeholder(owner.email) else tenant.email
    if email and not email.endswith(".invalid"):
        rows.append(
            await notify.queue(
                session,
                Notification(
                    tenant_id=tenant.id,
                    kind=kind,
                    channel=NotifyChannel.email,
                    recipient=email,
                    subject=subject,
                    body=body,
                ),
            )
        )
    return rows


# -- checks after each batch of the request log -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyUse:
    """A request made with a key that authenticated, for the new-network check."""

    api_key_id: uuid.UUID
    tenant_id: uuid.UUID
    network: str
    at: datetime


# Keys of any business used in the batch: their networks are read and written across businesses.
CHECK_SCOPE = Scope.platform("usage alerts: networks and refusals of the keys of one batch")


async def check_batch(*, uses: list[KeyUse], refused: set[uuid.UUID]) -> None:
    if not uses and not refused:
        return
    async with unit_of_work(scope=CHECK_SCOPE) as session:
        if uses:
            await _new_networks(session, uses)
        for tenant_id in sorted(refused):
            await _refused_burst(session, tenant_id)


async def _new_networks(session: AsyncSession, uses: list[KeyUse]) -> None:
    first_use: dict[tuple[uuid.UUID, str], KeyUse] = {}
    for use in sorted(uses, key=lambda u: u.at):
        first_use.setdefault((use.api_key_id, use.network), use)
    key_ids = {k for k, _ in first_use}
    known: dict[uuid.UUID, dict[str, ApiKeyNetwork]] = defaultdict(dict)
    for row in await session.scalars(select(ApiKeyNetwork).where(ApiKeyNetwork.api_key_id.in_(key_ids))):
        known[row.api_key_id][row.network] = row
    now = utcnow()
    fresh: dict[uuid.UUID, list[KeyUse]] = defaultdict(list)
    for (key_id, network), use in first_use.items():
        seen = known[key_id].get(network)
        if seen is not None:
            if now - seen.last_seen_at > SEEN_STAMP_EVERY:
                await session.execute(
                    update(ApiKeyNetwork)
                    .where(ApiKeyNetwork.api_key_id == key_id, ApiKeyNetwork.network == network)
                    .values(last_seen_at=now)
                )
            continue
        table = ApiKeyNetwork.__table__
        # Another web process may record the same first use at the same moment: one row wins, and
        # only the process that wrote it tells the owner.
        inserted = await session.scalar(
            insert_for(session, table)
            .values(
                api_key_id=key_id,
                network=network,
                tenant_id=use.tenant_id,
                first_seen_at=use.at,
                last_seen_at=use.at,
            )
            .on_conflict_do_nothing()
            .returning(table.c.network)
        )
        if inserted is not None:
            fresh[key_id].append(use)
    for key_id, new in fresh.items():
        # The first network a key is ever used from is where its system lives, not news.
        news = new if known[key_id] else new[1:]
        if news:
            await _tell_new_network(session, key_id, news)


async def _tell_new_network(session: AsyncSession, key_id: uuid.UUID, news: list[KeyUse]) -> None:
    key = await session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        return
    tenant = await session.get(Tenant, key.tenant_id)
    if tenant is None:
        return
    networks = ", ".join(u.network for u in news)
    several = "new networks" if len(news) > 1 else "a new network"
    body = (
        f"The {_key_label(key.mode.value, key.prefix, key.name)} of {tenant.name} was used from {several}, "
        f"{networks}, at {_eat(news[0].at)}: if that was not your own system, revoke the key {KEYS_WHERE} "
        "and give your system a new one."
    )
    await tell_owner(session, tenant=tenant, kind=NEW_NETWORK, body=body)


async def _refused_burst(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    since = utcnow() - REFUSED_WINDOW
    refused = (
        select(ApiRequest.api_key_id, ApiRequest.network)
        .where(
            ApiRequest.tenant_id == tenant_id,
            ApiRequest.status_code == 401,
            ApiRequest.api_key_id.is_not(None),
            ApiRequest.created_at >= since,
        )
        .limit(10_000)
    )
    rows = (await session.execute(refused)).all()
    if len(rows) < REFUSED_BURST:
        return
    # One alert per business per quiet period, even with several web processes checking at once: the
    # business's row is the lock, taken last (the api_key_networks rows this transaction may hold are
    # touched by no payment; core/ledger/service.py has the lock order), in the same order everywhere.
    locked = select(Tenant).where(Tenant.id == tenant_id).with_for_update(key_share=True)
    tenant = await session.scalar(locked)
    if tenant is None:
        return
    told = await session.scalar(
        select(func.count(Notification.id)).where(
            Notification.tenant_id == tenant_id,
            Notification.kind == REFUSED_KEYS,
            Notification.created_at >= utcnow() - REFUSED_QUIET,
        )
    )
    if told:
        return
    key_id, _ = Counter(r.api_key_id for r in rows).most_common(1)[0]
    network, _ = Counter(r.network or "an unknown network" for r in rows).most_common(1)[0]
    key = await session.get(ApiKey, key_id)
    which = _key_label(key.mode.value, key.prefix, key.name) if key is not None else "a key"
    body = (
        f"{len(rows)} requests to the lipapush API with keys of {tenant.name} were refused in the last "
        f"{int(REFUSED_WINDOW.total_seconds() // 60)} minutes, most with the {which} from {network}: a "
        "system is using a revoked, expired or mistyped key, or someone is guessing; if the key is yours "
        f"and may have leaked, revoke it {KEYS_WHERE}."
    )
    await tell_owner(session, tenant=tenant, kind=REFUSED_KEYS, body=body)


# -- credential and key changes: one hook over the audit rows -----------------------------------------

_PENDING = "usage_change_audits"


def _watched(row: AuditLog) -> bool:
    via = (row.detail or {}).get("via")
    return row.action in CHANGE_ACTIONS and row.tenant_id is not None and via in PEOPLE_VIA


def _collect(session: Session, _flush: UOWTransaction) -> None:
    """After each flush: the audit rows just written that the owner is told about (ids are known)."""
    for obj in session.new:
        if isinstance(obj, AuditLog) and _watched(obj):
            session.info.setdefault(_PENDING, []).append((obj.tenant_id, obj.id))


def _enqueue(session: Session) -> None:
    """Before commit: one alert job per business, in the job outbox of this same transaction (the
    commit flushes it), so the alert exists exactly when the change does. The relay sends it."""
    pending: list[tuple[uuid.UUID, int]] = session.info.pop(_PENDING, [])
    if not pending:
        return
    by_tenant: dict[uuid.UUID, list[int]] = defaultdict(list)
    for tenant_id, audit_id in pending:
        by_tenant[tenant_id].append(audit_id)
    req = current_request()
    for tenant_id, ids in by_tenant.items():
        session.add(
            JobOutbox(
                actor=ALERT_CHANGES_JOB,
                kwargs={"tenant_id": str(tenant_id), "audit_ids": sorted(ids)},
                request_id=req.request_id if req else None,
            )
        )


def _forget(session: Session, transaction: SessionTransaction) -> None:
    """At the end of the session's outermost transaction, what was not committed is forgotten (the
    commit took its rows in `_enqueue`). A savepoint's end keeps the list: its rows are looked up by
    id when the job runs, and a row rolled back with its savepoint is simply not found."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


# Registered once, on every session of the application (core.db.ScopedSession), when this module is
# first imported: web/app.py imports it, and every process (web, worker, bot, scheduler) imports that.
if not event.contains(ScopedSession, "after_flush", _collect):
    event.listen(ScopedSession, "after_flush", _collect)
    event.listen(ScopedSession, "before_commit", _enqueue)
    event.listen(ScopedSession, "after_transaction_end", _forget)


async def _who(session: AsyncSession, row: AuditLog) -> str:
    detail = row.detail or {}
    where = SIGNS.get(str(detail.get("via")), "")
    if detail.get("impersonating"):
        return f"lipapush support (an administrator viewing your business) {where}".strip()
    if key_id := detail.get("api_key_id"):
        key = await session.get(ApiKey, uuid.UUID(str(key_id)))
        if key is not None:
            return f"the API key {key.prefix}… {where}".strip()
    user = await session.get(User, row.user_id) if row.user_id else None
    if user is None:
        return f"someone {where}".strip()
    name = "a Telegram account" if is_placeholder(user.email) else user.email
    return f"{name} ({user.role.value}) {where}"


async def _first_channel(session: AsyncSession, row: AuditLog) -> bool:
    earlier = await session.scalar(
        select(func.count(AuditLog.id)).where(
            AuditLog.tenant_id == row.tenant_id, AuditLog.action.in_(CHANNEL_ACTIONS), AuditLog.id < row.id
        )
    )
    return not earlier


async def _sentence(session: AsyncSession, row: AuditLog, tenant: Tenant) -> str | None:
    d: dict[str, Any] = row.detail or {}
    who = await _who(session, row)
    when = _eat(row.created_at)
    if row.action in CHANNEL_ACTIONS:
        if await _first_channel(session, row):
            return None
        channel = await session.get(MpesaChannel, uuid.UUID(row.target)) if row.target else None
        name = d.get("channel") or (channel.name if channel else "?")
        code = d.get("short_code") or (channel.business_short_code if channel else "?")
        what = (
            f"A new M-Pesa channel “{name}” (short code {code}) was added to {tenant.name}"
            if row.action == "channel.added"
            else f"The M-Pesa credentials of the channel “{name}” of {tenant.name} were changed "
            f"(short code {code})"
        )
        return (
            f"{what} by {who} at {when}: if that was not you, change your password, revoke your API keys "
            f"{KEYS_WHERE} and put your own credentials back (Settings > Channels)."
        )
    if row.action in ("apikey.created", "apikey.rolled", "apikey.revoked"):
        label = _key_label(str(d.get("mode") or ""), str(d.get("prefix") or "?"), d.get("name"))
        if row.action == "apikey.created":
            what = f"A new {label} was created for {tenant.name}"
        elif row.action == "apikey.rolled":
            what = (
                f"The API key {d.get('prefix')}… of {tenant.name} was rolled to the new key "
                f"{d.get('new_prefix')}…"
            )
        else:
            what = f"The API key {d.get('prefix')}… of {tenant.name} was revoked"
        todo = (
            f"revoke any key you did not make {KEYS_WHERE} and change your password"
            if row.action != "apikey.revoked"
            else "change your password and check your keys in the panel (Settings > API keys)"
        )
        return f"{what} by {who} at {when}: if that was not you, {todo}."
    if row.action == "webhook.secret_rotated":
        return (
            f"The signing secret of a webhook endpoint of {tenant.name} was rotated by {who} at {when}: if "
            "that was not you, change your password, check the endpoint's URL in the panel (Settings > "
            f"Webhooks) and revoke your API keys {KEYS_WHERE}."
        )
    if row.action == "webhook.callback_secret_rotated":
        return (
            f"The callback signing secret of an app of {tenant.name} was rotated by {who} at {when}: if that "
            "was not you, change your password, check the app in the panel (Settings > Apps) and revoke "
            f"your API keys {KEYS_WHERE}."
        )
    return None


@job(ALERT_CHANGES_JOB, max_retries=5)
async def alert_changes(tenant_id: str, audit_ids: list[int]) -> None:
    """Tell the owner of the credential and key changes of one transaction: one message, a sentence
    for each (a rolled key's new key is told as part of the roll)."""
    tid = uuid.UUID(tenant_id)
    async with unit_of_work(scope=Scope.tenant(tid)) as session:
        tenant = await session.get(Tenant, tid)
        if tenant is None:
            return
        rows = list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == tid, AuditLog.id.in_(audit_ids))
                .order_by(AuditLog.id)
            )
        )
        rolled_to = {str(r.detail.get("new_key_id")) for r in rows if r.action == "apikey.rolled"}
        sentences = []
        for row in rows:
            if not _watched(row) or (row.action == "apikey.created" and row.target in rolled_to):
                continue
            if (sentence := await _sentence(session, row, tenant)) is not None:
                sentences.append(sentence)
        if sentences:
            await tell_owner(session, tenant=tenant, kind=CHANGE, body="\n".join(sentences))
