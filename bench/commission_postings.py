"""Commission postings per second vs raw inserts of the same rows, on the same Postgres.

    .venv/bin/python bench/commission_postings.py --payments 5000 --tenants 20 --concurrency 16

Ours: for each successful payment, the commission settlement the product runs inside
`payments.finalize` — release the wallet hold, insert the transfer (idempotent on its cause), move both
materialised balances, check the low-balance threshold — one unit of work per payment, `--concurrency`
at a time, through SQLAlchemy/asyncpg.
Baseline: the same number of rows INSERTed into `ledger_transfers` with bare asyncpg, one statement
per transaction, the same concurrency. The ratio says what the ledger's guarantees cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from sqlalchemy import insert, select

from core.billing.commission import commission_cents, commissions
from core.config import load_settings
from core.customers.models import Customer
from core.db import utcnow
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

        async def run() -> tuple[float, float]:
            try:
                pairs = await seed(args.payments, args.tenants)
                t_ours = await ours(pairs, args.concurrency)
                await verify(pairs)
                t_raw = await raw(f"{args.server}/{name}", pairs, args.concurrency)
                return t_ours, t_raw
            finally:
                await rt.aclose()

        t_ours, t_raw = asyncio.run(run())
    finally:
        asyncio.run(admin(args.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    n = args.payments
    print(f"{n} commission postings, {args.tenants} tenants, concurrency {args.concurrency}, Postgres")
    print(
        f"  ours (settle_success: hold release + transfer + 2 balances + threshold check): "
        f"{n / t_ours:8.0f} postings/s  ({t_ours:.2f} s)"
    )
    print(
        f"  raw asyncpg INSERT of the same rows, one per transaction:                    "
        f"{n / t_raw:8.0f} rows/s      ({t_raw:.2f} s)"
    )
    print(f"  ratio ours / raw: {t_raw / t_ours:.2f}")


if __name__ == "__main__":
    main()
