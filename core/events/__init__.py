"""Domain events: a finished fact, published by the domain it happened in, handled by the domains
that care, without the publisher naming them.

- `publish(session, event)` runs every subscriber in the publisher's transaction, in the order
  `core/subscribers.py` lists the subscribing modules. The effects a payment's success must have
  atomically with it (customer totals, the commission posting, the wallet credit, the voucher, the
  verification of a channel, the merchant's message in the outbox) therefore commit or roll back with
  the state change, exactly as when `payments` called them by name, and a replayed callback, which
  publishes nothing, changes nothing.
- Work that must happen outside the transaction (an SMS, a router call, and the merchant webhooks to
  come) is what subscribers already do through the job outbox (`enqueue`): written in the same
  transaction, sent after commit, retried, never lost.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession


class DomainEvent:
    """Base of every event. Subclasses are frozen dataclasses named for the fact, in the past tense."""

    name: str = "event"


E = TypeVar("E", bound=DomainEvent)
Handler = Callable[[AsyncSession, Any], Awaitable[None]]

_SUBSCRIBERS: dict[type[DomainEvent], list[Handler]] = {}
_loaded = False


def subscribe(event_type: type[E]) -> Callable[[Callable[[AsyncSession, E], Awaitable[None]]], Handler]:
    def register(fn: Callable[[AsyncSession, E], Awaitable[None]]) -> Handler:
        _SUBSCRIBERS.setdefault(event_type, []).append(fn)
        return fn

    return register


def _load() -> None:
    # The subscribing modules import the publishers' events; loading them here, on first publish,
    # instead of from the publisher keeps the import graph pointing one way.
    global _loaded
    if not _loaded:
        importlib.import_module("core.subscribers")
        _loaded = True


def subscribers(event_type: type[DomainEvent]) -> list[Handler]:
    _load()
    return list(_SUBSCRIBERS.get(event_type, []))


async def publish(session: AsyncSession, event: DomainEvent) -> None:
    for handler in subscribers(type(event)):
        await handler(session, event)
