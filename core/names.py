"""Names a business gives its own things (apps, channels): unique within the business whatever their
case ("Shop" and "shop" would confuse), checked before a write and again by the unique constraint when
two requests chose the same name at once. `taken` words the refusal for the kind of thing."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict


async def ensure_name_free(
    session: AsyncSession,
    model: Any,
    *,
    tenant_id: uuid.UUID,
    name: str,
    taken: str,
    other_than: uuid.UUID | None = None,
) -> None:
    """Conflict (409, on the `name` field) when another row of `model` in the business has `name`."""
    query = select(model.id).where(model.tenant_id == tenant_id, func.lower(model.name) == name.lower())
    if other_than is not None:
        query = query.where(model.id != other_than)
    if await session.scalar(query.limit(1)) is not None:
        raise Conflict(taken, field="name")


async def flush_name(session: AsyncSession, taken: str) -> None:
    """Flush; a name another request took a moment ago is the same Conflict, not a 500."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(taken, field="name") from None
