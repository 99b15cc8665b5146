"""Lookup rows: asking (a row, then the send job after commit), finding, and what an answer records.

No commit and no permission here: core/lookups/use_cases.py holds those, and the payouts reconciler
asks its own status questions through `ask`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import NotFound
from core.jobs.registry import enqueue
from core.lookups.models import Lookup, LookupKind, LookupStatus
from core.lookups.send import send_lookup
from core.tenants.models import Mode, MpesaChannel

NO_SUCH_LOOKUP = "No such lookup: use the id POST /api/lookups/status or POST /api/balance/refresh returned."


@dataclass(frozen=True)
class ChannelBalance:
    """A channel's latest balance (None before one came) and its latest lookup, which may be newer."""

    channel: MpesaChannel
    balance: Lookup | None
    latest: Lookup | None


class LookupService:
    async def ask(
        self,
        session: AsyncSession,
        *,
        channel: MpesaChannel,
        kind: LookupKind,
        requested_by: uuid.UUID | None = None,
        transaction_id: str | None = None,
        payment_id: uuid.UUID | None = None,
        payout_id: uuid.UUID | None = None,
    ) -> Lookup:
        """Record a pending lookup in the channel's mode and queue its sending after commit.
        `transaction_id`: the receipt asked about, or a payout's OriginatorConversationID."""
        lookup = Lookup(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            mode=channel.mode,
            kind=kind,
            status=LookupStatus.pending,
            transaction_id=transaction_id,
            payment_id=payment_id,
            payout_id=payout_id,
            requested_by_id=requested_by,
            created_at=utcnow(),
        )
        session.add(lookup)
        await session.flush()
        await enqueue(session, send_lookup, lookup_id=str(lookup.id))
        return lookup

    async def get(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, lookup_id: uuid.UUID, mode: Mode | None = None
    ) -> Lookup:
        """One lookup of this business (of this mode, for an API key); anything else is 404."""
        lookup = await session.get(Lookup, lookup_id)
        if lookup is None or lookup.tenant_id != tenant_id or (mode is not None and lookup.mode is not mode):
            raise NotFound(NO_SUCH_LOOKUP)
        return lookup

    async def by_conversation(
        self, session: AsyncSession, *, conversation_id: str | None, kind: LookupKind, channel_id: uuid.UUID
    ) -> Lookup | None:
        """The lookup an answer names, on the channel whose URL it came to (a result sent to another
        channel's URL is not this lookup's)."""
        if not conversation_id:
            return None
        return await session.scalar(
            select(Lookup)
            .where(
                Lookup.conversation_id == conversation_id,
                Lookup.kind == kind,
                Lookup.channel_id == channel_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def balances(self, session: AsyncSession, *, channels: list[MpesaChannel]) -> list[ChannelBalance]:
        out = []
        for channel in channels:
            newest = (
                select(Lookup)
                .where(Lookup.channel_id == channel.id, Lookup.kind == LookupKind.balance)
                .order_by(Lookup.created_at.desc(), Lookup.id.desc())
                .limit(1)
            )
            latest = await session.scalar(newest)
            done = await session.scalar(newest.where(Lookup.status == LookupStatus.done))
            out.append(ChannelBalance(channel, done, latest))
        return out

    def record_answer(
        self,
        lookup: Lookup,
        *,
        status: LookupStatus,
        result_code: str | None,
        result_desc: str,
        result: dict[str, Any] | None = None,
        answered_at: datetime | None = None,
        working_cents: int | None = None,
        utility_cents: int | None = None,
    ) -> None:
        now = utcnow()
        lookup.status = status
        lookup.result_code = result_code
        lookup.result_desc = result_desc
        lookup.result = result
        lookup.answered_at = answered_at or now
        lookup.working_cents = working_cents
        lookup.utility_cents = utility_cents
        lookup.finished_at = now


lookups = LookupService()
