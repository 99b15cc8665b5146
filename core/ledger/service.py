"""The double-entry ledger: accounts, immutable transfers, materialised balances.

Lock order. Every transaction takes its row locks in this one order, so no two of them can wait for
each other in a cycle (Postgres would abort one with "deadlock detected", 40P01):

1. the payment row: `payments.finalize` (its conditional UPDATE), `add_facts`, `send_push`;
   a payout row takes this place in money out (`payouts.finalize`, then its memorandum transfer,
   core/ledger/payouts.py); a payout's transaction touches no payment or customer row;
2. the customer row: `customers.record_request` (the upsert counting a push), `record_paid`;
3. ledger accounts, in ascending id: `lock`/`lock_in_order` (a push's commission hold), the balance
   UPDATEs of `transfer`, `adjust_reserved`. A transaction that touches several accounts over several
   steps locks them all first with `lock_in_order`;
4. the tenant row (the low-balance flag, a channel's verification making the business active);
5. whatever later subscribers of PaymentFinalised touch (core/subscribers.py: a WiFi order's voucher).

Why this order: a success callback must update its payment before anything else (that UPDATE is what
applies it once), then its subscribers run in their listed order (customer book, then billing). So a
push, which writes a new payment row nobody else can be waiting for, counts the request on the customer
row *before* it holds its commission on the wallet (`payments.create_pending`), and not the other way
round as it once did: 20 pushes in flight to one phone while its successes were applied then answered
most of them with 500. Rows of the same table are locked in id order (the accounts here).

A conflict this order misses still cannot reach a merchant as a 500: `core.retry` runs a transaction
that only touches the database again, and a use case answers "busy, try again" (503) after that.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.ledger.models import Account, AccountKind, Transfer
from core.upsert import insert_for


@dataclass(frozen=True)
class LedgerProblem:
    what: str
    detail: str


@dataclass(frozen=True)
class AccountRef:
    id: int


@dataclass(frozen=True)
class Posted:
    transfer_id: int
    balances: dict[int, int]  # account id → balance after this transfer


class LedgerService:
    def __init__(self) -> None:
        self._ids: dict[tuple[uuid.UUID, AccountKind], int] = {}

    async def account(self, session: AsyncSession, *, tenant_id: uuid.UUID, kind: AccountKind) -> AccountRef:
        """Get or create; concurrent creators race on the UNIQUE(tenant_id, kind) and both get the row.
        Account ids never change once created, so they are cached for the life of the process."""
        cached = self._ids.get((tenant_id, kind))
        if cached is not None:
            return AccountRef(cached)
        found = await session.scalar(
            select(Account.id).where(Account.tenant_id == tenant_id, Account.kind == kind)
        )
        if found is None:
            await session.execute(
                insert_for(session, Account.__table__)
                .values(tenant_id=tenant_id, kind=kind, balance_cents=0, reserved_cents=0)
                .on_conflict_do_nothing(index_elements=["tenant_id", "kind"])
            )
            found = await session.scalar(
                select(Account.id).where(Account.tenant_id == tenant_id, Account.kind == kind)
            )
            assert found is not None
            # not cached yet: this transaction may still roll back the row it just created
            return AccountRef(int(found))
        self._ids[(tenant_id, kind)] = int(found)
        return AccountRef(int(found))

    async def lock(self, session: AsyncSession, account_id: int) -> Account:
        """The account row, locked for this transaction (Postgres `FOR NO KEY UPDATE`, the lock an
        UPDATE of its balance takes: it does not block a transfer's foreign-key check on the account;
        SQLite write transactions are already serialised by BEGIN IMMEDIATE). Refreshes the identity
        map."""
        [acc] = await self.lock_in_order(session, account_id)
        return acc

    async def lock_in_order(self, session: AsyncSession, *account_ids: int) -> list[Account]:
        """Lock several accounts at once, in ascending id (the order every transaction uses, see the
        module docstring), before a series of transfers between them. Returns them in that order."""
        ids = sorted(set(account_ids))
        accounts = list(
            await session.scalars(
                select(Account)
                .where(Account.id.in_(ids))
                .order_by(Account.id)  # Postgres locks the rows as the sort hands them out
                .with_for_update(key_share=True)
                .execution_options(populate_existing=True)
            )
        )
        assert [a.id for a in accounts] == ids
        return accounts

    async def transfer(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        cause_type: str,
        cause_id: str,
        kind: str,
        debit: AccountRef | Account,
        credit: AccountRef | Account,
        amount_cents: int,
        memo: str | None = None,
        payment_id: uuid.UUID | None = None,
        release_reserved_cents: int = 0,
    ) -> Posted | None:
        """Post one transfer and move both balances, or nothing if this cause was already posted
        (returns None for a replay). `release_reserved_cents` drops the debit account's hold in the same
        statement: the hold a push made is released exactly when its commission is posted."""
        if amount_cents <= 0:
            raise ValueError("a transfer moves a positive amount")
        if debit.id == credit.id:
            raise ValueError("a transfer needs two different accounts")
        new_id = await session.scalar(
            insert_for(session, Transfer.__table__)
            .values(
                tenant_id=tenant_id,
                cause_type=cause_type,
                cause_id=cause_id,
                kind=kind,
                debit_account_id=debit.id,
                credit_account_id=credit.id,
                amount_cents=amount_cents,
                memo=memo,
                payment_id=payment_id,
            )
            .on_conflict_do_nothing(index_elements=["cause_type", "cause_id", "kind"])
            .returning(Transfer.__table__.c.id)
        )
        if new_id is None:
            return None
        balances: dict[int, int] = {}
        # Fixed (id) order: two transfers touching the same pair of accounts can never deadlock.
        for account_id, delta in sorted([(debit.id, -amount_cents), (credit.id, amount_cents)]):
            values: dict[str, Any] = {"balance_cents": Account.balance_cents + delta}
            if account_id == debit.id and release_reserved_cents:
                values["reserved_cents"] = Account.reserved_cents - release_reserved_cents
            balances[account_id] = (
                await session.execute(
                    update(Account)
                    .where(Account.id == account_id)
                    .values(**values)
                    .returning(Account.balance_cents)
                    .execution_options(synchronize_session=False)
                )
            ).scalar_one()
        return Posted(int(new_id), balances)

    async def try_reserve(
        self, session: AsyncSession, *, account_id: int, cents: int, floor_cents: int
    ) -> bool:
        """Hold `cents` on the account if what it can spend (balance − held − floor) covers them: the
        check and the hold in one UPDATE, under the row lock the UPDATE takes. False, with nothing
        changed, when it cannot."""
        held = await session.scalar(
            update(Account)
            .where(
                Account.id == account_id,
                Account.balance_cents - Account.reserved_cents - floor_cents >= cents,
            )
            .values(reserved_cents=Account.reserved_cents + cents)
            .returning(Account.id)
            .execution_options(synchronize_session=False)
        )
        return held is not None

    async def has_spendable(self, session: AsyncSession, *, account_id: int, floor_cents: int) -> bool:
        """Whether the account had anything to spend above its floor when last committed (no lock: a
        hint that lets a caller skip locking a row it would hold nothing on)."""
        found = await session.scalar(
            select(Account.id).where(
                Account.id == account_id, Account.balance_cents - Account.reserved_cents - floor_cents > 0
            )
        )
        return found is not None

    async def adjust_reserved(self, session: AsyncSession, *, account_id: int, delta_cents: int) -> None:
        await session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(reserved_cents=Account.reserved_cents + delta_cents)
            .execution_options(synchronize_session=False)
        )

    async def balance(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, kind: AccountKind
    ) -> tuple[int, int]:
        """(balance, reserved) in cents; (0, 0) for an account never used."""
        row = (
            await session.execute(
                select(Account.balance_cents, Account.reserved_cents).where(
                    Account.tenant_id == tenant_id, Account.kind == kind
                )
            )
        ).first()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def sum_transfers(
        self,
        session: AsyncSession,
        *,
        kinds: Sequence[str],
        tenant_id: uuid.UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        conds: list[ColumnElement[bool]] = [Transfer.kind.in_(list(kinds))]
        if tenant_id is not None:
            conds.append(Transfer.tenant_id == tenant_id)
        if since is not None:
            conds.append(Transfer.created_at >= since)
        if until is not None:
            conds.append(Transfer.created_at < until)
        return int(
            await session.scalar(select(func.coalesce(func.sum(Transfer.amount_cents), 0)).where(*conds)) or 0
        )

    async def check(self, session: AsyncSession) -> list[LedgerProblem]:
        """Every materialised balance equals Σ credits − Σ debits of its transfers; nothing reserved
        is negative. (Each transfer is balanced by construction: one debit, one credit, one amount.)"""
        problems: list[LedgerProblem] = []
        credits = (
            select(Transfer.credit_account_id.label("aid"), func.sum(Transfer.amount_cents).label("s"))
            .group_by(Transfer.credit_account_id)
            .subquery()
        )
        debits = (
            select(Transfer.debit_account_id.label("aid"), func.sum(Transfer.amount_cents).label("s"))
            .group_by(Transfer.debit_account_id)
            .subquery()
        )
        expected = func.coalesce(credits.c.s, 0) - func.coalesce(debits.c.s, 0)
        rows = (
            await session.execute(
                select(Account.id, Account.tenant_id, Account.kind, Account.balance_cents, expected)
                .outerjoin(credits, credits.c.aid == Account.id)
                .outerjoin(debits, debits.c.aid == Account.id)
                .where(Account.balance_cents != expected)
            )
        ).all()
        for aid, tenant_id, kind, balance, want in rows:
            problems.append(
                LedgerProblem(
                    "balance",
                    f"account {aid} ({kind} of tenant {tenant_id}) holds {balance} cents but its transfers "
                    f"sum to {want}",
                )
            )
        bad_reserved = (
            await session.execute(
                select(Account.id, Account.reserved_cents).where(Account.reserved_cents < 0)
            )
        ).all()
        for aid, reserved in bad_reserved:
            problems.append(LedgerProblem("reserved", f"account {aid} has negative reserved {reserved}"))
        return problems


ledger = LedgerService()
