"""Scale-out (issue 20): two web processes, two workers and two schedulers on one Postgres and Redis.

The chaos test's deployment (tests/e2e/test_chaos.py: a private Redis, the Daraja simulator, `lipapush
web`, `worker` and `scheduler` on a fresh Postgres database) gets a second `lipapush web` on another port,
a second `worker` and a second `scheduler`. STK pushes with mixed simulator outcomes go through both web
processes in turn (callbacks come to the public URL, web A's here, a load balancer's in production), while
one worker is SIGKILLed and the leading scheduler is SIGKILLed twice (the first leader, then the standby
that took over), each started again. Then:

- the books are right: every payment ends as the simulator decided, one payment per Idempotency-Key, one
  prompt per payment, one commission per success and none on anything else, the customer book equal to
  the successes, an empty job outbox and a green `lipapush ledger check`;
- exactly one scheduler led at a time, and the standby took over within a few seconds of each kill;
- every periodic job was enqueued once per period, whichever scheduler led: a trigger the test adds to
  `periodic_runs` records every claim (the claim and the job's outbox row commit together), so no two
  enqueues of one job are closer than its period, the frequent ones kept their pace through both failovers,
  and the daily, hourly and ten-minute ones, enqueued once when the first scheduler started, never again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from core.jobs.scheduler import STANDBY_RETRY
from core.runtime import Runtime
from tests.e2e.conftest import LIPAPUSH, SUMMARY, Serve, bearer, msisdn, run_cli, unique_phone
from tests.e2e.test_chaos import (
    FIRST_AMOUNT,
    OUTCOMES,
    SETTLE_DEADLINE,
    START_DEADLINE,
    WEIGHTS,
    Biz,
    Deployment,
    Proc,
    Push,
    _business,
    _rows,
    _scalar,
    _send,
    _until,
    _work_left,
    deployment,  # noqa: F401  - the fixture scale_out builds on (pytest injects it there)
)
from tests.support import services
from web.app import periodic_jobs

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        not (services.PG_URL and services.REDIS_URL),
        reason="scale-out runs on the Postgres + Redis leg only: schedulers elect their leader with a "
        "Postgres advisory lock and separate workers need Redis (SQLite is one machine: `lipapush serve`); "
        "set TEST_DATABASE_URL and TEST_REDIS_URL",
    ),
]

N_PUSHES = 150
IN_FLIGHT = 12
# A standby tries for the lock every STANDBY_RETRY seconds; the kernel frees a SIGKILLed leader's at once.
TAKEOVER_DEADLINE = STANDBY_RETRY + 12.0  # a ceiling for a loaded machine, not a wait

# Every claim of a periodic job, as the trigger below records it (the test's own table).
RECORD_CLAIMS = (
    "CREATE TABLE scale_out_claims (job text NOT NULL, claimed_at timestamptz NOT NULL)",
    "CREATE FUNCTION scale_out_note_claim() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
    "SET search_path = public AS $$ BEGIN "
    "INSERT INTO scale_out_claims VALUES (NEW.job, NEW.last_enqueued_at); RETURN NEW; END $$",
    "CREATE TRIGGER scale_out_note_claim AFTER INSERT OR UPDATE ON periodic_runs "
    "FOR EACH ROW EXECUTE FUNCTION scale_out_note_claim()",
)


@dataclass
class ScaleOut:
    a: Deployment  # the chaos fixture's Redis, simulator, web, worker and scheduler
    b: Deployment  # a second web, worker and scheduler beside them (the same Redis and simulator)

    @property
    def schedulers(self) -> tuple[Proc, Proc]:
        return self.a.scheduler, self.b.scheduler


@pytest.fixture
async def scale_out(deployment: Deployment, tmp_path: Path) -> AsyncIterator[ScaleOut]:  # noqa: F811
    a = deployment
    env = a.web.env  # every process of one deployment shares its settings (PUBLIC_BASE_URL is web A)
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"

    def proc(name: str, *argv: str) -> Proc:
        return Proc(name=name, argv=list(argv), env=env, workdir=tmp_path)

    b = Deployment(
        redis=a.redis,
        sim=a.sim,
        web=proc("web-b", *LIPAPUSH, "web", "--host", "127.0.0.1", "--port", str(port)),
        worker=proc("worker-b", *LIPAPUSH, "worker"),
        scheduler=proc("scheduler-b", *LIPAPUSH, "scheduler"),
        redis_port=a.redis_port,
        sim_url=a.sim_url,
        web_url=url,
        srv=Serve(
            url=url,
            env=env,
            cli_env=env,
            workdir=tmp_path,
            log_path=tmp_path / "web-b.log",
            db_url=a.srv.db_url,
            proc=None,  # type: ignore[arg-type]  # set when the web process starts
        ),
    )
    try:
        yield ScaleOut(a=a, b=b)
    finally:
        for process in (b.web, b.worker, b.scheduler):
            process.stop()


# -- the schedulers, as their logs tell it --------------------------------------------------------------
def current_run(proc: Proc) -> str:
    """The log of the process's latest start (Proc.start writes a marker before each)."""
    return proc.log().rpartition("===== start ")[2]


def role(proc: Proc) -> str:
    """leader, standby or starting: the last thing this run of a scheduler said about leadership."""
    said = [
        ("leader" if "scheduler leads (" in line else "standby")
        for line in current_run(proc).splitlines()
        if "scheduler leads (" in line or "scheduler stands by:" in line or "lost the leader lock" in line
    ]
    alive = proc.popen is not None and proc.popen.poll() is None
    return said[-1] if said and alive else "starting"


async def until_role(proc: Proc, wanted: str, *, timeout: float = START_DEADLINE) -> float:
    started = time.monotonic()

    async def there() -> bool:
        proc.alive()
        return role(proc) == wanted

    await _until(there, what=f"{proc.name} is the {wanted}", timeout=timeout, every=0.05)
    return time.monotonic() - started


def leader_of(s: ScaleOut) -> tuple[Proc, Proc]:
    roles = {p.name: role(p) for p in s.schedulers}
    assert sorted(roles.values()) == ["leader", "standby"], f"exactly one scheduler leads: {roles}"
    first, second = s.schedulers
    return (first, second) if roles[first.name] == "leader" else (second, first)


# -- the periodic jobs, as the database tells it ----------------------------------------------------------
def periods(env: dict[str, str]) -> dict[str, float]:
    """Each periodic job's period, from the app's own list (only RECONCILE_AFTER_SECONDS shapes it)."""
    settings = SimpleNamespace(RECONCILE_AFTER_SECONDS=int(env["RECONCILE_AFTER_SECONDS"]))
    return {p.job.name: p.every for p in periodic_jobs(cast(Runtime, SimpleNamespace(settings=settings)))}


async def record_claims(engine: AsyncEngine) -> tuple[dict[str, datetime], datetime]:
    """Install the claim-recording trigger; return each job's last enqueue before it, and its time.

    CREATE TRIGGER locks periodic_runs against writes until this commits, so every claim is either in
    the snapshot or recorded by the trigger."""
    async with engine.begin() as conn:
        for statement in RECORD_CLAIMS:
            await conn.execute(text(statement))
        before = {r.job: r.last_enqueued_at for r in await conn.execute(text("SELECT * FROM periodic_runs"))}
        since = await conn.scalar(text("SELECT clock_timestamp()"))
    return before, since


async def test_two_of_each_process_under_chaos(scale_out: ScaleOut, tmp_path: Path) -> None:
    s = scale_out
    started = time.monotonic()
    engine = create_async_engine(s.a.srv.db_url, poolclass=NullPool)
    try:
        await _scale_out(s, engine, tmp_path, started)
    finally:
        await engine.dispose()


async def _scale_out(s: ScaleOut, engine: AsyncEngine, tmp_path: Path, started: float) -> None:
    every = periods(s.a.web.env)

    # -- the first scheduler leads and enqueues every periodic job once; then the claims are recorded --
    await until_role(s.a.scheduler, "leader")

    async def all_enqueued_once() -> bool:
        return set(every) <= {r["job"] for r in await _rows(engine, "SELECT job FROM periodic_runs")}

    await _until(all_enqueued_once, what="the first scheduler enqueued every periodic job")
    before, since = await record_claims(engine)

    # -- the second web, worker and scheduler ----------------------------------------------------------
    s.b.scheduler.start()
    await asyncio.gather(s.b.start_web(), s.b.start_worker())
    await until_role(s.b.scheduler, "standby")
    assert leader_of(s)[0] is s.a.scheduler
    assert s.a.scheduler.popen is not None
    # The standby names who leads: the first scheduler's host and process.
    standby_log = current_run(s.b.scheduler)
    assert f":{s.a.scheduler.popen.pid} (backend pid " in standby_log, standby_log

    bizs = list(
        await asyncio.gather(
            _business(s.a, engine, label="Wallet", percent="2", credit=5_000, wallet_mode=True),
            _business(s.b, engine, label="Hybrid", percent="1.5", credit=15, wallet_mode=False),
            _business(s.a, engine, label="Invoice", percent=None, credit=0, wallet_mode=False),  # 1 %
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
            key=f"scale-{seed}-{i}",
        )
        for i, suffix in enumerate(suffixes)
    ]
    setup_done = time.monotonic()

    # -- the attack: pushes through both webs while a worker and the leading schedulers die --------------
    done = 0
    progress = asyncio.Condition()
    bodies: dict[int, list[str]] = defaultdict(list)
    takeovers: list[float] = []
    kills: list[str] = []

    async def reached(fraction: float) -> None:
        async with progress:
            await progress.wait_for(lambda: done >= fraction * N_PUSHES)

    async def kill_leader() -> None:
        leader, standby = leader_of(s)
        leader.kill()
        kills.append(leader.name)
        takeovers.append(await until_role(standby, "leader", timeout=TAKEOVER_DEADLINE))
        leader.start()  # back as the standby: the lock is the other's now
        await until_role(leader, "standby")

    async def chaos() -> None:
        await reached(0.2)
        await s.a.kill_worker()
        kills.append("worker")
        await reached(0.4)
        await kill_leader()  # the first scheduler: the second takes over
        await reached(0.7)
        await kill_leader()  # the second: the first, restarted, takes over again

    gate = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with (
        httpx.AsyncClient(base_url=s.a.web_url, timeout=60, limits=limits) as via_a,
        httpx.AsyncClient(base_url=s.b.web_url, timeout=60, limits=limits) as via_b,
    ):

        async def one(p: Push) -> None:
            nonlocal done
            web, client = (s.a, via_a) if p.index % 2 == 0 else (s.b, via_b)
            async with gate:
                await _send(client, web, p, bodies)
            async with progress:
                done += 1
                progress.notify_all()

        tasks = [asyncio.create_task(chaos()), *(asyncio.create_task(one(p)) for p in pushes)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
    pushed = time.monotonic()
    assert kills == ["worker", "scheduler", "scheduler-b"]
    for process in (s.a.web, s.b.web, s.a.worker, s.b.worker, *s.schedulers, s.a.sim, s.a.redis):
        process.alive()

    # -- settling --------------------------------------------------------------------------------------
    async with httpx.AsyncClient(base_url=s.a.sim_url, timeout=30) as sim:

        async def sim_log() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            return (await sim.get("/_sim/requests")).json(), (await sim.get("/_sim/callbacks")).json()

        async def delivered() -> bool:
            requests, callbacks = await sim_log()
            expected = sum(OUTCOMES.get(str(b["PhoneNumber"])[-4:], ("", "", 1))[2] for b in requests)
            return len(callbacks) >= expected

        await _until(delivered, what="the simulator's callbacks all sent", timeout=SETTLE_DEADLINE, every=0.5)

        async def settled() -> bool:
            for process in (s.a.web, s.b.web, s.a.worker, s.b.worker, *s.schedulers):
                process.alive()
            pending = await _scalar(engine, "SELECT count(*) FROM payments WHERE status = 'pending'")
            unprocessed = await _scalar(
                engine, "SELECT count(*) FROM callback_inbox WHERE processed_at IS NULL"
            )
            return pending == 0 and unprocessed == 0 and await _work_left(engine) == []

        await _until(
            settled,
            what="no pending payment, every callback processed, the job outbox empty",
            timeout=SETTLE_DEADLINE,
            every=0.5,
        )
        sim_requests, _ = await sim_log()
    sim_requests = [b for b in sim_requests if str(b["PhoneNumber"]) in phones.values()]
    settled_at = time.monotonic()
    leader_of(s)  # still exactly one

    claims = await _rows(engine, "SELECT job, claimed_at FROM scale_out_claims ORDER BY claimed_at")
    until = await _scalar_time(engine)
    ledger = await run_cli(s.a.srv, "ledger", "check")
    payments = await _rows(
        engine,
        "SELECT id, tenant_id, status, amount, phone, idempotency_key, checkout_request_id, receipt, flag, "
        "commission_cents FROM payments WHERE source = 'api'",
    )
    postings = await _rows(
        engine,
        "SELECT payment_id, kind, amount_cents FROM ledger_transfers "
        "WHERE kind IN ('commission.wallet', 'commission.receivable')",
    )
    customers: dict[tuple[str, str], dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=s.b.web_url, timeout=30) as client:
        for biz in bizs:
            r = await client.get("/api/customers", params={"per_page": 100}, headers=bearer(biz.key))
            assert r.status_code == 200, r.text
            for c in r.json()["items"]:
                customers[(biz.tenant_id, c["phone"])] = c

    # -- the figures -------------------------------------------------------------------------------------
    window = (until - since).total_seconds()
    by_job: dict[str, list[datetime]] = defaultdict(list)
    for row in claims:
        by_job[row["job"]].append(row["claimed_at"])
    sim_amounts = Counter(int(float(b["Amount"])) for b in sim_requests)
    accepted = Counter("a" if p.index % 2 == 0 else "b" for p in pushes if p.accepted)
    figures = {
        "seed": seed,
        "pushes sent": N_PUSHES,
        "accepted (201) via web A / web B": f"{accepted['a']} / {accepted['b']}",
        "HTTP 500 answers": len(bodies.get(500, [])),
        "final statuses": dict(Counter(p["status"] for p in payments)),
        "kills": kills,
        "seconds to take over after the leader's SIGKILL": [round(t, 2) for t in takeovers],
        "seconds of periodic claims recorded": round(window, 1),
        "claims per periodic job (period s)": {job: f"{len(by_job[job])} ({every[job]:g})" for job in every},
        "seconds: setup": round(setup_done - started, 1),
        "seconds: pushes under chaos": round(pushed - setup_done, 1),
        "seconds: settling": round(settled_at - pushed, 1),
        "seconds: total": round(time.monotonic() - started, 1),
    }
    report = "\n".join(f"{k}: {v}" for k, v in figures.items())
    (tmp_path / "scale-out-summary.txt").write_text(report + "\n", encoding="utf-8")
    SUMMARY.append(("scale-out test figures", report))
    print(f"\n{report}")

    # -- the verdict: the books ----------------------------------------------------------------------------
    assert bodies.get(500, []) == []
    assert ledger.returncode == 0, ledger.output
    assert "ledger balanced" in ledger.stdout, ledger.output
    assert accepted["a"] >= N_PUSHES // 3 and accepted["b"] >= N_PUSHES // 3, accepted  # both webs served
    by_key = {(str(p["tenant_id"]), p["idempotency_key"]): p for p in payments}
    assert len(payments) == len(by_key), "two payments share one Idempotency-Key"
    for p in pushes:
        if p.payment_id is not None:
            assert str(by_key[(p.biz.tenant_id, p.key)]["id"]) == p.payment_id
    assert {a: n for a, n in sim_amounts.items() if n > 1} == {}, "a payment prompted the customer twice"
    receipts = Counter(p["receipt"] for p in payments if p["receipt"])
    assert {r: n for r, n in receipts.items() if n > 1} == {}
    assert [p for p in payments if p["flag"]] == []
    push_of_amount = {p.amount: p for p in pushes}
    wrong = []
    for row in payments:
        push = push_of_amount[row["amount"]]
        if row["checkout_request_id"] is None:  # Daraja never accepted it: nobody was asked to pay
            if row["status"] == "success":
                wrong.append((push.index, push.suffix, row["status"], "success without an id"))
        elif row["status"] != OUTCOMES[push.suffix][1]:
            wrong.append((push.index, push.suffix, row["status"], OUTCOMES[push.suffix][1]))
        elif sim_amounts[row["amount"]] != 1:
            wrong.append((push.index, push.suffix, row["status"], "not in the simulator's log once"))
    assert wrong == [], "(push, phone suffix, final status, what the simulator decided)"

    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in payments:
        if row["status"] == "success":
            want[(str(row["tenant_id"]), row["phone"])][0] += 1
            want[(str(row["tenant_id"]), row["phone"])][1] += row["amount"]
    got = {k: [c["paid_count"], c["paid_total"]] for k, c in customers.items() if k[1] in phones.values()}
    assert {k: v for k, v in got.items() if v != [0, 0]} == dict(want)

    assert _bad_commission(payments, postings, bizs) == []

    # -- the verdict: the schedulers and their periods ----------------------------------------------------
    assert len(takeovers) == 2 and max(takeovers) <= TAKEOVER_DEADLINE
    assert set(by_job) <= set(every), set(by_job) - set(every)
    for job, period in every.items():
        times = [before[job], *by_job[job]]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        # Never twice in one period, whichever scheduler claimed it, failovers included.
        assert all(gap >= period - 0.001 for gap in gaps), (job, period, gaps)
        assert len(by_job[job]) <= window / period + 1, (job, period, len(by_job[job]), window)
        if period >= 600:
            # Daily, hourly and ten-minute jobs: enqueued once, when the first scheduler started; neither
            # the standby, nor a takeover, nor a restarted scheduler enqueued them again.
            assert by_job[job] == [], (job, by_job[job])
        elif period < 10:
            # The frequent ones kept their pace through both failovers: a pause of at most the standby's
            # retry, and about window / period runs in all (a claim lands within a tick of being due).
            assert max(gaps) <= period + STANDBY_RETRY + 3.0, (job, gaps)
            assert len(by_job[job]) >= (window - 2 * (STANDBY_RETRY + 3.0)) / (period + 1.0) - 1, (
                job,
                len(by_job[job]),
                window,
            )


def _bad_commission(
    payments: list[dict[str, Any]], postings: list[dict[str, Any]], bizs: list[Biz]
) -> list[tuple[str, str, int, list[tuple[str, int]]]]:
    """Payments whose commission postings are not exactly one per success (none on the rest)."""
    posted: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for t in postings:
        posted[str(t["payment_id"])].append((t["kind"], t["amount_cents"]))
    modes = {b.tenant_id: b.mode for b in bizs}
    bad = []
    for row in payments:
        mine = sorted(posted.get(str(row["id"]), []))
        kinds = [k for k, _ in mine]
        if row["status"] != "success":
            ok = mine == []
        elif modes[str(row["tenant_id"])] == "wallet":
            ok = mine == [("commission.wallet", row["commission_cents"])]
        elif modes[str(row["tenant_id"])] == "receivable":
            ok = mine == [("commission.receivable", row["commission_cents"])]
        else:  # the hybrid business whose wallet runs dry: its wallet part and its invoice part, once each
            ok = len(kinds) == len(set(kinds)) >= 1 and sum(c for _, c in mine) == row["commission_cents"]
        if not ok:
            bad.append((str(row["id"]), row["status"], row["commission_cents"], mine))
    return bad


async def _scalar_time(engine: AsyncEngine) -> datetime:
    async with engine.connect() as conn:
        now = await conn.scalar(text("SELECT clock_timestamp()"))
    assert isinstance(now, datetime)
    return now
