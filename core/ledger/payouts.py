"""How money out appears in the ledger, and the proof `lipapush ledger check` gives of it.

A payout moves the business's own money from its B2C shortcode to a person: never the platform's, and
no commission is taken on it. The ledger records it on two memorandum accounts of the business,
`b2c_out` (debited: what its shortcode sent) and `payees` (credited: what people received), one
transfer per **live** payout that M-Pesa paid, keyed `payout:{OriginatorConversationID}` (unique per
payout and minted once, so a replayed result posts nothing; a string on both sides, so the check joins
it to its payout in SQL on both backends). A failed or timed-out payout posts nothing; a test payout
(simulator, sandbox) never moves real money and posts nothing, as a test payment earns no commission.

The check: every live success carries exactly its amount, nothing else carries any, and no payout is
pending without a next check (the reconciler's `next_check_at`), so nothing is left in flight.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.ledger.models import AccountKind, Transfer
from core.ledger.service import LedgerProblem, ledger
from core.payouts.models import Payout, PayoutStatus
from core.phones import mask_msisdn
from core.tenants.models import Mode

CAUSE = "payout"
KIND = "payout"


async def post_payout(session: AsyncSession, payout: Payout) -> bool:
    """The transfer of a payout M-Pesa paid, in the transaction that made it final; False when there is
    nothing to post (a test payout) or it was posted already."""
    if payout.status is not PayoutStatus.success or payout.mode is not Mode.live:
        return False
    sent = await ledger.account(session, tenant_id=payout.tenant_id, kind=AccountKind.b2c_out)
    received = await ledger.account(session, tenant_id=payout.tenant_id, kind=AccountKind.payees)
    posted = await ledger.transfer(
        session,
        tenant_id=payout.tenant_id,
        cause_type=CAUSE,
        cause_id=payout.originator_conversation_id,
        kind=KIND,
        debit=sent,
        credit=received,
        amount_cents=payout.amount * 100,
        memo=f"B2C payout {payout.receipt or ''} to {mask_msisdn(payout.phone)}".replace("  ", " "),
    )
    return posted is not None


async def check_payouts(session: AsyncSession, *, tenant_id: uuid.UUID | None = None) -> list[LedgerProblem]:
    """The payout part of `lipapush ledger check` (the whole database, or one business's)."""

    def mine(column: Any) -> list[ColumnElement[bool]]:
        return [] if tenant_id is None else [column == tenant_id]

    posted = (
        select(Transfer.cause_id.label("ocid"), func.sum(Transfer.amount_cents).label("cents"))
        .where(Transfer.cause_type == CAUSE, Transfer.kind == KIND)
        .group_by(Transfer.cause_id)
        .subquery()
    )
    got = func.coalesce(posted.c.cents, 0)
    owed = (Payout.status == PayoutStatus.success) & (Payout.mode == Mode.live)
    rows = (
        await session.execute(
            select(Payout.id, Payout.status, Payout.mode, Payout.amount, got)
            .outerjoin(posted, posted.c.ocid == Payout.originator_conversation_id)
            .where(*mine(Payout.tenant_id))
            .where((owed & (got != Payout.amount * 100)) | (~owed & (got != 0)))
        )
    ).all()
    problems = [
        LedgerProblem(
            "payout",
            f"payout {pid} ({mode} {status}, KES {amount}) should carry "
            f"{amount * 100 if status == PayoutStatus.success and mode == Mode.live else 0} cents "
            f"but carries {int(cents)}",
        )
        for pid, status, mode, amount, cents in rows
    ]
    # a transfer whose payout is gone or never existed
    orphans = (
        await session.execute(
            select(Transfer.id, Transfer.cause_id)
            .outerjoin(Payout, Payout.originator_conversation_id == Transfer.cause_id)
            .where(Transfer.cause_type == CAUSE, Payout.id.is_(None), *mine(Transfer.tenant_id))
        )
    ).all()
    problems += [
        LedgerProblem("payout", f"transfer {tid} is keyed to payout {ocid}, which does not exist")
        for tid, ocid in orphans
    ]
    stuck = (
        await session.execute(
            select(Payout.id).where(
                Payout.status == PayoutStatus.pending, Payout.next_check_at.is_(None), *mine(Payout.tenant_id)
            )
        )
    ).scalars()
    problems += [
        LedgerProblem("payout", f"payout {pid} is pending with no next check: nothing would ever settle it")
        for pid in stuck
    ]
    return problems
