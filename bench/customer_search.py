"""Customer-book search at 1 000 000 customers (Postgres): `customers.search` in a real session, against
the fastest SQL for the same searches on bare asyncpg, and the search as it was before (LIKE + COUNT(*)).
Run by hand:

    .venv/bin/python bench/customer_search.py                         # 1M customers, 300 searches a case
    .venv/bin/python bench/customer_search.py --customers 200000 --searches 100

1. Creates a fresh database `bench_cs_<pid>` on `--pg-server` (postgresql://postgres@127.0.0.1:5432) and
   migrates it with `lipapush db upgrade` as the application does: DATABASE_URL is the application's
   own role (`--app-role`, lipapush_app), MIGRATION_DATABASE_URL the server's superuser. Everything timed
   runs as that role, under row-level security, as in production.
2. One business through the real signup; `--others` more are SQL copies of it. Customers, one INSERT …
   SELECT generate_series each: `--customers` in the first business's live book, `--test-customers` in
   its test book, `--other-customers` for each other business (partly the same phones and names: the
   same people buy from several shops, so scoping matters). Names are Kenyan first, middle and family
   names (some in M-Pesa's capitals, ~4 % none); phones 2547… and ~10 % 2541…, unique per book;
   requests, payments and dates spread over two years. The index ix_customers_search (the migration's
   own definition) is dropped for the load and built again after it; then VACUUM ANALYZE.
3. Searches, first page of 50, by three sorts (the default last_seen_at desc, name asc, paid_total
   desc): name fragments (common "wanj", rarer "cheb", a whole name, M-Pesa capitals…) and phone
   digits as people type them ("0722 12", "72212", "+2547…", a whole number, last 4 digits). Each
   search runs `--searches` times a case (cycling through its fragments), each time:
   * ours: `customers.search` in a read-only unit of work scoped to the business (core.runtime), as
     the API, panel and bot call it: the scope, the page, the bounded count when the page is full,
     CustomerOut rows;
   * baseline, right after it: the same searches in hand-written SQL on an asyncpg connection (same
     role, same scope, same transaction kind): the page, then `count(*)` over `LIMIT 1001` when the
     page is full. plan_cache_mode=force_custom_plan on the connection (no round trip for it).
   Then `--old-searches` runs of the search as it was (lower(name) LIKE, COUNT(*) of every match),
   default sort, for reference. p50/p95/p99 per case, and the ratio ours/baseline at p99.
4. Checks that ours and the baseline return the same rows and totals; prints EXPLAIN (ANALYZE,
   BUFFERS) scans of a few baseline queries, run as the application's role.
5. Drops the database (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from core.config import load_settings
from core.customers.schemas import CustomerQuery, CustomerSort
from core.customers.service import COMMON, NAME_WALK, SEARCH_COUNT_CAP, customers
from core.db import Scope
from core.runtime import configure, unit_of_work
from core.tenants.models import Mode, Tenant
from core.tenants.onboarding import signup

BUDGET_MS = 50.0
PER_PAGE = 50
COLUMNS = (
    "id, tenant_id, mode, phone, name, requested_count, requested_total, paid_count, paid_total, "
    "first_seen_at, last_seen_at, last_paid_at"
)


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "Mary Grace Faith Joyce Jane Ann Esther Mercy Lucy Sharon Caroline Purity Winnie Beatrice Eunice "
    "Nancy Irene Ruth Agnes Janet John Peter James Joseph David Daniel Samuel Paul Stephen Brian Kevin "
    "Dennis Collins Victor Moses Isaac Francis Patrick George Charles Fatuma Amina Halima Mohamed "
    "Hassan Abdi Ali Zawadi Baraka Imani Neema Amani"
)
MIDDLE = _words(
    "Wanjiku Wanjiru Wambui Wangari Wangui Wairimu Nyambura Njeri Nduta Muthoni Akinyi Achieng Atieno "
    "Adhiambo Auma Awino Chebet Jepkoech Jelimo Jeptoo Chepkemoi Nekesa Nafula Naliaka Mueni Mwikali "
    "Makena Kendi Kawira Otieno Ochieng Omondi Odhiambo Onyango Kiprop Kipchoge Kibet Korir Rotich "
    "Cheruiyot Wafula Barasa Wekesa Simiyu Khisa Mutua Musyoka Kioko Muriuki Gitonga"
)
LAST = _words(
    "Kamau Mwangi Kariuki Njoroge Kimani Maina Ngugi Waweru Githinji Ndungu Mugo Macharia Gachanja "
    "Otieno Ochieng Omondi Odhiambo Onyango Owino Okoth Kiprotich Kiplagat Koech Langat Kirui Mutai "
    "Wanjala Wafula Barasa Wekesa Simiyu Juma Mutua Musyoka Kilonzo Mwendwa Nzioka Muriuki Mbugua Kinyua "
    "Ali Hassan Abdullahi Noor Mohamed"
)


def _sql_array(words: list[str]) -> str:
    return "(ARRAY[" + ",".join(f"'{w}'" for w in words) + "])"


def customers_sql(tenant: str, mode: Mode, n: int, *, phone_offset: int, seed: int) -> str:
    """`n` customers of one book. Phones are a permutation of 8 digits (7919 is prime to 10^8), so
    unique in the book; `phone_offset` shifts another book's onto partly the same numbers."""
    f, m, last = _sql_array(FIRST), _sql_array(MIDDLE), _sql_array(LAST)
    name = (
        f"{f}[1 + (h1 % {len(FIRST)})] || ' ' || {m}[1 + (h2 % {len(MIDDLE)})]"
        f" || CASE WHEN h4 % 3 = 0 THEN '' ELSE ' ' || {last}[1 + (h3 % {len(LAST)})] END"
    )
    return f"""
    INSERT INTO customers (tenant_id, mode, phone, name, requested_count, requested_total, paid_count,
                           paid_total, first_seen_at, last_seen_at, last_paid_at)
    SELECT '{tenant}', '{mode.value}', phone,
           CASE WHEN h4 % 25 = 0 THEN NULL WHEN h4 % 5 = 1 THEN upper({name}) ELSE {name} END,
           req, req * 150, paid, paid * (50 + h2 % 2000),
           first_seen, last_seen, CASE WHEN paid > 0 THEN first_seen + (last_seen - first_seen) * random() END
    FROM (SELECT *, first_seen + (now() - first_seen) * random() AS last_seen FROM (
        SELECT CASE WHEN k % 10 = 0 THEN '2541' ELSE '2547' END
                   || lpad(((k * 7919) % 100000000)::text, 8, '0') AS phone,
               abs(hashint4(g + {seed})::bigint) AS h1, abs(hashint4(g * 7 + {seed})::bigint) AS h2,
               abs(hashint4(g * 13 + {seed})::bigint) AS h3, abs(hashint4(g * 31 + {seed})::bigint) AS h4,
               1 + (g % 20) AS req, (g % 20) * (g % 3) / 2 AS paid,
               now() - interval '730 days' + (g % 730) * interval '1 day' - random() * interval '1 day'
                   AS first_seen
        FROM generate_series(1, {n}) g CROSS JOIN LATERAL (SELECT (g + {phone_offset})::bigint AS k) kk
    ) s0) s
    """


async def seed(args: argparse.Namespace, dsn: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    async with unit_of_work() as session:
        tenant, _ = await signup(
            session,
            business_name="Bench Duka",
            email=f"bench-{secrets.token_hex(4)}@example.com",
            password="bench-pass-123",
            phone="0712345678",
        )
        main = tenant.id
    conn = await asyncpg.connect(dsn)  # the owner: no row-level security in the way of the load
    try:
        t0 = time.perf_counter()
        cols = [c.name for c in Tenant.__table__.columns]
        over = {
            "id": "gen_random_uuid()",
            "name": "'Duka ' || g",
            "slug": "'duka-' || g",
            "business_number": "NULL",
            "email": "'duka' || g || '@example.com'",
        }
        await conn.execute(
            f"INSERT INTO tenants ({', '.join(cols)}) SELECT "
            + ", ".join(over.get(c, f"src.{c}") for c in cols)
            + f" FROM tenants src CROSS JOIN generate_series(2, {args.others + 1}) g WHERE src.id = '{main}'"
        )
        others = [r["id"] for r in await conn.fetch("SELECT id FROM tenants WHERE id <> $1", main)]
        search_indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix_customers_search%'"
        )
        assert search_indexes, "ix_customers_search_* missing: is the migration applied?"
        for index in search_indexes:
            await conn.execute(f"DROP INDEX {index['indexname']}")
        await conn.execute(customers_sql(str(main), Mode.live, args.customers, phone_offset=0, seed=1))
        await conn.execute(customers_sql(str(main), Mode.test, args.test_customers, phone_offset=500, seed=2))
        for i, other in enumerate(others):
            # Each other book: half of its phones are the searched book's customers too.
            offset = args.customers - args.other_customers // 2 + i * args.other_customers
            await conn.execute(
                customers_sql(str(other), Mode.live, args.other_customers, phone_offset=offset, seed=3 + i)
            )
        loaded = time.perf_counter() - t0
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for index in search_indexes:
            await conn.execute(index["indexdef"])
        built = time.perf_counter() - t0 - loaded
        await conn.execute("VACUUM ANALYZE customers")
        count = await conn.fetchval("SELECT count(*) FROM customers")
        print(
            f"seeded {count} customers ({args.customers} in the searched book) over {args.others + 1} "
            f"businesses: load {loaded:.0f}s, ix_customers_search_* {built:.0f}s"
        )
    finally:
        await conn.close()
    return main, others


# -- the searches ---------------------------------------------------------------------------------
@dataclass
class Case:
    kind: str  # "name" or "phone"
    sort: CustomerSort
    desc: bool
    qs: list[str]
    ours_ms: list[float] = field(default_factory=list)
    base_ms: list[float] = field(default_factory=list)
    by_q: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # q: (ours, baseline)
    totals: dict[str, str] = field(default_factory=dict)  # q: "1000+" / "12"

    @property
    def name(self) -> str:
        return f"{self.kind} · {self.sort.value} {'desc' if self.desc else 'asc'}"


SORTS = [(CustomerSort.last_seen_at, True), (CustomerSort.name, False), (CustomerSort.paid_total, True)]


async def pick_queries(dsn: str, main: uuid.UUID) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT phone, name FROM customers WHERE tenant_id = $1 AND mode = 'live' AND name IS NOT NULL "
            "ORDER BY id OFFSET 777 LIMIT 5",
            main,
        )
    finally:
        await conn.close()
    phones = [r["phone"] for r in rows]
    return {
        "name": [
            "wanj",  # 6 %: Wanjiku, Wanjiru, Wanjala
            "kam",  # Kamau, Kamande…
            "Cheb",  # Chebet, 2 %
            "otieno",  # a middle and a family name, 3 %
            "MUTUA",
            "grace",  # a first name, 2 %: all together in name order
            "grace wanj",  # 0.07 %
            "hassan",
            "nyamb",
            rows[0]["name"],  # one whole name
            rows[1]["name"].split()[-1][:5],
            "Mwikali Kilonzo",
            "zzq",  # nobody
        ],
        "phone": [
            "0722 12",
            "72212",
            "0" + phones[0][3:],  # a whole number, as 07…
            "+" + phones[1],
            phones[2],
            "0" + phones[3][3:7],  # its start, 07xx x
            phones[4][-4:],  # last 4 digits
            phones[0][-6:],
            "0110 5",
            "+2547 33",
        ],
    }


@dataclass
class Shapes:
    """One search by hand, as core.customers.service builds it, on the same indexes."""

    where: str  # tenant, mode and the match, on $1..$4
    args: list[Any]
    order: str
    trigrams: bool  # both alternatives have a trigram for the index
    by_name: bool = False  # sorted by name: a common fragment's page from the index's matches too

    def page(self) -> str:
        return f"SELECT {COLUMNS} FROM customers WHERE {self.where} ORDER BY {self.order} LIMIT {PER_PAGE}"

    @property
    def count(self) -> str:
        limit = SEARCH_COUNT_CAP + 1
        return f"SELECT count(*) FROM (SELECT 1 FROM customers WHERE {self.where} LIMIT {limit}) s"


def shapes(tenant_id: uuid.UUID, mode: Mode, q: str, sort: CustomerSort, desc: bool) -> Shapes:
    args: list[Any] = [tenant_id, mode.value]

    def arg(value: str) -> str:
        args.append(value)
        return f"${len(args)}"

    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    runs = re.findall(r"[^\W_]+", q)
    words = [w for w in runs if len(w) >= 3]
    if len(runs) < 2 or not words:
        match = f"name ILIKE {arg(f'%{escaped}%')}"
    else:  # as core.customers.service._name_match: each word by the index, the whole as a filter
        each = " AND ".join(f"name ILIKE {arg(f'%{w}%')}" for w in words)
        match = f"({each} AND lower(name) LIKE lower({arg(f'%{escaped}%')}))"
    digits = "".join(ch for ch in q if ch.isdigit())
    national = digits.lstrip("0")
    if digits:
        match = f"({match} OR phone LIKE {arg(f'%{national}%')})"
    way = "DESC" if desc else "ASC"
    nulls = " NULLS LAST" if sort is CustomerSort.name else ""
    trigrams = bool(words) and (not national or len(national) >= 3)
    where = f"tenant_id = $1 AND mode = $2 AND {match}"
    return Shapes(where, args, f"{sort.value} {way}{nulls}, id {way}", trigrams, sort is CustomerSort.name)


def old_sql(tenant_id: uuid.UUID, mode: Mode, q: str) -> tuple[str, str, list[Any]]:
    """The search before this work: lower(name) LIKE, the national digits LIKE, COUNT(*) of all."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    args: list[Any] = [tenant_id, mode.value, f"%{escaped}%".lower()]
    match = "lower(name) LIKE $3"
    digits = "".join(ch for ch in q if ch.isdigit())
    if digits:
        args.append(f"%{digits.lstrip('0')}%")
        match = f"({match} OR phone LIKE $4)"
    where = f"tenant_id = $1 AND mode = $2 AND {match}"
    page = (
        f"SELECT {COLUMNS} FROM customers WHERE {where} ORDER BY last_seen_at DESC, id DESC LIMIT {PER_PAGE}"
    )
    count = f"SELECT count(*) FROM (SELECT id FROM customers WHERE {where}) s"
    return page, count, args


SCOPE_SQL = (
    "SELECT set_config('app.scope', 'tenant', true), set_config('app.tenant_id', $1, true), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)
SCANS_SQL = (
    "SELECT set_config('enable_seqscan', $1, true), set_config('enable_indexscan', $1, true), "
    "set_config('enable_indexonlyscan', $1, true)"
)


async def baseline(conn: asyncpg.Connection, tenant_id: uuid.UUID, sh: Shapes) -> tuple[list[str], int]:
    """The service's search by hand, first page: the planner's estimate; if not common, the matches'
    ids (up to the cap, bitmap scans only) and the page sorted from them; else (or past the cap) the
    page in the sort's order. A search too short for a trigram: the page and the bounded count. The
    scope and custom plans in one statement."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(SCOPE_SQL, str(tenant_id))
        common = False
        if sh.trigrams:
            plan = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) SELECT id FROM customers WHERE {sh.where}", *sh.args
            )
            doc = json.loads(plan) if isinstance(plan, str) else plan
            common = doc[0]["Plan"]["Plan Rows"] >= COMMON * SEARCH_COUNT_CAP
            if not common:
                await conn.execute(SCANS_SQL, "off")
                ids = [r[0] for r in await conn.fetch(
                    f"SELECT id FROM customers WHERE {sh.where} LIMIT {SEARCH_COUNT_CAP + 1}", *sh.args
                )]  # fmt: skip
                if len(ids) <= SEARCH_COUNT_CAP:
                    where = "tenant_id = $1 AND mode = $2 AND id = ANY($3::bigint[])"
                    rows = await conn.fetch(
                        f"SELECT {COLUMNS} FROM customers WHERE {where} ORDER BY {sh.order} LIMIT {PER_PAGE}",
                        sh.args[0], sh.args[1], ids,
                    )  # fmt: skip
                    return [r["phone"] for r in rows], len(ids)
                await conn.execute(SCANS_SQL, "on")
            if sh.by_name:  # the page near the start of the name order, else the matches sorted
                first = (
                    f"SELECT {COLUMNS} FROM customers WHERE tenant_id = $1 AND mode = $2 "
                    f"ORDER BY {sh.order} LIMIT {NAME_WALK}"
                )
                match = sh.where.removeprefix("tenant_id = $1 AND mode = $2 AND ")
                rows = await conn.fetch(
                    f"SELECT * FROM ({first}) near WHERE {match} ORDER BY {sh.order} LIMIT {PER_PAGE}",
                    *sh.args,
                )
                if len(rows) < PER_PAGE:
                    await conn.execute(SCANS_SQL, "off")
                    rows = await conn.fetch(sh.page(), *sh.args)
                    await conn.execute(SCANS_SQL, "on")
            else:
                rows = await conn.fetch(sh.page(), *sh.args)
            if len(rows) == PER_PAGE:
                return [r["phone"] for r in rows], SEARCH_COUNT_CAP  # counted, or expected to be many
            return [r["phone"] for r in rows], len(rows)
        rows = await conn.fetch(sh.page(), *sh.args)
        total = await conn.fetchval(sh.count, *sh.args) if len(rows) == PER_PAGE else len(rows)
    return [r["phone"] for r in rows], min(total, SEARCH_COUNT_CAP)


async def planners_choice(conn: asyncpg.Connection, tenant_id: uuid.UUID, sh: Shapes) -> None:
    """For reference: the page and the bounded count, the planner choosing every scan."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(SCOPE_SQL, str(tenant_id))
        rows = await conn.fetch(sh.page(), *sh.args)
        if len(rows) == PER_PAGE:
            await conn.fetchval(sh.count, *sh.args)


async def before(conn: asyncpg.Connection, tenant_id: uuid.UUID, sql: tuple[str, str, list[Any]]) -> None:
    """For reference: the search as it was, page and COUNT(*) every time."""
    page, count, args = sql
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(SCOPE_SQL, str(tenant_id))
        await conn.fetch(page, *args)
        await conn.fetchval(count, *args)


async def ours(
    tenant_id: uuid.UUID, mode: Mode, q: str, sort: CustomerSort, desc: bool
) -> tuple[list[str], int]:
    query = CustomerQuery(q=q, sort=sort, desc=desc, per_page=PER_PAGE)
    async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
        page = await customers.search(session, tenant_id=tenant_id, mode=mode, query=query)
    return [c.phone for c in page.items], page.total


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = await fn()
    return (time.perf_counter() - t) * 1000, out


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


def fmt(xs: list[float]) -> str:
    return f"{pct(xs, 50):6.1f} {pct(xs, 95):6.1f} {pct(xs, 99):6.1f}"


async def measure(
    args: argparse.Namespace, app_dsn: str, main: uuid.UUID, queries: dict[str, list[str]]
) -> bool:
    mode = Mode.live
    conn = await asyncpg.connect(app_dsn)
    cases = [Case(kind, sort, desc, qs) for sort, desc in SORTS for kind, qs in queries.items()]
    mismatches: list[str] = []
    reference: dict[str, list[float]] = {}
    old: dict[str, list[float]] = {}
    try:
        for case in cases:
            # Warm-up: each fragment once both ways (fills the caches, prepares the statements), and a
            # check that both return the same page and total.
            for q in case.qs:
                mine = await ours(main, mode, q, case.sort, case.desc)
                case.totals[q] = f"{mine[1]}+" if mine[1] >= SEARCH_COUNT_CAP else str(mine[1])
                case.by_q[q] = ([], [])
                theirs = await baseline(conn, main, shapes(main, mode, q, case.sort, case.desc))
                if mine != theirs:
                    mismatches.append(
                        f"{case.name} {q!r}: ours {mine[1]} {mine[0][:3]}…, "
                        f"baseline {theirs[1]} {theirs[0][:3]}…"
                    )
            for i in range(args.searches):
                q = case.qs[i % len(case.qs)]
                ms, _ = await timed(partial(ours, main, mode, q, case.sort, case.desc))
                case.ours_ms.append(ms)
                case.by_q[q][0].append(ms)
                sh = shapes(main, mode, q, case.sort, case.desc)
                ms, _ = await timed(partial(baseline, conn, main, sh))
                case.base_ms.append(ms)
                case.by_q[q][1].append(ms)
        for case in cases:
            reference[case.name] = []
            for i in range(args.reference_searches):
                sh = shapes(main, mode, case.qs[i % len(case.qs)], case.sort, case.desc)
                ms, _ = await timed(partial(planners_choice, conn, main, sh))
                reference[case.name].append(ms)
        for kind, qs in queries.items():
            old[kind] = []
            for i in range(args.old_searches):
                ms, _ = await timed(partial(before, conn, main, old_sql(main, mode, qs[i % len(qs)])))
                old[kind].append(ms)
    finally:
        await conn.close()

    print(f"\n{args.searches} searches a case, first page of {PER_PAGE}; ms p50 / p95 / p99")
    print(f"{'case':<30} | {'ours':^20} | {'baseline asyncpg':^20} | p99 ratio")
    every_ours: list[float] = []
    every_base: list[float] = []
    for case in cases:
        every_ours += case.ours_ms
        every_base += case.base_ms
        print(
            f"{case.name:<30} | {fmt(case.ours_ms)} | {fmt(case.base_ms)} | "
            f"{pct(case.ours_ms, 99) / max(pct(case.base_ms, 99), 0.001):5.2f}x"
        )
    print(
        f"{'all searches':<30} | {fmt(every_ours)} | {fmt(every_base)} | "
        f"{pct(every_ours, 99) / max(pct(every_base, 99), 0.001):5.2f}x"
    )
    if args.reference_searches:
        print(f"\nfor reference, asyncpg, {args.reference_searches} a case: the planner choosing every scan")
        print("(page, then count(*) over LIMIT 2001 when the page is full); ms p50 / p95 / p99")
        for name, xs in reference.items():
            print(f"{name:<30} | {fmt(xs)}")
    if args.old_searches:
        print(
            f"\nbefore this work, asyncpg, {args.old_searches} a kind: lower(name) LIKE + COUNT(*), "
            "by last_seen_at"
        )
        for kind, xs in old.items():
            print(f"{kind:<30} | {fmt(xs)}")
    slowest = sorted(
        (
            (max(o), statistics.median(o), max(b), statistics.median(b), case, q)
            for case in cases
            for q, (o, b) in case.by_q.items()
            if o
        ),
        key=lambda r: r[0],
        reverse=True,
    )[:10]
    print("\nslowest searches (ms: ours max / median, baseline max / median; matches):")
    for o_max, o_med, b_max, b_med, case, q in slowest:
        print(
            f"  {case.name:<28} {q!r:<20} {o_max:6.1f} / {o_med:6.1f}   {b_max:6.1f} / {b_med:6.1f}   "
            f"{case.totals[q]}"
        )
    ok = pct(every_ours, 99) < BUDGET_MS
    print(f"\nours p99 under {BUDGET_MS:.0f} ms over all searches: {'yes' if ok else 'NO'}")
    if mismatches:
        print("\nours and the baseline differ:\n  " + "\n  ".join(mismatches))
    return ok and not mismatches


async def bench(args: argparse.Namespace, app_url: str, owner_dsn: str, app_dsn: str) -> bool:
    rt = configure(load_settings(DATABASE_URL=app_url))
    try:
        if args.database:
            conn = await asyncpg.connect(owner_dsn)
            try:
                main = await conn.fetchval("SELECT id FROM tenants WHERE name = 'Bench Duka'")
            finally:
                await conn.close()
        else:
            main, _ = await seed(args, owner_dsn)
        queries = await pick_queries(owner_dsn, main)
        conn = await asyncpg.connect(owner_dsn)
        try:
            leakproof = await conn.fetchval(
                "SELECT bool_and(proleakproof) FROM pg_proc "
                "WHERE oid IN ('textlike'::regproc, 'texticlike'::regproc)"
            )
        finally:
            await conn.close()
        print(f"LIKE/ILIKE leakproof (row-level security lets the index answer): {leakproof}")
        return await measure(args, app_dsn, main, queries)
    finally:
        await rt.db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--app-role", default="lipapush_app", help="the application's role (created if missing)")
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--test-customers", type=int, default=50_000)
    ap.add_argument("--others", type=int, default=4, help="other businesses")
    ap.add_argument("--other-customers", type=int, default=100_000, help="customers of each other business")
    ap.add_argument("--searches", type=int, default=300, help="timed searches a case")
    ap.add_argument(
        "--reference-searches", type=int, default=30, help="runs a case of the planner-chooses SQL"
    )
    ap.add_argument("--old-searches", type=int, default=20, help="timed runs of the old search a kind")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument(
        "--database", help="time the searches on a database an earlier --keep run left (no load, no drop)"
    )
    args = ap.parse_args()

    name = args.database or f"bench_cs_{os.getpid()}"
    server = args.pg_server.rstrip("/")
    owner_dsn = f"{server}/{name}"
    scheme, _, rest = owner_dsn.partition("://")
    app_dsn = f"{scheme}://{args.app_role}@{rest.rpartition('@')[2]}"
    app_url = app_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    owner_url = owner_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    if args.database:
        sys.exit(0 if asyncio.run(bench(args, app_url, owner_dsn, app_dsn)) else 1)
    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    ok = False
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "LIPAPUSH_"))}
        subprocess.run(
            [str(Path(sys.executable).with_name("lipapush")), "db", "upgrade"],
            env={**env, "DATABASE_URL": app_url, "MIGRATION_DATABASE_URL": owner_url},
            cwd=tempfile.gettempdir(),
            check=True,
        )
        ok = asyncio.run(bench(args, app_url, owner_dsn, app_dsn))
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
