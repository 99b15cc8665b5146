"""Hotspot vouchers onto a router: batch provisioning rate and paid-purchase latency. Run by hand:

    .venv/bin/python bench/voucher_provisioning.py               # SQLite temp file, lipapush serve
    .venv/bin/python bench/voucher_provisioning.py --postgres    # fresh Postgres database + Redis,
                                                                 # lipapush web + lipapush worker

Setup (untimed): a fresh database (a SQLite file in a temp dir, or with ``--postgres`` a throwaway
database on ``--pg-server``), migrated by ``lipapush db upgrade``. The stand-ins run as their own
processes, so their CPU is not the app's: the RouterOS one (``python -m sim.routeros --routers 3
--control-port C``: the provider's router, the librouteros baseline's, the RouterClient floor's, each
starting empty) and the Daraja one (``lipapush sim daraja``, ``DARAJA_SIMULATOR_URL`` pointing at it;
``--mounted-daraja`` uses the app's own ``/sim/daraja`` instead, whose callbacks then cost the app's event
loop a TLS context each). One active hotspot provider is made through the real services (``signup`` with
kind ``hotspot``, ``save_channel`` on the simulator, ``mark_verified``), with the first router
(``routers.add``) and a plan (``plans.save``: 1 hour, 2M/5M, KES 20). The app runs as real processes on a
free port: ``lipapush serve`` on SQLite (embedded mode: in-process broker, worker and scheduler),
``lipapush web`` + ``lipapush worker --threads T`` with ``--postgres`` (Redis under a unique
``REDIS_NAMESPACE``), with ``SIM_CALLBACK_DELAY`` = ``--callback-delay`` (0). A warm-up batch of 5
vouchers and 2 purchases go first.

1. Batch provisioning. The bench process calls ``vouchers.issue_batch`` (N vouchers, in chunks of
   ``MAX_BATCH`` in one transaction) against the app's database, which writes the vouchers and their
   ``provision_voucher`` jobs; on Postgres the bench's after-commit dispatch sends them to Redis at once,
   on SQLite the bench has no worker, so the app's outbox relay sends them (2 s grace, 1 s tick: shown as
   "commit -> first router ack"). The DB is polled every 100 ms until every voucher is ``provisioned``:
   **vouchers/s** = N / (the issue_batch call -> the last ``provisioned_at``).
   **Baseline**, same run, same stand-in process: the same N hotspot users (same words: name, password,
   profile, comment, server) added with librouteros from one thread over one connection, one ``add`` after
   the other (the profile created first, untimed): the floor of what the stand-in accepts. Between the two,
   **RouterClient**: the product's client alone (``provision`` with ``profile_spec``/``user_spec``, one
   voucher after the other, no database or jobs), which is what one ``provision_voucher`` sends.
   Printed: the rates and ratios, router commands and connections per voucher (the stand-in's call
   log), CPU ms per voucher of each process.
2. Paid purchases. ``--buyers`` aiohttp clients at once each ``POST /api/captive/{provider}/initiate-mpesa``
   (distinct phones, a distinct ``ip`` each, so the limits of core.hotspot.orders never trip), then poll
   ``GET status_url`` every ``--poll-ms`` (150; the portal page itself polls every 2 s) until
   ``voucher.usable``. The Daraja stand-in calls back, the worker finalises the payment (``completed_at``),
   issues the voucher and provisions it (``provisioned_at``). Per purchase: (provisioned_at -
   completed_at) from the DB at the end, the client-observed initiate -> usable time, and the stages
   between. **Baseline**, same run: ``--idle`` purchases one at a time through the same code (the
   unloaded latency), so the ratios are what ``--buyers`` at once cost; the per-``add`` latency of step 1's
   baseline is printed as the router floor. Then ``--buyers`` clients poll finished purchases' status URLs
   with no pause for 3 s: what one poll costs the app, next to how many the buyers sent.

No pass/fail on timings; exits 1 when a purchase failed or the router's users do not match the
database's provisioned vouchers (a voucher never provisioned stops the run with what the database says).
``--profile DIR`` records the process running the jobs (``serve`` or ``worker``) with py-spy ``--gil``
during the two timed phases and prints where its threads held the GIL. Processes, the temp dir, the
database and the Redis namespace are cleaned up on the way out, failures included (``--keep`` keeps the
temp dir with every process's log, and the database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import librouteros
import psutil
from sqlalchemy import func, select

import web.app  # noqa: F401  - every job module, so the bench's broker knows provision_voucher
from core.config import Settings, load_settings
from core.db import after_commit
from core.hotspot.codes import new_code
from core.hotspot.models import Plan, Router, Voucher, VoucherOrder, VoucherStatus, profile_name
from core.hotspot.plans import plans
from core.hotspot.provision import profile_spec, user_spec
from core.hotspot.routeros import RouterAddress, RouterClient
from core.hotspot.routers import routers
from core.hotspot.schemas import PlanIn, RouterIn
from core.hotspot.vouchers import MAX_BATCH, vouchers
from core.jobs.models import JobOutbox
from core.payments.models import Payment, PaymentStatus
from core.runtime import Runtime, configure, unit_of_work
from core.tenants.models import ChannelKind, Environment, Tenant, TenantKind, TenantStatus
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants

ROOT = Path(__file__).resolve().parents[1]
ROUTER_USER = "lipapush-api"
PLAN = PlanIn(name="1 hour", price=20, validity_minutes=60, rate_limit="2M/5M", devices=1)
HOTSPOT_SERVER = "hotspot1"
WARMUP_VOUCHERS = 5
WARMUP_PURCHASES = 2
DB_POLL = 0.1
PROBE_SECONDS = 3.0
STALL = 30.0  # seconds without progress before a phase gives up
PROFILE_RATE = 100  # py-spy samples per second (--profile)
STATS_FLUSH = 1.5  # Postgres backends publish their counters at most once a second
# Settings the child processes must not inherit from the caller's environment.
CHILD_UNSET = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_NAMESPACE",
    "PUBLIC_BASE_URL",
    "LOG_LEVEL",
    "LOG_JSON",
    "SIM_CALLBACK_DELAY",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "AT_USERNAME",
    "AT_API_KEY",
    "AT_BASE_URL",
    "AT_CALLBACK_SECRET",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
)


# --------------------------------------------------------------------------------------------------
# Processes, databases


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> int:
    """A port p with p+1 .. p+count-1 free too (the stand-in serves its routers on consecutive ports)."""
    for _ in range(50):
        p = free_port()
        if p + count > 65536:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for k in range(1, count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", p + k))
        except OSError:
            continue
        return p
    raise RuntimeError(f"no {count} consecutive free ports")


def lipapush_cmd() -> list[str]:
    script = Path(sys.executable).with_name("lipapush")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from web.cli import main; main()"]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CHILD_UNSET}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

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


def start_proc(name: str, cmd: list[str], env: dict[str, str], workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            cmd,
            env=env,
            cwd=workdir,  # no stray .env from the caller's directory
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log)


def wait_log_line(proc: Proc, needle: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while needle not in proc.log.read_text(errors="replace"):
        proc.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not log {needle!r} within {within:.0f}s:\n{proc.tail()}")
        time.sleep(0.1)


async def wait_http(url: str, procs: list[Proc], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            for p in procs:
                p.check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer 200 within {within:.0f}s")
            await asyncio.sleep(0.1)


@dataclass
class Database:
    url: str
    name: str | None  # the Postgres database; None for SQLite
    server: str | None = None

    async def drop(self) -> None:
        if self.name and self.server:
            await pg_admin(self.server, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def pg_admin(server: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_pg_database(server: str) -> Database:
    name = f"lipapush_bench_voucher_{uuid.uuid4().hex[:8]}"
    await pg_admin(server, f'CREATE DATABASE "{name}"')
    return Database(f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}", name, server)


async def pg_sessions(server: str, name: str) -> int:
    """Connections ever opened to database `name` (pg_stat_database.sessions, Postgres 14+)."""
    import asyncpg

    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", name) or 0)
    finally:
        await conn.close()


def delete_redis_namespace(redis_url: str, namespace: str) -> int:
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            r.delete(*keys)
        return len(keys)
    finally:
        r.close()


def run_in_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


# --------------------------------------------------------------------------------------------------
# CPU accounting


def _cpu_of(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def _machine_busy() -> float:
    m = psutil.cpu_times()
    return m.user + m.nice + m.system + getattr(m, "irq", 0.0) + getattr(m, "softirq", 0.0)


@dataclass
class CpuSnapshot:
    procs: dict[str, float]
    bench: float
    backends: dict[int, float]
    redis: dict[int, float]
    machine: float


@dataclass
class Cpu:
    procs: dict[str, float] = field(default_factory=dict)  # app processes and the router stand-in
    bench: float = 0.0
    db: float = 0.0
    db_complete: bool = True  # False when some backends exited during the phase (their CPU is lost)
    redis: float = 0.0
    machine: float = 0.0


class CpuMeter:
    """CPU seconds of the named processes, of this process, of the Postgres backends serving the
    bench's database (their process title names it), of redis-server, and of the whole machine."""

    def __init__(self, procs: dict[str, int], db_name: str | None, with_redis: bool) -> None:
        self.procs = procs
        self.db_name = db_name
        self.with_redis = with_redis

    def snapshot(self) -> CpuSnapshot:
        backends: dict[int, float] = {}
        redis: dict[int, float] = {}
        if self.db_name or self.with_redis:
            for proc in psutil.process_iter(["name", "cmdline"]):
                with contextlib.suppress(psutil.Error):
                    title = (proc.info["cmdline"] or [""])[0]
                    if self.db_name and title.startswith("postgres:") and f" {self.db_name} " in f" {title} ":
                        backends[proc.pid] = _cpu_of(proc.pid)
                    elif self.with_redis and proc.info["name"] == "redis-server":
                        redis[proc.pid] = _cpu_of(proc.pid)
        return CpuSnapshot(
            {name: _cpu_of(pid) for name, pid in self.procs.items()},
            time.process_time(),
            backends,
            redis,
            _machine_busy(),
        )

    @staticmethod
    def between(a: CpuSnapshot, b: CpuSnapshot) -> Cpu:
        return Cpu(
            procs={name: b.procs[name] - a.procs.get(name, 0.0) for name in b.procs},
            bench=b.bench - a.bench,
            db=sum(t - a.backends.get(pid, 0.0) for pid, t in b.backends.items()),
            db_complete=a.backends.keys() <= b.backends.keys(),
            redis=sum(t - a.redis.get(pid, 0.0) for pid, t in b.redis.items()),
            machine=b.machine - a.machine,
        )


# --------------------------------------------------------------------------------------------------
# The router stand-in


class RouterControl:
    """The stand-in's HTTP control API (sim/routeros/control.py)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def calls(self, port: int) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.base}/_sim/routers/{port}/calls") as r:
            r.raise_for_status()
            data: list[dict[str, Any]] = await r.json()
            return data

    async def clear_calls(self, port: int) -> None:
        async with self.http.delete(f"{self.base}/_sim/routers/{port}/calls") as r:
            r.raise_for_status()

    async def users(self, port: int) -> list[dict[str, str]]:
        async with self.http.get(f"{self.base}/_sim/routers/{port}/menus/ip/hotspot/user") as r:
            r.raise_for_status()
            data: list[dict[str, str]] = await r.json()
            return data


@dataclass
class RouterTraffic:
    commands: int = 0  # sentences the router received, logins included
    connections: int = 0
    by_command: Counter[str] = field(default_factory=Counter)
    span: float = 0.0  # first sentence -> last sentence, seconds
    inside: float = 0.0  # summed over connections: their first sentence (the login) -> their last one


def traffic(calls: list[dict[str, Any]]) -> RouterTraffic:
    """What the router received, from the stand-in's call log (``at``: when it read each sentence)."""
    per_conn: dict[int, list[float]] = {}
    for c in calls:
        per_conn.setdefault(int(c["connection"]), []).append(float(c["at"]))
    stamps = [float(c["at"]) for c in calls]
    return RouterTraffic(
        commands=len(calls),
        connections=len(per_conn),
        by_command=Counter(str(c["command"]) for c in calls),
        span=max(stamps) - min(stamps) if stamps else 0.0,
        inside=sum(max(t) - min(t) for t in per_conn.values()),
    )


# --------------------------------------------------------------------------------------------------
# Seeding, through the product's services


@dataclass(frozen=True)
class Provider:
    tenant_id: uuid.UUID
    router_id: uuid.UUID
    plan_id: uuid.UUID


async def seed(router_port: int, router_password: str) -> Provider:
    rt = runtime_now()
    async with unit_of_work() as session:
        tenant, owner = await signup(
            session,
            business_name="Kangemi Bench WiFi",
            email=f"voucher-bench-{uuid.uuid4().hex[:8]}@example.com",
            password="bench-pass-123",
            phone="0720000001",
            kind=TenantKind.hotspot,
        )
        channel = await tenants.save_channel(
            session,
            tenant=tenant,
            data=ChannelIn(environment=Environment.simulator, kind=ChannelKind.paybill),
            box=rt.secrets,
            by=owner.id,
        )
        await tenants.mark_verified(session, channel=channel)
        await session.flush()
        await session.refresh(tenant)
        assert tenant.status is TenantStatus.active, tenant.status
        router = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(
                name="stall-42",
                host="127.0.0.1",
                port=router_port,
                username=ROUTER_USER,
                password=router_password,
                hotspot_server=HOTSPOT_SERVER,
            ),
            box=rt.secrets,
            by=owner.id,
        )
        plan = await plans.save(session, tenant_id=tenant.id, data=PLAN)
        return Provider(tenant.id, router.id, plan.id)


_rt: Runtime | None = None


def runtime_now() -> Runtime:
    assert _rt is not None
    return _rt


# --------------------------------------------------------------------------------------------------
# Phase 1: a batch onto the router


@dataclass
class BatchResult:
    n: int
    started: float  # time.time() before issue_batch
    committed: float  # the transaction committed
    dispatched: float  # the unit of work returned (its jobs handed to the broker, or the relay)
    first_ack: float
    last_ack: float
    codes: set[str]
    ids: set[uuid.UUID]
    cpu: Cpu = field(default_factory=Cpu)
    router: RouterTraffic = field(default_factory=RouterTraffic)
    pg_sessions: int | None = None
    retried: int = 0  # vouchers that needed more than one attempt

    @property
    def wall(self) -> float:
        return self.last_ack - self.started

    @property
    def rate(self) -> float:
        return self.n / self.wall


def chunks(n: int, size: int) -> Iterator[int]:
    while n > 0:
        yield min(n, size)
        n -= size


async def provision_batch(provider: Provider, n: int, procs: list[Proc]) -> BatchResult:
    """issue_batch (chunks of MAX_BATCH, one transaction), then wait until every voucher is provisioned."""
    started = time.time()
    commit_at: list[float] = []
    async with unit_of_work() as session:
        after_commit(session, lambda: commit_at.append(time.time()))
        tenant = await session.get(Tenant, provider.tenant_id)
        router = await session.get(Router, provider.router_id)
        plan = await session.get(Plan, provider.plan_id)
        assert tenant and router and plan
        made: list[Voucher] = []
        for count in chunks(n, MAX_BATCH):
            _, batch = await vouchers.issue_batch(
                session, tenant=tenant, router=router, plan=plan, count=count
            )
            made += batch
        ids = {v.id for v in made}
        codes = {v.code for v in made}
    dispatched = time.time()
    await wait_provisioned(ids, procs)
    async with unit_of_work(readonly=True) as session:
        rows = (
            await session.execute(
                select(Voucher.provisioned_at, Voucher.attempts).where(Voucher.id.in_(list(ids)))
            )
        ).all()
    acks = sorted(_ts(at) for at, _ in rows if at is not None)
    retried = sum(1 for _, attempts in rows if attempts > 1)
    return BatchResult(n, started, commit_at[0], dispatched, acks[0], acks[-1], codes, ids, retried=retried)


def _ts(at: datetime) -> float:
    return at.timestamp()


async def wait_provisioned(ids: set[uuid.UUID], procs: list[Proc]) -> None:
    wanted = list(ids)
    last_count, last_change = -1, time.monotonic()
    while True:
        async with unit_of_work(readonly=True) as session:
            done = int(
                await session.scalar(
                    select(func.count())
                    .select_from(Voucher)
                    .where(Voucher.id.in_(wanted), Voucher.status == VoucherStatus.provisioned)
                )
                or 0
            )
        if done == len(wanted):
            return
        if done != last_count:
            last_count, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > STALL:
            raise RuntimeError(
                f"no voucher provisioned for {STALL:.0f}s ({done}/{len(wanted)})\n{await why()}"
            )
        for p in procs:
            p.check_alive()
        await asyncio.sleep(DB_POLL)


async def why() -> str:
    """What the database says about vouchers or jobs that are stuck."""
    async with unit_of_work(readonly=True) as session:
        errors = list(
            await session.scalars(
                select(Voucher.last_error).where(Voucher.last_error.is_not(None)).distinct().limit(3)
            )
        )
        failed = list(
            await session.scalars(select(JobOutbox.error).where(JobOutbox.failed_at.is_not(None)).limit(3))
        )
        pending = await session.scalar(select(func.count()).select_from(JobOutbox))
    return f"voucher errors: {errors}; failed jobs: {failed}; outbox rows: {pending}"


@dataclass
class BaselineResult:
    n: int
    wall: float
    adds: list[float]  # seconds per add
    cpu: Cpu = field(default_factory=Cpu)
    router: RouterTraffic = field(default_factory=RouterTraffic)

    @property
    def rate(self) -> float:
        return self.n / self.wall


def baseline_adds(port: int, password: str, n: int) -> tuple[float, list[float]]:
    """The same n hotspot users, librouteros, one thread, one connection, one add after the other."""
    api = librouteros.connect("127.0.0.1", ROUTER_USER, password, port=port, timeout=10)
    try:
        profile = profile_name(PLAN.rate_limit, PLAN.devices)
        api.path("ip", "hotspot", "user", "profile").add(
            **{"name": profile, "rate-limit": PLAN.rate_limit or "", "shared-users": str(PLAN.devices)}
        )
        users = api.path("ip", "hotspot", "user")
        codes = {new_code(8) for _ in range(2 * n)}
        specs = [
            {
                "name": code,
                "password": code,
                "profile": profile,
                "comment": f"lp:{uuid.uuid4().hex}",
                "server": HOTSPOT_SERVER,
            }
            for code in list(codes)[:n]
        ]
        assert len(specs) == n
        adds: list[float] = []
        t0 = time.perf_counter()
        for spec in specs:
            t = time.perf_counter()
            users.add(**spec)
            adds.append(time.perf_counter() - t)
        return time.perf_counter() - t0, adds
    finally:
        api.close()


async def client_floor(port: int, password: str, n: int) -> tuple[float, list[float]]:
    """The product's RouterClient alone, one voucher after the other: ``provision`` with the profile and
    the user, the call and words provision_voucher sends (profile_spec, user_spec), but no database, jobs
    or queueing."""
    client = RouterClient(
        RouterAddress(host="127.0.0.1", port=port, username=ROUTER_USER, password=password, timeout=8.0)
    )
    router = Router(hotspot_server=HOTSPOT_SERVER)
    latencies: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n):
        code = new_code(8)
        v = Voucher(
            id=uuid.uuid4(), code=code, rate_limit=PLAN.rate_limit, devices=PLAN.devices, data_mb=None
        )
        t = time.perf_counter()
        await client.provision(profile_spec(v), user_spec(v, router))
        latencies.append(time.perf_counter() - t)
    return time.perf_counter() - t0, latencies


# --------------------------------------------------------------------------------------------------
# Phase 2: paid purchases


@dataclass
class Purchase:
    index: int
    phone: str
    payment_id: uuid.UUID | None = None
    sent: float = 0.0  # time.time() of the initiate POST
    initiate_s: float = math.nan  # its HTTP latency
    usable_s: float = math.nan  # initiate POST sent -> first poll answering usable
    usable_at: float = math.nan  # time.time() of that poll's answer
    polls: int = 0
    error: str | None = None
    # from the database, at the end
    created_at: float = math.nan
    completed_at: float = math.nan
    issued_at: float = math.nan
    provisioned_at: float = math.nan


def buyer_phone(i: int) -> str:
    # Last four digits 5000+: never one of the simulator's special outcomes (1032, 1037, 2001, 0001, ...).
    return f"0723{i // 5000 % 100:02d}{5000 + i % 5000:04d}"


def buyer_ip(i: int) -> str:
    return f"10.77.{i // 250 % 250}.{i % 250 + 1}"


async def purchase(
    http: aiohttp.ClientSession, base_url: str, provider: Provider, p: Purchase, poll: float, within: float
) -> None:
    body = {
        "router_id": str(provider.router_id),
        "plan_id": str(provider.plan_id),
        "phone": p.phone,
        "ip": buyer_ip(p.index),
    }
    p.sent = time.time()
    t0 = time.perf_counter()
    try:
        async with http.post(f"{base_url}/api/captive/{provider.tenant_id}/initiate-mpesa", json=body) as r:
            answer = await r.json(content_type=None)
            status = r.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        p.error = f"initiate: {type(exc).__name__}"
        return
    p.initiate_s = time.perf_counter() - t0
    if status != 201:
        p.error = f"initiate: HTTP {status} {str(answer)[:160]}"
        return
    p.payment_id = uuid.UUID(answer["payment_id"])
    url = f"{base_url}{answer['status_url']}"
    while time.perf_counter() - t0 < within:
        try:
            async with http.get(url) as r:
                s = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            p.error = f"status: {type(exc).__name__}"
            return
        p.polls += 1
        if status != 200:
            p.error = f"status: HTTP {status} {str(s)[:160]}"
            return
        if s.get("voucher") and s["voucher"].get("usable"):
            p.usable_at = time.time()
            p.usable_s = time.perf_counter() - t0
            return
        if s.get("payment_status") not in (PaymentStatus.pending.value, PaymentStatus.success.value):
            p.error = f"payment {s.get('payment_status')}: {s.get('message')}"
            return
        await asyncio.sleep(poll)
    p.error = f"not usable within {within:.0f}s"


async def fill_from_db(purchases: list[Purchase]) -> None:
    by_id = {p.payment_id: p for p in purchases if p.payment_id is not None}
    if not by_id:
        return
    async with unit_of_work(readonly=True) as session:
        rows = (
            await session.execute(
                select(
                    Payment.id,
                    Payment.created_at,
                    Payment.completed_at,
                    Voucher.issued_at,
                    Voucher.provisioned_at,
                )
                .join(VoucherOrder, VoucherOrder.payment_id == Payment.id)
                .outerjoin(Voucher, Voucher.id == VoucherOrder.voucher_id)
                .where(Payment.id.in_(list(by_id)))
            )
        ).all()
    for pid, created, completed, issued, provisioned in rows:
        p = by_id[pid]
        p.created_at = _ts(created)
        p.completed_at = _ts(completed) if completed else math.nan
        p.issued_at = _ts(issued) if issued else math.nan
        p.provisioned_at = _ts(provisioned) if provisioned else math.nan


@dataclass
class BuyResult:
    purchases: list[Purchase]
    wall: float = 0.0
    cpu: Cpu = field(default_factory=Cpu)
    router: RouterTraffic = field(default_factory=RouterTraffic)

    @property
    def errors(self) -> list[Purchase]:
        return [p for p in self.purchases if p.error]


async def buy_many(
    base_url: str, provider: Provider, first: int, count: int, *, at_once: bool, poll: float, within: float
) -> BuyResult:
    purchases = [Purchase(first + i, buyer_phone(first + i)) for i in range(count)]
    connector = aiohttp.TCPConnector(limit=max(1, count))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=within)
    ) as http:
        t0 = time.perf_counter()
        if at_once:
            await asyncio.gather(*(purchase(http, base_url, provider, p, poll, within) for p in purchases))
        else:
            for p in purchases:
                await purchase(http, base_url, provider, p, poll, within)
        wall = time.perf_counter() - t0
    await fill_from_db(purchases)
    return BuyResult(purchases, wall)


@dataclass
class PollProbe:
    clients: int
    polls: int
    wall: float
    latencies: list[float]
    cpu: Cpu


async def poll_probe(urls: list[str], clients: int, seconds: float, meter: CpuMeter) -> PollProbe:
    """`clients` pollers, no pause, on status URLs whose voucher is usable: what one poll costs."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        t0 = time.perf_counter()
        stop = t0 + seconds

        async def one(i: int) -> None:
            k = i
            while time.perf_counter() < stop:
                t = time.perf_counter()
                async with http.get(urls[k % len(urls)]) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"status poll: HTTP {r.status}")
                latencies.append(time.perf_counter() - t)
                k += clients

        before = meter.snapshot()
        await asyncio.gather(*(one(i) for i in range(clients)))
        wall = time.perf_counter() - t0
        cpu = CpuMeter.between(before, meter.snapshot())
    return PollProbe(clients, len(latencies), wall, latencies, cpu)


# --------------------------------------------------------------------------------------------------
# Profiling (optional)


def start_profiler(out: Path, pid: int) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("py-spy not found: pip install py-spy into the venv", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(PROFILE_RATE),
        "--format",
        "raw",
        "--threads",
        "--gil",
    ]
    cmd += ["--nonblocking", "-o", str(out)]
    with out.with_suffix(".log").open("wb") as log:
        spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    time.sleep(1.0)  # let it attach
    return spy_proc


def stop_profiler(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def _frame_name(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `path/to/file.py: func`."""
    func_, _, where = frame.partition(" (")
    return f"{where.rsplit(':', 1)[0]}: {func_}"


def _package(frame: str) -> str:
    file = _frame_name(frame).split(":", 1)[0]
    if file.startswith("<"):
        return file[1:].split()[0]
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in file or file.endswith(".py") else file


JOB_LOOP = "job event loop (dramatiq AsyncIO: every job's code)"
HTTP_LOOP = "main thread (uvicorn's loop: HTTP)"


def _thread_kinds(stacks: list[tuple[list[str], int]]) -> dict[str, str]:
    """What each sampled thread is, from any of its stacks: SQLAlchemy's greenlets show the job loop's
    or uvicorn's database work without the frames below them, so a thread is named by its other samples."""
    seen: dict[str, set[str]] = {}
    for frames, _ in stacks:
        text = ";".join(frames)
        marks = seen.setdefault(frames[0], set())
        if "dramatiq/asyncio.py" in text:
            marks.add("loop")
        if "uvicorn" in text:
            marks.add("http")
        if "dramatiq" in text:
            marks.add("dramatiq")
        if "_connection_worker_thread" in text:
            marks.add("aiosqlite")
    kinds: dict[str, str] = {}
    for thread, marks in seen.items():
        name = thread.partition(": ")[2]
        if name.startswith("routeros"):
            kinds[thread] = "routeros client threads (socket I/O, one per router operation)"
        elif "loop" in marks:
            kinds[thread] = JOB_LOOP
        elif "http" in marks:
            kinds[thread] = HTTP_LOOP
        elif "aiosqlite" in marks:
            kinds[thread] = "aiosqlite connection threads (SQLite calls)"
        elif "dramatiq" in marks:
            kinds[thread] = "dramatiq worker/consumer threads"
        else:
            kinds[thread] = "other threads"
    return kinds


def summarise_profile(path: Path, wall: float, top: int = 10) -> None:
    """py-spy --gil samples the thread holding the GIL PROFILE_RATE times a second, so a thread group's
    samples over PROFILE_RATE x wall is the share of the phase it ran Python (or C holding the GIL).
    Samples py-spy could not take (a busy machine) are missing, so the shares are lower bounds."""
    if not path.exists():
        print(f"  profile: {path} was not written (see {path.with_suffix('.log')})")
        return
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if stack and count_s.isdigit():
            stacks.append((stack.split(";"), int(count_s)))
    kinds = _thread_kinds(stacks)
    groups: Counter[str] = Counter()
    loop_pkg: Counter[str] = Counter()
    loop_ours: Counter[str] = Counter()
    loop_total = 0
    for frames, count in stacks:
        kind = kinds[frames[0]]
        groups[kind] += count
        if kind == JOB_LOOP:
            loop_total += count
            loop_pkg[_package(frames[-1]) if len(frames) > 1 else "(no Python frame)"] += count
            for fn in {_frame_name(f) for f in frames[1:]}:
                if fn.startswith(("core/", "web/")):
                    loop_ours[fn] += count
    possible = PROFILE_RATE * wall
    print(f"  profile ({path}; share of the {wall:.1f} s recorded each thread group held the GIL):")
    for kind, n in groups.most_common():
        print(f"    {100 * n / possible:5.1f}%  {kind}")
    if loop_total:
        print("    job event loop, by package of the innermost frame (% of its samples):")
        for name, n in loop_pkg.most_common(top):
            print(f"    {100 * n / loop_total:5.1f}%  {name}")
        print(
            "    job event loop, checkout functions, inclusive (% of its samples; lower bounds: "
            "greenlet stacks hide their callers):"
        )
        for name, n in loop_ours.most_common(top):
            print(f"    {100 * n / loop_total:5.1f}%  {name}")


# --------------------------------------------------------------------------------------------------
# Report


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))]


def stats_row(label: str, side: str, seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds if not math.isnan(s))
    return (
        f"  {label:<40} {side:<13} {len(ms):>4} {pct(ms, 0.5):>8.0f} {pct(ms, 0.99):>8.0f} "
        f"{(ms[-1] if ms else math.nan):>8.0f}"
    )


def p50(seconds: list[float]) -> float:
    return pct(sorted(s for s in seconds if not math.isnan(s)), 0.5)


def p99(seconds: list[float]) -> float:
    return pct(sorted(s for s in seconds if not math.isnan(s)), 0.99)


def report_batch(
    ours: BatchResult, client: BaselineResult, base: BaselineResult, args: argparse.Namespace
) -> None:
    n = ours.n
    dash = f"{'-':>11}"
    print(f"1. {n} vouchers onto one router (issue_batch -> every voucher provisioned)")
    print(f"  {'':<44} {'ours':>11} {'RouterClient':>11} {'baseline':>11}")
    print(f"  {'vouchers/s':<44} {ours.rate:>11.1f} {client.rate:>11.1f} {base.rate:>11.1f}")
    print(f"  {'wall s':<44} {ours.wall:>11.2f} {client.wall:>11.2f} {base.wall:>11.2f}")
    print(f"  {'  issue_batch + commit s':<44} {ours.committed - ours.started:>11.2f}")
    print(f"  {'  after-commit dispatch of the N jobs s':<44} {ours.dispatched - ours.committed:>11.2f}")
    pickup = "  (SQLite: the app's outbox relay, 2 s grace, 1 s tick)" if not args.postgres else ""
    print(f"  {'  commit -> first router ack s':<44} {ours.first_ack - ours.committed:>11.2f}{pickup}")
    steady = (
        (n - 1) / (ours.last_ack - ours.first_ack) if n > 1 and ours.last_ack > ours.first_ack else math.nan
    )
    print(f"  {'  first -> last ack, vouchers/s':<44} {steady:>11.1f}")
    print(
        f"  {'latency per voucher p50 / p99 ms':<44} {dash} "
        f"{f'{1000 * p50(client.adds):.1f}/{1000 * p99(client.adds):.1f}':>11} "
        f"{f'{1000 * p50(base.adds):.2f}/{1000 * p99(base.adds):.2f}':>11}"
    )
    print(
        f"  {'router commands per voucher (logins incl.)':<44} {ours.router.commands / n:>11.2f} "
        f"{client.router.commands / n:>11.2f} {base.router.commands / n:>11.3f}"
    )
    print(
        f"  {'router connections per voucher':<44} {ours.router.connections / n:>11.2f} "
        f"{client.router.connections / n:>11.2f} {base.router.connections / n:>11.3f}"
    )
    cmds = ", ".join(f"{c} {k / n:.2f}" for c, k in ours.router.by_command.most_common())
    print(f"    ours, per voucher: {cmds}")
    print(
        f"  {'router: login -> last command, ms/voucher':<44} {1000 * ours.router.inside / n:>11.2f} "
        f"{1000 * client.router.inside / n:>11.2f} {1000 * base.router.inside / n:>11.3f}"
    )
    print(
        f"  {'router: between connections, ms/voucher':<44} "
        f"{1000 * (ours.router.span - ours.router.inside) / n:>11.2f} "
        f"{1000 * (client.router.span - client.router.inside) / n:>11.2f} {'-':>11}"
    )
    print(f"  {'vouchers needing more than one attempt':<44} {ours.retried:>11}")
    print_cpu("voucher", [(ours.cpu, n), (client.cpu, n), (base.cpu, n)], args)
    if ours.pg_sessions is not None:
        print(f"  {'Postgres connections opened':<44} {ours.pg_sessions:>11}")
    print(
        f"  ratios vouchers/s: ours/baseline {ours.rate / base.rate:.3f}x (the baseline is "
        f"{base.rate / ours.rate:.0f}x faster), first->last ack rate/baseline {steady / base.rate:.3f}x, "
        f"ours/RouterClient {ours.rate / client.rate:.2f}x, "
        f"RouterClient/baseline {client.rate / base.rate:.3f}x"
    )


LABELS = {
    "serve": "lipapush serve",
    "web": "lipapush web",
    "worker": "lipapush worker",
    "routersim": "router stand-in",
    "daraja": "Daraja stand-in",
}


def print_cpu(unit: str, columns: list[tuple[Cpu, int]], args: argparse.Namespace) -> None:
    """CPU ms per unit of each process, one column per phase (its Cpu and how many units it did)."""

    def line(label: str, values: list[float], mark: str = "") -> None:
        cells = [f"{1000 * v / n:.2f}" for v, (_, n) in zip(values, columns, strict=True)]
        cells[0] += mark
        print(f"  {f'CPU ms/{unit}, {label}':<44} " + " ".join(f"{c:>11}" for c in cells))

    for name in columns[0][0].procs:
        line(LABELS.get(name, name), [c.procs.get(name, 0.0) for c, _ in columns])
    line("bench process", [c.bench for c, _ in columns])
    if args.postgres:
        line("its Postgres backends", [c.db for c, _ in columns], "" if columns[0][0].db_complete else "+")
        line("redis-server", [c.redis for c, _ in columns])
    line(
        "anything else on the machine",
        [max(0.0, c.machine - sum(c.procs.values()) - c.bench - c.db - c.redis) for c, _ in columns],
    )


def report_buy(
    concurrent: BuyResult,
    idle: BuyResult,
    base: BaselineResult,
    probe: PollProbe | None,
    args: argparse.Namespace,
) -> None:
    print()
    print(
        f"2. paid purchase -> voucher usable: {len(concurrent.purchases)} buyers at once "
        f"(baseline: {len(idle.purchases)} one at a time); Daraja callback delay {args.callback_delay:g} s, "
        f"status polled every {args.poll_ms} ms"
    )
    print(f"  {'':<40} {'buyers':<13} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")

    def rows(label: str, fn: Callable[[Purchase], float]) -> None:
        ok_c = [fn(p) for p in concurrent.purchases if not p.error]
        ok_i = [fn(p) for p in idle.purchases if not p.error]
        print(stats_row(label, f"{len(concurrent.purchases)} at once", ok_c))
        print(stats_row("", "1 at a time", ok_i))

    rows("callback applied -> router ack (DB)", lambda p: p.provisioned_at - p.completed_at)
    rows("client: initiate -> usable seen", lambda p: p.usable_s)
    print("  stages:")
    rows("  initiate POST (HTTP latency)", lambda p: p.initiate_s)
    rows("  initiate -> callback applied (DB)", lambda p: p.completed_at - p.created_at)
    rows("  callback applied -> voucher issued", lambda p: p.issued_at - p.completed_at)
    rows("  voucher issued -> router ack", lambda p: p.provisioned_at - p.issued_at)
    rows("  router ack -> usable seen (poll lag)", lambda p: p.usable_at - p.provisioned_at)
    print(f"  router floor: one librouteros add, p50 {1000 * p50(base.adds):.2f} ms (step 1's baseline)")
    n, idle_n = len(concurrent.purchases), len(idle.purchases)
    print(f"  {'':<44} {f'{n} at once':>11} {'1 at a time':>11}")
    print(f"  {'wall s (first POST -> last usable)':<44} {concurrent.wall:>11.2f} {idle.wall:>11.2f}")
    print(
        f"  {'status polls per purchase':<44} {sum(p.polls for p in concurrent.purchases) / n:>11.1f} "
        f"{sum(p.polls for p in idle.purchases) / idle_n:>11.1f}"
    )
    print(
        f"  {'router commands per purchase':<44} {concurrent.router.commands / n:>11.2f} "
        f"{idle.router.commands / idle_n:>11.2f}"
    )
    print(
        f"  {'router connections per purchase':<44} {concurrent.router.connections / n:>11.2f} "
        f"{idle.router.connections / idle_n:>11.2f}"
    )
    print_cpu("purchase", [(concurrent.cpu, n), (idle.cpu, idle_n)], args)
    if probe is not None:
        app = [name for name in probe.cpu.procs if name in ("serve", "web")]
        app_cpu = sum(probe.cpu.procs[name] for name in app)
        print(
            f"  status polls alone ({probe.clients} clients, closed loop, {probe.wall:.1f} s): "
            f"{probe.polls / probe.wall:.0f} polls/s, p50 {1000 * p50(probe.latencies):.0f} ms, "
            f"CPU {1000 * app_cpu / max(1, probe.polls):.2f} ms/poll in {'+'.join(app)}"
            + (
                f", Postgres backends {1000 * probe.cpu.db / max(1, probe.polls):.2f} ms/poll"
                if args.postgres
                else ""
            )
        )
    for label, res in (("at once", concurrent), ("one at a time", idle)):
        for p in res.errors[:5]:
            print(f"  error ({label}) buyer {p.index} {p.phone}: {p.error}")
    ok_c = [p for p in concurrent.purchases if not p.error]
    ok_i = [p for p in idle.purchases if not p.error]
    if ok_c and ok_i:
        c_ack = [p.provisioned_at - p.completed_at for p in ok_c]
        i_ack = [p.provisioned_at - p.completed_at for p in ok_i]
        c_use = [p.usable_s for p in ok_c]
        i_use = [p.usable_s for p in ok_i]
        print(
            f"  ratios {n} at once / one at a time: callback->ack p50 {p50(c_ack) / p50(i_ack):.1f}x, "
            f"p99 {p99(c_ack) / p50(i_ack):.1f}x (vs the idle p50); client initiate->usable p50 "
            f"{p50(c_use) / p50(i_use):.1f}x, p99 {p99(c_use) / p50(i_use):.1f}x; "
            f"callback->ack p50 / router floor {p50(c_ack) / p50(base.adds):.0f}x"
        )


# --------------------------------------------------------------------------------------------------


async def check_router_users(control: RouterControl, port: int, provider: Provider) -> str | None:
    """Every provisioned voucher of the provider is a user on its router, and nothing else is."""
    on_router = {u["name"] for u in await control.users(port)}
    async with unit_of_work(readonly=True) as session:
        in_db = set(
            await session.scalars(
                select(Voucher.code).where(
                    Voucher.router_id == provider.router_id, Voucher.status == VoucherStatus.provisioned
                )
            )
        )
    if on_router != in_db:
        return (
            f"router users differ from provisioned vouchers: {len(on_router - in_db)} only on the router, "
            f"{len(in_db - on_router)} only in the database"
        )
    return None


async def bench(
    args: argparse.Namespace,
    db: Database,
    procs: dict[str, Proc],
    worker: Proc,
    base_url: str,
    control_url: str,
    ports: tuple[int, int, int],
    router_password: str,
    namespace: str,
    daraja_url: str | None,
) -> int:
    global _rt
    settings = load_settings(
        DATABASE_URL=db.url,
        REDIS_URL=args.redis_url if args.postgres else None,
        REDIS_NAMESPACE=namespace,
        DARAJA_SIMULATOR_URL=daraja_url,
        LOG_LEVEL="WARNING",
    )
    _rt = configure(settings)
    _rt.jobs.declare_actors()
    ours_port, base_port, client_port = ports
    all_procs = list(procs.values())
    try:
        provider = await seed(ours_port, router_password)
        print(f"seeded one hotspot provider, router {ours_port}, plan {PLAN.name!r}", file=sys.stderr)
        if args.postgres:
            wait_log_line(worker, "worker running")
        await wait_http(f"{base_url}/healthz", all_procs)
        meter = CpuMeter({n: p.pid for n, p in procs.items()}, db.name, args.postgres)
        async with aiohttp.ClientSession() as http:
            control = RouterControl(http, control_url)

            # -- warm-up: the app's first vouchers and purchases (imports, pools, the router profile)
            t = time.perf_counter()
            warm = await provision_batch(provider, WARMUP_VOUCHERS, all_procs)
            warm_buy = await buy_many(
                base_url, provider, 0, WARMUP_PURCHASES, at_once=False, poll=args.poll_ms / 1000, within=60
            )
            if warm_buy.errors:
                raise RuntimeError(f"warm-up purchase failed: {warm_buy.errors[0].error}")
            print(
                f"warm-up: {warm.n} vouchers, {WARMUP_PURCHASES} purchases "
                f"in {time.perf_counter() - t:.1f} s",
                file=sys.stderr,
            )
            await control.clear_calls(ours_port)

            # -- 1 baseline: librouteros, one connection, sequential adds
            before = meter.snapshot()
            wall, adds = await asyncio.to_thread(baseline_adds, base_port, router_password, args.vouchers)
            base = BaselineResult(args.vouchers, wall, adds, CpuMeter.between(before, meter.snapshot()))
            calls = await control.calls(base_port)
            base.router = traffic(calls)
            print(f"baseline: {base.n} adds in {base.wall:.2f} s", file=sys.stderr)
            before = meter.snapshot()
            wall, latencies = await client_floor(client_port, router_password, args.vouchers)
            client = BaselineResult(
                args.vouchers, wall, latencies, CpuMeter.between(before, meter.snapshot())
            )
            client.router = traffic(await control.calls(client_port))
            print(f"RouterClient: {client.n} vouchers in {client.wall:.2f} s", file=sys.stderr)

            # -- 1 ours
            sessions_before = await pg_sessions(args.pg_server, db.name) if db.name else None
            profile = args.profile / "batch.txt" if args.profile else None
            spy = start_profiler(profile, worker.pid) if profile else None
            spied = time.perf_counter()
            before = meter.snapshot()
            try:
                ours = await provision_batch(provider, args.vouchers, all_procs)
            finally:
                after = meter.snapshot()
                stop_profiler(spy)
            batch_profiled = time.perf_counter() - spied
            ours.cpu = CpuMeter.between(before, after)
            ours.router = traffic(await control.calls(ours_port))
            if db.name and sessions_before is not None:
                await asyncio.sleep(STATS_FLUSH)
                ours.pg_sessions = await pg_sessions(args.pg_server, db.name) - sessions_before
            print(f"ours: {ours.n} vouchers provisioned in {ours.wall:.2f} s", file=sys.stderr)
            await control.clear_calls(ours_port)

            # -- 2 baseline: one purchase at a time
            first = WARMUP_PURCHASES
            before = meter.snapshot()
            idle = await buy_many(
                base_url, provider, first, args.idle, at_once=False, poll=args.poll_ms / 1000, within=60
            )
            idle.cpu = CpuMeter.between(before, meter.snapshot())
            idle.router = traffic(await control.calls(ours_port))
            first += args.idle
            await control.clear_calls(ours_port)
            # -- 2 ours: --buyers at once
            profile = args.profile / "buy.txt" if args.profile else None
            spy = start_profiler(profile, worker.pid) if profile else None
            spied = time.perf_counter()
            before = meter.snapshot()
            try:
                concurrent = await buy_many(
                    base_url,
                    provider,
                    first,
                    args.buyers,
                    at_once=True,
                    poll=args.poll_ms / 1000,
                    within=120,
                )
            finally:
                after = meter.snapshot()
                stop_profiler(spy)
            buy_profiled = time.perf_counter() - spied
            concurrent.cpu = CpuMeter.between(before, after)
            concurrent.router = traffic(await control.calls(ours_port))
            print(
                f"purchases: {len(concurrent.purchases)} at once in {concurrent.wall:.1f} s, "
                f"{len(concurrent.errors)} errors",
                file=sys.stderr,
            )
            usable = [
                f"{base_url}/api/captive/payments/{p.payment_id}"
                for p in concurrent.purchases
                if p.payment_id is not None and not p.error
            ]
            probe = await poll_probe(usable, args.buyers, PROBE_SECONDS, meter) if usable else None
            mismatch = await check_router_users(control, ours_port, provider)
        for p in all_procs:
            p.check_alive()

        fields = Settings.model_fields
        backend = (
            f"Postgres + Redis, lipapush web + lipapush worker --threads {args.worker_threads}, "
            f"DB pool {fields['DB_POOL_SIZE'].default}+{fields['DB_MAX_OVERFLOW'].default}"
            if args.postgres
            else "SQLite, lipapush serve (in-process broker, worker (4 threads) and scheduler)"
        )
        backend += (
            "; Daraja stand-in mounted in the app"
            if daraja_url is None
            else "; Daraja stand-in as its own process"
        )
        print()
        print(
            f"voucher_provisioning: {args.vouchers} vouchers, {args.buyers} buyers; {backend}; "
            f"RouterOS stand-in (sim.routeros 7.18.2) as its own process; LOG_LEVEL={args.log_level}; python "
            f"{platform.python_version()}, librouteros {librouteros_version()}, {os.cpu_count()} CPUs"
        )
        print()
        report_batch(ours, client, base, args)
        report_buy(concurrent, idle, base, probe, args)
        status = 0
        if mismatch:
            print(f"ERROR: {mismatch}")
            status = 1
        if concurrent.errors or idle.errors:
            status = 1
        if args.profile:
            print()
            print(f"where the {worker.name} process spent the batch:")
            summarise_profile(args.profile / "batch.txt", batch_profiled)
            print(f"where the {worker.name} process spent the {args.buyers} purchases:")
            summarise_profile(args.profile / "buy.txt", buy_profiled)
        return status
    finally:
        await _rt.aclose()


def librouteros_version() -> str:
    from importlib.metadata import version

    try:
        return version("librouteros")
    except Exception:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vouchers", type=int, default=500, help="vouchers in the batch (500)")
    parser.add_argument("--buyers", type=int, default=50, help="concurrent purchases (50)")
    parser.add_argument("--idle", type=int, default=5, help="purchases one at a time, the baseline (5)")
    parser.add_argument(
        "--poll-ms", type=int, default=150, help="status polling interval of each buyer (150)"
    )
    parser.add_argument("--callback-delay", type=float, default=0.0, help="SIM_CALLBACK_DELAY seconds (0)")
    parser.add_argument(
        "--mounted-daraja",
        action="store_true",
        help="use the Daraja simulator mounted in the app (/sim/daraja) instead of its own process",
    )
    parser.add_argument("--postgres", action="store_true", help="Postgres + Redis (default: SQLite)")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--worker-threads", type=int, default=8, help="lipapush worker --threads (8)")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the app (INFO)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the job process into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) and the database")
    args = parser.parse_args()
    if args.vouchers < 1 or args.buyers < 1 or args.idle < 1:
        parser.error("--vouchers, --buyers and --idle must be at least 1")

    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the cleanup below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    busy = psutil.cpu_percent(interval=1.0)
    if busy > 25:
        print(
            f"warning: the machine is {busy:.0f}% busy before the run; rates will be lower", file=sys.stderr
        )
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-bench-voucher-"))
    namespace = f"lipapush-bench-voucher-{uuid.uuid4().hex[:8]}"
    procs: dict[str, Proc] = {}
    db: Database | None = None
    try:
        if args.postgres:
            db = run_in_loop(create_pg_database(args.pg_server))
        else:
            db = Database(f"sqlite+aiosqlite:///{workdir / 'bench.db'}", None)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        app_env = child_env(
            DATABASE_URL=db.url,
            PUBLIC_BASE_URL=base_url,
            LOG_LEVEL=args.log_level,
            SIM_CALLBACK_DELAY=str(args.callback_delay),
        )
        if args.postgres:
            app_env.update(REDIS_URL=args.redis_url, REDIS_NAMESPACE=namespace)
        daraja_url = None if args.mounted_daraja else f"http://127.0.0.1:{free_port()}"
        if daraja_url:
            app_env.update(DARAJA_SIMULATOR_URL=daraja_url)
        migrate = subprocess.run(
            [*lipapush_cmd(), "db", "upgrade"], env=app_env, cwd=workdir, capture_output=True, text=True
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"lipapush db upgrade failed:\n{migrate.stdout}\n{migrate.stderr}")

        router_port, control_port = free_ports(3), free_port()
        router_password = secrets.token_urlsafe(12)
        sim_env = child_env(PYTHONPATH=str(ROOT))
        sim_args = (
            f"-m sim.routeros --port {router_port} --user {ROUTER_USER} --password {router_password} "
            f"--routers 3 --control-port {control_port}"
        )
        procs["routersim"] = start_proc(
            "routersim",
            [sys.executable, *sim_args.split()],
            sim_env,
            workdir,
        )
        if daraja_url:
            daraja_port = daraja_url.rsplit(":", 1)[1]
            daraja_args = (
                f"sim daraja --host 127.0.0.1 --port {daraja_port} --callback-delay {args.callback_delay}"
            )
            procs["daraja"] = start_proc(
                "daraja",
                [*lipapush_cmd(), *daraja_args.split()],
                child_env(),
                workdir,
            )
        if args.postgres:
            web_cmd = [*lipapush_cmd(), "web", "--host", "127.0.0.1", "--port", str(port)]
            procs["web"] = start_proc(
                "web", web_cmd + ([] if daraja_url else ["--with-simulator"]), app_env, workdir
            )
            procs["worker"] = start_proc(
                "worker", [*lipapush_cmd(), "worker", "--threads", str(args.worker_threads)], app_env, workdir
            )
            worker = procs["worker"]
        else:
            procs["serve"] = start_proc(
                "serve",
                [*lipapush_cmd(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                app_env,
                workdir,
            )
            worker = procs["serve"]
        control_url = f"http://127.0.0.1:{control_port}"
        run_in_loop(wait_http(f"{control_url}/_sim/routers", [procs["routersim"]]))
        if daraja_url:
            run_in_loop(wait_http(f"{daraja_url}/_sim/callbacks", [procs["daraja"]]))
        return int(
            run_in_loop(
                bench(
                    args,
                    db,
                    procs,
                    worker,
                    base_url,
                    control_url,
                    (router_port, router_port + 1, router_port + 2),
                    router_password,
                    namespace,
                    daraja_url,
                )
            )
        )
    finally:
        for p in procs.values():
            with contextlib.suppress(Exception):
                p.stop()
        if args.postgres:
            with contextlib.suppress(Exception):
                delete_redis_namespace(args.redis_url, namespace)
        if db is not None and not args.keep:
            with contextlib.suppress(Exception):
                run_in_loop(db.drop())
        if args.keep:
            print(f"kept: {workdir} {db.name if db and db.name else ''}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
