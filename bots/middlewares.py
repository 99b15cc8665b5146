"""Who is talking: every message and button press gets `actor` (or None for a stranger).

The lookup is one short read-only unit of work; handlers that change anything call core services,
which open their own units of work, so no transaction is held across Bot API calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject

from core.access.actor import Actor as CoreActor
from core.access.actor import Via
from core.auth.models import Role
from core.auth.telegram import user_by_telegram
from core.context import RequestInfo, reset_request, set_request
from core.db import Scope
from core.runtime import unit_of_work
from core.tenants.models import TenantKind, TenantStatus
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

    @property
    def core(self) -> CoreActor:
        """The same actor the API, the panel and USSD build for this user; core decides what it may do."""
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
        data["actor"] = await load_actor(user.id) if user is not None else None
        token = set_request(RequestInfo(request_id=f"tg-{user.id if user else 'anon'}-{id(event):x}"))
        try:
            return await handler(event, data)
        finally:
            reset_request(token)
