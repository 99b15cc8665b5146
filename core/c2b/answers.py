"""Handlers of Daraja answers for this domain (core.mpesa_inbox.registry): the C2B confirmation, applied
once in the inbox job (core/c2b/confirmations.py says how)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.c2b import confirmations
from core.config import Settings
from core.mpesa_inbox.kinds import CallbackKind
from core.mpesa_inbox.registry import handles
from core.payments.models import CallbackInbox


@handles(CallbackKind.c2b_confirmation)
async def apply_confirmation(session: AsyncSession, row: CallbackInbox, data: Any, settings: Settings) -> str:
    """Outcomes: applied, duplicate, duplicate_of_push, settled_push, rejected (why: c2b_decisions)."""
    return await confirmations.apply(session, row, data, settings)
