"""Issuing and spending confirmation tokens (the rules; the use cases that need a second step call
these inside their own units of work).

A token is `cf_` and 32 random URL-safe characters (192 bits), stored as its SHA-256. Whose it is: the
API key that asked (an agent), else the person. Anyone else presenting it, or a token that never
existed, gets the same "not found": telling them apart would help someone guessing.

Spending is two calls on purpose, `check` before the action and `mark_used` after it: a second step
whose action was refused (over today's limit, a wrong owner's code) leaves the token valid until it
expires, and `mark_used` is a conditional UPDATE, so of two racing second steps exactly one is
reported as the one that did it. Each action's own idempotency (a payout's key derived from the
confirmation id) keeps the racing loser from doing it twice.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.confirmations.models import ConfirmAction, Confirmation
from core.db import utcnow
from core.errors import Conflict, InvalidInput, NotFound

TOKEN_PREFIX = "cf_"
TTL = timedelta(minutes=5)
KEEP = timedelta(days=7)  # spent and expired tokens, for support questions, then pruned


class ConfirmationExpired(Conflict):
    code = "confirmation_expired"


class ConfirmationUsed(Conflict):
    code = "confirmation_used"


def digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def _owner(actor: Actor) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(api_key_id, user_id) the token belongs to: a key's token is the key's, not its creator's."""
    if actor.api_key_id is not None:
        return actor.api_key_id, None
    return None, actor.user_id


async def issue(
    session: AsyncSession,
    actor: Actor,
    *,
    action: ConfirmAction,
    payload: dict[str, Any],
    ttl: timedelta = TTL,
) -> tuple[Confirmation, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    key_id, user_id = _owner(actor)
    row = Confirmation(
        id=uuid.uuid4(),
        token_hash=digest(token),
        tenant_id=actor.require_tenant(),
        api_key_id=key_id,
        user_id=user_id,
        action=action,
        payload=payload,
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    await session.flush()
    return row, token


def _shape(token: str) -> str:
    token = (token or "").strip()
    if not token.startswith(TOKEN_PREFIX) or not 10 <= len(token) <= 64:
        raise InvalidInput(
            "confirmation_token",
            "This is not a confirmation token (they start with cf_): use the one the first call returned.",
        )
    return token


async def check(
    session: AsyncSession, actor: Actor, *, action: ConfirmAction, token: str, now: datetime | None = None
) -> Confirmation:
    """The caller's unspent, unexpired token for `action`, or the reason it cannot be used."""
    row = await session.scalar(select(Confirmation).where(Confirmation.token_hash == digest(_shape(token))))
    key_id, user_id = _owner(actor)
    if (
        row is None
        or row.tenant_id != actor.tenant_id
        or row.api_key_id != key_id
        or (key_id is None and row.user_id != user_id)
        or row.action is not action
    ):
        raise NotFound(
            f"No such {action.value} confirmation token for this key. Tokens belong to the key that asked "
            f"for them: call the tool again without a token to get a new one."
        )
    if row.used_at is not None:
        made = f" It made {action.value} {row.result_id}; look it up instead." if row.result_id else ""
        raise ConfirmationUsed(f"This confirmation token was already used.{made}", result_id=row.result_id)
    if row.expires_at <= (now or utcnow()):
        raise ConfirmationExpired(
            f"This confirmation token expired at {row.expires_at:%H:%M:%S} UTC: call the tool again "
            "without a token for a new summary and token."
        )
    return row


async def mark_used(session: AsyncSession, row: Confirmation, *, result_id: str | None) -> bool:
    """Spend the token. False when another second step spent it first (this one must not report the
    action as its own)."""
    result = await session.execute(
        update(Confirmation)
        .where(Confirmation.id == row.id, Confirmation.used_at.is_(None))
        .values(used_at=utcnow(), result_id=result_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def prune(session: AsyncSession, *, now: datetime | None = None) -> int:
    result = await session.execute(
        delete(Confirmation).where(Confirmation.expires_at < (now or utcnow()) - KEEP)
    )
    return int(getattr(result, "rowcount", 0) or 0)
