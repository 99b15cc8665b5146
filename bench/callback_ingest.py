"""End-to-end Daraja callback ingestion on Postgres + Redis, against a pgbench baseline. Run by hand:

    .venv/bin/python bench/callback_ingest.py --callbacks 5000 --concurrency 32
    .venv/bin/python bench/callback_ingest.py --callbacks 3000 --sqlite      # embedded mode, no ratio

What happens:

1. A fresh Postgres database is created and migrated. One active business with a production channel
   (so its payments are live and earn commission; ``DARAJA_PRODUCTION_URL`` points at the app's own
   simulator path, though nothing here calls Daraja) and its first pending payment are made through
   the real services (signup, save_channel, mark_verified, payments.create_pending,
   payments.record_accepted); the other N-1 pending payments (distinct CheckoutRequestIDs, phones,
   amounts) and their customers are bulk copies of the rows the services wrote, so they carry
   everything a push sets (mode, commission rate and amount, ...).
2. The product runs as real processes: ``lipapush web`` (uvicorn, 1 process) and ``lipapush worker``
   (Dramatiq on Redis, ``--worker-threads``), under a unique REDIS_NAMESPACE.
3. An aiohttp load generator (``--concurrency`` connections) POSTs one valid success callback per
   payment to ``/callbacks/daraja/{token}``. A warm-up batch (``--warmup``) goes first and is not
   timed. Measured from the first timed POST:

   * ingestion rate: HTTP 200s per second until the last answer;
   * end-to-end rate: callbacks per second until ``count(*) WHERE status='success'`` (polled every
     100 ms) covers every payment.

   Then correctness is checked: exactly N successes, customers' paid totals and counts match the
   amounts, one commission posting per payment for its commission, job_outbox empty, every inbox row
   processed as ``applied``.
4. Baseline: pgbench on the same server, ``-j 2``, prepared statements, one script run per callback
   doing the same database writes with the fewest round trips: transaction 1 inserts an inbox row and
   an outbox row; transaction 2 updates the payment ``WHERE id = … AND status = 'pending'``, the
   customer's paid totals, posts the commission (a transfer row and the two account balances, the
   same two rows for every run, as for one busy business), marks the inbox row processed and deletes
   the outbox row. Scratch tables in a scratch database mirror the real ones' columns, indexes and
   foreign keys, seeded with N rows; each run touches a different payment (the inbox id doubles as the
   row id). Run at ``-c`` = ``--concurrency`` and ``-c`` = ``--worker-threads`` (the product's
   concurrency on the shared account rows), the ratios use the better; the same script without the
   commission posting is run too, for scale. tps excludes connection time.
5. A table with both rates, pgbench tps and the ratios (ours / pgbench), then where the time goes:
   CPU seconds per 1000 callbacks per process (Postgres including backends that exited), the
   CPU-bound ceiling of each side, and Postgres' own counters per callback (transactions, rows
   written, connections opened).

Everything is cleaned up at the end (processes, both databases, the Redis namespace); ``--keep``
leaves the database and the process logs for inspection. ``--profile DIR`` records py-spy (``--gil``)
collapsed stacks of the product processes during the timed phase (``pip install py-spy`` first).
The machine should be otherwise idle: "other processes" in the CPU line says how much it was not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psutil
from pydantic import SecretStr
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.billing.commission import commission_cents
from core.config import SANDBOX_PASSKEY, SANDBOX_SHORT_CODE, load_settings
from core.customers.models import Customer
from core.db import utcnow
from core.migrate import upgrade
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.payments.service import payments
from core.runtime import configure, unit_of_work
from core.tenants.models import ChannelKind, Environment, TenantStatus
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants

RESULT_DESC = "The service request is processed successfully."
TRANSACTION_DATE = 20261123120000
INSERT_BATCH = 2000
POLL_EVERY = 0.1


# -- seeding ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seeded:
    token: str
    checkout_ids: list[str]
    merchant_ids: list[str]
    phones: list[str]
    amounts: list[int]


def _phone(i: int) -> str:
    # 2547XXXXXXXX / 2541XXXXXXXX, distinct for i < 2 * 10**8
    return f"254{7 if i % 2 == 0 else 1}{(i // 2) % 10**8:08d}"


def _receipt(i: int) -> str:
    # Ten characters, unique per i: "TK" and i in base 36, zero padded.
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    n = i
    for _ in range(8):
        n, r = divmod(n, 36)
        out = digits[r] + out
    return "TK" + out


def _channel_in(environment: Environment) -> ChannelIn:
    """A paybill channel in `environment`: production is live mode (commission posted on success),
    simulator test mode (nothing posted). Production takes the values the stand-ins accept."""
    if environment is Environment.simulator:
        return ChannelIn(environment=environment, kind=ChannelKind.paybill)
    return ChannelIn(
        environment=environment,
        kind=ChannelKind.paybill,
        business_short_code=SANDBOX_SHORT_CODE,
        consumer_key=SecretStr("bench-consumer-key"),
        consumer_secret=SecretStr("bench-consumer-secret"),
        passkey=SecretStr(SANDBOX_PASSKEY),
    )


async def seed(database_url: str, count: int, environment: Environment = Environment.simulator) -> Seeded:
    """One active business with a channel in `environment` (simulator: test-mode payments, no
    commission; production: live ones, commission posted on success), and `count` pending payments as a
    push leaves them.

    The business, its channel and the first payment go through the real services (signup,
    save_channel, mark_verified, payments.create_pending, payments.record_accepted), so every column
    a push fills in (commission rate and amount, wallet hold, ...) is filled in by the product. The
    other payments are bulk copies of that first row with their own id, phone, amount, commission and
    Daraja ids, and their customers are bulk copies of the customer row create_pending wrote (so they
    carry the payments' mode, the channel's)."""
    rt = configure(load_settings(DATABASE_URL=database_url, REDIS_URL=None))
    now = utcnow()
    stamp = now.strftime("%Y%m%d%H%M%S")
    checkout_ids = [f"ws_CO_{stamp}{i:09d}" for i in range(count)]
    merchant_ids = [f"{29115 + i % 1000}-{34620561 + i}-1" for i in range(count)]
    phones = [_phone(i) for i in range(count)]
    amounts = [10 + (i * 7919) % 4990 for i in range(count)]
    try:
        async with unit_of_work() as session:
            tenant, owner = await signup(
                session,
                business_name="Bench Duka",
                email=f"bench-{secrets.token_hex(4)}@example.com",
                password="bench-pass-123",
                phone="0712345678",
            )
            channel = await tenants.save_channel(
                session,
                tenant=tenant,
                data=_channel_in(environment),
                box=rt.secrets,
                by=owner.id,
            )
            await tenants.mark_verified(session, channel=channel)
            await session.flush()
            await session.refresh(tenant)
            assert tenant.status is TenantStatus.active
            token = channel.callback_token
            first, _ = await payments.create_pending(
                session,
                tenant=tenant,
                channel=channel,
                phone=phones[0],
                amount=amounts[0],
                source=PaymentSource.api,
                settings=rt.settings,
            )
            await payments.record_accepted(
                session,
                payment_id=first.id,
                merchant_request_id=merchant_ids[0],
                checkout_request_id=checkout_ids[0],
                check_after=timedelta(hours=6),  # no reconciliation query during the run
            )
            first_id = first.id

        pay_table, cust_table = Payment.__table__, Customer.__table__
        async with unit_of_work() as session:
            template = dict(
                (await session.execute(select(pay_table).where(pay_table.c.id == first_id))).mappings().one()
            )
            cust = dict(
                (await session.execute(select(cust_table).where(cust_table.c.phone == phones[0])))
                .mappings()
                .one()
            )
        assert template["status"] == PaymentStatus.pending, template
        # A bulk copy cannot repeat a wallet hold (it would have to move the wallet's reserve too).
        assert not template.get("reserved_cents"), "seeding assumes no wallet hold (hybrid, empty wallet)"
        bps = template.get("commission_bps") or 0
        payment_rows, customer_rows = [], []
        for i in range(1, count):
            row = dict(template)
            row.update(
                id=uuid.uuid4(),
                amount=amounts[i],
                phone=phones[i],
                checkout_request_id=checkout_ids[i],
                merchant_request_id=merchant_ids[i],
            )
            if "commission_cents" in row:
                row["commission_cents"] = commission_cents(amounts[i], bps)
            payment_rows.append(row)
            c = {k: v for k, v in cust.items() if k != "id"}
            c.update(phone=phones[i], requested_total=amounts[i])
            customer_rows.append(c)
        async with unit_of_work() as session:
            for start in range(0, len(payment_rows), INSERT_BATCH):
                await session.execute(insert(pay_table), payment_rows[start : start + INSERT_BATCH])
                await session.execute(insert(cust_table), customer_rows[start : start + INSERT_BATCH])
        return Seeded(token, checkout_ids, merchant_ids, phones, amounts)
    finally:
        await rt.aclose()


def callback_body(s: Seeded, i: int) -> bytes:
    return json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "MerchantRequestID": s.merchant_ids[i],
                    "CheckoutRequestID": s.checkout_ids[i],
                    "ResultCode": 0,
                    "ResultDesc": RESULT_DESC,
                    "CallbackMetadata": {
                        "Item": [
                            {"Name": "Amount", "Value": float(s.amounts[i])},
                            {"Name": "MpesaReceiptNumber", "Value": _receipt(i)},
                            {"Name": "TransactionDate", "Value": TRANSACTION_DATE},
                            {"Name": "PhoneNumber", "Value": int(s.phones[i])},
                        ]
                    },
                }
            }
        }
    ).encode()


# -- Postgres admin ----------------------------------------------------------------------------------
def _plain_pg(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", url)


def _server_and_db(url: str) -> tuple[str, str]:
    head, _, db = _plain_pg(url).rpartition("/")
    return head, db


async def _pg_admin(admin_url: str, *sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_plain_pg(admin_url))
    try:
        for stmt in sql:
            await conn.execute(stmt)
    finally:
        await conn.close()


def create_pg_database(admin_url: str, tag: str) -> tuple[str, str]:
    """(asyncpg URL, name) of a fresh, empty database on the admin URL's server."""
    name = f"lipapush_bench_{tag}_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    head, _ = _server_and_db(admin_url)
    return f"{head.replace('postgresql://', 'postgresql+asyncpg://')}/{name}", name


def wait_backends_gone(admin_url: str, name: str, within: float = 20.0) -> None:
    """Until no connection to `name` is left, and a moment more for the postmaster to reap them: their
    CPU time must not land in the next measurement."""

    async def poll() -> None:
        import asyncpg

        conn = await asyncpg.connect(_plain_pg(admin_url))
        try:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                left = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name)
                if not left:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    asyncio.run(poll())
    time.sleep(0.5)


def drop_pg_database(admin_url: str, name: str) -> None:
    asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _engine(url: str) -> AsyncEngine:
    # One kept connection: a new one per 100 ms poll would fork a backend each time.
    return create_async_engine(url, pool_size=1, max_overflow=1)


# -- processes -----------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lipapush() -> list[str]:
    script = Path(sys.executable).with_name("lipapush")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from web.cli import main; main()"]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_proc(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            [*_lipapush(), *args],
            env=env,
            cwd=workdir,  # no stray .env from the caller's directory
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log)


async def wait_healthy(base_url: str, procs: list[Proc], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            for p in procs:
                p.check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{base_url}/healthz") as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base_url}/healthz not healthy after {within:.0f}s")
            await asyncio.sleep(0.1)


def wait_log_line(proc: Proc, needle: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in proc.log.read_text(errors="replace"):
        proc.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not print {needle!r} within {timeout:.0f}s:\n{proc.tail()}")
        time.sleep(0.1)


# -- CPU accounting --------------------------------------------------------------------------------------
def _cpu(pid: int) -> float:
    """CPU seconds of a process and of its reaped children: Postgres' postmaster collects those of
    the backends that exited (a connection pool that closes and reopens connections)."""
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    except psutil.Error:
        return 0.0


def _named_pids(name: str) -> list[int]:
    out = []
    for p in psutil.process_iter(["name"]):
        if p.info["name"] == name:
            out.append(p.pid)
    return out


def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


@dataclass
class CpuMeter:
    """CPU seconds of named processes (pid lists re-read at the end: Postgres forks backends)."""

    named: dict[str, list[int]]
    by_name: dict[str, str] = field(default_factory=dict)  # label -> process name, for growing groups
    start: dict[str, dict[int, float]] = field(default_factory=dict)
    busy0: float = 0.0
    wall0: float = 0.0

    def begin(self) -> None:
        self.start = {k: {pid: _cpu(pid) for pid in self._pids(k)} for k in self.named}
        self.busy0 = _busy()
        self.wall0 = time.monotonic()

    def _pids(self, label: str) -> list[int]:
        if label in self.by_name:
            return _named_pids(self.by_name[label])
        return self.named[label]

    def end(self) -> tuple[dict[str, float], float, float]:
        used = {}
        for k in self.named:
            first = self.start.get(k, {})
            used[k] = sum(_cpu(pid) - first.get(pid, 0.0) for pid in self._pids(k))
        return used, _busy() - self.busy0, time.monotonic() - self.wall0


# -- load generator ---------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    accepted: int
    started: float
    finished: float
    latencies: list[float]
    errors: Counter[str]
    failed: int


async def fire(url: str, bodies: list[bytes], concurrency: int) -> LoadResult:
    """POST every body with `concurrency` connections; retry a non-200 (as Daraja would) up to 5 times."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    accepted = 0
    failed = 0
    it: Iterator[bytes] = iter(bodies)
    headers = {"Content-Type": "application/json"}

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal accepted, failed
        for body in it:
            for attempt in range(5):
                t = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as r:
                        await r.read()
                        if r.status == 200:
                            latencies.append(time.perf_counter() - t)
                            accepted += 1
                            break
                        errors[f"HTTP {r.status}"] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05 * (attempt + 1))
            else:
                failed += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        finished = time.perf_counter()
    return LoadResult(accepted, started, finished, latencies, errors, failed)


async def count_success(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM payments WHERE status = 'success'")) or 0)


async def wait_for_success(engine: AsyncEngine, target: int, within: float) -> float:
    """perf_counter() of the first poll that sees `target` successes."""
    deadline = time.perf_counter() + within
    while True:
        n = await count_success(engine)
        now = time.perf_counter()
        if n >= target:
            return now
        if now > deadline:
            raise RuntimeError(f"only {n} of {target} payments final after {within:.0f}s")
        await asyncio.sleep(POLL_EVERY)


# Postgres' own counters for the benchmark database: transactions and sessions (connections opened).
PG_COUNTERS = (
    "SELECT xact_commit + xact_rollback AS transactions, sessions, "
    "tup_inserted + tup_updated + tup_deleted AS rows_written "
    "FROM pg_stat_database WHERE datname = current_database()"
)
STATS_FLUSH = 1.5  # backends publish their counters at most once a second


async def pg_counters(engine: AsyncEngine) -> dict[str, int]:
    if engine.dialect.name != "postgresql":
        return {}
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = (await conn.execute(text(PG_COUNTERS))).mappings().one()
        return {k: int(v) for k, v in row.items()}


def counters_of(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        engine = _engine(url)
        try:
            return await pg_counters(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


@dataclass
class Timed:
    load: LoadResult
    e2e_seconds: float
    cpu: dict[str, float]
    busy: float
    wall: float
    pg: dict[str, int] = field(default_factory=dict)  # counter deltas over the timed phase


async def run_load(
    base_url: str,
    engine: AsyncEngine,
    seeded: Seeded,
    *,
    warmup: int,
    count: int,
    concurrency: int,
    meter: CpuMeter,
    within: float,
    procs: list[Proc],
    profile_dir: Path | None,
) -> Timed:
    url = f"{base_url}/callbacks/daraja/{seeded.token}"
    bodies = [callback_body(seeded, i) for i in range(warmup + count)]
    if warmup:
        w = await fire(url, bodies[:warmup], concurrency)
        if w.failed:
            raise RuntimeError(f"warm-up: {w.failed} callbacks refused: {dict(w.errors)}")
        await wait_for_success(engine, warmup, within)
    for p in procs:
        p.check_alive()

    await asyncio.sleep(STATS_FLUSH)
    pg_before = await pg_counters(engine)
    spies = start_profilers(profile_dir, procs) if profile_dir else []
    meter.begin()
    t0 = time.perf_counter()
    poller = asyncio.create_task(wait_for_success(engine, warmup + count, within))
    load = await fire(url, bodies[warmup:], concurrency)
    load.started = t0
    if load.failed:
        poller.cancel()
        raise RuntimeError(f"{load.failed} callbacks refused 5 times: {dict(load.errors)}")
    done = await poller
    cpu, busy, wall = meter.end()
    stop_profilers(spies)
    await asyncio.sleep(STATS_FLUSH)
    pg_after = await pg_counters(engine)
    pg = {k: pg_after[k] - pg_before[k] for k in pg_after}
    return Timed(load, done - t0, cpu, busy, wall, pg)


# -- profiling (optional) -------------------------------------------------------------------------------
def start_profilers(out: Path, procs: list[Proc]) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("py-spy not found: pip install py-spy into the venv", file=sys.stderr)
        return []
    out.mkdir(parents=True, exist_ok=True)
    spies = []
    for p in procs:
        # --gil: only the thread holding the GIL, so the stacks show where CPU goes.
        opts = ["--rate", "100", "--format", "raw", "--gil", "--nonblocking", "--threads"]
        spies.append(
            subprocess.Popen(
                [spy, "record", "--pid", str(p.popen.pid), *opts, "-o", str(out / f"{p.name}.txt")],
                stdout=subprocess.DEVNULL,
                stderr=(out / f"{p.name}.py-spy.log").open("wb"),
            )
        )
    time.sleep(1.0)  # let py-spy attach before the timed phase
    return spies


def stop_profilers(spies: list[subprocess.Popen[bytes]]) -> None:
    for s in spies:
        s.send_signal(signal.SIGINT)
    for s in spies:
        try:
            s.wait(timeout=30)
        except subprocess.TimeoutExpired:
            s.kill()


# -- verification ----------------------------------------------------------------------------------------
async def verify(engine: AsyncEngine, seeded: Seeded, expected: int, accepted: int) -> list[str]:
    """Problems found (empty when all is well). Waits a little for the last outbox deletes."""
    problems = []
    deadline = time.monotonic() + 30
    async with engine.connect() as conn:
        while True:
            outbox = int(await conn.scalar(text("SELECT count(*) FROM job_outbox")) or 0)
            if outbox == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if outbox:
            problems.append(f"job_outbox still has {outbox} rows")
        success = int(await conn.scalar(text("SELECT count(*) FROM payments WHERE status = 'success'")) or 0)
        if success != expected:
            problems.append(f"{success} successful payments, expected {expected}")
        paid_total, paid_count = (
            await conn.execute(
                text("SELECT coalesce(sum(paid_total), 0), coalesce(sum(paid_count), 0) FROM customers")
            )
        ).one()
        want_total = sum(seeded.amounts[:expected])
        if (int(paid_total), int(paid_count)) != (want_total, expected):
            problems.append(
                f"customers paid {paid_total} in {paid_count}, expected {want_total} in {expected}"
            )
        inbox = (
            await conn.execute(
                text(
                    "SELECT count(*), count(processed_at), count(*) FILTER (WHERE outcome = 'applied') "
                    "FROM callback_inbox"
                )
            )
        ).one()
        # Commission: one posting per payment that carries a commission, for exactly that amount.
        owed = (
            await conn.execute(
                text(
                    "SELECT count(*), coalesce(sum(commission_cents), 0) FROM payments "
                    "WHERE commission_cents > 0"
                )
            )
        ).one()
        posted = (
            await conn.execute(
                text(
                    "SELECT count(*), coalesce(sum(amount_cents), 0) FROM ledger_transfers "
                    "WHERE cause_type = 'payment'"
                )
            )
        ).one()
        if tuple(owed) != tuple(posted):
            problems.append(f"commission (postings, cents) = {tuple(posted)}, expected {tuple(owed)}")
        if int(owed[0]) != expected:
            problems.append(f"{owed[0]} of {expected} payments carry a commission: are they live?")
        if tuple(inbox) != (accepted, accepted, expected):
            problems.append(
                f"callback_inbox (rows, processed, applied) = {tuple(inbox)}, expected "
                f"({accepted}, {accepted}, {expected})"
            )
    return problems


# -- pgbench baseline --------------------------------------------------------------------------------------
BASELINE_SCHEMA = """
CREATE TABLE b_channels (id uuid PRIMARY KEY, callback_token varchar(64) UNIQUE NOT NULL);
CREATE TABLE b_inbox (
    id bigserial PRIMARY KEY,
    channel_id uuid NOT NULL REFERENCES b_channels (id) ON DELETE CASCADE,
    checkout_request_id varchar(64),
    payload text NOT NULL,
    remote_addr varchar(64),
    request_id varchar(64),
    received_at timestamptz NOT NULL,
    processed_at timestamptz,
    outcome varchar(32),
    error text
);
CREATE INDEX ix_b_inbox_checkout ON b_inbox (checkout_request_id);
CREATE TABLE b_outbox (
    id bigserial PRIMARY KEY,
    actor varchar(100) NOT NULL,
    kwargs json NOT NULL,
    created_at timestamptz NOT NULL,
    sent_at timestamptz,
    sends integer NOT NULL,
    failed_at timestamptz,
    error text
);
CREATE INDEX ix_b_outbox_pending ON b_outbox (failed_at, sent_at);
CREATE TABLE b_payments (
    id bigint PRIMARY KEY,
    tenant_id uuid NOT NULL,
    status varchar(32) NOT NULL,
    amount integer NOT NULL,
    phone varchar(12) NOT NULL,
    idempotency_key varchar(255),
    checkout_request_id varchar(64) UNIQUE,
    receipt varchar(20) UNIQUE,
    result_code varchar(32),
    result_desc text,
    flag text,
    paid_amount integer,
    paid_phone varchar(20),
    transaction_date timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    completed_at timestamptz,
    next_check_at timestamptz,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX ix_b_payments_tenant_created ON b_payments (tenant_id, created_at, id);
CREATE INDEX ix_b_payments_tenant_phone ON b_payments (tenant_id, phone);
CREATE INDEX ix_b_payments_status_next_check ON b_payments (status, next_check_at);
CREATE TABLE b_customers (
    id bigint PRIMARY KEY,
    tenant_id uuid NOT NULL,
    phone varchar(12) NOT NULL,
    name varchar(100),
    paid_count integer NOT NULL,
    paid_total bigint NOT NULL,
    last_seen_at timestamptz NOT NULL,
    last_paid_at timestamptz,
    UNIQUE (tenant_id, phone)
);
CREATE INDEX ix_b_customers_tenant_paid_total ON b_customers (tenant_id, paid_total);
CREATE INDEX ix_b_customers_tenant_last_seen ON b_customers (tenant_id, last_seen_at);
CREATE INDEX ix_b_customers_tenant_name ON b_customers (tenant_id, name);
CREATE TABLE b_accounts (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL,
    kind varchar(32) NOT NULL,
    balance_cents bigint NOT NULL,
    reserved_cents bigint NOT NULL CHECK (reserved_cents >= 0),
    created_at timestamptz NOT NULL,
    UNIQUE (tenant_id, kind)
);
CREATE TABLE b_transfers (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL,
    cause_type varchar(32) NOT NULL,
    cause_id varchar(64) NOT NULL,
    kind varchar(40) NOT NULL,
    payment_id bigint REFERENCES b_payments (id) ON DELETE RESTRICT,
    debit_account_id bigint NOT NULL REFERENCES b_accounts (id) ON DELETE RESTRICT,
    credit_account_id bigint NOT NULL REFERENCES b_accounts (id) ON DELETE RESTRICT,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    memo text,
    created_at timestamptz NOT NULL,
    UNIQUE (cause_type, cause_id, kind),
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX ix_b_transfers_tenant_created ON b_transfers (tenant_id, created_at, id);
CREATE INDEX ix_b_transfers_debit ON b_transfers (debit_account_id);
CREATE INDEX ix_b_transfers_credit ON b_transfers (credit_account_id);
CREATE INDEX ix_b_transfers_payment ON b_transfers (payment_id);
"""

TENANT = "7d0c6a52-7a39-4c1e-9b54-3f1d6f0b9c11"

CHANNEL = "9a1f1b0e-51b8-4c59-8a5f-2b8d1f0c7e21"

BASELINE_SEED = f"""
INSERT INTO b_channels VALUES ('{CHANNEL}', 'bench-token');
INSERT INTO b_accounts (id, tenant_id, kind, balance_cents, reserved_cents, created_at)
VALUES (1, '{TENANT}', 'receivable', 0, 0, now()), (2, '{TENANT}', 'revenue', 0, 0, now());
INSERT INTO b_payments (id, tenant_id, status, amount, phone, checkout_request_id, created_at, updated_at,
                        next_check_at)
SELECT g, '{TENANT}', 'pending', 10 + (g * 7919) % 4990, '2547' || lpad(g::text, 8, '0'),
       'ws_CO_' || lpad(g::text, 20, '0'), now(), now(), now() + interval '6 hours'
FROM generate_series(1, $N) AS g;
INSERT INTO b_customers (id, tenant_id, phone, paid_count, paid_total, last_seen_at)
SELECT g, '{TENANT}', '2547' || lpad(g::text, 8, '0'), 0, 0, now() FROM generate_series(1, $N) AS g;
"""

# One run = one callback. The payload is bound from -D (as asyncpg binds ours), which also keeps the
# JSON's colons away from pgbench's :variable syntax. The inbox id (1, 2, …) picks the payment row.
_STORE = f"""\\set amount random(10, 5000)
BEGIN;
INSERT INTO b_inbox (channel_id, checkout_request_id, payload, remote_addr, request_id, received_at) VALUES ('{CHANNEL}', :checkout::text, :payload::text, '127.0.0.1', :client_id::text, now()) RETURNING id AS inbox_id \\gset
INSERT INTO b_outbox (actor, kwargs, created_at, sends) VALUES ('payments.process_callback', json_build_object('inbox_id', :inbox_id::bigint), now(), 0) RETURNING id AS outbox_id \\gset
COMMIT;
BEGIN;
UPDATE b_payments SET status = 'success', result_code = '0', result_desc = 'The payment was received.', receipt = 'TK' || :inbox_id::bigint, paid_amount = amount, paid_phone = phone, transaction_date = now(), flag = NULL, completed_at = now(), next_check_at = NULL, updated_at = now() WHERE id = :inbox_id::bigint AND status = 'pending';
UPDATE b_customers SET paid_count = paid_count + 1, paid_total = paid_total + :amount::bigint, last_paid_at = now() WHERE id = :inbox_id::bigint;
"""  # noqa: E501
# The commission posting (1 %, to the receivable, as for a hybrid business with an empty wallet): like
# ours for one busy business, every run moves the same two account rows.
_COMMISSION = f"""INSERT INTO b_transfers (tenant_id, cause_type, cause_id, kind, payment_id, debit_account_id, credit_account_id, amount_cents, created_at) VALUES ('{TENANT}', 'payment', :inbox_id::text, 'commission.receivable', :inbox_id::bigint, 1, 2, :amount::bigint, now()) ON CONFLICT (cause_type, cause_id, kind) DO NOTHING;
UPDATE b_accounts SET balance_cents = balance_cents - :amount::bigint WHERE id = 1;
UPDATE b_accounts SET balance_cents = balance_cents + :amount::bigint WHERE id = 2;
"""  # noqa: E501
_DONE = """UPDATE b_inbox SET processed_at = now(), outcome = 'applied' WHERE id = :inbox_id::bigint;
DELETE FROM b_outbox WHERE id = :outbox_id::bigint;
COMMIT;
"""
# name -> script. The first is the equivalent of what the product does and gives the ratios.
BASELINES = {
    "pgbench": _STORE + _COMMISSION + _DONE,
    "pgbench without the commission posting": _STORE + _DONE,
}


def find_pgbench() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    if not candidates:
        raise RuntimeError("pgbench not found (apt-get install postgresql-contrib, or put it on PATH)")
    return candidates[-1]


@dataclass
class Baseline:
    name: str
    clients: int
    tps: float
    latency_ms: float | None
    transactions: int
    cpu: dict[str, float]
    busy: float
    wall: float
    output: str
    pg: dict[str, int]


def run_pgbench(
    admin_url: str, name_: str, script_text: str, rows: int, clients: int, payload: bytes, workdir: Path
) -> Baseline:
    pgbench = find_pgbench()
    url, name = create_pg_database(admin_url, "pgb")
    try:
        per_client = math.ceil(rows / clients)
        seeded_rows = per_client * clients
        asyncio.run(
            _pg_admin(
                _plain_pg(url),
                BASELINE_SCHEMA,
                BASELINE_SEED.replace("$N", str(seeded_rows)),
                "VACUUM ANALYZE",
            )
        )
        script = workdir / "callback.pgbench"
        script.write_text(script_text)
        parsed = re.match(
            r"postgresql://(?:(?P<user>[^:@/]+)(?::(?P<pw>[^@/]*))?@)?(?P<host>[^:/]+)(?::(?P<port>\d+))?",
            _plain_pg(admin_url),
        )
        assert parsed is not None
        env = dict(os.environ)
        if parsed["pw"]:
            env["PGPASSWORD"] = parsed["pw"]
        host, port, user = parsed["host"], parsed["port"] or "5432", parsed["user"] or "postgres"
        cmd = [pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-t", str(per_client)]
        cmd += ["-f", str(script), "-D", f"payload={payload.decode()}", "-D", "checkout=ws_CO_bench"]
        cmd += ["-h", host, "-p", port, "-U", user, name]
        time.sleep(STATS_FLUSH)
        pg_before = counters_of(url)
        meter = CpuMeter(named={"postgres": []}, by_name={"postgres": "postgres"})
        meter.begin()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used, busy, wall = meter.end()
        # pgbench is the only child reaped in between.
        client = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        cpu = {"pgbench": client, "postgres": used["postgres"]}
        time.sleep(STATS_FLUSH)
        pg_after = counters_of(url)
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", proc.stdout)
        if m is None:
            raise RuntimeError(f"no tps in pgbench output:\n{proc.stdout}")
        lat = re.search(r"latency average = ([\d.]+) ms", proc.stdout)
        done = re.search(r"number of transactions actually processed: (\d+)", proc.stdout)
        return Baseline(
            name=name_,
            clients=clients,
            tps=float(m[1]),
            latency_ms=float(lat[1]) if lat else None,
            transactions=int(done[1]) if done else per_client * clients,
            cpu=cpu,
            busy=busy,
            wall=wall,
            output=proc.stdout,
            pg={k: pg_after[k] - pg_before[k] for k in pg_after},
        )
    finally:
        drop_pg_database(admin_url, name)


# -- the run --------------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def delete_redis_namespace(redis_url: str, namespace: str) -> int:
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            r.delete(*keys)
        return len(keys)
    finally:
        r.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callbacks", type=int, default=5000, help="timed callbacks (N)")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections; pgbench -c")
    parser.add_argument("--warmup", type=int, default=200, help="untimed callbacks sent first")
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the product processes")
    parser.add_argument("--sqlite", action="store_true", help="embedded mode: lipapush serve on SQLite")
    parser.add_argument("--skip-pgbench", action="store_true")
    parser.add_argument(
        "--pgbench-clients",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="pgbench -c values, comma-separated (default: --concurrency and --worker-threads); "
        "the ratios use the best",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for all finals")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy collapsed stacks into DIR")
    parser.add_argument("--keep", action="store_true", help="keep databases and logs for inspection")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a quick run for CI logs (bench/smoke.py): 300 callbacks after 50, pgbench's first script only",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.callbacks, args.warmup = 300, 50

    count, warmup, conc = args.callbacks, args.warmup, args.concurrency
    total = warmup + count
    timeout = args.timeout or 120.0 + total / 20
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-bench-"))
    namespace = f"lipapush-bench-{secrets.token_hex(4)}"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    procs: list[Proc] = []
    db_name: str | None = None

    idle_busy = psutil.cpu_percent(interval=1.0)
    if idle_busy > 10:
        print(
            f"warning: the machine is {idle_busy:.0f}% busy before the run; other processes will "
            "slow both the product and the baseline (see 'other processes' below)",
            file=sys.stderr,
        )
    try:
        if args.sqlite:
            database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        else:
            database_url, db_name = create_pg_database(args.pg_admin_url, "cb")
        t = time.perf_counter()
        upgrade(database_url)
        # Production: live payments, which earn the commission the run posts and checks.
        seeded = asyncio.run(seed(database_url, total, Environment.production))
        print(
            f"seeded {total} pending payments in {time.perf_counter() - t:.1f}s "
            f"({'SQLite' if args.sqlite else 'Postgres ' + (db_name or '')})",
            file=sys.stderr,
        )

        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "LIPAPUSH_"))}
        env.update(
            DATABASE_URL=database_url,
            PUBLIC_BASE_URL=base_url,
            # The channel is production: were a live request ever made, the app's own simulator path
            # (DARAJA_SIMULATOR_URL's default) is its production host, so nothing leaves the machine.
            DARAJA_PRODUCTION_URL=f"{base_url}/sim/daraja",
            LOG_LEVEL=args.log_level,
            PYTHONUNBUFFERED="1",
        )
        if args.sqlite:
            env.pop("REDIS_URL", None)
            procs.append(
                start_proc("serve", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, workdir)
            )
        else:
            env.update(REDIS_URL=args.redis_url, REDIS_NAMESPACE=namespace)
            procs.append(start_proc("web", ["web", "--host", "127.0.0.1", "--port", str(port)], env, workdir))
            procs.append(
                start_proc("worker", ["worker", "--threads", str(args.worker_threads)], env, workdir)
            )
            wait_log_line(procs[1], "worker running")
        asyncio.run(wait_healthy(base_url, procs))

        # `lipapush web` serves from a forked child (web/supervisor.py): count each process's tree.
        named = {
            p.name: [p.popen.pid, *(c.pid for c in psutil.Process(p.popen.pid).children(recursive=True))]
            for p in procs
        }
        named["bench (aiohttp)"] = [os.getpid()]
        by_name: dict[str, str] = {}
        if not args.sqlite:
            named["postgres"] = []
            by_name["postgres"] = "postgres"
            named["redis"] = _named_pids("redis-server")
        meter = CpuMeter(named=named, by_name=by_name)

        async def measured() -> tuple[Timed, list[str]]:
            engine = _engine(database_url)
            try:
                timed = await run_load(
                    base_url,
                    engine,
                    seeded,
                    warmup=warmup,
                    count=count,
                    concurrency=conc,
                    meter=meter,
                    within=timeout,
                    procs=procs,
                    profile_dir=args.profile,
                )
                problems = await verify(engine, seeded, total, warmup + timed.load.accepted)
                return timed, problems
            finally:
                await engine.dispose()

        timed, problems = asyncio.run(measured())
        for p in procs:
            p.stop()
        if db_name:
            wait_backends_gone(args.pg_admin_url, db_name)

        baselines = []
        if not args.sqlite and not args.skip_pgbench:
            payload = callback_body(seeded, 0)
            clients = args.pgbench_clients or sorted({conc, args.worker_threads})
            # The smoke run skips the script kept for scale: the ratios use the first one only.
            for name, script_text in list(BASELINES.items())[: 1 if args.smoke else None]:
                for c in clients:
                    baselines.append(
                        run_pgbench(args.pg_admin_url, name, script_text, count, c, payload, workdir)
                    )

        report(args, timed, baselines, problems, [p.name for p in procs])
        return 1 if problems else 0
    finally:
        for p in procs:
            p.stop()
        if not args.sqlite:
            with contextlib.suppress(Exception):
                delete_redis_namespace(args.redis_url, namespace)
        if db_name and not args.keep:
            drop_pg_database(args.pg_admin_url, db_name)
        if args.keep:
            print(f"kept: {workdir} {db_name or ''}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def pg_per(pg: dict[str, int], n: int) -> str:
    return (
        f"{pg['transactions'] / n:.2f} transactions, {pg['rows_written'] / n:.2f} rows written, "
        f"{pg['sessions']} connections opened"
    )


def report(
    args: argparse.Namespace, timed: Timed, baselines: list[Baseline], problems: list[str], procs: list[str]
) -> None:
    load = timed.load
    n = load.accepted
    ingest_s = load.finished - load.started
    ingest = n / ingest_s
    e2e = n / timed.e2e_seconds
    cpus = os.cpu_count() or 1
    # The ratios are against the best pgbench run of the same work (the first script).
    same_work = [b for b in baselines if b.name == next(iter(BASELINES))]
    baseline = max(same_work, key=lambda b: b.tps) if same_work else None
    if args.sqlite:
        mode = "SQLite, lipapush serve (in-process broker)"
    else:
        mode = f"Postgres + Redis, lipapush web (1 process) + worker (--threads {args.worker_threads})"
    print()
    print(f"callback ingestion: {mode}; {cpus} CPUs; LOG_LEVEL={args.log_level}")
    head = ("N", "conc", "ingest/s", "e2e/s", "pgbench tps", "e2e/pgb", "ingest/pgb")
    widths = (6, 5, 9, 8, 12, 8, 11)
    row = [str(n), str(args.concurrency), f"{ingest:.1f}", f"{e2e:.1f}", "-", "-", "-"]
    if baseline:
        row[4:] = [f"{baseline.tps:.1f}", f"{e2e / baseline.tps:.3f}", f"{ingest / baseline.tps:.3f}"]
    print(" ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    print(" ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    if baseline:
        print(f"(pgbench tps: best of -c {', '.join(str(b.clients) for b in same_work)})")
    for b in baselines:
        print(
            f"  {b.name}, -c {b.clients}: {b.tps:.1f} tps, latency avg {b.latency_ms} ms "
            f"(e2e/that {e2e / b.tps:.3f}, ingest/that {ingest / b.tps:.3f})"
        )
    print()
    lat = {q: _pct(load.latencies, q) * 1000 for q in (0.5, 0.9, 0.99)}
    print(
        f"HTTP latency ms: p50 {lat[0.5]:.1f}  p90 {lat[0.9]:.1f}  p99 {lat[0.99]:.1f}; "
        f"ingestion {ingest_s:.2f}s, end-to-end {timed.e2e_seconds:.2f}s; "
        f"retried errors: {dict(load.errors) or 'none'}"
    )
    per_k = 1000 / n
    other = timed.busy - sum(timed.cpu.values())
    parts = "  ".join(f"{k} {v * per_k:.2f}" for k, v in timed.cpu.items())
    parts += f"  other processes {other * per_k:.2f}"
    busy_pct = timed.busy / timed.wall / cpus * 100
    print(
        f"CPU s per 1000 callbacks: {parts}  | machine {timed.busy * per_k:.2f} "
        f"({busy_pct:.0f}% of {cpus} CPUs over {timed.wall:.1f}s)"
    )
    for b in baselines:
        bk = 1000 / b.transactions
        b_pct = b.busy / b.wall / cpus * 100
        print(
            f"{b.name}, -c {b.clients}: {b.transactions} runs; CPU s per 1000 runs: "
            f"pgbench {b.cpu['pgbench'] * bk:.2f}  postgres {b.cpu['postgres'] * bk:.2f}  "
            f"other processes {(b.busy - sum(b.cpu.values())) * bk:.2f} "
            f"| machine {b.busy * bk:.2f} ({b_pct:.0f}% over {b.wall:.1f}s)"
        )
    # A Python process runs on one core at a time (the GIL), so the busiest one caps us too.
    ours = sum(timed.cpu.values()) / n
    busiest = max(procs, key=lambda k: timed.cpu[k])
    ceiling = min(cpus / ours, n / timed.cpu[busiest])
    line = (
        f"CPU-bound ceiling (no other load, no lock waits): ours {ceiling:.0f}/s "
        f"(all {cpus} CPUs {cpus / ours:.0f}/s, {busiest} on one core {n / timed.cpu[busiest]:.0f}/s)"
    )
    if baseline:
        theirs = sum(baseline.cpu.values()) / baseline.transactions
        line += f"; pgbench {cpus / theirs:.0f}/s; ratio {ceiling / (cpus / theirs):.3f}"
    print(line)
    if timed.pg:
        print("Postgres per callback: " + pg_per(timed.pg, n))
        for b in baselines:
            if b.pg:
                print(f"{b.name}, -c {b.clients}, per run: {pg_per(b.pg, b.transactions)}")
    if problems:
        print("correctness: FAILED: " + "; ".join(problems))
    else:
        print(
            "correctness: OK (every payment success, customer totals and commission postings match, "
            "job_outbox empty)"
        )
    if args.smoke:
        if baseline:
            ratio = f"{e2e / baseline.tps:.3f} (e2e {e2e:.1f}/s, pgbench {baseline.tps:.0f} tps)"
        else:
            ratio = f"n/a (e2e {e2e:.1f}/s, no pgbench run)"
        print(f"SMOKE P1 callbacks e2e/pgbench = {ratio}")


if __name__ == "__main__":
    sys.exit(main())
