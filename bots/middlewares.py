"""Who is talking: every message and button press gets `actor` (or None for a stranger).

The lookup is one short read-only unit of work; handlers that change anything call core services,
which open their own units of work, so no transaction is held across Bot API calls.

Its answer is kept for a few seconds (`ActorCache`): a conversation is a burst of updates from the same
person, and re-reading the user and the business for each one was most of the database work of an update
(bench/bot_updates.py). A commit in this process that writes a user or a business forgets every answer
at once, so a member removed, a role changed, a business suspended or a Telegram account (un)linked here
is seen by the very next update; see `ActorCache` for writes made by other processes.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from core.access.actor import Actor as CoreActor
from core.access.actor import Via
from core.auth.models import Role, User
from core.auth.telegram import user_by_telegram
from core.context import RequestInfo, reset_request, set_request
from core.db import Scope
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant, TenantKind, TenantStatus
from core.tenants.service import tenants


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    business: str
    status: TenantStatus
    status_reason: str | None
    kind: TenantKind = TenantKind.business

    @property
    def hotspot(self) -> bool:
        return self.kind is TenantKind.hotspot

    @functools.cached_property
    def core(self) -> CoreActor:
        """The same actor the API, the panel and USSD build for this user; core decides what it may do.
        Built once per Actor: a cached Actor serves many updates, and both are immutable."""
        return CoreActor.for_user(
            user_id=self.user_id,
            tenant_id=self.tenant_id,
            role=self.role,
            via=Via.telegram,
            tenant_name=self.business,
        )


# A Telegram account names no business: whose it is, is what the lookup finds out, asked of all of them.
WHO_IS_TALKING = Scope.platform("Telegram account lookup")


async def load_actor(telegram_user_id: int) -> Actor | None:
    async with unit_of_work(readonly=True, scope=WHO_IS_TALKING) as session:
        user = await user_by_telegram(session, telegram_user_id)
        if user is None or user.tenant_id is None:
            return None
        tenant = await tenants.get(session, user.tenant_id)
        return Actor(
            user.id, tenant.id, user.role, tenant.name, tenant.status, tenant.status_reason, tenant.kind
        )


class ActorCache:
    """Recent answers of `load_actor`, per Telegram account, for `TTL` seconds, in this process.

    Invalidation: any commit in this process whose session wrote a `users` or `tenants` row (an ORM
    change flushed, or an UPDATE/DELETE/INSERT statement on either table run through a session) clears
    the whole cache, after the commit, so the next update re-reads what was committed. Such writes are
    rare (sign-up, linking, staff changes, suspensions), so clearing everything costs nothing that
    matters and cannot miss an entry. The cache is cleared before the commit as well, and an answer
    read while a write was in flight is not kept (`_epoch`), so a read racing a commit never outlives it.

    Writes made by another process (a second web worker, a CLI command) are not seen here: they take
    effect in this process within `TTL` seconds. Core has no cross-process signal for "a user or a
    business changed" yet; with one (a Redis channel or a version number bumped by those services),
    `clear` would be called from it and `TTL` could grow."""

    TTL = 5.0

    def __init__(self) -> None:
        self._entries: dict[int, tuple[float, Actor | None]] = {}
        self._epoch = 0  # bumped by every clear: an answer read across a clear is not stored
        self._db: object | None = None  # the database the answers came from (tests reconfigure it)

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()

    async def get(self, telegram_user_id: int) -> Actor | None:
        db = runtime().db
        if db is not self._db:
            self.clear()
            self._db = db
        now = time.monotonic()
        hit = self._entries.get(telegram_user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        epoch = self._epoch
        actor = await load_actor(telegram_user_id)
        if epoch == self._epoch:
            if len(self._entries) > 10_000:  # many one-off strangers: drop them rather than grow
                self._entries.clear()
            self._entries[telegram_user_id] = (now + self.TTL, actor)
        return actor


actors = ActorCache()

_ACTOR_TABLES = frozenset({User.__tablename__, Tenant.__tablename__})
_WROTE = "bots.actor_rows_written"


def _wrote_actor_rows(session: Session) -> None:
    session.info[_WROTE] = True
    actors.clear()


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, User | Tenant):
            _wrote_actor_rows(session)
            return


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete or state.is_insert:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _ACTOR_TABLES:
            _wrote_actor_rows(state.session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        actors.clear()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WROTE, None)


class CommandsLeaveFlows(BaseMiddleware):
    """A command always means what it says: `/help` in the middle of a payment request leaves that flow
    instead of being read as the amount. Runs before filters, so it also resets the state they match."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        state = data.get("state")
        text = event.text or "" if isinstance(event, Message) else ""
        # /cancel is left alone: it reports what it cancelled
        command = text.startswith("/") and not text.startswith("/cancel")
        if command and state is not None and data.get("raw_state") is not None:
            await state.clear()
            data["raw_state"] = None
        return await handler(event, data)


class ActorMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = event.from_user if isinstance(event, Message | CallbackQuery) else None
        data["actor"] = await actors.get(user.id) if user is not None else None
        token = set_request(RequestInfo(request_id=f"tg-{user.id if user else 'anon'}-{id(event):x}"))
        try:
            return await handler(event, data)
        finally:
            reset_request(token)
