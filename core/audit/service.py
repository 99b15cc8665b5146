from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import AuditLog
from core.context import current_request


async def record(
    session: AsyncSession,
    *,
    action: str,
    tenant_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Append an audit row in the caller's transaction: it commits or rolls back with the change."""
    req = current_request()
    row = AuditLog(
        action=action,
        tenant_id=tenant_id,
        user_id=user_id,
        target=target,
        detail=detail or {},
        ip=req.ip if req else None,
        request_id=req.request_id if req else None,
    )
    session.add(row)
    await session.flush()
    return row
