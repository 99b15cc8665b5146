"""Who writes a service's audit row: the use case that called it (`uow.audit`, which adds who did it
and from where, and tells the frame the row is written), or, for trusted callers outside a use case
(the CLI, jobs, tests), a plain row in the caller's session."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record


class Auditor(Protocol):
    async def __call__(self, action: str, *, target: str | None = None, **detail: Any) -> object: ...


def recorder(session: AsyncSession, *, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None) -> Auditor:
    """A plain audit row in `session`, for callers that are not a use case."""

    async def write(action: str, *, target: str | None = None, **detail: Any) -> object:
        return await record(
            session, action=action, tenant_id=tenant_id, user_id=user_id, target=target, detail=detail
        )

    return write
