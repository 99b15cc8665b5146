"""Payout rows: recording one, finding them, and making one final exactly once.

No commit and no permission here (core/payouts/use_cases.py holds those); sending is
core/payouts/send.py, settling what M-Pesa says is core/payouts/answers.py and reconcile.py.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import pagination
from core.audit.service import record
from core.db import utcnow
from core.errors import IdempotencyKeyReused, InvalidInput, NotFound
from core.events import publish
from core.ledger.payouts import post_payout
from core.lookups.proof import CREDENTIAL_CODES, initiator_failed
from core.notify.service import notify
from core.payouts.events import PayoutFinalised
from core.payouts.models import Payout, PayoutCommand, PayoutSource, PayoutStatus
from core.payouts.schemas import PayoutFilter, PayoutOut, PayoutPage
from core.payouts.texts import owner_message
from core.phones import mask_msisdn
from core.tenants.models import Mode, MpesaChannel, Tenant

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 255
NO_SUCH_PAYOUT = "No such payout. List this business's payouts with GET /api/payouts."
DEFAULT_REMARKS = "Payout"

# The audit action of each final state (every result is audited, as every request is).
AUDIT_ACTIONS = {
    PayoutStatus.success: "payout.paid",
    PayoutStatus.failed: "payout.failed",
    PayoutStatus.timeout: "payout.timed_out",
}


def originator_id(payout_id: uuid.UUID) -> str:
    """Daraja's OriginatorConversationID of a payout: minted once, with the row, from its id."""
    return "lp_" + payout_id.hex


def public_name(value: str | None) -> str | None:
    """ "254705912645 - NICHOLAS JOHN SONGOK" → "NICHOLAS JOHN SONGOK" (the phone is the payout's own)."""
    if not value:
        return None
    number, sep, name = value.partition(" - ")
    name = name.strip() if sep and number.strip().isdigit() else value.strip()
    return name[:120] or None


@dataclass(frozen=True)
class Facts:
    """What M-Pesa says about a payout besides its status (a B2C result has all of it; a status
    answer the receipt, the name and the time)."""

    receipt: str | None = None
    recipient_name: str | None = None
    recipient_registered: bool | None = None
    utility_balance_cents: int | None = None
    working_balance_cents: int | None = None
    charges_paid_balance_cents: int | None = None
    transaction_completed_at: datetime | None = None
    conversation_id: str | None = None

    def values(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def encode_cursor(p: Payout) -> str:
    return pagination.encode_cursor(p.created_at, p.id)


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, pid, _ = pagination.decode_cursor(
        cursor, message="This cursor is not valid: use next_cursor from the previous page."
    )
    return at, pid


class PayoutService:
    async def create_pending(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        channel: MpesaChannel,
        phone: str,
        amount: int,
        command: PayoutCommand,
        source: PayoutSource,
        name: str | None = None,
        reference: str | None = None,
        occasion: str | None = None,
        initiated_by: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        app_id: uuid.UUID | None = None,
        first_check_at: datetime,
    ) -> tuple[Payout, bool]:
        """Insert the pending payout with its OriginatorConversationID (minted here, once, never
        again) and the time the reconciler looks at it if the send job has not by then. With an
        Idempotency-Key, a repeat of the same payout returns the first one (created=False); the same
        key with another phone, amount or command is refused (409). The payout takes the channel's
        mode."""
        payout_id = uuid.uuid4()
        payout = Payout(
            id=payout_id,
            tenant_id=tenant.id,
            channel_id=channel.id,
            app_id=app_id,
            mode=channel.mode,
            source=source,
            command=command,
            status=PayoutStatus.pending,
            phone=phone,
            amount=amount,
            name=name,
            reference=reference,
            occasion=occasion,
            idempotency_key=idempotency_key,
            initiated_by_id=initiated_by,
            originator_conversation_id=originator_id(payout_id),
            send_attempts=0,
            status_checks=0,
            next_check_at=first_check_at,
            created_at=utcnow(),
        )
        try:
            # A savepoint: a concurrent request with the same Idempotency-Key that won the race undoes
            # only this insert, and its payout is returned.
            async with session.begin_nested():
                session.add(payout)
                await session.flush()
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = await self.by_idempotency_key(
                session, tenant_id=tenant.id, mode=channel.mode, key=idempotency_key
            )
            if existing is None:
                raise
            same(existing, phone=phone, amount=amount, command=command)
            return existing, False
        return payout, True

    async def by_idempotency_key(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, mode: Mode, key: str
    ) -> Payout | None:
        # Per mode, as payments: a key reused in live mode after the test phase is a new payout.
        return await session.scalar(
            select(Payout).where(
                Payout.tenant_id == tenant_id, Payout.mode == mode, Payout.idempotency_key == key
            )
        )

    async def get(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, payout_id: uuid.UUID, mode: Mode | None = None
    ) -> Payout:
        """One payout of this business (of this mode, for an API key); anything else is 404."""
        payout = await session.get(Payout, payout_id)
        if payout is None or payout.tenant_id != tenant_id or (mode is not None and payout.mode is not mode):
            raise NotFound(NO_SUCH_PAYOUT)
        return payout

    async def by_originator(self, session: AsyncSession, originator: str) -> Payout | None:
        return await session.scalar(select(Payout).where(Payout.originator_conversation_id == originator))

    async def by_conversation(self, session: AsyncSession, conversation: str) -> Payout | None:
        return await session.scalar(select(Payout).where(Payout.conversation_id == conversation).limit(1))

    async def lock(self, session: AsyncSession, payout_id: uuid.UUID) -> Payout | None:
        return await session.scalar(
            select(Payout)
            .where(Payout.id == payout_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def _conditions(self, tenant_id: uuid.UUID, f: PayoutFilter) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [Payout.tenant_id == tenant_id]
        if f.status is not None:
            conds.append(Payout.status == f.status)
        if f.channel_id is not None:
            conds.append(Payout.channel_id == f.channel_id)
        if f.mode is not None:
            conds.append(Payout.mode == f.mode)
        if f.batch_id is not None:
            conds.append(Payout.batch_id == f.batch_id)
        if f.phone:
            digits = "".join(ch for ch in f.phone if ch.isdigit())
            if digits.startswith("0"):
                digits = digits[1:]
            conds.append(Payout.phone.contains(digits))
        if f.created_from is not None:
            conds.append(Payout.created_at >= f.created_from)
        if f.created_to is not None:
            conds.append(Payout.created_at < f.created_to)
        return conds

    async def list_page(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        filters: PayoutFilter,
        cursor: str | None = None,
        limit: int = 50,
    ) -> PayoutPage:
        """Newest first, keyset-paginated on (created_at, id) as /api/transactions is."""
        conds = self._conditions(tenant_id, filters)
        if cursor:
            at, pid = decode_cursor(cursor)
            conds.append(or_(Payout.created_at < at, and_(Payout.created_at == at, Payout.id < pid)))
        rows = list(
            await session.scalars(
                select(Payout)
                .where(*conds)
                .order_by(Payout.created_at.desc(), Payout.id.desc())
                .limit(limit + 1)
            )
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return PayoutPage(
            items=[PayoutOut.model_validate(r) for r in rows],
            next_cursor=encode_cursor(rows[-1]) if more and rows else None,
        )

    async def finalize(
        self,
        session: AsyncSession,
        *,
        payout: Payout,
        status: PayoutStatus,
        result_code: str | None,
        result_desc: str,
        facts: Facts | None = None,
    ) -> bool:
        """Move a pending payout to `status`, exactly once: the conditional UPDATE on status='pending' is
        the guard, so of two answers applied at once only one changes anything, and only that one posts
        the ledger transfer, writes the audit row, publishes PayoutFinalised (webhooks) and tells the
        owner. Returns whether this call applied it."""
        assert status.is_final
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "result_code": result_code,
            "result_desc": result_desc,
            "completed_at": now,
            "next_check_at": None,
            "updated_at": now,
            **(facts.values() if facts else {}),
        }
        updated = await session.scalar(
            update(Payout)
            .where(Payout.id == payout.id, Payout.status == PayoutStatus.pending)
            .values(**values)
            .returning(Payout)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if updated is None:
            await session.refresh(payout)
            return False
        payout = updated
        tenant = await session.get(Tenant, payout.tenant_id)
        assert tenant is not None
        await post_payout(session, payout)
        await record(
            session,
            action=AUDIT_ACTIONS[status],
            tenant_id=payout.tenant_id,
            target=str(payout.id),
            detail={
                "via": "job",
                "amount": payout.amount,
                "phone": mask_msisdn(payout.phone),
                "result_code": result_code,
                "receipt": payout.receipt,
                "mode": payout.mode.value,
            },
        )
        if status is PayoutStatus.failed and result_code in CREDENTIAL_CODES:
            # The initiator's name, password or certificate is wrong (or its role or password lapsed):
            # every payout through it would fail the same way, so none is sent until it is proven again.
            channel = await session.get(MpesaChannel, payout.channel_id)
            if channel is not None:
                initiator_failed(channel, result_desc)
        await publish(
            session, PayoutFinalised(payout=payout, tenant=tenant, status=status, result_desc=result_desc)
        )
        message = owner_message(payout)
        if message is not None:
            await notify.to_owner(session, tenant=tenant, kind=f"payout.{status.value}", body=message)
        log.info("payout %s %s (%s)", payout.id, status.value, result_code)
        return True

    async def add_facts(self, session: AsyncSession, *, payout: Payout, facts: Facts) -> str:
        """Complete a paid payout with what a later answer adds (a success the status query settled
        learns its balances and the recipient's flag from the delayed B2C result): never a status, never
        money, no event. A receipt that differs from the stored one is a conflict and stores nothing.
        Returns "enriched", "duplicate" (nothing new) or "conflict"."""
        locked = await self.lock(session, payout.id)
        assert locked is not None and locked.status is PayoutStatus.success
        if facts.receipt and locked.receipt and facts.receipt != locked.receipt:
            return "conflict"
        new = {k: v for k, v in facts.values().items() if getattr(locked, k) is None}
        if not new:
            return "duplicate"
        for key, value in new.items():
            setattr(locked, key, value)
        locked.updated_at = utcnow()
        await session.flush()
        return "enriched"


def same(existing: Payout, *, phone: str, amount: int, command: PayoutCommand) -> None:
    """The same Idempotency-Key must mean the same payout."""
    if (existing.phone, existing.amount, existing.command) != (phone, amount, command):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different payout (another phone, amount or "
            "command): use a new key for a new payout."
        )


def clean_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput("Idempotency-Key", "Idempotency-Key must be 1 to 255 characters.")
    return key


payouts = PayoutService()
