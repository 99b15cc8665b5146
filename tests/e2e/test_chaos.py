"""Chaos (issue 15): what the attack did, on the production process layout.

A private Redis, the Daraja simulator, `lipapush web`, `lipapush worker` and `lipapush scheduler` run as
separate OS processes on a fresh Postgres database. Hundreds of STK pushes with mixed simulator outcomes go
through the REST API, several to each phone, across three businesses on the commission billing modes,
while the worker is SIGKILLed twice, the web process once and Redis once (each started again). Then, once
everything has settled, the books must be exactly right: no duplicates, nothing stuck, every final status
the one the simulator decided, customer totals equal to the successes, one commission per success, every
receipt the simulator delivered kept, an empty job outbox and a green `lipapush ledger check`.

The simulator's own logs are the truth: it runs as its own process, so its request and callback logs
survive the web process's death. Every push has a unique amount, so a push the simulator saw is found in
its log even when lipapush never learnt the CheckoutRequestID (the web process died in between).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from tests.e2e.conftest import (
    LIPAPUSH,
    SUMMARY,
    Serve,
    _base_env,
    _wait_healthy,
    bearer,
    msisdn,
    run_cli,
    unique_email,
    unique_phone,
)
from tests.support import services

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        not (services.PG_URL and services.REDIS_URL),
        reason="the chaos test runs on the Postgres + Redis leg only: set TEST_DATABASE_URL and "
        "TEST_REDIS_URL (it starts a private redis-server of its own, so killing it harms nobody)",
    ),
]

N_PUSHES = 200
IN_FLIGHT = 15
ATTEMPTS = 4  # a push interrupted by the web process's death is sent again with its Idempotency-Key
SETTLE_DEADLINE = 200.0  # a ceiling: a push nobody can look up expires after EXPIRE_AFTER_SECONDS (60)
START_DEADLINE = 60.0
REDIS_DOWN_SECONDS = 2.0

# Phone suffix → (what the simulator does, the status lipapush must end with, callbacks it sends). The
# simulator picks the outcome by the payer phone's last four digits (README, "Test mode").
OUTCOMES: dict[str, tuple[str, str, int]] = {
    "0111": ("success", "success", 1),
    "0222": ("success", "success", 1),
    "9998": ("success, callback delivered twice", "success", 2),
    "9999": ("success, callback lost", "success", 0),
    "1032": ("cancelled by the user (1032)", "cancelled", 1),
    "2001": ("wrong PIN (2001)", "failed", 1),
}
WEIGHTS = {"0111": 18, "0222": 17, "9998": 15, "9999": 20, "1032": 20, "2001": 10}
FIRST_AMOUNT = 50  # push i asks for KES FIRST_AMOUNT + i: the amount names the push in the simulator's log


# -- processes -------------------------------------------------------------------------------------------
@dataclass
class Proc:
    """One OS process of the deployment, in its own session so a SIGKILL takes it whole."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n===== start {self.starts + 1} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log_file.flush()
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or the OOM killer."""
        assert self.popen is not None and self.popen.poll() is None, f"{self.name} is not running"
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def alive(self) -> None:
        assert self.popen is not None
        rc = self.popen.poll()
        if rc is not None:
            tail = "\n".join(self.log().splitlines()[-40:])
            raise AssertionError(f"{self.name} exited with {rc}:\n{tail}")


async def _until(
    probe: Callable[[], Awaitable[bool]], *, what: str, timeout: float = START_DEADLINE, every: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s")
        await asyncio.sleep(every)


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _redis_pong(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Deployment:
    redis: Proc
    sim: Proc
    web: Proc
    worker: Proc
    scheduler: Proc
    redis_port: int
    sim_url: str
    web_url: str
    srv: Serve  # for run_cli and _wait_healthy
    web_up: asyncio.Event = field(default_factory=asyncio.Event)
    kills: list[str] = field(default_factory=list)

    async def start_redis(self) -> None:
        self.redis.start()
        await _until(lambda: _redis_pong(self.redis_port), what="redis-server answering PING")

    async def start_web(self) -> None:
        self.web.start()
        assert self.web.popen is not None
        self.srv.proc = self.web.popen
        await asyncio.to_thread(_wait_healthy, self.srv)
        self.web_up.set()

    async def start_worker(self) -> None:
        before = self.worker.log().count("worker running")
        self.worker.start()

        async def running() -> bool:
            self.worker.alive()
            return self.worker.log().count("worker running") > before

        await _until(running, what="lipapush worker started")

    # The chaos itself ---------------------------------------------------------------------------------
    async def kill_worker(self) -> None:
        self.worker.kill()
        self.kills.append("worker")
        await self.start_worker()

    async def kill_redis(self) -> None:
        self.redis.kill()
        self.kills.append("redis")
        await asyncio.sleep(REDIS_DOWN_SECONDS)  # jobs enqueued now find no broker at all
        await self.start_redis()  # empty: every message it held is gone

    async def kill_web(self) -> None:
        self.web_up.clear()
        self.web.kill()
        self.kills.append("web")
        await self.start_web()


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    if shutil.which("redis-server") is None:
        if services.REQUIRE:
            raise AssertionError("redis-server is not installed; the chaos test starts a private one")
        pytest.skip("redis-server is not installed; the chaos test starts a private one")
    db = await asyncio.to_thread(services.create_database, "chaos")  # it runs its own loop
    redis_port, sim_port, web_port = services.free_port(), services.free_port(), services.free_port()
    web_url, sim_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sim_port}"
    env = _base_env()
    # The owner of the schema migrates and, here, inspects every business's rows (row-level security
    # keeps the app's own role to one business at a time); before that split both are one URL.
    owner_url = getattr(db, "migration_url", db.url)
    env.update(
        DATABASE_URL=db.url,
        MIGRATION_DATABASE_URL=owner_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        REDIS_NAMESPACE=services.redis_namespace(),
        PUBLIC_BASE_URL=web_url,
        DARAJA_SIMULATOR_URL=sim_url,
        # The businesses are live (production channels: their payments earn commission), and production
        # is the same simulator under another host name, which the client's mode check tells apart.
        DARAJA_PRODUCTION_URL=f"http://localhost:{sim_port}",
        SIM_CALLBACK_DELAY="1",
        RECONCILE_AFTER_SECONDS="4",  # a lost callback is looked up 4 s after its push
        EXPIRE_AFTER_SECONDS="60",  # the minimum: a push nobody can look up expires after a minute
        JOB_VISIBILITY_SECONDS="5",  # a job lost with a worker or with Redis is sent again after 5 s
        # The abuse limits on pushes are not under test here, and this test prompts each phone often.
        STK_PUSHES_PER_KEY_PER_MINUTE="100000",
        STK_PUSHES_PER_PHONE_PER_MINUTE="10000",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        COLUMNS="500",
    )

    def proc(name: str, *argv: str) -> Proc:
        return Proc(name=name, argv=list(argv), env=env, workdir=tmp_path)

    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
    dep = Deployment(
        redis=proc("redis", *redis_argv, "--appendonly", "no"),
        sim=proc("daraja-sim", *LIPAPUSH, "sim", "daraja", "--port", str(sim_port)),
        web=proc("web", *LIPAPUSH, "web", "--host", "127.0.0.1", "--port", str(web_port)),
        worker=proc("worker", *LIPAPUSH, "worker"),
        scheduler=proc("scheduler", *LIPAPUSH, "scheduler"),
        redis_port=redis_port,
        sim_url=sim_url,
        web_url=web_url,
        srv=Serve(
            url=web_url,
            env=env,
            cli_env=env,
            workdir=tmp_path,
            log_path=tmp_path / "web.log",
            db_url=owner_url,
            proc=None,  # type: ignore[arg-type]  # set when the web process starts
        ),
    )
    try:
        await dep.start_redis()
        dep.sim.start()
        await _until(lambda: _port_open(sim_port), what="the Daraja simulator listening")
        await dep.start_web()  # migrates the database before it listens
        dep.scheduler.start()
        await dep.start_worker()
        yield dep
    finally:
        for process in (dep.web, dep.worker, dep.scheduler, dep.sim, dep.redis):
            process.stop()
        await asyncio.to_thread(services.drop_database, db)
        print(f"\nchaos logs: {tmp_path}")


# -- businesses ------------------------------------------------------------------------------------------
@dataclass
class Biz:
    label: str
    email: str
    tenant_id: str
    key: str
    mode: str  # what its commission postings must look like


async def _business(
    dep: Deployment, engine: AsyncEngine, *, label: str, percent: str | None, credit: int, wallet_mode: bool
) -> Biz:
    """Sign up through the REST API (the KES 1 test push verifies the channel), then set the rate and
    credit the wallet with the operator's CLI: the fewest processes to start on a busy machine."""
    email = unique_email("chaos")
    async with httpx.AsyncClient(base_url=dep.web_url, timeout=60) as c:
        r = await c.post(
            "/api/signup",
            json={
                "business_name": f"Chaos {label}",
                "email": email,
                "password": "a-long-password-1",
                "phone": unique_phone("5678"),
            },
        )
        assert r.status_code == 201, r.text
        jwt = bearer(r.json()["access_token"])
        r = await c.post("/api/settings", json=LIVE_CHANNEL, headers=jwt)
        assert r.status_code == 200, r.text

        async def verified() -> bool:
            body = (await c.get("/api/settings", headers=jwt)).json()
            assert body["channel"]["verification_error"] is None, body
            return bool(body["channel"]["verified"]) and body["business"]["status"] == "active"

        await _until(verified, what=f"Chaos {label} verified by its KES 1 test push")
        tenant_id = (await c.get("/api/settings", headers=jwt)).json()["business"]["id"]
        r = await c.post("/api/api-keys", json={"name": "chaos"}, headers=jwt)
        assert r.status_code == 201, r.text
        key = r.json()["key"]
    cli = []
    if percent is not None:
        cli.append(run_cli(dep.srv, "commission", "set", "--tenant", email, "--percent", percent))
    if credit:
        credit_args = ("--amount", str(credit), "--reason", "chaos float")
        cli.append(run_cli(dep.srv, "wallet", "adjust", "--tenant", email, *credit_args))
    for done in await asyncio.gather(*cli):
        assert done.returncode == 0, done.output
    if wallet_mode:
        # No front end switches a business to pure wallet billing (an operator's decision, made in the
        # database); the wallet then holds each push's commission until the payment is final.
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE tenants SET billing_mode = 'wallet' WHERE id = :t"), {"t": tenant_id}
            )
    mode = "wallet" if wallet_mode else ("split" if credit else "receivable")
    return Biz(label=label, email=email, tenant_id=tenant_id, key=key, mode=mode)


# A production channel (live payments, commission), on the simulator behind DARAJA_PRODUCTION_URL.
LIVE_CHANNEL = {
    "environment": "production",
    "business_short_code": "174379",
    "consumer_key": "chaos-key",
    "consumer_secret": "chaos-secret",
    "passkey": "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
}


# -- the pushes ------------------------------------------------------------------------------------------
@dataclass
class Push:
    index: int
    biz: Biz
    phone: str  # 254…
    suffix: str
    amount: int
    key: str  # Idempotency-Key
    attempts: list[str] = field(default_factory=list)  # what each try got: "201", "500 …", "ConnectError"
    payment_id: str | None = None
    checkout_request_id: str | None = None  # as the 201 said: set when Daraja had accepted the push
    final_http: int | None = None

    @property
    def accepted(self) -> bool:
        return self.final_http == 201


async def _send(client: httpx.AsyncClient, dep: Deployment, p: Push, bodies: dict[int, list[str]]) -> None:
    for _ in range(ATTEMPTS):
        await dep.web_up.wait()
        try:
            r = await client.post(
                "/api/stk-push",
                json={"phone": p.phone, "amount": p.amount, "name": f"Customer {p.suffix}"},
                headers={**bearer(p.biz.key), "Idempotency-Key": p.key},
            )
        except httpx.TransportError as exc:
            # The web process died under the request (or was down): nothing is known, so ask again
            # with the same key, as a careful client would.
            p.attempts.append(type(exc).__name__)
            await asyncio.sleep(0.2)
            continue
        p.attempts.append(str(r.status_code))
        p.final_http = r.status_code
        if r.status_code == 201:
            body = r.json()
            if p.payment_id is not None:
                assert body["id"] == p.payment_id, f"push {p.index}: a retry answered another payment"
            p.payment_id = body["id"]
            p.checkout_request_id = body["checkout_request_id"]
            return
        bodies[r.status_code].append(f"push {p.index}: {r.text[:300]}")
        if r.status_code in (500, 429):
            await asyncio.sleep(float(r.headers.get("retry-after", "0.5")))
            continue
        return  # 502/503/4xx: an answer about this payment, not a lost request


# -- reading the outcome ---------------------------------------------------------------------------------
async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


async def _scalar(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(sql)) or 0)


# The scheduler's periodic sweeps (web.app.periodic_jobs): it enqueues them every few seconds for ever,
# so a fresh one is its heartbeat, not work left over.
PERIODIC = {
    "payments.reconcile_pending",
    "billing.issue_invoices",
    "billing.enforce_overdue",
    "hotspot.sweep",
    "billing.subscription_reminders",
    "payouts.reconcile_pending",
    "lookups.sweep",
}
HEARTBEAT = timedelta(seconds=20)


def _meta(callback: dict[str, Any], name: str) -> Any:
    """One CallbackMetadata item of a callback the simulator sent (None on a failure's callback)."""
    items = callback["body"]["Body"]["stkCallback"].get("CallbackMetadata", {}).get("Item", [])
    return next((item.get("Value") for item in items if item["Name"] == name), None)


async def _work_left(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Job-outbox rows that are work left over: everything but the periodic sweeps just enqueued."""
    rows = await _rows(engine, "SELECT id, actor, created_at, sends, failed_at, error FROM job_outbox")
    now = datetime.now(UTC)

    def fresh_sweep(row: dict[str, Any]) -> bool:
        created = row["created_at"] if row["created_at"].tzinfo else row["created_at"].replace(tzinfo=UTC)
        return row["actor"] in PERIODIC and row["failed_at"] is None and now - created < HEARTBEAT

    return [row for row in rows if not fresh_sweep(row)]


async def test_chaos_pushes_survive_killed_processes(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    started = time.monotonic()
    engine = create_async_engine(dep.srv.db_url, poolclass=NullPool)
    try:
        await _chaos(dep, engine, tmp_path, started)
    finally:
        await engine.dispose()


async def _chaos(dep: Deployment, engine: AsyncEngine, tmp_path: Path, started: float) -> None:
    bizs = list(
        await asyncio.gather(
            _business(dep, engine, label="Wallet", percent="2", credit=5_000, wallet_mode=True),
            _business(dep, engine, label="Hybrid", percent="1.5", credit=15, wallet_mode=False),
            _business(dep, engine, label="Invoice", percent=None, credit=0, wallet_mode=False),  # 1 %
        )
    )
    phones = {suffix: msisdn(unique_phone(suffix)) for suffix in OUTCOMES}
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    suffixes = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=N_PUSHES)
    pushes = [
        Push(
            index=i,
            biz=bizs[i % len(bizs)],
            phone=phones[suffix],
            suffix=suffix,
            amount=FIRST_AMOUNT + i,
            key=f"chaos-{seed}-{i}",
        )
        for i, suffix in enumerate(suffixes)
    ]
    setup_done = time.monotonic()

    # -- the attack: pushes in flight while processes die -----------------------------------------------
    done = 0
    progress = asyncio.Condition()
    bodies: dict[int, list[str]] = defaultdict(list)

    async def reached(fraction: float) -> None:
        async with progress:
            await progress.wait_for(lambda: done >= fraction * N_PUSHES)

    async def chaos() -> None:
        await reached(0.15)
        await dep.kill_worker()
        await reached(0.35)
        await dep.kill_redis()
        await reached(0.55)
        await dep.kill_web()
        await reached(0.75)
        await dep.kill_worker()

    gate = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(
        base_url=dep.web_url, timeout=60, limits=httpx.Limits(max_connections=IN_FLIGHT)
    ) as client:

        async def one(p: Push) -> None:
            nonlocal done
            async with gate:
                await _send(client, dep, p, bodies)
            async with progress:
                done += 1
                progress.notify_all()

        tasks = [asyncio.create_task(chaos()), *(asyncio.create_task(one(p)) for p in pushes)]
        try:
            await asyncio.gather(*tasks)
        finally:  # a failed restart must not leave pushes waiting for a web process for ever
            for task in tasks:
                task.cancel()
    pushed = time.monotonic()
    assert dep.kills == ["worker", "redis", "web", "worker"]
    for process in (dep.web, dep.worker, dep.scheduler, dep.sim, dep.redis):
        process.alive()

    # -- waiting for it all to settle -----------------------------------------------------------------
    async with httpx.AsyncClient(base_url=dep.sim_url, timeout=30) as sim:

        async def sim_log() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            requests = (await sim.get("/_sim/requests")).json()
            callbacks = (await sim.get("/_sim/callbacks")).json()
            return requests, callbacks

        def expected_deliveries(requests: list[dict[str, Any]]) -> int:
            return sum(OUTCOMES.get(str(b["PhoneNumber"])[-4:], ("", "", 1))[2] for b in requests)

        async def delivered() -> bool:
            requests, callbacks = await sim_log()
            return len(callbacks) >= expected_deliveries(requests)

        await _until(delivered, what="the simulator's callbacks all sent", timeout=SETTLE_DEADLINE, every=0.5)

        async def settled() -> bool:
            for process in (dep.web, dep.worker, dep.scheduler):
                process.alive()
            pending = await _scalar(engine, "SELECT count(*) FROM payments WHERE status = 'pending'")
            unprocessed = await _scalar(
                engine, "SELECT count(*) FROM callback_inbox WHERE processed_at IS NULL"
            )
            return pending == 0 and unprocessed == 0 and await _work_left(engine) == []

        try:
            await _until(
                settled,
                what="no pending payment, every callback processed, the job outbox empty",
                timeout=SETTLE_DEADLINE,
                every=0.5,
            )
        except AssertionError as exc:
            stuck = await _rows(
                engine,
                "SELECT id, amount, phone, checkout_request_id, created_at, next_check_at, query_attempts "
                "FROM payments WHERE status = 'pending'",
            )
            outbox = await _work_left(engine)
            raise AssertionError(f"{exc}\npending: {stuck}\njob outbox: {outbox}") from None
        sim_requests, sim_callbacks = await sim_log()
    # The businesses' KES 1 onboarding pushes went to other phones.
    sim_requests = [b for b in sim_requests if str(b["PhoneNumber"]) in phones.values()]
    settled_at = time.monotonic()

    ledger = await run_cli(dep.srv, "ledger", "check")
    payments = await _rows(
        engine,
        "SELECT id, tenant_id, source, status, amount, phone, idempotency_key, checkout_request_id, receipt, "
        "result_code, result_desc, flag, commission_cents FROM payments WHERE source = 'api'",
    )
    postings = await _rows(
        engine,
        "SELECT payment_id, kind, amount_cents FROM ledger_transfers WHERE kind IN ('commission.wallet', "
        "'commission.receivable')",
    )
    inbox = await _rows(engine, "SELECT checkout_request_id, outcome, error FROM callback_inbox")
    outbox_left = await _work_left(engine)
    customers: dict[tuple[str, str], dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=dep.web_url, timeout=30) as client:
        for biz in bizs:
            r = await client.get("/api/customers", params={"per_page": 100}, headers=bearer(biz.key))
            assert r.status_code == 200, r.text
            for c in r.json()["items"]:
                customers[(biz.tenant_id, c["phone"])] = c

    # -- the figures (printed and kept whatever the verdict) -----------------------------------------------
    by_key = {(str(p["tenant_id"]), p["idempotency_key"]): p for p in payments}
    push_of_amount = {p.amount: p for p in pushes}
    sim_amounts = Counter(int(float(b["Amount"])) for b in sim_requests)
    callbacks_by_checkout: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cb in sim_callbacks:
        callbacks_by_checkout[cb["body"]["Body"]["stkCallback"]["CheckoutRequestID"]].append(cb)
    applied = {row["checkout_request_id"] for row in inbox if row["outcome"] == "applied"}
    paid_callbacks = {  # amounts whose success callback lipapush received (answered 200)
        int(_meta(cb, "Amount")) for cb in sim_callbacks if cb["status_code"] == 200 and _meta(cb, "Amount")
    }
    unlearnt = [p for p in payments if not p["checkout_request_id"] and sim_amounts[p["amount"]]]
    final_status = Counter(p["status"] for p in payments)
    figures = {
        "seed": seed,
        "pushes sent": N_PUSHES,
        "accepted (201)": sum(p.accepted for p in pushes),
        "  without a CheckoutRequestID (a replay of a push the web kill cut short)": sum(
            1 for p in pushes if p.accepted and not p.checkout_request_id
        ),
        "not accepted": dict(Counter(str(p.final_http or p.attempts[-1]) for p in pushes if not p.accepted)),
        "interrupted then retried": sum(1 for p in pushes if any(not a.isdigit() for a in p.attempts)),
        "HTTP 500 answers": len(bodies.get(500, [])),
        "payments recorded": len(payments),
        "final statuses": dict(final_status),
        "simulator decisions": dict(Counter(OUTCOMES[p.suffix][1] for p in pushes if sim_amounts[p.amount])),
        "successes": final_status["success"],
        "  with their M-Pesa receipt": sum(1 for p in payments if p["status"] == "success" and p["receipt"]),
        "failures by result code": dict(
            Counter(str(p["result_code"]) for p in payments if p["status"] != "success")
        ),
        "settled by status query (no applied callback)": sum(
            1 for p in payments if p["checkout_request_id"] and p["checkout_request_id"] not in applied
        ),
        "simulator callbacks not answered 200": sum(1 for cb in sim_callbacks if cb["status_code"] != 200),
        "recorded, but never reached M-Pesa (the web process died first)": sum(
            1 for p in payments if not sim_amounts[p["amount"]]
        ),
        "pushes M-Pesa got whose CheckoutRequestID died with the web process": len(unlearnt),
        "  of which paid, with no callback to tell lipapush (expired)": sum(
            1 for p in unlearnt if OUTCOMES[push_of_amount[p["amount"]].suffix][1] == "success"
        ),
        "callback inbox outcomes": dict(Counter(str(row["outcome"]) for row in inbox)),
        "kills": dep.kills,
        "seconds: setup": round(setup_done - started, 1),
        "seconds: pushes under chaos": round(pushed - setup_done, 1),
        "seconds: settling": round(settled_at - pushed, 1),
        "seconds: total": round(time.monotonic() - started, 1),
    }
    report = "\n".join(f"{k}: {v}" for k, v in figures.items())
    (tmp_path / "chaos-summary.txt").write_text(report + "\n", encoding="utf-8")
    SUMMARY.append(("chaos test figures", report))
    print(f"\n{report}")

    # -- the verdict -------------------------------------------------------------------------------------
    errors = bodies.get(500, [])
    assert errors == [], f"{len(errors)} push answers were HTTP 500:\n" + "\n".join(errors)
    assert ledger.returncode == 0, ledger.output
    assert "ledger balanced" in ledger.stdout, ledger.output
    assert outbox_left == []

    # 0 duplicates: one payment per request, one prompt per payment, one receipt per payment
    assert len(payments) == len(by_key), "two payments share one Idempotency-Key"
    assert all(p["idempotency_key"] for p in payments), [p for p in payments if not p["idempotency_key"]]
    for p in pushes:
        if p.payment_id is not None:
            assert str(by_key[(p.biz.tenant_id, p.key)]["id"]) == p.payment_id
    assert {a: n for a, n in sim_amounts.items() if n > 1} == {}, "a payment prompted the customer twice"
    receipts = Counter(p["receipt"] for p in payments if p["receipt"])
    assert {r: n for r, n in receipts.items() if n > 1} == {}
    assert [p for p in payments if p["flag"]] == []

    # 0 wrong status: each payment ends as the simulator decided
    wrong = []
    for row in payments:
        push = push_of_amount[row["amount"]]
        assert (str(row["tenant_id"]), row["phone"]) == (push.biz.tenant_id, push.phone)
        if sim_amounts[row["amount"]] == 0:
            # Never reached M-Pesa (the web process died before the push went out, or Daraja refused
            # it): nobody was asked to pay, so it must not be a success.
            if row["status"] == "success":
                wrong.append((push.index, push.suffix, row["status"], "never pushed"))
        elif row["checkout_request_id"] is None:
            # M-Pesa got it but the web process died before recording its answer (the
            # CheckoutRequestID): a success callback that arrives finds it by phone and amount (and
            # so gives it its CheckoutRequestID); with none (lost, or sent while the web process was
            # down) nothing can, and it expires unpaid (counted in the figures).
            if row["status"] == "success":
                wrong.append((push.index, push.suffix, row["status"], "success without an id"))
            elif row["amount"] in paid_callbacks:
                wrong.append((push.index, push.suffix, row["status"], "success callback not matched"))
        elif row["status"] != OUTCOMES[push.suffix][1]:
            wrong.append((push.index, push.suffix, row["status"], OUTCOMES[push.suffix][1]))
    assert wrong == [], "(push, phone suffix, final status, what the simulator decided)"
    for p in pushes:
        if p.checkout_request_id is not None:
            assert sim_amounts[p.amount] == 1, f"push {p.index}: Daraja's answer is not in its log"

    # receipts: every success whose receipt the simulator delivered keeps it
    for row in payments:
        if row["status"] != "success" or row["checkout_request_id"] is None:
            continue
        sent = {
            _meta(cb, "MpesaReceiptNumber")
            for cb in callbacks_by_checkout[row["checkout_request_id"]]
            if cb["status_code"] == 200
        }
        assert len(sent) <= 1, sent
        if sent:
            assert row["receipt"] == sent.pop(), row

    # customer book: per (business, phone) exactly the successes
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in payments:
        w = want[(str(row["tenant_id"]), row["phone"])]
        w[0] += 1
        w[1] += row["amount"]
        if row["status"] == "success":
            w[2] += 1
            w[3] += row["amount"]
    got = {
        k: [c["requested_count"], c["requested_total"], c["paid_count"], c["paid_total"]]
        for k, c in customers.items()
        if k[1] in phones.values()
    }
    assert got == dict(want)

    # commission: one per success (wallet and invoice businesses: one posting; the hybrid one whose
    # wallet ran dry: the wallet part and the invoice part, once each), none on anything unpaid
    posted: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for t in postings:
        posted[str(t["payment_id"])].append((t["kind"], t["amount_cents"]))
    modes = {b.tenant_id: b.mode for b in bizs}
    bad_commission = []
    for row in payments:
        mine = sorted(posted.get(str(row["id"]), []))
        kinds = [k for k, _ in mine]
        if row["status"] != "success":
            ok = mine == []
        elif modes[str(row["tenant_id"])] == "wallet":
            ok = mine == [("commission.wallet", row["commission_cents"])]
        elif modes[str(row["tenant_id"])] == "receivable":
            ok = mine == [("commission.receivable", row["commission_cents"])]
        else:
            ok = len(kinds) == len(set(kinds)) >= 1 and sum(c for _, c in mine) == row["commission_cents"]
        if not ok:
            bad_commission.append((str(row["id"]), row["status"], row["commission_cents"], mine))
    assert bad_commission == []
    assert final_status["success"] > 0 and final_status["cancelled"] > 0 and final_status["failed"] > 0

    # the callback inbox: nothing contradicted, nothing impossible
    # adopted: a success whose CheckoutRequestID died with the web process, matched by amount and phone.
    fine = {"applied", "adopted", "enriched", "duplicate", "orphan"}
    assert {row["outcome"] for row in inbox} <= fine, [row for row in inbox if row["outcome"] not in fine]
    known = {p["checkout_request_id"] for p in payments} | {None}
    assert [row for row in inbox if row["outcome"] == "orphan" and row["checkout_request_id"] in known] == []
