"""STK pushes accepted per second through ``POST /api/stk-push``, against a bare FastAPI endpoint doing one
asyncpg INSERT, both loaded the same way. Run by hand:

    .venv/bin/python bench/push_throughput.py                           # 3000 pushes, c=50, every side
    .venv/bin/python bench/push_throughput.py --mode processes --pushes 2000
    .venv/bin/python bench/push_throughput.py --smoke                   # seconds: web + worker vs bare
    .venv/bin/python bench/push_throughput.py --sqlite --pushes 20      # serve on SQLite, no baseline

Needs Postgres on 127.0.0.1:5432 (user ``postgres``, trust auth; ``--pg-admin-url``) and Redis
(``--redis-url``); ``--sqlite`` needs neither.

Sides, each on a fresh database (dropped at the end) so each starts from the same state:

* **ours (processes)**: ``lipapush web`` (uvicorn, one serving process) + ``lipapush worker
  --threads 8`` under a unique ``REDIS_NAMESPACE`` + the Daraja simulator as its own process
  (``lipapush sim daraja --callback-delay 0``: it answers each push at once and sends its success
  callback at once, to the web's ``/callbacks/daraja/{token}``, which the worker applies).
* **ours (serve)**: ``lipapush serve`` alone on Postgres (``--sqlite``: on a SQLite file), no Redis (its
  in-process broker, worker and scheduler), with its mounted simulator (``SIM_CALLBACK_DELAY=0``).
* **baseline**: this file run with ``--baseline-server``: a bare FastAPI app whose ``POST /api/stk-push``
  parses the same JSON body (phone, amount), reads the Authorization header and does one asyncpg
  INSERT ... RETURNING of a payment-like row into a scratch table (a scratch database), served by
  ``uvicorn.run`` with the arguments and logging ``lipapush web`` uses (one process, pool of 20
  connections like ``DB_POOL_SIZE``).

Ours: the database is migrated as the server's superuser and the app connects as ``lipapush_app``, bound
by row-level security as in production. One business through the real code
(``tests.support.factories.make_tenant``: signup, ``save_channel``, ``mark_verified``) on the hidden
"founding" plan (no monthly live-push limit), and an API key (``make_api_key``). ``--business live``
(the default): a verified production channel whose ``DARAJA_PRODUCTION_URL`` is the simulator, so pushes
are live (the plan's monthly count, commission rate), as a merchant's are; ``--business test``: a
simulator channel and a test key. ``STK_PUSHES_PER_KEY_PER_MINUTE`` is raised to 100 000 for the run,
and every push goes to its own phone (the per-phone limit is 5 a minute per business), avoiding the
simulator's failure numbers, so every push should be a 201.

Load: aiohttp, one session, ``--concurrency`` connections (50), each task POSTing the next body
(``{"phone": "07…", "amount": …}``, the same bodies on every side) with the API key; a non-201 is
counted by status, never retried (a push is not idempotent). ``--warmup`` untimed pushes first (and, on
our sides, until their callbacks are applied). **pushes/s** = 201s / (first timed POST -> last answer).
CPU per process (psutil; web and worker with their children, Postgres with its exited backends) is
measured from the first timed push until every accepted payment is final (its callback applied), so it
includes the callbacks each push causes; the baseline's until its last answer. Also printed: latency
p50/p99, when every payment was final, Postgres transactions / rows written / connections per push.

The smoke mode (``--smoke``: 300 pushes, 50 warm-up, ``--mode processes``) runs in well under a minute
and ends with one ``SMOKE P2 …`` line for ``bench/smoke.py``. ``--keep`` keeps the databases and logs.
The machine should be otherwise idle: "other processes" in the CPU lines says how much it was not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psutil
from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bench.callback_ingest import CpuMeter, Proc

# The bench side imports the product (bench.callback_ingest, core, tests.support) inside its functions,
# so that the baseline server, this same file run with --baseline-server, loads no more than it needs.

APP_ROLE = "lipapush_app"  # the application's plain role, as `lipapush db upgrade` makes it (core.migrate)
PER_KEY_PER_MINUTE = 100_000  # the setting's maximum: the run must never meet the per-key limit
GOALS = {"processes": 0.4, "serve": 0.25}  # ours/baseline wanted by the performance issue
POOL_SIZE = 20  # the baseline's asyncpg pool: the product's DB_POOL_SIZE default
# The baseline's timed phase sends the timed bodies again until it has sent this many: at ~1000/s,
# 300 pushes (--smoke) would be over in 0.3 s, too short to time or to read CPU ticks from.
BASELINE_MIN_PUSHES = 3000
POLL_EVERY = 0.1
SMOKE = {"pushes": 300, "warmup": 50}
LABELS = {
    "processes": "web + worker + simulator",
    "serve": "lipapush serve",
    "baseline": "bare FastAPI + asyncpg",
}


# -- the baseline server ----------------------------------------------------------------------------
BASELINE_SCHEMA = """
CREATE TABLE bench_pushes (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    status varchar(32) NOT NULL,
    mode varchar(8) NOT NULL,
    source varchar(32) NOT NULL,
    amount integer NOT NULL,
    phone varchar(12) NOT NULL,
    idempotency_key varchar(255),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    next_check_at timestamptz,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX ix_bench_pushes_tenant_created ON bench_pushes (tenant_id, created_at, id);
CREATE INDEX ix_bench_pushes_tenant_phone ON bench_pushes (tenant_id, phone);
CREATE INDEX ix_bench_pushes_status_next_check ON bench_pushes (status, next_check_at);
"""
BASELINE_INSERT = (
    "INSERT INTO bench_pushes (id, tenant_id, status, mode, source, amount, phone, created_at, updated_at, "
    "next_check_at) VALUES ($1, $2, 'pending', 'live', 'api', $3, $4, now(), now(), now() + interval "
    "'90 seconds') RETURNING id, status, amount, phone, created_at"
)
BASELINE_TENANT = "7d0c6a52-7a39-4c1e-9b54-3f1d6f0b9c11"


class PushIn(BaseModel):
    """The baseline's body: the fields every request sends. At module level, as FastAPI resolves the
    endpoint's (string) annotations in this module's namespace."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(pattern=r"^0[17]\d{8}$")
    amount: int = Field(ge=1, le=250_000)


def baseline_server(argv: list[str]) -> None:
    """Serve the baseline app until SIGTERM (uvicorn's own handling)."""
    parser = argparse.ArgumentParser(description="the bare FastAPI + asyncpg baseline of push_throughput")
    parser.add_argument("--baseline-server", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="postgresql://… of the scratch database")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    import uuid
    from collections.abc import AsyncIterator

    import asyncpg
    import uvicorn
    from fastapi import FastAPI, HTTPException

    from web.logs import setup_logging

    pools: list[asyncpg.Pool] = []
    tenant = uuid.UUID(BASELINE_TENANT)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pools.append(await asyncpg.create_pool(args.dsn, min_size=1, max_size=POOL_SIZE))
        yield
        await pools[0].close()

    app = FastAPI(title="push baseline", lifespan=lifespan)

    @app.post("/api/stk-push", status_code=201)
    async def stk_push(body: PushIn, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        if not authorization:
            raise HTTPException(401, "Authorization header missing")
        row = await pools[0].fetchrow(
            BASELINE_INSERT, uuid.uuid4(), tenant, body.amount, "254" + body.phone[1:]
        )
        assert row is not None
        return {
            "id": str(row["id"]),
            "status": row["status"],
            "amount": row["amount"],
            "phone": row["phone"],
            "created_at": row["created_at"].isoformat(),
        }

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    setup_logging(args.log_level)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        proxy_headers=True,
        log_config=None,
    )


# -- databases ----------------------------------------------------------------------------------------
@dataclass
class Database:
    url: str  # what the app connects with
    owner_url: str  # migrations, seeding checks and counters (bypasses row-level security on Postgres)
    name: str | None  # Postgres database to drop; None for SQLite


def create_database(args: argparse.Namespace, tag: str, workdir: Path) -> Database:
    from sqlalchemy.engine import make_url

    from bench.callback_ingest import create_pg_database

    if args.sqlite:
        url = f"sqlite+aiosqlite:///{workdir / f'{tag}.db'}"
        return Database(url, url, None)
    owner, name = create_pg_database(args.pg_admin_url, tag)
    app = make_url(owner).set(username=APP_ROLE, password=None).render_as_string(hide_password=False)
    return Database(app, owner, name)


def drop_database(args: argparse.Namespace, db: Database) -> None:
    from bench.callback_ingest import drop_pg_database

    if db.name and args.keep:
        print(f"kept database {db.name}", file=sys.stderr)
    elif db.name:
        drop_pg_database(args.pg_admin_url, db.name)


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def seed_business(db: Database, business: str) -> str:
    """One active business on the founding plan and an API key of it, through the product's code."""
    from core.config import load_settings
    from core.runtime import configure
    from core.tenants.models import Environment
    from tests.support.factories import make_api_key, make_tenant

    rt = configure(load_settings(DATABASE_URL=db.url, REDIS_URL=None))
    try:
        environment = Environment.production if business == "live" else Environment.simulator
        tenant, _ = await make_tenant(name="Bench Duka", environment=environment, plan="founding")
        return await make_api_key(tenant=tenant)
    finally:
        await rt.aclose()


# -- load ----------------------------------------------------------------------------------------------
def push_bodies(count: int) -> list[bytes]:
    """`count` bodies, each to its own phone; none ends in a simulator scenario (failure, lost callback)."""
    from sim.daraja.app import OUTCOMES

    bodies: list[bytes] = []
    i = 0
    while len(bodies) < count:
        phone = f"07{20_000_000 + i:08d}"
        i += 1
        if phone[-4:] in OUTCOMES:
            continue
        bodies.append(json.dumps({"phone": phone, "amount": 10 + len(bodies) % 990}).encode())
    return bodies


@dataclass
class Load:
    accepted: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


async def fire(
    http: aiohttp.ClientSession, url: str, bodies: list[bytes], key: str, concurrency: int
) -> Load:
    """POST every body, `concurrency` at a time; a non-201 is counted by status, not retried."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    load = Load()
    it: Iterator[bytes] = iter(bodies)

    async def worker() -> None:
        for body in it:
            t = time.perf_counter()
            try:
                async with http.post(url, data=body, headers=headers) as r:
                    answer = await r.read()
                    if r.status == 201:
                        load.latencies.append(time.perf_counter() - t)
                        load.accepted += 1
                        continue
                    load.statuses[f"HTTP {r.status}"] += 1
                    if len(load.examples) < 3:
                        load.examples.append(f"HTTP {r.status}: {answer[:300].decode(errors='replace')}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                load.statuses[type(exc).__name__] += 1
                if len(load.examples) < 3:
                    load.examples.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.seconds = time.perf_counter() - started
    return load


def new_session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), timeout=aiohttp.ClientTimeout(total=60)
    )


async def count_final(engine: AsyncEngine) -> tuple[int, int]:
    """(payments no longer pending, of which successful)."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status <> 'pending'), "
                    "count(*) FILTER (WHERE status = 'success') FROM payments"
                )
            )
        ).one()
        return int(row[0]), int(row[1])


async def wait_final(engine: AsyncEngine, target: int, within: float, procs: list[Proc]) -> float | None:
    """perf_counter() when `target` payments are final; None when they were not within `within` s."""
    deadline = time.perf_counter() + within
    while True:
        final, _ = await count_final(engine)
        now = time.perf_counter()
        if final >= target:
            return now
        if now > deadline:
            return None
        for p in procs:
            p.check_alive()
        await asyncio.sleep(POLL_EVERY)


# -- one side ------------------------------------------------------------------------------------------
@dataclass
class Side:
    name: str  # processes, serve, baseline
    load: Load
    cpu: dict[str, float]
    busy: float
    wall: float
    pg: dict[str, int] = field(default_factory=dict)  # Postgres' counters over the timed phase
    final_after: float | None = None  # seconds after the last answer until every payment was final
    final: tuple[int, int] = (0, 0)  # (final, successful) payments at the end, warm-up included
    warm: Load = field(default_factory=Load)


async def drive(
    *,
    name: str,
    base_url: str,
    key: str,
    warm_bodies: list[bytes],
    timed_bodies: list[bytes],
    concurrency: int,
    meter: CpuMeter,
    db: Database,
    procs: list[Proc],
    finals: bool,
    within: float,
) -> Side:
    """Warm up, then the timed pushes; with `finals`, also until every accepted payment is final. Postgres'
    counters are read before the timed pushes here and after them by `read_pg_after`, once the servers
    have stopped: a backend that stays connected may hold its counts back for seconds."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench.callback_ingest import STATS_FLUSH, pg_counters

    url = f"{base_url}/api/stk-push"
    # One kept connection: a new one per poll would fork a Postgres backend each time.
    engine = create_async_engine(db.owner_url, pool_size=1, max_overflow=1)
    try:
        async with new_session(concurrency) as http:
            warm = await fire(http, url, warm_bodies, key, concurrency)
            if warm_bodies and not warm.accepted:
                raise RuntimeError(f"{name}: no warm-up push was accepted: {warm.examples}")
            if finals and await wait_final(engine, warm.accepted, within, procs) is None:
                raise RuntimeError(f"{name}: the warm-up's payments were not final within {within:.0f}s")
            for p in procs:
                p.check_alive()
            pg_before: dict[str, int] = {}
            if db.name:
                await asyncio.sleep(STATS_FLUSH)
                pg_before = await pg_counters(engine)
            meter.begin()
            load = await fire(http, url, timed_bodies, key, concurrency)
            answered = time.perf_counter()
        final_after = None
        if finals:
            done = await wait_final(engine, warm.accepted + load.accepted, within, procs)
            final_after = None if done is None else done - answered
        cpu, busy, wall = meter.end()
        for p in procs:
            p.check_alive()
        side = Side(name, load, cpu, busy, wall, final_after=final_after, warm=warm, pg=pg_before)
        if finals:
            side.final = await count_final(engine)
        return side
    finally:
        await engine.dispose()


def read_pg_after(side: Side, db: Database) -> None:
    """Turn `side.pg` (the counters before the timed pushes) into the timed phase's deltas. Called once
    the side's servers have stopped and their backends are gone, having flushed their counts on exit."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench.callback_ingest import pg_counters

    async def read() -> dict[str, int]:
        engine = create_async_engine(db.owner_url, pool_size=1, max_overflow=0)
        try:
            return await pg_counters(engine)
        finally:
            await engine.dispose()

    if db.name and side.pg:
        after = asyncio.run(read())
        side.pg = {k: after[k] - side.pg[k] for k in after}


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the settings the run decides (and no test-suite switches)."""
    drop = ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL", "REDIS_NAMESPACE", "PUBLIC_BASE_URL")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEST_", "LIPAPUSH_", "DARAJA_", "SIM_")) and k not in drop
    }
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def tree(proc: Proc) -> list[int]:
    """A process and its children (`lipapush web` serves from a forked child, web/supervisor.py)."""
    pid = proc.popen.pid
    return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]


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


def run_ours(args: argparse.Namespace, mode: str, bodies: list[bytes], workdir: Path) -> Side:
    """One of our sides, on its own fresh database; every process is stopped and the database dropped
    before this returns."""
    from bench.callback_ingest import (
        CpuMeter,
        _free_port,
        _named_pids,
        delete_redis_namespace,
        start_proc,
        wait_backends_gone,
        wait_healthy,
        wait_log_line,
    )
    from core.migrate import upgrade

    db = create_database(args, f"push_{mode[:4]}", workdir)
    procs: list[Proc] = []
    namespace = f"lipapush-bench-{secrets.token_hex(4)}"
    try:
        t = time.perf_counter()
        upgrade(db.url, migration_url=None if db.name is None else db.owner_url)
        key = asyncio.run(seed_business(db, args.business))
        print(
            f"{mode}: database migrated and business seeded in {time.perf_counter() - t:.1f}s "
            f"({db.name or 'SQLite'})",
            file=sys.stderr,
        )
        t = time.perf_counter()
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        logs = workdir / mode
        logs.mkdir(exist_ok=True)
        env = child_env(
            DATABASE_URL=db.url,
            PUBLIC_BASE_URL=base_url,
            LOG_LEVEL=args.log_level,
            STK_PUSHES_PER_KEY_PER_MINUTE=str(PER_KEY_PER_MINUTE),
            # serve advertises itself in its data directory: this run's, not the user's.
            LIPAPUSH_HOME=str(logs / "home"),
        )
        named: dict[str, list[int]] = {}
        if mode == "processes":
            sim_url = f"http://127.0.0.1:{_free_port()}"
            env.update(REDIS_URL=args.redis_url, REDIS_NAMESPACE=namespace)
            # One of the two: the Daraja client refuses a test push to the production host and a live
            # push to the simulator's, so they may not share the simulator's address.
            if args.business == "live":
                env.update(DARAJA_PRODUCTION_URL=sim_url)  # nothing leaves the machine
            else:
                env.update(DARAJA_SIMULATOR_URL=sim_url)
            sim_port = sim_url.rsplit(":", 1)[1]
            sim_args = ["sim", "daraja", "--host", "127.0.0.1", "--port", sim_port, "--callback-delay", "0"]
            procs.append(start_proc("simulator", sim_args, env, logs))
            procs.append(start_proc("web", ["web", "--host", "127.0.0.1", "--port", str(port)], env, logs))
            procs.append(start_proc("worker", ["worker", "--threads", str(args.worker_threads)], env, logs))
            asyncio.run(wait_http(f"{sim_url}/_sim/callbacks", procs))
            wait_log_line(procs[2], "worker running")
        else:
            env.update(SIM_CALLBACK_DELAY="0")
            if args.business == "live":
                env.update(DARAJA_PRODUCTION_URL=f"{base_url}/sim/daraja")  # the mounted simulator
            if db.name:
                env.update(MIGRATION_DATABASE_URL=db.owner_url)  # serve migrates on start (nothing to do)
            procs.append(
                start_proc("serve", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, logs)
            )
        asyncio.run(wait_healthy(base_url, procs))
        print(f"{mode}: servers answering in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        named = {p.name: tree(p) for p in procs}
        named["bench (aiohttp)"] = [os.getpid()]
        by_name: dict[str, str] = {}
        if db.name:
            named["postgres"] = []
            by_name["postgres"] = "postgres"
        if mode == "processes":
            named["redis"] = _named_pids("redis-server")
        meter = CpuMeter(named=named, by_name=by_name)
        total = len(bodies)
        side = asyncio.run(
            drive(
                name=mode,
                base_url=base_url,
                key=key,
                warm_bodies=bodies[: args.warmup],
                timed_bodies=bodies[args.warmup :],
                concurrency=args.concurrency,
                meter=meter,
                db=db,
                procs=procs,
                finals=True,
                within=60.0 + total / 10,
            )
        )
        if db.name:
            for p in procs:
                p.stop()
            wait_backends_gone(args.pg_admin_url, db.name)
            read_pg_after(side, db)
        return side
    finally:
        for p in procs:
            p.stop()
        if mode == "processes":
            with contextlib.suppress(Exception):
                delete_redis_namespace(args.redis_url, namespace)
        if db.name:
            with contextlib.suppress(Exception):
                wait_backends_gone(args.pg_admin_url, db.name)
            drop_database(args, db)


def run_baseline(args: argparse.Namespace, bodies: list[bytes], workdir: Path) -> Side:
    from bench.callback_ingest import (
        CpuMeter,
        Proc,
        _free_port,
        _pg_admin,
        wait_backends_gone,
        wait_healthy,
    )

    db = create_database(args, "push_base", workdir)
    assert db.name is not None
    procs: list[Proc] = []
    try:
        asyncio.run(_pg_admin(plain_dsn(db.owner_url), BASELINE_SCHEMA))
        port = _free_port()
        log = workdir / "baseline.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-server", "--port", str(port)]
        cmd += ["--dsn", plain_dsn(db.owner_url), "--log-level", args.log_level]
        with log.open("wb") as fh:
            popen = subprocess.Popen(
                cmd, env=child_env(), cwd=workdir, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        procs.append(Proc("baseline", popen, log))
        base_url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_healthy(base_url, procs))
        named = {"baseline": tree(procs[0]), "bench (aiohttp)": [os.getpid()], "postgres": []}
        meter = CpuMeter(named=named, by_name={"postgres": "postgres"})
        timed = bodies[args.warmup :]
        # The same bodies, over again until the run is long enough to time: 300 take it ~0.3 s.
        timed = timed * max(1, -(-BASELINE_MIN_PUSHES // max(1, len(timed))))
        side = asyncio.run(
            drive(
                name="baseline",
                base_url=base_url,
                key="bench-baseline",
                warm_bodies=bodies[: args.warmup],
                timed_bodies=timed,
                concurrency=args.concurrency,
                meter=meter,
                db=db,
                procs=procs,
                finals=False,
                within=60.0,
            )
        )
        procs[0].stop()
        wait_backends_gone(args.pg_admin_url, db.name)
        read_pg_after(side, db)
        return side
    finally:
        for p in procs:
            p.stop()
        with contextlib.suppress(Exception):
            wait_backends_gone(args.pg_admin_url, db.name)
        drop_database(args, db)


# -- report ---------------------------------------------------------------------------------------------
def report(args: argparse.Namespace, sides: dict[str, Side]) -> int:
    from bench.callback_ingest import _pct

    cpus = os.cpu_count() or 1
    backend = "SQLite" if args.sqlite else "Postgres"
    print()
    print(
        f"push throughput: POST /api/stk-push, {args.pushes} timed pushes after {args.warmup} warm-up "
        f"(the baseline: the same bodies, at least {BASELINE_MIN_PUSHES}), concurrency {args.concurrency}; "
        f"a {args.business} business on the founding plan; "
        f"{backend}; {cpus} CPUs; LOG_LEVEL={args.log_level}"
    )
    head = f"{'side':<36} {'n':>6} {'pushes/s':>9} {'p50 ms':>8} {'p99 ms':>8}  {'all final':>10}  errors"
    print(head)
    print("-" * len(head))
    problems = []
    for name, s in sides.items():
        lat = sorted(s.load.latencies)
        label = LABELS[name] + (f" ({backend})" if name == "serve" else "")
        final = (
            "-" if name == "baseline" else "not yet" if s.final_after is None else f"+{s.final_after:.1f}s"
        )
        errors = dict(s.load.statuses) or "none"
        sent = s.load.accepted + sum(s.load.statuses.values())
        print(
            f"{label:<36} {sent:>6} {s.load.rate:>9.1f} {_pct(lat, 0.5) * 1000:>8.1f} "
            f"{_pct(lat, 0.99) * 1000:>8.1f}  {final:>10}  {errors}"
        )
        for ex in s.load.examples + s.warm.examples:
            print(f"    e.g. {ex}")
        if s.load.statuses or s.warm.statuses:
            problems.append(f"{name}: refused pushes {dict(s.load.statuses + s.warm.statuses)}")
        if name != "baseline":
            want = s.warm.accepted + s.load.accepted
            if s.final != (want, want):
                problems.append(f"{name}: {s.final[0]} final, {s.final[1]} successful of {want} accepted")
    print("(all final: after the last answer, until every accepted payment's callback was applied)")
    base = sides.get("baseline")
    ratios = []
    if base and base.load.rate:
        for name in ("processes", "serve"):
            if name in sides:
                r = sides[name].load.rate / base.load.rate
                ratios.append(f"{LABELS[name]} {r:.3f} (goal >= {GOALS[name]})")
        print("ratios ours/baseline (pushes/s): " + "; ".join(ratios))
    print()
    print("CPU s per 1000 pushes (ours: first timed push until every payment final; baseline: last answer):")
    for name, s in sides.items():
        n = max(1, s.load.accepted)
        per_k = 1000 / n
        other = max(0.0, s.busy - sum(s.cpu.values()))
        parts = "  ".join(f"{k} {v * per_k:.2f}" for k, v in s.cpu.items())
        busy_pct = s.busy / s.wall / cpus * 100 if s.wall else 0.0
        print(
            f"  {LABELS[name]}: {parts}  other processes {other * per_k:.2f} | machine "
            f"{s.busy * per_k:.2f} ({busy_pct:.0f}% of {cpus} CPUs over {s.wall:.1f}s)"
        )
    pg_lines = [
        f"  {LABELS[name]}: {s.pg['transactions'] / max(1, s.load.accepted):.2f} transactions, "
        f"{s.pg['rows_written'] / max(1, s.load.accepted):.2f} rows written, "
        f"{s.pg['sessions']} connections opened"
        for name, s in sides.items()
        if s.pg
    ]
    if pg_lines:
        print("Postgres per push (callbacks included on our sides):")
        print("\n".join(pg_lines))
    if problems:
        print("problems: " + "; ".join(problems))
    if args.smoke and "processes" in sides:
        ours = sides["processes"].load.rate
        if base and base.load.rate:
            print(
                f"SMOKE P2 pushes web+worker/bare = {ours / base.load.rate:.3f} "
                f"({ours:.1f}/s vs {base.load.rate:.0f}/s)"
            )
        else:
            print(f"SMOKE P2 pushes web+worker/bare = n/a ({ours:.1f}/s, no baseline)")
    return 1 if problems else 0


# -- main ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--baseline-server" in argv:
        baseline_server(argv)
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pushes", type=int, default=None, help="timed pushes per side (3000; smoke 300)")
    parser.add_argument("--concurrency", type=int, default=50, help="HTTP connections (50)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed pushes first (200; smoke 50)")
    parser.add_argument(
        "--mode",
        choices=("processes", "serve", "both"),
        default=None,
        help="our sides (both; smoke: processes)",
    )
    parser.add_argument(
        "--business", choices=("live", "test"), default="live", help="production (live) or simulator channel"
    )
    parser.add_argument("--smoke", action="store_true", help="a quick run for CI logs: 300 pushes, processes")
    parser.add_argument("--sqlite", action="store_true", help="lipapush serve on SQLite only, no baseline")
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the servers (INFO: access log on)")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the process logs")
    args = parser.parse_args(argv)
    if args.pushes is None:
        args.pushes = SMOKE["pushes"] if args.smoke else 3000
    if args.warmup is None:
        args.warmup = SMOKE["warmup"] if args.smoke else 200
    if args.mode is None:
        args.mode = "processes" if args.smoke else "both"
    if args.sqlite:
        if args.mode == "processes":
            parser.error("--sqlite runs lipapush serve only (web + worker need Postgres and Redis)")
        args.mode = "serve"

    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the cleanup below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    busy = psutil.cpu_percent(interval=1.0)
    if busy > 10:
        print(
            f"warning: the machine is {busy:.0f}% busy before the run; other processes will slow every "
            "side (see 'other processes' below)",
            file=sys.stderr,
        )
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-bench-push-"))
    bodies = push_bodies(args.warmup + args.pushes)
    sides: dict[str, Side] = {}
    try:
        modes = ["processes", "serve"] if args.mode == "both" else [args.mode]
        for mode in modes:
            sides[mode] = run_ours(args, mode, bodies, workdir)
            print(f"{mode}: {sides[mode].load.rate:.1f} pushes/s", file=sys.stderr)
        if not args.sqlite:
            sides["baseline"] = run_baseline(args, bodies, workdir)
            print(f"baseline: {sides['baseline'].load.rate:.1f} pushes/s", file=sys.stderr)
        return report(args, sides)
    finally:
        if args.keep:
            print(f"kept: {workdir} (process logs)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
