"""The platform admin's Transactions page (/admin/transactions) at 1 000 000 payments, against the bare
query it needs run straight on asyncpg. Run by hand:

    .venv/bin/python bench/transactions_page.py                      # 1M payments, 200 requests a case
    .venv/bin/python bench/transactions_page.py --payments 200000 --requests 100

1. Creates a fresh database `bench_tx_<pid>` on `--pg-server` (postgresql://postgres@127.0.0.1:5432) and
   migrates it with `lipapush db upgrade`. One business is made through the real services (signup,
   save_channel on production, mark_verified); the other `--tenants` - 1 are SQL copies of its rows.
   The payments are one INSERT … SELECT generate_series, live (their production channels' mode, with
   commission): 30 days in creation order, a few big businesses and many small ones, ~86 % success and
   ~11 % failed/cancelled/timeout, every source, ~200 000 repeat customers' phones (2547…, some 2541…).
   Then ANALYZE.
2. A platform admin and a panel session are made through core services (auth.create_user,
   panel_sessions.start); `lipapush web` runs as a real process with that session's cookie.
3. aiohttp asks for each case `--requests` times at concurrency 1 and 4 (after a warm-up): the first
   page; status=failed; one business; three days; phone as a full number, a number's start and its
   last 3 and 4 digits; and pages 2..51 found by following "Older →" 50 times. p50/p99 per case.
4. Baseline, same run, same concurrency: the page's SQL (the same columns, join, conditions, order and
   LIMIT 51) on an asyncpg pool, with the cursor positions the page produced. Ratio = page / baseline.
   EXPLAIN (ANALYZE, BUFFERS) of each baseline query prints the scans it used.
5. Drops the database (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import asyncpg
from pydantic import SecretStr

from core.auth import panel_sessions
from core.auth.models import Role
from core.auth.service import auth
from core.config import SANDBOX_PASSKEY, SANDBOX_SHORT_CODE, load_settings
from core.payments.models import Payment
from core.payments.search import PhoneMatchKind, decode_cursor, eat_day_start, phone_match
from core.runtime import Runtime, configure, unit_of_work
from core.tenants.models import ChannelKind, Environment, Mode, MpesaChannel, Tenant
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants

BUDGET_MS = 100.0
COLUMNS = (
    "p.id, p.created_at, p.tenant_id, t.name, p.phone, p.amount, p.status, p.source, p.receipt, p.result_code"
)


# -- database --------------------------------------------------------------------------------------
def _copy_sql(table: Any, overrides: dict[str, str], source: str) -> str:
    """INSERT INTO table (every column) SELECT overrides-or-same-column FROM source."""
    cols = [c.name for c in table.columns]
    exprs = [overrides.get(c, f"src.{c}") for c in cols]
    return f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {source}"


def payments_sql(n: int, mode: Mode) -> str:
    """Every NOT NULL column of payments is given here, so a new column without a default fails loudly.
    `mode`: the channels' (all copies of one), which a payment takes."""
    values = {
        "id": "gen_random_uuid()",
        "tenant_id": "bt.tenant_id",
        "channel_id": "bt.channel_id",
        "mode": f"'{mode.value}'",
        "source": "(ARRAY['api','api','api','api','telegram','telegram','telegram','ussd','ussd',"
        "'portal','portal','onboarding','topup'])[1 + (g * 7) % 13]",
        "status": "CASE WHEN r.s < 0.86 THEN 'success' WHEN r.s < 0.93 THEN 'failed' "
        "WHEN r.s < 0.97 THEN 'cancelled' WHEN r.s < 0.995 THEN 'timeout' ELSE 'expired' END",
        "amount": "1 + floor(power(r.a, 3) * 20000)::int",
        "phone": "CASE WHEN r.c % 10 = 0 THEN '2541' ELSE '2547' END "
        "|| lpad(((r.c * 7919) % 100000000)::text, 8, '0')",
        "account_reference": "'SHOP'",
        "description": "'Payment'",
        "checkout_request_id": "'ws_CO_' || g",
        "merchant_request_id": "'mr-' || g",
        "receipt": "CASE WHEN r.s < 0.86 THEN 'S' || upper(lpad(to_hex(g), 9, '0')) END",
        "result_code": "CASE WHEN r.s < 0.86 THEN '0' WHEN r.s < 0.93 THEN '1' WHEN r.s < 0.97 THEN '1032' "
        "WHEN r.s < 0.995 THEN '1037' END",
        "commission_bps": "100",
        "commission_cents": "1 + floor(power(r.a, 3) * 20000)::int",
        "reserved_cents": "0",
        "created_at": f"now() - interval '30 days' * (1 - g::float8 / {n})",
        "updated_at": f"now() - interval '30 days' * (1 - g::float8 / {n})",
        "completed_at": f"now() - interval '30 days' * (1 - g::float8 / {n}) + interval '20 seconds'",
        "query_attempts": "0",
    }
    if mode is Mode.test:  # a test payment is priced at nothing (core.billing.commission)
        values.update(commission_bps="NULL", commission_cents="0")
    missing = [c.name for c in Payment.__table__.columns if not c.nullable and c.name not in values]
    assert not missing, f"bench does not fill payments.{missing}"
    cols = list(values)
    return (
        f"INSERT INTO payments ({', '.join(cols)}) SELECT {', '.join(values[c] for c in cols)} "
        f"FROM generate_series(1, {n}) g "
        # A few big businesses and a long tail of small ones; repeat customers.
        "CROSS JOIN LATERAL (SELECT random() AS s, random() AS a, "
        "floor(200000 * power(random(), 1.5))::bigint AS c, "
        "floor(power(random(), 2) * (SELECT count(*) FROM bench_tenants))::int AS t "
        "WHERE g > 0) r "
        "JOIN bench_tenants bt ON bt.idx = r.t "
        "ORDER BY g"
    )


async def seed(rt: Runtime, dsn: str, *, n_tenants: int, n_payments: int) -> None:
    async with unit_of_work() as session:
        tenant, _ = await signup(
            session,
            business_name="Bench Shop",
            email=f"bench-{secrets.token_hex(4)}@example.com",
            password="bench-pass-123",
            phone="0712345678",
        )
        channel = await tenants.save_channel(
            session,
            tenant=tenant,
            # Production (the stand-ins' values; nothing calls Daraja): live payments, with commission.
            data=ChannelIn(
                environment=Environment.production,
                kind=ChannelKind.paybill,
                business_short_code=SANDBOX_SHORT_CODE,
                consumer_key=SecretStr("bench-consumer-key"),
                consumer_secret=SecretStr("bench-consumer-secret"),
                passkey=SecretStr(SANDBOX_PASSKEY),
            ),
            box=rt.secrets,
            by=None,
        )
        await tenants.mark_verified(session, channel=channel)
        template, mode = tenant.id, channel.mode
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        await conn.execute(
            _copy_sql(
                Tenant.__table__,
                {
                    "id": "gen_random_uuid()",
                    "name": "'Duka ' || g",
                    "slug": "'duka-' || g",
                    "business_number": "NULL",
                    "email": "'duka' || g || '@example.com'",
                },
                f"tenants src CROSS JOIN generate_series(2, {n_tenants}) g WHERE src.id = '{template}'",
            )
        )
        await conn.execute(
            _copy_sql(
                MpesaChannel.__table__,
                {
                    "id": "gen_random_uuid()",
                    "tenant_id": "t.id",
                    "business_short_code": "(100000 + row_number() OVER ())::text",
                    "callback_token": "md5(t.id::text)",
                },
                f"mpesa_channels src CROSS JOIN tenants t WHERE src.tenant_id = '{template}' "
                f"AND t.id <> '{template}'",
            )
        )
        await conn.execute(
            "CREATE TABLE bench_tenants AS SELECT (row_number() OVER (ORDER BY t.slug) - 1)::int AS idx, "
            "t.id AS tenant_id, c.id AS channel_id FROM tenants t JOIN mpesa_channels c ON c.tenant_id = t.id"
        )
        await conn.execute("CREATE UNIQUE INDEX ON bench_tenants (idx)")
        await conn.execute(payments_sql(n_payments, mode))
        await conn.execute("DROP TABLE bench_tenants")
        await conn.execute("VACUUM ANALYZE")
        count = await conn.fetchval("SELECT count(*) FROM payments")
        print(f"seeded {count} payments over {n_tenants} businesses in {time.perf_counter() - t0:.0f}s")
    finally:
        await conn.close()


async def admin_cookie() -> str:
    async with unit_of_work() as session:
        user = await auth.create_user(
            session,
            email=f"bench-admin-{secrets.token_hex(4)}@example.com",
            password="bench-admin-123",
            role=Role.platform_admin,
            tenant_id=None,
        )
        started = await panel_sessions.start(session, user=user, ip="127.0.0.1", user_agent="bench")
    return started.token


# -- the cases -------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    urls: list[str]  # the page requests, used in turn
    queries: list[tuple[str, list[Any]]]  # the same queries for asyncpg, in the same order
    page_ms: dict[int, list[float]] = field(default_factory=dict)
    base_ms: dict[int, list[float]] = field(default_factory=dict)


def baseline_query(params: dict[str, str]) -> tuple[str, list[Any]]:
    """The SQL the page runs for these query parameters, as core.payments.search builds it."""
    conds: list[str] = []
    args: list[Any] = []

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args)}"

    if "tenant" in params:
        conds.append(f"p.tenant_id = (SELECT id FROM tenants WHERE slug = {arg(params['tenant'])})")
    if "status" in params:
        conds.append(f"p.status = {arg(params['status'])}")
    if "from" in params:
        conds.append(f"p.created_at >= {arg(eat_day_start(date.fromisoformat(params['from'])))}")
    if "to" in params:
        end = eat_day_start(date.fromisoformat(params["to"]) + timedelta(days=1))
        conds.append(f"p.created_at < {arg(end)}")
    if "phone" in params:
        m = phone_match(params["phone"])
        if m.kind is PhoneMatchKind.exact:
            conds.append(f"p.phone = {arg(m.digits)}")
        elif m.kind is PhoneMatchKind.starts:
            upper = str(int(m.digits) + 1).zfill(len(m.digits))
            conds.append(f"p.phone >= {arg(m.digits)} AND p.phone < {arg(upper)}")
        else:
            # As core.payments.search does on Postgres: a range on reverse(phone), the expression index.
            rev = m.digits[::-1]
            conds.append(f"reverse(p.phone) >= {arg(rev)}")
            if rev.strip("9"):
                conds.append(f"reverse(p.phone) < {arg(str(int(rev) + 1).zfill(len(rev)))}")
        if m.kind is not PhoneMatchKind.ends and "tenant" not in params:
            conds.append("p.tenant_id IN (SELECT id FROM tenants)")
    if "cursor" in params:
        at, pid, _ = decode_cursor(params["cursor"])
        a, b = arg(at), arg(pid)
        conds.append(f"p.created_at <= {a} AND (p.created_at < {a} OR (p.created_at = {a} AND p.id < {b}))")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    return (
        f"SELECT {COLUMNS} FROM payments p JOIN tenants t ON t.id = p.tenant_id {where} "
        "ORDER BY p.created_at DESC, p.id DESC LIMIT 51",
        args,
    )


async def build_cases(base_url: str, http: aiohttp.ClientSession, dsn: str, n_tenants: int) -> list[Case]:
    conn = await asyncpg.connect(dsn)
    try:
        mid = await conn.fetchrow(
            "SELECT t.slug, count(*) AS n FROM payments p JOIN tenants t ON t.id = p.tenant_id "
            "GROUP BY t.slug ORDER BY n DESC OFFSET $1 LIMIT 1",
            n_tenants // 2,
        )
        newest = await conn.fetchval("SELECT max(created_at) FROM payments")
        phone = await conn.fetchval("SELECT phone FROM payments ORDER BY created_at DESC OFFSET 5000 LIMIT 1")
    finally:
        await conn.close()
    day = (newest - timedelta(days=12)).date()
    simple = {
        "first page": {},
        "status=failed": {"status": "failed"},
        f"business ({mid['n']} payments)": {"tenant": mid["slug"]},
        "3 days": {"from": day.isoformat(), "to": (day + timedelta(days=2)).isoformat()},
        "phone full 07…": {"phone": "0" + phone[3:]},
        "phone start 07xx": {"phone": "0" + phone[3:6]},
        "phone last 3": {"phone": phone[-3:]},
        "phone last 4": {"phone": phone[-4:]},
    }
    cases = [
        Case(name, [f"{base_url}/admin/transactions?{urlencode(p)}"], [baseline_query(p)])
        for name, p in simple.items()
    ]
    # Pages 2..51: follow "Older →" from the first page.
    deep = Case("older ×50 (pages 2-51)", [], [])
    url = f"{base_url}/admin/transactions"
    for _ in range(50):
        async with http.get(url) as r:
            html = await r.text()
            assert r.status == 200, html[:500]
        m = re.search(r'<a href="([^"]+)" rel="next">', html)
        assert m, "no Older link"
        url = base_url + m.group(1).replace("&amp;", "&")
        deep.urls.append(url)
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        deep.queries.append(baseline_query(params))
    cases.append(deep)
    return cases


async def run_load(fn: Callable[[int], Awaitable[None]], n: int, concurrency: int) -> list[float]:
    times: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t = time.perf_counter()
            await fn(i)
            times.append((time.perf_counter() - t) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] if len(xs) > 1 else xs[0]


async def measure(
    cases: list[Case], http: aiohttp.ClientSession, dsn: str, n: int, levels: list[int]
) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=max(levels), max_size=max(levels))
    try:
        for case in cases:
            for c in levels:

                async def page(i: int, case: Case = case) -> None:
                    async with http.get(case.urls[i % len(case.urls)]) as r:
                        body = await r.read()
                        if r.status != 200:
                            raise RuntimeError(f"{r.status}: {body[:300]!r}")

                async def base(i: int, case: Case = case) -> None:
                    sql, args = case.queries[i % len(case.queries)]
                    async with pool.acquire() as conn:
                        await conn.fetch(sql, *args)

                await run_load(page, min(n, 20), c)  # warm-up
                await run_load(base, min(n, 20), c)
                case.page_ms[c] = await run_load(page, n, c)
                case.base_ms[c] = await run_load(base, n, c)
    finally:
        await pool.close()


async def explain(cases: list[Case], dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for case in cases:
            sql, args = case.queries[-1]
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *args)
            lines = [r[0] for r in plan]
            scans = sorted(
                {
                    m.group(0)
                    for ln in lines
                    for m in re.finditer(r"(\w+ )*Scan( Backward)? (using \w+ )?on \w+", ln)
                }
            )
            took = next((ln for ln in lines if ln.startswith("Execution Time")), "")
            print(f"  {case.name:<26} {took:<28} {'; '.join(scans)}")
    finally:
        await conn.close()


def report(cases: list[Case], levels: list[int]) -> bool:
    ok = True
    print(f"\n{'case':<26}" + "".join(f" | c={c}: page p50/p99   base p50/p99   p99 ratio" for c in levels))
    for case in cases:
        row = f"{case.name:<26}"
        for c in levels:
            p, b = case.page_ms[c], case.base_ms[c]
            p99 = pct(p, 99)
            ok &= p99 < BUDGET_MS
            row += (
                f" | {pct(p, 50):6.1f} /{p99:6.1f} ms {pct(b, 50):6.1f} /{pct(b, 99):6.1f} ms"
                f" {p99 / max(pct(b, 99), 0.001):6.1f}x"
            )
        print(row)
    print(f"\npage p99 under {BUDGET_MS:.0f} ms in every case: {'yes' if ok else 'NO'}")
    return ok


# -- main ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("lipapush web exited")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError("lipapush web did not become healthy")


def start_web(port: int, env: dict[str, str], workdir: Path, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("lipapush")), "web", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def bench(args: argparse.Namespace, db_url: str, dsn: str, workdir: Path) -> bool:
    rt = configure(load_settings(DATABASE_URL=db_url))
    try:
        await seed(rt, dsn, n_tenants=args.tenants, n_payments=args.payments)
        token = await admin_cookie()
    finally:
        await rt.db.dispose()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "LIPAPUSH_", "REDIS_"))}
    env.update(DATABASE_URL=db_url, LOG_LEVEL=args.log_level, PYTHONUNBUFFERED="1")
    log = (workdir / "web.log").open("wb")
    proc = start_web(port, env, workdir, log)
    try:
        await wait_healthy(base_url, proc)
        levels = [int(c) for c in args.concurrency.split(",")]
        connector = aiohttp.TCPConnector(limit=max(levels))
        async with aiohttp.ClientSession(cookies={"lp_session": token}, connector=connector) as http:
            cases = await build_cases(base_url, http, dsn, args.tenants)
            await measure(cases, http, dsn, args.requests, levels)
        print(f"\n{args.payments} payments, {args.tenants} businesses, {args.requests} requests a case")
        ok = report(cases, levels)
        print("\nEXPLAIN ANALYZE of each baseline query (the last one of the case):")
        await explain(cases, dsn)
        return ok
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--payments", type=int, default=1_000_000)
    ap.add_argument("--tenants", type=int, default=200)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--keep", action="store_true", help="keep the database and web.log")
    args = ap.parse_args()

    name = f"bench_tx_{os.getpid()}"
    server = args.pg_server.rstrip("/")
    dsn = f"{server}/{name}"
    db_url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    workdir = Path(tempfile.mkdtemp(prefix="bench-tx-"))

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    ok = False
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "LIPAPUSH_"))}
        subprocess.run(
            [str(Path(sys.executable).with_name("lipapush")), "db", "upgrade"],
            env={**env, "DATABASE_URL": db_url},
            cwd=workdir,
            check=True,
        )
        ok = asyncio.run(bench(args, db_url, dsn, workdir))
    finally:
        if args.keep:
            print(f"kept database {name} and {workdir}/web.log")
        else:
            asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
