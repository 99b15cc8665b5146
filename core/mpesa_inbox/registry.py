"""Who applies each kind of answer. A domain registers its handler at import (core.subscribers imports
them all, as it does the event subscribers): this package names no domain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.mpesa_inbox.kinds import CallbackKind
from core.payments.models import CallbackInbox

# (session, the stored row, its JSON, settings) -> the outcome recorded on the row ("applied",
# "duplicate", "rejected: …"). Runs in the job's transaction, in platform scope: the row names a
# channel, and the handler finds the business from what it matches.
Handler = Callable[[AsyncSession, CallbackInbox, Any, Settings], Awaitable[str]]

HANDLERS: dict[CallbackKind, Handler] = {}


class NotYetMatched(Exception):
    """Retryable: the answer names a request whose own record is not committed yet (Daraja can answer
    before our transaction that recorded the request ends)."""


def handles(*kinds: CallbackKind) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for kind in kinds:
            if kind in HANDLERS and HANDLERS[kind] is not fn:
                raise RuntimeError(f"two handlers for {kind.value} callbacks")
            HANDLERS[kind] = fn
        return fn

    return register
