"""The admin's global export (core/exports/global_exports.py) at 1 000 000 payments: is memory flat, and
what does it cost on top of bare asyncpg + bare openpyxl? Run by hand:

    .venv/bin/python bench/global_export.py                  # 1M payments (~5-8 min on 2 loaded CPUs)
    .venv/bin/python bench/global_export.py --rows 200000    # quicker

1. Creates a fresh database `bench_gx_<pid>` on `--pg-server`, migrates it with `lipapush db upgrade` and
   loads `--rows` payments across `--tenants` businesses with bench/transactions_page.py's loader (30 days
   in creation order; live, as their businesses' channels are production). The customer books are one
   INSERT … SELECT … GROUP BY (tenant, mode, phone) over those payments. A platform admin is made
   through `auth.create_user`.
2. Each measured export runs in a fresh child process, configured as the product configures itself
   (`core.runtime.configure(load_settings(DATABASE_URL=…))`, no Redis: the in-process broker, which
   without a worker sends nothing). The child creates the ExportJob with `global_exports.request_export`
   in a `unit_of_work()` and then awaits `global_exports.build_global(export_id=…)` itself. The parent
   samples the child's RSS every 50 ms and polls the job's `rows_done` (the product's own progress) to
   note the RSS once 10 % and 50 % of the rows are written.
   Sizes: all transactions (`--rows`), and a tenth of them (a 3-day range of the 30: the same code path
   with a date filter), then all customers.
3. Baseline, same run, same child setup: a bare asyncpg server-side cursor (prefetch 2000) over the same
   columns, join, filter and order, appended to bare openpyxl `Workbook(write_only=True)`.
4. Checks: each finished file is opened with openpyxl read_only; the header must be the product's and
   the data rows must equal a COUNT(*) in SQL. Exit 1 on a wrong count or header, a failed export, or a
   full-size peak RSS above 1.5x the peak at a tenth.
5. Prints the load average and the busiest other processes before and after, and each run's CPU
   seconds against its wall time. Drops the database (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import psutil
from openpyxl import Workbook, load_workbook

from bench.transactions_page import seed
from core.auth.models import Role
from core.auth.service import auth
from core.config import load_settings
from core.customers.models import Customer
from core.exports import global_exports
from core.exports.models import ExportJob
from core.exports.xlsx import EAT
from core.runtime import configure, unit_of_work

SELF = str(Path(__file__).resolve())
SAMPLE_SECONDS = 0.05
PROGRESS_POLL_SECONDS = 0.2
FLAT_LIMIT = 1.5

# The product's columns, in the product's order, as bare SQL (the baseline's query).
TX_SELECT = (
    "SELECT t.name, t.business_number, p.created_at, p.phone, p.customer_name, p.amount, p.status, "
    "p.receipt, p.account_reference, p.source, p.result_desc, p.completed_at, p.commission_cents "
    "FROM payments p JOIN tenants t ON t.id = p.tenant_id"
)
TX_ORDER = " ORDER BY p.created_at, p.id"
TX_DATETIMES = (2, 11)
CU_SELECT = (
    "SELECT t.name, t.business_number, c.name, c.phone, c.requested_count, c.paid_count, c.paid_total, "
    "c.first_seen_at, c.last_seen_at, c.mode FROM customers c JOIN tenants t ON t.id = c.tenant_id"
)
CU_ORDER = " ORDER BY c.id"
CU_DATETIMES = (7, 8)

FIRST_NAMES = [
    "Wanjiku",
    "Otieno",
    "Achieng",
    "Kamau",
    "Njeri",
    "Mwangi",
    "Chebet",
    "Kiprop",
    "Amina",
    "Baraka",
]
LAST_NAMES = [
    "Mwangi",
    "Odhiambo",
    "Wambui",
    "Kariuki",
    "Mutua",
    "Kiptoo",
    "Hassan",
    "Njoroge",
    "Atieno",
    "Ali",
]


# -- the machine -----------------------------------------------------------------------------------
def machine_load(label: str) -> str:
    """Load average and the busiest processes over one second (other test runs share this machine)."""
    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(1.0)
    busy: list[tuple[float, str]] = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct >= 5:
            cmd = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])
            busy.append((pct, f"{p.info['pid']} {cmd[:90]}"))
    busy.sort(reverse=True)
    la = os.getloadavg()
    lines = [f"[{label}] load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} CPUs"]
    lines += [f"    {pct:5.0f} % CPU  {what}" for pct, what in busy[:6]]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# -- the children ----------------------------------------------------------------------------------
def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def child_ours(spec: dict[str, Any]) -> None:
    """The product's path: request_export in a unit of work, then build_global awaited directly."""
    rt = configure(load_settings(DATABASE_URL=spec["db_url"], REDIS_URL=None, EXPORT_DIR=spec["export_dir"]))
    try:
        req = global_exports.ExportRequest(kind=spec["kind"], **spec["filters"])
        async with unit_of_work() as session:
            row = await global_exports.request_export(session, req=req, user_id=uuid.UUID(spec["user_id"]))
            export_id = row.id
        emit("start", export_id=str(export_id))
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        await global_exports.build_global(export_id=str(export_id))
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        async with unit_of_work(readonly=True) as session:
            done = await session.get(ExportJob, export_id)
            assert done is not None
            emit(
                "done",
                seconds=seconds,
                cpu=cpu,
                rows=done.rows_done,
                rows_total=done.rows_total,
                status=done.status.value,
                error=done.error,
                path=done.path,
            )
    finally:
        await rt.aclose()


async def child_baseline(spec: dict[str, Any]) -> None:
    """Bare asyncpg server-side cursor into bare openpyxl write-only; no thread, no checks, no styling."""
    sql, args, datetimes = baseline_query(spec["kind"], spec["filters"])
    path = Path(spec["export_dir"]) / f"baseline-{spec['kind']}-{os.getpid()}.xlsx"
    conn = await asyncpg.connect(spec["dsn"])
    try:
        emit("start")
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        wb = Workbook(write_only=True)
        ws = wb.create_sheet(spec["kind"])
        ws.append(spec["headers"])
        count = 0
        async with conn.transaction():
            async for rec in conn.cursor(sql, *args, prefetch=2000):
                values = list(rec)
                for i in datetimes:
                    if values[i] is not None:
                        # openpyxl refuses aware datetimes; the product converts to EAT instead.
                        values[i] = values[i].replace(tzinfo=None)
                ws.append(values)
                count += 1
        wb.save(path)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        emit("done", seconds=seconds, cpu=cpu, rows=count, status="done", error=None, path=str(path))
    finally:
        await conn.close()


def baseline_query(kind: str, filters: dict[str, Any]) -> tuple[str, list[Any], tuple[int, ...]]:
    if kind == "customers":
        return CU_SELECT + CU_ORDER, [], CU_DATETIMES
    where, args = tx_where(filters)
    return TX_SELECT + where + TX_ORDER, args, TX_DATETIMES


def tx_where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """Nairobi calendar days, both included (what ExportRequest means by date_from/date_to)."""
    conds: list[str] = []
    args: list[Any] = []
    if filters.get("date_from"):
        args.append(datetime.combine(date.fromisoformat(filters["date_from"]), dtime.min, tzinfo=EAT))
        conds.append(f"p.created_at >= ${len(args)}")
    if filters.get("date_to"):
        end = date.fromisoformat(filters["date_to"]) + timedelta(days=1)
        args.append(datetime.combine(end, dtime.min, tzinfo=EAT))
        conds.append(f"p.created_at < ${len(args)}")
    return (f" WHERE {' AND '.join(conds)}" if conds else ""), args


# -- the parent: one measured run ------------------------------------------------------------------
@dataclass
class Run:
    name: str
    variant: str  # ours | baseline
    kind: str
    filters: dict[str, Any]
    expected: int = 0
    rows: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    rss_start: int = 0
    rss_peak: int = 0
    rss_10: int | None = None  # RSS once rows_done first reached 10 % (ours only)
    at_10: float | None = None  # the fraction rows_done had actually reached then
    rss_50: int | None = None
    status: str = ""
    error: str | None = None
    path: str | None = None
    file_rows: int | None = None
    header_ok: bool | None = None
    verify_seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-min load average before, after
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.status == "done"
            and self.rows == self.expected
            and (self.file_rows is None or self.file_rows == self.expected)
            and self.header_ok is not False
        )


async def measure(run: Run, spec: dict[str, Any], dsn: str) -> None:
    load0 = os.getloadavg()[0]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SELF,
        "--child",
        run.variant,
        "--spec",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    ps = psutil.Process(proc.pid)
    samples: list[tuple[float, int]] = []  # (monotonic, rss)
    progress: list[tuple[float, int, int]] = []  # (monotonic, rows_done, rows_total)
    started = asyncio.Event()
    export_id: list[str] = []
    stop = asyncio.Event()

    async def sample_rss() -> None:
        while not stop.is_set():
            try:
                samples.append((time.monotonic(), ps.memory_info().rss))
            except psutil.Error:
                return
            await asyncio.sleep(SAMPLE_SECONDS)

    async def poll_progress() -> None:
        await started.wait()
        if not export_id:
            return
        conn = await asyncpg.connect(dsn)
        try:
            while not stop.is_set():
                r = await conn.fetchrow(
                    "SELECT rows_done, rows_total FROM export_jobs WHERE id = $1", uuid.UUID(export_id[0])
                )
                if r and r["rows_total"]:
                    progress.append((time.monotonic(), r["rows_done"], r["rows_total"]))
                await asyncio.sleep(PROGRESS_POLL_SECONDS)
        finally:
            await conn.close()

    sampler = asyncio.create_task(sample_rss())
    poller = asyncio.create_task(poll_progress())
    t_start = 0.0
    done: dict[str, Any] = {}
    assert proc.stdout is not None
    try:
        async for raw in proc.stdout:
            line = raw.decode().strip()
            if not line.startswith("{"):
                print(f"    child: {line}")
                continue
            msg = json.loads(line)
            if msg["event"] == "start":
                t_start = time.monotonic()
                if msg.get("export_id"):
                    export_id.append(msg["export_id"])
                started.set()
            elif msg["event"] == "done":
                done = msg
        rc = await proc.wait()
    finally:
        started.set()
        stop.set()
        await asyncio.gather(sampler, poller)
    if rc != 0 or not done:
        run.status, run.error = "crashed", f"child exited {rc}"
        return
    run.seconds, run.cpu, run.rows = done["seconds"], done["cpu"], done["rows"] or 0
    run.status, run.error, run.path = done["status"], done["error"], done["path"]
    during = [rss for t, rss in samples if t >= t_start]
    before = [rss for t, rss in samples if t < t_start]
    run.rss_start = before[-1] if before else (during[0] if during else 0)
    run.rss_peak = max(during or [0])
    for frac in (0.1, 0.5):
        hit = next(((t, d / tot) for t, d, tot in progress if d >= frac * tot), None)
        if hit is None:
            continue
        rss = next((r for t, r in samples if t >= hit[0]), run.rss_peak)
        if frac == 0.1:
            run.rss_10, run.at_10 = rss, hit[1]
        else:
            run.rss_50 = rss
    run.load = (load0, os.getloadavg()[0])


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "LIPAPUSH_", "REDIS_"))}


def read_back(path: str | None, headers: list[str]) -> tuple[int | None, bool, float]:
    """Open the file as a reader would (openpyxl read_only): (data rows, header as expected, seconds)."""
    if not path or not Path(path).is_file():
        return None, False, 0.0
    t0 = time.perf_counter()
    wb = load_workbook(path, read_only=True)
    try:
        it = wb.worksheets[0].iter_rows(values_only=True)
        first = next(it, None)
        header_ok = first is not None and [str(v) for v in first] == headers
        rows = sum(1 for _ in it)
    finally:
        wb.close()
    return rows, header_ok, time.perf_counter() - t0


async def verify(runs: list[tuple[Run, list[str]]]) -> None:
    """Read the files back after all the timed runs, two processes at once (one per CPU): reading is
    slower than writing, and doing it in between would either disturb or lengthen the timed runs."""
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, read_back, run.path, headers) for run, headers in runs)
        )
    for (run, _), (rows, header_ok, seconds) in zip(runs, results, strict=True):
        run.file_rows, run.header_ok, run.verify_seconds = rows, header_ok, seconds
        print(
            f"  {run.name}: {rows} data rows, header {'ok' if header_ok else 'WRONG'} "
            f"(read back in {seconds:.0f}s)"
        )


def discard(path: str) -> None:
    Path(path).unlink(missing_ok=True)


# -- loading ---------------------------------------------------------------------------------------
def customers_sql() -> str:
    """The customer books derived from the payments: one row per (tenant, mode, phone), each in its
    payments' mode, in first-seen order."""
    first = "ARRAY[" + ",".join(f"'{n}'" for n in FIRST_NAMES) + "]"
    last = "ARRAY[" + ",".join(f"'{n}'" for n in LAST_NAMES) + "]"
    values = {
        "tenant_id": "tenant_id",
        "mode": "mode",
        "phone": "phone",
        "name": f"({first})[1 + substr(phone, 12, 1)::int] || ' ' || ({last})[1 + substr(phone, 11, 1)::int]",
        "requested_count": "count(*)",
        "requested_total": "sum(amount)",
        "paid_count": "count(*) FILTER (WHERE status = 'success')",
        "paid_total": "coalesce(sum(amount) FILTER (WHERE status = 'success'), 0)",
        "first_seen_at": "min(created_at)",
        "last_seen_at": "max(created_at)",
        "last_paid_at": "max(completed_at) FILTER (WHERE status = 'success')",
    }
    missing = [
        c.name
        for c in Customer.__table__.columns
        if not c.nullable and c.name not in values and not c.primary_key and c.server_default is None
    ]
    assert not missing, f"bench does not fill customers.{missing}"
    cols = list(values)
    return (
        f"INSERT INTO customers ({', '.join(cols)}) SELECT {', '.join(values[c] for c in cols)} "
        "FROM payments GROUP BY tenant_id, mode, phone ORDER BY min(created_at)"
    )


async def load(db_url: str, dsn: str, *, rows: int, tenants: int) -> str:
    """Payments (transactions_page's loader), customers, an admin; returns the admin's id."""
    rt = configure(load_settings(DATABASE_URL=db_url, REDIS_URL=None))
    try:
        await seed(rt, dsn, n_tenants=tenants, n_payments=rows)
        async with unit_of_work() as session:
            admin = await auth.create_user(
                session,
                email=f"bench-admin-{secrets.token_hex(4)}@example.com",
                password="bench-admin-123",
                role=Role.platform_admin,
                tenant_id=None,
            )
            admin_id = str(admin.id)
    finally:
        await rt.aclose()
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        await conn.execute(customers_sql())
        await conn.execute("VACUUM ANALYZE customers")
        n = await conn.fetchval("SELECT count(*) FROM customers")
        print(f"loaded {n} customers (one per business, mode and phone) in {time.perf_counter() - t0:.0f}s")
    finally:
        await conn.close()
    return admin_id


async def tenth_window(dsn: str) -> dict[str, str]:
    """Three whole Nairobi days in the middle of the 30: about a tenth of the payments."""
    conn = await asyncpg.connect(dsn)
    try:
        newest = await conn.fetchval("SELECT max(created_at) FROM payments")
    finally:
        await conn.close()
    end = newest.astimezone(EAT).date() - timedelta(days=12)
    return {"date_from": (end - timedelta(days=2)).isoformat(), "date_to": end.isoformat()}


async def expected_count(dsn: str, kind: str, filters: dict[str, Any]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        if kind == "customers":
            sql, args = "SELECT count(*) FROM customers c JOIN tenants t ON t.id = c.tenant_id", []
        else:
            where, args = tx_where(filters)
            sql = "SELECT count(*) FROM payments p JOIN tenants t ON t.id = p.tenant_id" + where
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def explain(dsn: str, kind: str, filters: dict[str, Any]) -> str:
    sql, args, _ = baseline_query(kind, filters)
    conn = await asyncpg.connect(dsn)
    try:
        plan = await conn.fetch(f"EXPLAIN (COSTS OFF) {sql}", *args)
    finally:
        await conn.close()
    return " / ".join(r[0].strip().removeprefix("-> ") for r in plan)


# -- the bench -------------------------------------------------------------------------------------
def mib(b: int | None) -> str:
    return "-" if not b else f"{b / 2**20:.0f}"


def print_table(runs: list[Run]) -> None:
    print()
    print(
        f"{'run':<34} {'rows':>9} {'wall s':>7} {'rows/s':>8} {'cpu/wall':>8} {'RSS start':>9} "
        f"{'@10%':>6} {'@50%':>6} {'peak':>6} {'peak/@10%':>9} {'file rows':>9} {'load':>9}"
    )
    for r in runs:
        flat = f"{r.rss_peak / r.rss_10:.2f}" if r.rss_10 else "-"
        rate = f"{r.rows / r.seconds:.0f}" if r.seconds else "-"
        cpu = f"{r.cpu / r.seconds:.2f}" if r.seconds else "-"
        file_rows = "-" if r.file_rows is None else str(r.file_rows)
        print(
            f"{r.name:<34} {r.rows:>9} {r.seconds:>7.1f} {rate:>8} {cpu:>8} {mib(r.rss_start):>9} "
            f"{mib(r.rss_10):>6} {mib(r.rss_50):>6} {mib(r.rss_peak):>6} {flat:>9} {file_rows:>9} "
            f"{r.load[0]:>4.1f}/{r.load[1]:<4.1f}"
        )
    print("(RSS in MiB, sampled every 50 ms from outside the child; @10%/@50%: when the job's rows_done")
    print(" first reached that share; load: 1-min load average before/after the run)")


def ratios(ours: Run, base: Run) -> str:
    if not (ours.seconds and base.seconds and base.rss_peak):
        return f"{ours.name}: no ratio (a run failed)"
    return (
        f"{ours.name} / baseline: time {ours.seconds / base.seconds:.2f}x, peak RSS "
        f"{ours.rss_peak / base.rss_peak:.2f}x (growth over start {mib(ours.rss_peak - ours.rss_start)} MiB "
        f"vs {mib(base.rss_peak - base.rss_start)} MiB)"
    )


async def bench(args: argparse.Namespace, db_url: str, dsn: str, workdir: Path) -> bool:
    admin_id = await load(db_url, dsn, rows=args.rows, tenants=args.tenants)
    tenth = await tenth_window(dsn)
    cases = [
        (f"transactions, all ({args.rows})", "transactions", {}),
        (f"transactions, {tenth['date_from']}..{tenth['date_to'][5:]}", "transactions", tenth),
        ("customers, all", "customers", {}),
    ]
    runs: list[Run] = []
    pairs: list[tuple[Run, Run]] = []
    to_verify: list[tuple[Run, list[str]]] = []
    for name, kind, filters in cases:
        expected = await expected_count(dsn, kind, filters)
        columns = (
            global_exports.TRANSACTION_COLUMNS if kind == "transactions" else global_exports.CUSTOMER_COLUMNS
        )
        headers = [c.header for c in columns]
        print(f"\n{name}: {expected} rows expected; plan: {await explain(dsn, kind, filters)}")
        spec = {
            "db_url": db_url,
            "dsn": dsn,
            "kind": kind,
            "filters": filters,
            "user_id": admin_id,
            "export_dir": str(workdir),
            "headers": headers,
        }
        pair = []
        for variant in ("ours", "baseline"):
            run = Run(f"{name} {variant}", variant, kind, filters, expected=expected)
            machine_load(f"before {variant}")
            await measure(run, spec, dsn)
            at_10 = f", {mib(run.rss_10)} MiB at {run.at_10:.0%} of rows" if run.at_10 else ""
            print(
                f"  {variant:<8} {run.rows} rows in {run.seconds:.1f}s, cpu {run.cpu:.1f}s, peak RSS "
                f"{mib(run.rss_peak)} MiB{at_10}, {run.status}{' ' + run.error if run.error else ''}",
                flush=True,
            )
            if variant == "ours":
                to_verify.append((run, headers))
            elif run.path and not args.keep:
                discard(run.path)
            runs.append(run)
            pair.append(run)
        pairs.append((pair[0], pair[1]))

    print("\nreading the product's files back with openpyxl read_only:", flush=True)
    await verify(to_verify)
    if not args.keep:
        for run, _ in to_verify:
            if run.path:
                discard(run.path)

    print_table(runs)
    print()
    for ours, base in pairs:
        print(ratios(ours, base))
    full, part = pairs[0][0], pairs[1][0]
    ok = True
    print()
    for r in runs:
        if not r.ok:
            ok = False
            print(
                f"FAIL {r.name}: status {r.status}, {r.rows} rows written, file {r.file_rows}, "
                f"expected {r.expected}, header {r.header_ok}"
            )
    if full.rss_peak and part.rss_peak:
        growth = full.rss_peak / part.rss_peak
        flat = growth <= FLAT_LIMIT
        ok &= flat
        print(
            f"memory flat: peak at {full.rows} rows {mib(full.rss_peak)} MiB vs {mib(part.rss_peak)} MiB at "
            f"{part.rows} rows = {growth:.2f}x (limit {FLAT_LIMIT}x): {'yes' if flat else 'NO'}"
        )
    else:
        ok = False
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--rows", type=int, default=1_000_000, help="payments to load (default 1 000 000)")
    ap.add_argument("--tenants", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the database and the exported files")
    ap.add_argument("--child", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        spec = json.loads(args.spec)
        asyncio.run(child_ours(spec) if args.child == "ours" else child_baseline(spec))
        return

    name = f"bench_gx_{os.getpid()}"
    server = args.pg_server.rstrip("/")
    dsn = f"{server}/{name}"
    db_url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    workdir = Path(tempfile.mkdtemp(prefix="bench-gx-"))
    print(f"python {sys.version.split()[0]}, {args.rows} payments, {args.tenants} businesses, db {name}")
    machine_load("start")

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    ok = False
    try:
        subprocess.run(
            [str(Path(sys.executable).with_name("lipapush")), "db", "upgrade"],
            env={**child_env(), "DATABASE_URL": db_url},
            cwd=workdir,
            check=True,
        )
        t0 = time.perf_counter()
        ok = asyncio.run(bench(args, db_url, dsn, workdir))
        print(f"\nbench took {time.perf_counter() - t0:.0f}s after migrating")
    finally:
        machine_load("end")
        if args.keep:
            print(f"kept database {name} and {workdir}")
        else:
            asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
