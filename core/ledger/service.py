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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Table, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.ledger.models import Account, AccountKind, Transfer
from core.upsert import insert_for

# The statements every successful payment runs, built once as Core statements on the tables: building
# an expression and going through the ORM's bulk-update path cost more CPU per posting than the
# round trip itself (bench/commission_postings.py). Values travel as bind parameters.
_ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
_TRANSFERS: Table = Transfer.__table__  # type: ignore[assignment]
_a = _ACCOUNTS.c
_ACCOUNT_ID = select(_a.id).where(_a.tenant_id == bindparam("tenant_id"), _a.kind == bindparam("kind"))
_MOVE = (
    update(_ACCOUNTS)
    .where(_a.id == bindparam("account_id"))
    .values(balance_cents=_a.balance_cents + bindparam("delta", type_=_a.balance_cents.type))
    .returning(_a.balance_cents)
)
_MOVE_AND_RELEASE = (
    update(_ACCOUNTS)
    .where(_a.id == bindparam("account_id"))
    .values(
        balance_cents=_a.balance_cents + bindparam("delta", type_=_a.balance_cents.type),
        reserved_cents=_a.reserved_cents - bindparam("release", type_=_a.reserved_cents.type),
    )
    .returning(_a.balance_cents)
)
_TRY_RESERVE = (
    update(_ACCOUNTS)
    .where(
        _a.id == bindparam("account_id"),
        _a.balance_cents - _a.reserved_cents - bindparam("floor", type_=_a.balance_cents.type)
        >= bindparam("cents", type_=_a.balance_cents.type),
    )
    .values(reserved_cents=_a.reserved_cents + bindparam("cents", type_=_a.reserved_cents.type))
    .returning(_a.id)
)
_ADJUST_RESERVED = (
    update(_ACCOUNTS)
    .where(_a.id == bindparam("account_id"))
    .values(reserved_cents=_a.reserved_cents + bindparam("delta", type_=_a.reserved_cents.type))
)
_HAS_SPENDABLE = select(_a.id).where(
    _a.id == bindparam("account_id"),
    _a.balance_cents - _a.reserved_cents - bindparam("floor", type_=_a.balance_cents.type) > 0,
)
# On Postgres a whole transfer is one round trip: the insert, then each balance in ascending account id,
# each step gated on the one before (an uncorrelated EXISTS is an init plan, run before its scan locks
# any row), so the rows are locked in the same order as by three statements, and a replay (the insert
# did nothing) moves no balance. The round trips, not the rows, were most of a posting's cost.
_POST_AND_MOVE_PG = text(
    """
    WITH posted AS (
        INSERT INTO ledger_transfers (tenant_id, cause_type, cause_id, kind, payment_id,
                                      debit_account_id, credit_account_id, amount_cents, memo, created_at)
        VALUES (:tenant_id, :cause_type, :cause_id, :kind, :payment_id,
                :debit_account_id, :credit_account_id, :amount_cents, :memo, :created_at)
        ON CONFLICT (cause_type, cause_id, kind) DO NOTHING
        RETURNING id
    ), first AS (
        UPDATE ledger_accounts
        SET balance_cents = balance_cents + :first_delta, reserved_cents = reserved_cents - :first_release
        WHERE id = :first_id AND EXISTS (SELECT 1 FROM posted)
        RETURNING balance_cents
    ), second AS (
        UPDATE ledger_accounts
        SET balance_cents = balance_cents + :second_delta, reserved_cents = reserved_cents - :second_release
        WHERE id = :second_id AND EXISTS (SELECT 1 FROM first)
        RETURNING balance_cents
    )
    SELECT (SELECT id FROM posted), (SELECT balance_cents FROM first), (SELECT balance_cents FROM second)
    """
).bindparams(
    bindparam("tenant_id", type_=_TRANSFERS.c.tenant_id.type),
    bindparam("payment_id", type_=_TRANSFERS.c.payment_id.type),
    bindparam("created_at", type_=_TRANSFERS.c.created_at.type),
    *(
        bindparam(n, type_=BigInteger())
        for n in ("first_id", "second_id", "debit_account_id", "credit_account_id")
    ),
    *(bindparam(n, type_=BigInteger()) for n in ("amount_cents", "first_delta", "second_delta")),
    *(bindparam(n, type_=BigInteger()) for n in ("first_release", "second_release")),
)
# Idempotent on its cause: a replayed posting inserts nothing and returns no id. One per dialect.
_POST = {
    name: insert(_TRANSFERS)
    .on_conflict_do_nothing(index_elements=["cause_type", "cause_id", "kind"])
    .returning(_TRANSFERS.c.id)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


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
        found = await session.scalar(_ACCOUNT_ID, {"tenant_id": tenant_id, "kind": kind})
        if found is None:
            await session.execute(
                insert_for(session, Account.__table__)
                .values(tenant_id=tenant_id, kind=kind, balance_cents=0, reserved_cents=0)
                .on_conflict_do_nothing(index_elements=["tenant_id", "kind"])
            )
            found = await session.scalar(_ACCOUNT_ID, {"tenant_id": tenant_id, "kind": kind})
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
        posting = {
            "tenant_id": tenant_id,
            "cause_type": cause_type,
            "cause_id": cause_id,
            "kind": kind,
            "debit_account_id": debit.id,
            "credit_account_id": credit.id,
            "amount_cents": amount_cents,
            "memo": memo,
            "payment_id": payment_id,
        }
        # Fixed (id) order: two transfers touching the same pair of accounts can never deadlock.
        moves = sorted([(debit.id, -amount_cents, release_reserved_cents), (credit.id, amount_cents, 0)])
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        if dialect == "postgresql":
            return await self._transfer_pg(session, posting, moves)
        new_id = await session.scalar(_POST[dialect], posting)
        if new_id is None:
            return None
        balances: dict[int, int] = {}
        for account_id, delta, release in moves:
            if release:
                moved = await session.execute(
                    _MOVE_AND_RELEASE, {"account_id": account_id, "delta": delta, "release": release}
                )
            else:
                moved = await session.execute(_MOVE, {"account_id": account_id, "delta": delta})
            balances[account_id] = moved.scalar_one()
        return Posted(int(new_id), balances)

    async def _transfer_pg(
        self, session: AsyncSession, posting: dict[str, Any], moves: list[tuple[int, int, int]]
    ) -> Posted | None:
        (first_id, first_delta, first_release), (second_id, second_delta, second_release) = moves
        row = (
            await session.execute(
                _POST_AND_MOVE_PG,
                {
                    **posting,
                    "created_at": utcnow(),
                    "first_id": first_id,
                    "first_delta": first_delta,
                    "first_release": first_release,
                    "second_id": second_id,
                    "second_delta": second_delta,
                    "second_release": second_release,
                },
            )
        ).one()
        new_id, first_balance, second_balance = row
        if new_id is None:
            return None
        # Both accounts exist (their ids came from them): a missing one is a bug, not a replay.
        assert first_balance is not None and second_balance is not None
        return Posted(int(new_id), {first_id: int(first_balance), second_id: int(second_balance)})

    async def try_reserve(
        self, session: AsyncSession, *, account_id: int, cents: int, floor_cents: int
    ) -> bool:
        """Hold `cents` on the account if what it can spend (balance − held − floor) covers them: the
        check and the hold in one UPDATE, under the row lock the UPDATE takes. False, with nothing
        changed, when it cannot."""
        held = await session.scalar(
            _TRY_RESERVE, {"account_id": account_id, "cents": cents, "floor": floor_cents}
        )
        return held is not None

    async def has_spendable(self, session: AsyncSession, *, account_id: int, floor_cents: int) -> bool:
        """Whether the account had anything to spend above its floor when last committed (no lock: a
        hint that lets a caller skip locking a row it would hold nothing on)."""
        found = await session.scalar(_HAS_SPENDABLE, {"account_id": account_id, "floor": floor_cents})
        return found is not None

    async def adjust_reserved(self, session: AsyncSession, *, account_id: int, delta_cents: int) -> None:
        await session.execute(_ADJUST_RESERVED, {"account_id": account_id, "delta": delta_cents})

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
