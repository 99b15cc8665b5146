"""USSD response latency at N concurrent sessions, the real app against a bare FastAPI baseline. Run by hand:

    .venv/bin/python bench/ussd_latency.py               # SQLite temp file, lipapush serve
    .venv/bin/python bench/ussd_latency.py --postgres    # fresh Postgres database + Redis, lipapush web

Setup (untimed): a fresh database (a SQLite file in a temp dir, or with ``--postgres`` a throwaway
database on ``--pg-server``), migrated by ``lipapush db upgrade``; ``--sessions`` active businesses made
through the real services (``signup``, ``save_channel``, ``mark_verified``), each owner registered for
USSD on its own phone with PIN 4826 (``core.auth.pins.register_ussd``), and ``--history`` payments per
business (bulk rows spread over the last ~2 days, so "Last 5 payments" and "Today" read something; in
the simulator channel's mode, test, so priced at nothing, as the product records them).
Then the app runs as a real process: ``lipapush serve`` on SQLite (embedded mode: in-process broker,
worker and scheduler), ``lipapush web`` with ``--postgres`` (``REDIS_URL`` and a unique
``REDIS_NAMESPACE``, so the USSD session state lives in Redis), on a free port; the bench waits for
``/healthz``.

Load: aiohttp (one ``ClientSession``, a keep-alive connection per session), ``--sessions`` virtual users
at once; each one dials ``--rounds`` sessions one after the other (a fresh ``sessionId`` each), playing
Africa's Talking's gateway: every hop is a form POST of ``sessionId, serviceCode, phoneNumber
(+2547…), networkCode, text`` with ``text`` every input so far joined by ``*``, and the next hop is sent
as soon as the reply arrives (no think time: the worst case for the server). Four sessions in five
(user i, round r: (i + r) % 5 != 4) are the merchant flow on user i's own registered phone:

    dial, PIN 4826 (a keyed hash, core.auth.pins), 2 last payments, 0 back, 3 today, 00 home,
    1 request payment, 0712345678, 150, 2 cancel (END; no push is ever sent)

the fifth is the payer flow on an unregistered phone:

    dial, 1 pay a business, an unknown business number (999999: re-prompted), 00 home, 2 sign up (END)

Every hop is timed (``perf_counter`` around the POST and reading the body) and checked: a non-200 or a
body not starting with ``CON ``/``END `` is a protocol error (the gateway would drop the session: the
bench stops that session and counts it; this must be 0), a screen other than the expected one is an
"unexpected screen" (its first examples are printed). One untimed warm-up round goes first on each side.

Baseline, same run: ``bench/_ussd_baseline.py``, a bare FastAPI app whose ``POST /ussd`` reads the same
form and returns ``PlainTextResponse("CON hello")``, served by ``uvicorn.run`` with the same arguments
and logging as ``lipapush web`` (one process), loaded by the same code with the same sessions, hops and
concurrency. The app is stopped while the baseline runs.

Printed: p50/p90/p99/max per hop kind, for PIN hops, for every other hop, and overall; hops/s;
CPU ms per hop of the server process, of the load generator and (``--postgres``) of the database's
Postgres backends and Redis; protocol errors; hops over the gateway's 15 s application response
deadline and the headroom factor 15 s / p99 (refs/frontends.md §3.1; overall and for the PIN hop);
and the ratios ours / baseline of p50, p99 and hops/s. At N sessions in a closed loop, p50 is mostly
queueing: about N / (hops/s); CPU ms per hop is the figure that carries across machines. Sessions
held up on slow PIN hops leave fewer requests in flight for the other hops, so the overall p50 ratio can
even fall below 1 (SQLite): read it next to the per-hop rows and hops/s.

Options: ``--sessions`` (100), ``--rounds`` (3), ``--history`` (60), ``--log-level`` (the product's
``LOG_LEVEL``, INFO: uvicorn's access log on, as in production; the baseline gets the same),
``--postgres``, ``--pg-server``, ``--redis-url``, ``--profile DIR`` (py-spy, installed in the venv,
records the process serving the app during its timed phase: with ``lipapush web`` the supervisor's forked
child, not the parent that only waits on it; raw collapsed stacks in DIR, and a summary is printed),
``--keep`` (keep the temp dir with the process logs, and the database). Processes, the temp dir, the
Postgres database and the Redis namespace are cleaned up on the way out, failures included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psutil
from sqlalchemy import insert, select

from core.auth.models import User
from core.auth.pins import new_pin_hash, register_ussd
from core.config import Settings, load_settings
from core.db import utcnow
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.phones import Msisdn
from core.runtime import configure, unit_of_work
from core.tenants.models import ChannelKind, Environment, Tenant, TenantStatus
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants
from sim.africastalking.ids import session_id as new_session_id

PIN = "4826"
UNKNOWN_CODE = "999999"
CUSTOMER_PHONE = "0712345678"
SERVICE_CODE = "*384*123#"
NETWORK_CODE = "63902"
PROFILE_RATE = 200  # py-spy samples per second (--profile)
STATS_FLUSH = 1.5  # Postgres backends publish their counters at most once a second
DEADLINE = 15.0  # Africa's Talking's application response timeout (refs/frontends.md §3.1)
# Settings the child processes must not inherit from the caller's environment.
CHILD_UNSET = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_NAMESPACE",
    "PUBLIC_BASE_URL",
    "LOG_LEVEL",
    "LOG_JSON",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "AT_CALLBACK_SECRET",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
)


# --------------------------------------------------------------------------------------------------
# Who dials, and what each hop should answer


@dataclass(frozen=True)
class Dialler:
    msisdn: str  # 2547…
    business: str | None  # the merchant's business name; None for a payer (unregistered phone)

    @property
    def intl(self) -> str:
        return "+" + self.msisdn


@dataclass(frozen=True)
class Hop:
    kind: str
    value: str | None  # None: the dial itself (text="")
    expect: Callable[[Dialler, str], bool]


def _home(d: Dialler, body: str) -> bool:
    return body.startswith(f"CON {d.business}\n1. Request payment\n")


def _payer_home(d: Dialler, body: str) -> bool:
    return body.startswith("CON Welcome to lipapush\n1. Pay a business\n2. Sign up")


MERCHANT_FLOW = [
    Hop("m dial", None, lambda d, b: b == "CON Welcome to lipapush.\nEnter your 4-digit PIN:"),
    Hop("m PIN", PIN, _home),
    Hop("m 2 last 5", "2", lambda d, b: b.startswith(("CON Last payments:\n", "CON No payments yet."))),
    Hop("m 0 back", "0", _home),
    Hop("m 3 today", "3", lambda d, b: b.startswith("CON Today ") and "\nPaid: " in b),
    Hop("m 00 home", "00", _home),
    Hop("m 1 request", "1", lambda d, b: b == "CON Customer phone number:"),
    Hop("m phone", CUSTOMER_PHONE, lambda d, b: b == "CON Amount in KES:"),
    Hop("m amount", "150", lambda d, b: b.startswith(f"CON Request KES 150 from {CUSTOMER_PHONE}?\n1. Send")),
    Hop("m 2 cancel", "2", lambda d, b: b == "END Cancelled. Nothing was sent."),
]
PAYER_FLOW = [
    Hop("p dial", None, _payer_home),
    Hop("p 1 pay", "1", lambda d, b: b == "CON Enter the business number:"),
    Hop(
        "p unknown no.",
        UNKNOWN_CODE,
        lambda d, b: (
            b.startswith(f"CON No business has the number {UNKNOWN_CODE}")
            and b.endswith("\nEnter the business number:")
        ),
    ),
    Hop("p 00 home", "00", _payer_home),
    Hop("p 2 signup", "2", lambda d, b: b.startswith("END To collect M-Pesa payments with lipapush")),
]
KINDS = [h.kind for h in MERCHANT_FLOW + PAYER_FLOW]
PIN_KIND = "m PIN"


@dataclass(frozen=True)
class Caller:
    merchant: Dialler
    payer: Dialler

    def session(self, index: int, round_: int) -> tuple[Dialler, list[Hop]]:
        if (index + round_) % 5 == 4:
            return self.payer, PAYER_FLOW
        return self.merchant, MERCHANT_FLOW


def merchant_msisdn(i: int) -> str:
    return f"2547110{i:05d}"


def payer_msisdn(i: int) -> str:
    return f"2547220{i:05d}"


# --------------------------------------------------------------------------------------------------
# Seeding, through the product's services


async def seed(database_url: str, n: int, history: int) -> list[Caller]:
    """n active businesses, each owner's USSD phone registered with the PIN, `history` payments each;
    returns one caller per business (its owner's phone, and an unregistered phone for the payer flow)."""
    rt = configure(load_settings(DATABASE_URL=database_url, REDIS_URL=None, LOG_LEVEL="WARNING"))
    rnd = random.Random(254)
    statuses = [PaymentStatus.success] * 6 + [
        PaymentStatus.failed,
        PaymentStatus.cancelled,
        PaymentStatus.timeout,
        PaymentStatus.pending,
    ]
    users: list[Caller] = []
    now = utcnow()
    try:
        pin_hash = await new_pin_hash(PIN)
        for i in range(n):
            name = f"Duka la Mama {i + 1:03d}"
            async with unit_of_work() as session:
                tenant, owner = await signup(
                    session,
                    business_name=name,
                    email=f"ussd-bench-{i}-{uuid.uuid4().hex[:6]}@example.com",
                    password="bench-pass-123",
                    phone=f"07{20_000_000 + i:08d}",
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
                row = await session.get(User, owner.id)
                assert row is not None
                await register_ussd(session, user=row, phone=Msisdn(merchant_msisdn(i)), pin_hash=pin_hash)
                rows: list[dict[str, object]] = []
                for k in range(history):
                    status = rnd.choice(statuses)
                    amount = rnd.randrange(50, 20_000)
                    at = now - timedelta(minutes=(history - k) * 2880 // max(1, history))
                    rows.append(
                        {
                            "id": uuid.uuid4(),
                            "tenant_id": tenant.id,
                            "channel_id": channel.id,
                            "mode": channel.mode,
                            "initiated_by_id": owner.id,
                            "source": PaymentSource.ussd,
                            "status": status,
                            "amount": amount,
                            "phone": f"25479{i:03d}{rnd.randrange(10_000):04d}",
                            "account_reference": "BENCH",
                            "description": "Bench",
                            "commission_bps": None,  # test mode: no commission
                            "commission_cents": 0,
                            "reserved_cents": 0,
                            "created_at": at,
                            "updated_at": at,
                            "completed_at": None if status is PaymentStatus.pending else at,
                            "query_attempts": 0,
                        }
                    )
                if rows:
                    await session.execute(insert(Payment), rows)
            users.append(
                Caller(
                    merchant=Dialler(merchant_msisdn(i), name),
                    payer=Dialler(payer_msisdn(i), None),
                )
            )
        async with unit_of_work() as session:
            # A business drew the number the payer flow types as unknown (1 in 9,000 at 100 businesses):
            # give it another one, so the payer flow always meets an unknown number.
            holder = await session.scalar(select(Tenant).where(Tenant.business_number == UNKNOWN_CODE))
            if holder is not None:
                taken = set(await session.scalars(select(Tenant.business_number)))
                holder.business_number = next(str(c) for c in range(100_000, 999_999) if str(c) not in taken)
        return users
    finally:
        await rt.aclose()


# --------------------------------------------------------------------------------------------------
# Databases, processes


@dataclass
class Database:
    url: str
    name: str | None  # the Postgres database; None for SQLite
    drop: Callable[[], Coroutine[Any, Any, None]] | None = None


async def create_pg_database(server: str) -> Database:
    import asyncpg

    name = f"lipapush_bench_ussd_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return Database(f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}", name, drop)


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
        keys = list(r.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            r.delete(*keys)
        return len(keys)
    finally:
        r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lipapush_cmd() -> list[str]:
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


async def wait_healthy(base_url: str, proc: Proc, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            proc.check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{base_url}/healthz") as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base_url}/healthz not healthy after {within:.0f}s:\n{proc.tail()}")
            await asyncio.sleep(0.1)


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
    server: float
    bench: float
    backends: dict[int, float]
    redis: dict[int, float]
    machine: float


class CpuMeter:
    """CPU seconds of the server process (all its threads and forked children), of this
    process (the load generator), of the Postgres backends serving the bench's database (their process
    title names it), of redis-server, and of the whole machine."""

    def __init__(self, server_pid: int, db_name: str | None, with_redis: bool) -> None:
        self.server_pid = server_pid
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
        # `lipapush web` serves from a forked child (web/supervisor.py): the server is the whole tree.
        server = _cpu_of(self.server_pid)
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.server_pid).children(recursive=True):
                server += _cpu_of(child.pid)
        return CpuSnapshot(server, time.process_time(), backends, redis, _machine_busy())


@dataclass
class Cpu:
    server: float = 0.0
    bench: float = 0.0
    db: float = 0.0
    db_complete: bool = True  # False when some backends exited during the phase (their CPU is lost)
    redis: float = 0.0
    machine: float = 0.0


def cpu_between(a: CpuSnapshot, b: CpuSnapshot) -> Cpu:
    return Cpu(
        server=b.server - a.server,
        bench=b.bench - a.bench,
        db=sum(t - a.backends.get(pid, 0.0) for pid, t in b.backends.items()),
        db_complete=a.backends.keys() <= b.backends.keys(),
        redis=sum(t - a.redis.get(pid, 0.0) for pid, t in b.redis.items()),
        machine=b.machine - a.machine,
    )


# --------------------------------------------------------------------------------------------------
# The load generator


@dataclass
class Sample:
    kind: str
    seconds: float


@dataclass
class Phase:
    samples: list[Sample] = field(default_factory=list)
    sessions: int = 0
    protocol_errors: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)
    wall: float = 0.0
    cpu: Cpu = field(default_factory=Cpu)
    profiled: float = 0.0  # seconds py-spy recorded (--profile)
    pg_sessions: int | None = None  # Postgres connections opened to the database during the phase


async def drive(
    url: str,
    users: list[Caller],
    rounds: int,
    *,
    first_round: int,
    check: bool,
    meter: CpuMeter | None,
) -> Phase:
    """Every user dials `rounds` sessions one after the other; the users run concurrently. `check`:
    compare each screen with the expected one (off for the baseline, which always says CON hello)."""
    phase = Phase()
    connector = aiohttp.TCPConnector(limit=len(users))
    timeout = aiohttp.ClientTimeout(total=60)

    async def one_user(http: aiohttp.ClientSession, index: int, user: Caller) -> None:
        for r in range(first_round, first_round + rounds):
            dialler, flow = user.session(index, r)
            sid = new_session_id()
            inputs: list[str] = []
            phase.sessions += 1
            for hop in flow:
                if hop.value is not None:
                    inputs.append(hop.value)
                form = {
                    "sessionId": sid,
                    "serviceCode": SERVICE_CODE,
                    "phoneNumber": dialler.intl,
                    "networkCode": NETWORK_CODE,
                    "text": "*".join(inputs),
                }
                start = time.perf_counter()
                try:
                    async with http.post(url, data=form) as resp:
                        body = await resp.text()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    phase.protocol_errors[type(exc).__name__] += 1
                    break
                elapsed = time.perf_counter() - start
                phase.samples.append(Sample(hop.kind, elapsed))
                if status != 200 or not body.startswith(("CON ", "END ")):
                    # The gateway drops the session: so does the bench.
                    phase.protocol_errors[f"HTTP {status}" if status != 200 else "not CON/END"] += 1
                    if len(phase.examples) < 5:
                        phase.examples.append(f"{hop.kind}: HTTP {status} {body[:120]!r}")
                    break
                if check and not hop.expect(dialler, body):
                    phase.unexpected += 1
                    if len(phase.examples) < 5:
                        phase.examples.append(f"{hop.kind} (text={form['text']!r}): {body[:160]!r}")
                    if body.startswith("END "):
                        break

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        before = meter.snapshot() if meter else None
        t0 = time.perf_counter()
        await asyncio.gather(*(one_user(http, i, u) for i, u in enumerate(users)))
        phase.wall = time.perf_counter() - t0
        if meter and before:
            phase.cpu = cpu_between(before, meter.snapshot())
    return phase


# --------------------------------------------------------------------------------------------------
# Profiling (optional)


def serving_pid(pid: int) -> int:
    """The process that serves requests: `lipapush web`'s forked child (web/supervisor.py), whose parent
    only waits; `lipapush serve` and the baseline serve from `pid` itself."""
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(pid).children()
        if len(children) == 1:
            return children[0].pid
    return pid


def start_profiler(out: Path, pid: int) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("py-spy not found: pip install py-spy into the venv", file=sys.stderr)
        return None
    out.mkdir(parents=True, exist_ok=True)
    # No --gil: argon2 runs in worker threads without the GIL, and that CPU matters here too.
    cmd = [spy, "record", "--pid", str(pid), "--rate", str(PROFILE_RATE), "--format", "raw", "--threads"]
    cmd += ["--nonblocking", "-o", str(out / "app.txt")]
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(out / "py-spy.log").open("wb"))
    time.sleep(1.0)  # let it attach
    if spy_proc.poll() is not None:
        why = (out / "py-spy.log").read_text(errors="replace").splitlines()[:1]
        print(
            f"py-spy could not attach ({' '.join(why)}): profile a test run with cProfile instead",
            file=sys.stderr,
        )
        return None
    return spy_proc


def stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()


def summarise_profile(path: Path, wall: float, top: int = 12) -> None:
    """Where the app process spent the timed phase. py-spy samples every thread that is running or
    runnable (not blocked in a syscall) PROFILE_RATE times a second, so a thread's samples over
    PROFILE_RATE x wall is the fraction of the phase it was busy (or waiting for a CPU)."""
    if not path.exists():
        print(f"profile: {path} was not written (see py-spy.log beside it)")
        return
    threads: Counter[str] = Counter()
    loop_pkg: Counter[str] = Counter()
    loop_ours: Counter[str] = Counter()
    loop_total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            threads["argon2 (PIN checks)" if "argon2" in stack else "other threads"] += count
            continue
        threads["event loop"] += count
        loop_total += count
        loop_pkg[_package(frames[-1]) if len(frames) > 1 else "(no Python frame: uvloop's C code)"] += count
        # SQLAlchemy's sync half runs in greenlets, whose stacks py-spy shows without the caller:
        # these inclusive shares of the checkout's functions are lower bounds.
        for name in {_frame_name(f) for f in frames[1:]}:
            if name.startswith(("core/", "ussd/", "web/")) and not name.startswith("web/cli.py"):
                loop_ours[name] += count
    if not loop_total:
        print("profile: no samples of the event loop")
        return
    possible = PROFILE_RATE * wall
    print(
        f"\nprofile of the app's timed phase ({path}; % of the {wall:.1f} s recorded each thread was busy):"
    )
    for name, n in threads.most_common():
        print(f"  {100 * n / possible:6.1f}%  {name}")
    print("  event loop, by package of the innermost frame (% of the loop's samples):")
    for name, n in loop_pkg.most_common(top):
        print(f"  {100 * n / loop_total:6.1f}%  {name}")
    print("  event loop, checkout functions, inclusive (% of the loop's samples; lower bounds):")
    for name, n in loop_ours.most_common(top):
        print(f"  {100 * n / loop_total:6.1f}%  {name}")


def _frame_name(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `path/to/file.py: func`."""
    func, _, where = frame.partition(" (")
    return f"{where.rsplit(':', 1)[0]}: {func}"


def _package(frame: str) -> str:
    file = _frame_name(frame).split(":", 1)[0]
    if file.startswith("<"):  # <sqlalchemy generated ...>
        return file[1:].split()[0]
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in file or file.endswith(".py") else file


# --------------------------------------------------------------------------------------------------
# Report


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))]


@dataclass
class Row:
    label: str
    n: int
    p50: float
    p90: float
    p99: float
    max: float


def summarise(label: str, samples: list[Sample]) -> Row:
    times = sorted(s.seconds * 1000 for s in samples)
    if not times:
        return Row(label, 0, math.nan, math.nan, math.nan, math.nan)
    return Row(label, len(times), pct(times, 0.5), pct(times, 0.9), pct(times, 0.99), times[-1])


def headroom(p99_ms: float) -> str:
    return f"{DEADLINE * 1000 / p99_ms:.1f}x" if p99_ms > 0 else "-"


def report(args: argparse.Namespace, ours: Phase, base: Phase, backend: str) -> int:
    header = f"{'':<9} {'hop':<15} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))

    def line(side: str, row: Row) -> None:
        print(
            f"{side:<9} {row.label:<15} {row.n:>6} {row.p50:>8.1f} {row.p90:>8.1f} {row.p99:>8.1f} "
            f"{row.max:>8.1f}"
        )

    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for s in ours.samples:
        by_kind[s.kind].append(s)
    for i, kind in enumerate(KINDS):
        line("ours" if i == 0 else "", summarise(kind, by_kind[kind]))
    pin_row = summarise("PIN hops", by_kind[PIN_KIND])
    other_row = summarise("other hops", [s for s in ours.samples if s.kind != PIN_KIND])
    ours_all = summarise("all", ours.samples)
    print("-" * len(header))
    line("ours", pin_row)
    line("", other_row)
    line("", ours_all)
    base_all = summarise("all", base.samples)
    line("baseline", base_all)
    print()

    o_rate, b_rate = len(ours.samples) / ours.wall, len(base.samples) / base.wall

    def per_hop(p: Phase, seconds: float) -> float:
        return 1000 * seconds / max(1, len(p.samples))

    print(f"{'':<38} {'ours':>9} {'baseline':>9}")
    print(f"{'hops/s':<38} {o_rate:>9.0f} {b_rate:>9.0f}")
    print(f"{'sessions/s':<38} {ours.sessions / ours.wall:>9.1f} {base.sessions / base.wall:>9.1f}")

    def cpu_line(label: str, ours_s: float, base_s: float, mark: str = "") -> None:
        print(f"{label:<38} {f'{per_hop(ours, ours_s):.2f}{mark}':>9} {per_hop(base, base_s):>9.2f}")

    cpu_line("CPU ms/hop, server process", ours.cpu.server, base.cpu.server)
    cpu_line("CPU ms/hop, load generator", ours.cpu.bench, base.cpu.bench)
    if args.postgres:
        cpu_line("CPU ms/hop, its Postgres backends", ours.cpu.db, 0.0, "" if ours.cpu.db_complete else "+")
        cpu_line("CPU ms/hop, redis-server", ours.cpu.redis, base.cpu.redis)
        print(f"{'Postgres connections opened':<38} {ours.pg_sessions:>9} {0:>9}")
    errors = sum(ours.protocol_errors.values())
    base_errors = sum(base.protocol_errors.values())
    over = sum(1 for s in ours.samples if s.seconds > DEADLINE)
    print(f"{'protocol errors (non-200, no CON/END)':<38} {errors:>9} {base_errors:>9}")
    print(f"{'unexpected screens':<38} {ours.unexpected:>9} {'-':>9}")
    base_over = sum(1 for s in base.samples if s.seconds > DEADLINE)
    print(f"{'hops over the 15 s deadline':<38} {over:>9} {base_over:>9}")
    if ours.protocol_errors or base.protocol_errors:
        print(
            f"protocol errors by kind: ours {dict(ours.protocol_errors)}, "
            f"baseline {dict(base.protocol_errors)}"
        )
    for ex in ours.examples:
        print(f"  e.g. {ex}")
    cpus = os.cpu_count() or 1
    for label, p in (("ours", ours), ("baseline", base)):
        known = p.cpu.server + p.cpu.bench + p.cpu.db + p.cpu.redis
        other = max(0.0, p.cpu.machine - known)
        if other > 0.1 * p.wall:
            print(
                f"note: other processes{'' if p.cpu.db_complete else ' (and exited Postgres backends)'} "
                f"used {other / p.wall:.2f} of the machine's {cpus} CPUs during the {label} phase"
            )
    print()
    print(
        f"15 s application response deadline (refs/frontends.md §3.1): headroom 15 s / p99 = "
        f"{headroom(ours_all.p99)} overall (p99 {ours_all.p99:.0f} ms), "
        f"{headroom(pin_row.p99)} on the PIN hop (p99 {pin_row.p99:.0f} ms), "
        f"{headroom(other_row.p99)} on the other hops (p99 {other_row.p99:.0f} ms)"
    )
    print(
        f"ratios ours/baseline: p50 {ours_all.p50 / base_all.p50:.1f}x, "
        f"p99 {ours_all.p99 / base_all.p99:.1f}x, "
        f"hops/s {o_rate / b_rate:.3f}x, server CPU/hop "
        f"{per_hop(ours, ours.cpu.server) / max(1e-9, per_hop(base, base.cpu.server)):.1f}x"
    )
    print(f"({backend})")
    if args.smoke:
        print(
            f"SMOKE P5 USSD hops/bare = {o_rate / b_rate:.3f} ({o_rate:.0f} vs {b_rate:.0f} hops/s; "
            f"p99 {ours_all.p99:.0f} vs {base_all.p99:.0f} ms)"
        )
    return 1 if errors or ours.unexpected or base_errors else 0


# --------------------------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CHILD_UNSET}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def run_in_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def measure(
    name: str,
    proc: Proc,
    url: str,
    users: list[Caller],
    args: argparse.Namespace,
    *,
    check: bool,
    db_name: str | None,
    profile: Path | None,
) -> Phase:
    async def go() -> Phase:
        await wait_healthy(url.rsplit("/", 1)[0], proc)
        t = time.perf_counter()
        warm = await drive(url, users, 1, first_round=0, check=check, meter=None)
        print(
            f"{name}: warm-up round, {len(warm.samples)} hops in {time.perf_counter() - t:.1f} s "
            f"(protocol errors {sum(warm.protocol_errors.values())}, unexpected screens {warm.unexpected})",
            file=sys.stderr,
        )
        for ex in warm.examples:
            print(f"  e.g. {ex}", file=sys.stderr)
        proc.check_alive()
        sessions_before = await pg_sessions(args.pg_server, db_name) if db_name else None
        spy = start_profiler(profile, serving_pid(proc.popen.pid)) if profile else None
        spied = time.perf_counter()
        meter = CpuMeter(proc.popen.pid, db_name, with_redis=args.postgres)
        try:
            phase = await drive(url, users, args.rounds, first_round=1, check=check, meter=meter)
        finally:
            if spy:
                stop_profiler(spy)
        phase.profiled = time.perf_counter() - spied if spy else 0.0
        if db_name and sessions_before is not None:
            await asyncio.sleep(STATS_FLUSH)
            phase.pg_sessions = await pg_sessions(args.pg_server, db_name) - sessions_before
        proc.check_alive()
        print(f"{name}: {len(phase.samples)} timed hops in {phase.wall:.1f} s", file=sys.stderr)
        return phase

    result: Phase = run_in_loop(go())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=100, help="concurrent USSD sessions (100)")
    parser.add_argument("--rounds", type=int, default=3, help="sessions each virtual user dials in turn (3)")
    parser.add_argument("--history", type=int, default=60, help="payments seeded per business (60)")
    parser.add_argument("--postgres", action="store_true", help="Postgres + Redis (default: SQLite)")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the app and the baseline (INFO)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the app's timed phase into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) and the database")
    parser.add_argument(
        "--smoke", action="store_true", help="a quick run for CI logs (bench/smoke.py): 20 sessions x 1 round"
    )
    args = parser.parse_args()
    if args.smoke:
        args.sessions, args.rounds = 20, 1

    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the cleanup below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    busy = psutil.cpu_percent(interval=1.0)
    if busy > 25:
        print(
            f"warning: the machine is {busy:.0f}% busy before the run; latencies will be higher",
            file=sys.stderr,
        )
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-bench-ussd-"))
    namespace = f"lipapush-bench-ussd-{uuid.uuid4().hex[:8]}"
    procs: list[Proc] = []
    db: Database | None = None
    try:
        if args.postgres:
            db = run_in_loop(create_pg_database(args.pg_server))
        else:
            db = Database(f"sqlite+aiosqlite:///{workdir / 'bench.db'}", None)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        app_env = child_env(DATABASE_URL=db.url, PUBLIC_BASE_URL=base_url, LOG_LEVEL=args.log_level)
        if args.postgres:
            app_env.update(REDIS_URL=args.redis_url, REDIS_NAMESPACE=namespace)
        migrate = subprocess.run(
            [*lipapush_cmd(), "db", "upgrade"], env=app_env, cwd=workdir, capture_output=True, text=True
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"lipapush db upgrade failed:\n{migrate.stdout}\n{migrate.stderr}")
        t = time.perf_counter()
        users = run_in_loop(seed(db.url, args.sessions, args.history))
        print(
            f"seeded {len(users)} businesses with a USSD phone and PIN (+{args.history} payments each) "
            f"in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )

        command = "web" if args.postgres else "serve"
        app = start_proc(
            f"lipapush-{command}",
            [*lipapush_cmd(), command, "--host", "127.0.0.1", "--port", str(port)],
            app_env,
            workdir,
        )
        procs.append(app)
        ours = measure(
            "ours",
            app,
            f"{base_url}/ussd",
            users,
            args,
            check=True,
            db_name=db.name,
            profile=args.profile,
        )
        app.stop()

        bport = free_port()
        baseline = start_proc(
            "baseline",
            [
                sys.executable,
                str(Path(__file__).with_name("_ussd_baseline.py")),
                "--host",
                "127.0.0.1",
                "--port",
                str(bport),
                "--log-level",
                args.log_level,
            ],
            child_env(),
            workdir,
        )
        procs.append(baseline)
        base = measure(
            "baseline",
            baseline,
            f"http://127.0.0.1:{bport}/ussd",
            users,
            args,
            check=False,
            db_name=None,
            profile=None,
        )
        baseline.stop()

        merchant_sessions = sum(
            1 for i in range(len(users)) for r in range(1, 1 + args.rounds) if (i + r) % 5 != 4
        )
        fields = Settings.model_fields
        backend = (
            f"Postgres + Redis, lipapush web, DB pool {fields['DB_POOL_SIZE'].default}+"
            f"{fields['DB_MAX_OVERFLOW'].default}"
            if args.postgres
            else "SQLite, lipapush serve (in-process broker, worker and scheduler)"
        )
        print()
        print(
            f"ussd_latency: {args.sessions} concurrent sessions x {args.rounds} rounds "
            f"({merchant_sessions} merchant, {len(users) * args.rounds - merchant_sessions} payer sessions) "
            f"= {len(ours.samples)} timed hops per side; {backend}; uvicorn 1 process; "
            f"LOG_LEVEL={args.log_level}; python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
            f"{os.cpu_count()} CPUs"
        )
        print()
        status = report(args, ours, base, backend)
        if args.profile:
            summarise_profile(args.profile / "app.txt", ours.profiled)
        return status
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.stop()
        if args.postgres:
            with contextlib.suppress(Exception):
                delete_redis_namespace(args.redis_url, namespace)
        if db is not None and db.drop is not None and not args.keep:
            with contextlib.suppress(Exception):
                run_in_loop(db.drop())
        if args.keep:
            print(f"kept: {workdir} {db.name if db and db.name else ''}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
