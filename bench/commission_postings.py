"""Commission postings per second vs raw inserts of the same rows, on the same Postgres.

    .venv/bin/python bench/commission_postings.py --payments 5000 --tenants 20 --concurrency 16

Ours: for each successful payment, the commission settlement the product runs inside
`payments.finalize` — release the wallet hold, insert the transfer (idempotent on its cause), move both
materialised balances, check the low-balance threshold — one unit of work per payment, `--concurrency`
at a time, through SQLAlchemy/asyncpg.
Baseline: the same number of rows INSERTed into `ledger_transfers` with bare asyncpg, one statement
per transaction, the same concurrency. The ratio says what the ledger's guarantees cost.

Floor, in the same run: the statements ours sends per posting, exactly (captured from the first
posting with a cursor event: the payment and tenant reads, the transfer with both balance moves as
one statement, the low-balance flag; the scope goes with BEGIN, as ours sends it), sent with bare
asyncpg in one transaction per posting,
the same concurrency, on a copy of the seeded database (`CREATE DATABASE … TEMPLATE`, so the same rows,
indexes, constraints and triggers). No Python stack could send these statements faster: "floor ÷ raw"
is the best ratio these writes allow on this machine, and "ours ÷ floor" what our stack costs over the
driver.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from core.billing.commission import commission_cents, commissions
from core.config import load_settings
from core.customers.models import Customer
from core.db import scope_sql, utcnow
from core.ledger.models import AccountKind, Transfer
from core.ledger.service import ledger
from core.migrate import upgrade
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.runtime import configure, unit_of_work
from core.tenants.models import BillingMode, ChannelKind, Environment, MpesaChannel, Tenant, TenantStatus


async def admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed(n_payments: int, n_tenants: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Tenants in wallet mode with funded wallets on production channels, and live payments holding
    their commission (test-mode payments, a simulator or sandbox channel's, earn none)."""
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = []
    async with unit_of_work() as session:
        tenant_ids = []
        for t in range(n_tenants):
            tenant = Tenant(
                name=f"Bench {t}",
                slug=f"bench-{t}",
                email=f"b{t}@example.com",
                phone="254700000000",
                status=TenantStatus.active,
                billing_mode=BillingMode.wallet,
                commission_bps=100,
            )
            session.add(tenant)
            await session.flush()
            channel = MpesaChannel(
                tenant_id=tenant.id,
                environment=Environment.production,
                kind=ChannelKind.paybill,
                business_short_code="174379",
                consumer_key_enc="x",
                consumer_secret_enc="x",
                passkey_enc="x",
                callback_token=uuid.uuid4().hex,
                verified_at=utcnow(),
                name="Main",
                is_primary=True,
            )
            session.add(channel)
            await session.flush()
            wallet = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.wallet)
            adj = await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.adjustments)
            await ledger.transfer(
                session,
                tenant_id=tenant.id,
                cause_type="adjustment",
                cause_id=uuid.uuid4().hex,
                kind="adjustment.credit",
                debit=adj,
                credit=wallet,
                amount_cents=10**12,
            )
            await ledger.account(session, tenant_id=tenant.id, kind=AccountKind.revenue)
            tenant_ids.append((tenant.id, channel.id, wallet.id))
        rows = []
        holds: dict[int, int] = {}
        for i in range(n_payments):
            tid, cid, wid = tenant_ids[i % n_tenants]
            amount = 100 + i % 5000
            cents = commission_cents(amount, 100)
            pid = uuid.uuid4()
            rows.append(
                {
                    "id": pid,
                    "tenant_id": tid,
                    "channel_id": cid,
                    "mode": Environment.production.mode,
                    "source": PaymentSource.api,
                    "status": PaymentStatus.success,
                    "amount": amount,
                    "phone": f"2547{i:08d}",
                    "account_reference": "BENCH",
                    "description": "Bench",
                    "commission_bps": 100,
                    "commission_cents": cents,
                    "reserved_cents": cents,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                    "query_attempts": 0,
                }
            )
            holds[wid] = holds.get(wid, 0) + cents
            pairs.append((tid, pid))
        await session.execute(insert(Payment), rows)
        await session.execute(
            insert(Customer),
            [
                {
                    "tenant_id": r["tenant_id"],
                    "mode": r["mode"],
                    "phone": r["phone"],
                    "requested_count": 1,
                    "requested_total": r["amount"],
                    "paid_count": 1,
                    "paid_total": r["amount"],
                    "first_seen_at": utcnow(),
                    "last_seen_at": utcnow(),
                }
                for r in rows
            ],
        )
        for wid, cents in holds.items():
            await ledger.adjust_reserved(session, account_id=wid, delta_cents=cents)
    return pairs


# The statements of one posting as ours sent them (cursor events during the first posting).
CAPTURED: list[tuple[str, tuple[Any, ...]]] = []


def _capture(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
    CAPTURED.append((statement, tuple(params or ())))


async def first_posting(pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """The first posting, untimed and recorded: the floor replays its statements for every other."""
    settings = load_settings()
    tid, pid = pairs[0]
    event.listen(Engine, "before_cursor_execute", _capture)
    try:
        async with unit_of_work() as session:
            payment = await session.get(Payment, pid)
            tenant = await session.get(Tenant, tid)
            assert payment is not None and tenant is not None
            await commissions.settle_success(session, payment=payment, tenant=tenant, settings=settings)
    finally:
        event.remove(Engine, "before_cursor_execute", _capture)


async def ours(pairs: list[tuple[uuid.UUID, uuid.UUID]], concurrency: int) -> float:
    settings = load_settings()
    queue: asyncio.Queue[tuple[uuid.UUID, uuid.UUID]] = asyncio.Queue()
    for p in pairs:
        queue.put_nowait(p)

    async def worker() -> None:
        while not queue.empty():
            tid, pid = queue.get_nowait()
            async with unit_of_work() as session:
                payment = await session.get(Payment, pid)
                tenant = await session.get(Tenant, tid)
                assert payment is not None and tenant is not None
                await commissions.settle_success(session, payment=payment, tenant=tenant, settings=settings)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


# The transfer statement's account ids ($6, $7: debit and credit; $13, $16: the two balances moved),
# the first posting's business's, replaced by each posting's business's own.
ACCOUNT_PARAMS = {5, 6, 12, 15}


def _floor_plan(first: tuple[uuid.UUID, uuid.UUID]) -> list[tuple[str, list[Any]]]:
    """The captured statements with each of the first posting's values marked for substitution: its
    tenant id, payment id (as a UUID or as the transfer's text cause), and the clock."""
    tid, pid = first
    plan = []
    for statement, params in CAPTURED:
        if statement.startswith(("SELECT ledger_accounts.id", "INSERT INTO ledger_accounts")):
            continue  # account ids are looked up once per process (cached), not per posting
        args: list[Any] = []
        for i, value in enumerate(params):
            if "ledger_transfers" in statement and i in ACCOUNT_PARAMS:
                args.append(("account", value))
            elif value == tid:
                args.append(("tenant",))
            elif value == pid:
                args.append(("payment",))
            elif value == str(pid):
                args.append(("payment-text",))
            elif isinstance(value, datetime):
                args.append(("now",))
            else:
                args.append(value)
        plan.append((statement, args))
    return plan


async def floor(
    dsn: str,
    plan: list[tuple[str, list[Any]]],
    first_tenant: uuid.UUID,
    pairs: list[tuple[uuid.UUID, uuid.UUID]],
    concurrency: int,
) -> float:
    """Ours's statements for each posting, bare asyncpg, one transaction each, prepared once per
    connection (asyncpg's statement cache). Amounts are the first posting's for every posting: the
    rows and locks are the same, only the figures differ."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    queue: asyncio.Queue[tuple[uuid.UUID, uuid.UUID]] = asyncio.Queue()
    for p in pairs:
        queue.put_nowait(p)

    async with pool.acquire() as conn:
        kinds = {
            (r["tenant_id"], r["kind"]): r["id"]
            for r in await conn.fetch("SELECT tenant_id, kind, id FROM ledger_accounts")
        }
    first_kind = {v: k for (t, k), v in kinds.items() if t == first_tenant}

    def bind(args: list[Any], tid: uuid.UUID, pid: uuid.UUID) -> list[Any]:
        values = {"tenant": tid, "payment": pid, "payment-text": str(pid), "now": datetime.now(UTC)}
        return [
            (kinds[(tid, first_kind[a[1]])] if a[0] == "account" else values[a[0]])
            if isinstance(a, tuple)
            else a
            for a in args
        ]

    async def worker() -> None:
        async with pool.acquire() as conn:
            while not queue.empty():
                tid, pid = queue.get_nowait()
                # BEGIN with the unit of work's scope in the same message, as ours sends it
                # (core.db.ScopeCarryingConnection), then its statements, then COMMIT
                await conn.execute(f"BEGIN; {scope_sql('platform', '')}")
                try:
                    for statement, args in plan:
                        await conn.fetch(statement, *bind(args, tid, pid))
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    async with pool.acquire() as conn:
        done = await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE kind = 'commission.wallet'")
    await pool.close()
    assert done == len(pairs) + 1, (done, len(pairs))  # + the first, posted by ours before the copy
    return elapsed


async def raw(dsn: str, pairs: list[tuple[uuid.UUID, uuid.UUID]], concurrency: int) -> float:
    """The same rows (one transfer per payment) inserted with bare asyncpg into a copy of the table."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE raw_transfers (LIKE ledger_transfers INCLUDING DEFAULTS)")
        accounts = {
            r["tenant_id"]: (r["w"], r["r"])
            for r in await conn.fetch(
                "SELECT tenant_id, max(id) FILTER (WHERE kind='wallet') w, "
                "max(id) FILTER (WHERE kind='revenue') r FROM ledger_accounts GROUP BY tenant_id"
            )
        }
        amounts = {
            r["id"]: r["commission_cents"]
            for r in await conn.fetch("SELECT id, commission_cents FROM payments")
        }
    queue: asyncio.Queue[tuple[uuid.UUID, uuid.UUID]] = asyncio.Queue()
    for p in pairs:
        queue.put_nowait(p)
    sql = (
        "INSERT INTO raw_transfers (tenant_id, cause_type, cause_id, kind, payment_id, debit_account_id, "
        "credit_account_id, amount_cents, created_at) "
        "VALUES ($1, 'payment', $2, 'commission.wallet', $3, $4, $5, $6, now())"
    )

    async def worker() -> None:
        async with pool.acquire() as conn:
            while not queue.empty():
                tid, pid = queue.get_nowait()
                w, r = accounts[tid]
                await conn.execute(sql, tid, str(pid), pid, w, r, amounts[pid])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await pool.close()
    return elapsed


async def verify(pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    from core.billing.integrity import check_all

    async with unit_of_work(readonly=True) as session:
        n = len(list(await session.scalars(select(Transfer.id).where(Transfer.kind == "commission.wallet"))))
        problems = await check_all(session)
    assert n == len(pairs), (n, len(pairs))
    assert problems == [], problems[:3]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    name = f"lipapush_bench_ledger_{uuid.uuid4().hex[:6]}"
    asyncio.run(admin(args.server, f'CREATE DATABASE "{name}"'))
    url = f"{args.server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    try:
        upgrade(url)
        rt = configure(load_settings(DATABASE_URL=url))

        async def prepare() -> list[tuple[uuid.UUID, uuid.UUID]]:
            try:
                pairs = await seed(args.payments, args.tenants)
                await first_posting(pairs)
                return pairs
            finally:
                await rt.aclose()  # no connection left: the database is copied next

        pairs = asyncio.run(prepare())
        # the floor's copy: the same rows, first posting included
        asyncio.run(admin(args.server, f'CREATE DATABASE "{name}_floor" TEMPLATE "{name}"'))
        rest = pairs[1:]

        async def run() -> tuple[float, float, float]:
            try:
                t_ours = await ours(rest, args.concurrency)
                await verify(pairs)
                t_floor = await floor(
                    f"{args.server}/{name}_floor", _floor_plan(pairs[0]), pairs[0][0], rest, args.concurrency
                )
                t_raw = await raw(f"{args.server}/{name}", rest, args.concurrency)
                return t_ours, t_floor, t_raw
            finally:
                await rt.aclose()

        t_ours, t_floor, t_raw = asyncio.run(run())
    finally:
        for db in (name, f"{name}_floor"):
            asyncio.run(admin(args.server, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    n = len(pairs) - 1
    print(
        f"{n} commission postings (+1 untimed), {args.tenants} tenants, "
        f"concurrency {args.concurrency}, Postgres"
    )
    print(
        f"  ours (settle_success: hold release + transfer + 2 balances + threshold check): "
        f"{n / t_ours:8.0f} postings/s  ({t_ours:.2f} s)"
    )
    print(
        f"  floor: ours's {len(_floor_plan(pairs[0]))} statements, bare asyncpg, a transaction each:         "
        f"{n / t_floor:8.0f} postings/s  ({t_floor:.2f} s)"
    )
    print(
        f"  raw asyncpg INSERT of the same rows, one per transaction:                    "
        f"{n / t_raw:8.0f} rows/s      ({t_raw:.2f} s)"
    )
    print(f"  ratio ours / raw: {t_raw / t_ours:.2f}")
    print(f"  ratio floor / raw: {t_raw / t_floor:.2f} (the best these writes allow)")
    print(f"  ratio ours / floor: {t_floor / t_ours:.2f} (what our stack costs over the driver)")


if __name__ == "__main__":
    main()
