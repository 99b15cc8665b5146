"""Callback applied -> webhook delivered, at a steady callback rate (Postgres + Redis). Run by hand:

    .venv/bin/python bench/webhook_latency.py                        # 3000 payments per phase at 100/s
    .venv/bin/python bench/webhook_latency.py --payments 1500 --rate 50 --keep

The question: at a steady 100 payments/s, how long after a Daraja callback is applied does the merchant's
webhook receiver have the event (p50/p99)? Built on bench/callback_ingest.py (seeding, Postgres and
process helpers are imported from it) and bench/_webhook_receiver.py (the recording receiver).

1. A fresh Postgres database, migrated, and a unique REDIS_NAMESPACE. One active business with a
   simulator channel and ``warmup + payments + webhook-warmup + payments`` pending payments, seeded by
   ``callback_ingest.seed`` (the first through the real services, the rest bulk copies of its rows).
2. ``lipapush web`` (one uvicorn process), ``lipapush worker --threads 8`` and ``lipapush scheduler``
   (periodic jobs and the job-outbox relay, which sends the retries) as real processes, with
   ``WEBHOOK_ALLOW_PRIVATE_TARGETS=true``.
3. Callbacks are fired on a schedule, not as fast as possible: callback i of a phase is sent at
   ``t0 + i / rate`` (aiohttp, up to ``--concurrency`` connections, one task per callback so a slow
   answer never delays the next send). The time each POST really started (``time.time()``) is the
   "callback sent" moment; how late it started against its schedule (sender lateness) and how many
   sends waited for a free connection are reported, so a late sender cannot pass for a slow product.
4. One run, two phases over the same processes, payments and rate (the baseline is measured in the
   same run, as every bench here does):

   * **baseline**: no webhook endpoint exists. ``--warmup`` callbacks (untimed), then ``--payments``
     timed ones. Per payment: ``completed_at - sent`` = callback sent -> callback applied (the
     callback path: web stores it in the inbox, the worker applies it; ``payments.completed_at`` is set
     in the transaction that applies it, the one that writes the webhook event).
   * **webhooks**: then ONE endpoint is registered for the business's default app
     (``core.apps.service.apps.default_app``) in the payments' mode, through
     ``core.webhooks.service.webhooks.create_endpoint`` in a unit of work (settings with
     WEBHOOK_ALLOW_PRIVATE_TARGETS), pointing at the recording receiver, which is given the
     endpoint's secret and verifies every signature. ``--webhook-warmup`` callbacks (untimed, they
     open the sender's connections), then ``--payments`` timed ones. Per payment (its event's
     ``webhook-id`` is ``webhook_messages.id`` of the message whose ``object_id`` is the payment id):
     ``arrival - completed_at`` = **callback applied -> webhook delivered**; ``arrival - sent`` = end to
     end; ``completed_at - sent`` again, to see what delivering webhooks costs the callback path.

   Phases rather than two businesses interleaved: the webhook phase then runs at exactly ``--rate``
   payments/s, every one with a webhook, as the question asks, and the baseline at the same rate on
   the same processes (warm) and data. The price is that the phases run 30 s apart on a machine others
   share: the CPU each phase left to "other processes" is printed, so a noisy phase shows.
5. Printed, per phase: count, p50/p90/p99/max of each latency, achieved callback rate, deliveries/s,
   sender lateness; duplicates (a webhook-id that arrived twice), bad or missing signatures (must be
   0), deliveries that needed more than one attempt (webhook_attempts); the ratios webhook added
   latency / callback path latency (p50 and p99, baseline phase); where the time of a delivery goes
   (applied -> message written -> send started -> arrived, from webhook_messages.created_at and the first
   attempt's attempted_at - latency_ms); the largest backlogs seen while it ran (sampled every
   ``--sample-every`` s: callbacks sent but not applied, events applied but not delivered, Dramatiq's
   Redis queue, Postgres backends waiting for a row lock and on which statement) and a 5 s timeline;
   CPU seconds per 1000 payments of each process (``lipapush web`` with its forked child) and how busy
   each product process was.
   Exit 1 if a webhook is missing, a signature fails, or a payment did not end ``success``.
6. Everything is cleaned up (processes, receiver, database, Redis namespace) unless ``--keep``.
   ``--profile DIR``: py-spy (``--gil``) raw stacks of web, worker and scheduler during the timed
   webhook phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psutil
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._webhook_receiver import Receiver
from bench.callback_ingest import (
    CpuMeter,
    Proc,
    Seeded,
    _engine,
    _free_port,
    _named_pids,
    _pct,
    callback_body,
    create_pg_database,
    delete_redis_namespace,
    drop_pg_database,
    seed,
    start_proc,
    start_profilers,
    stop_profilers,
    wait_backends_gone,
    wait_healthy,
    wait_log_line,
)
from core.apps.service import apps
from core.config import load_settings
from core.migrate import upgrade
from core.payments.models import Payment
from core.runtime import configure, unit_of_work
from core.webhooks.service import webhooks

QUANTILES = (0.5, 0.9, 0.99)


# -- the endpoint ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Registered:
    endpoint_id: str
    secret: str
    mode: str
    url: str


async def register_endpoint(database_url: str, url: str) -> Registered:
    """One webhook endpoint for the business's default app, in the payments' mode, every event type."""
    rt = configure(
        load_settings(DATABASE_URL=database_url, REDIS_URL=None, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    )
    try:
        async with unit_of_work() as session:
            tenant_id, mode = (await session.execute(select(Payment.tenant_id, Payment.mode).limit(1))).one()
            app = await apps.default_app(session, tenant_id=tenant_id)
            endpoint, secret = await webhooks.create_endpoint(
                session,
                app=app,
                mode=mode,
                url=url,
                event_types=None,
                description="bench/webhook_latency.py",
                box=rt.secrets,
                settings=rt.settings,
            )
            return Registered(str(endpoint.id), secret, mode.value, endpoint.url)
    finally:
        await rt.aclose()


def tree_pids(pid: int) -> list[int]:
    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


# -- the paced sender ----------------------------------------------------------------------------------
@dataclass
class Paced:
    sent: list[float]  # time.time() when each POST started (its first try)
    late: list[float]  # seconds each POST started after its scheduled time
    http: list[float]  # seconds to the 200 (all tries)
    errors: dict[str, int]
    failed: int
    queued_for_connection: int
    max_connection_wait: float

    @property
    def rate(self) -> float:
        span = max(self.sent) - min(self.sent)
        return (len(self.sent) - 1) / span if span > 0 else float("nan")


async def fire_paced(url: str, bodies: list[bytes], rate: float, concurrency: int) -> Paced:
    """POST body i at t0 + i / rate, each in its own task; a non-200 is retried (as Daraja would)."""
    n = len(bodies)
    sent = [math.nan] * n
    late = [math.nan] * n
    http_s = [math.nan] * n
    errors: dict[str, int] = {}
    failed = 0
    queued = 0
    max_wait = 0.0
    waits: dict[int, float] = {}

    async def on_queued_start(_s: Any, ctx: Any, _p: Any) -> None:
        nonlocal queued
        queued += 1
        waits[id(ctx)] = time.perf_counter()

    async def on_queued_end(_s: Any, ctx: Any, _p: Any) -> None:
        nonlocal max_wait
        started = waits.pop(id(ctx), None)
        if started is not None:
            max_wait = max(max_wait, time.perf_counter() - started)

    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(on_queued_start)
    trace.on_connection_queued_end.append(on_queued_end)
    headers = {"Content-Type": "application/json"}
    loop = asyncio.get_running_loop()

    async def one(http: aiohttp.ClientSession, i: int, due: float) -> None:
        nonlocal failed
        late[i] = loop.time() - due
        sent[i] = time.time()
        t = time.perf_counter()
        for attempt in range(5):
            try:
                async with http.post(url, data=bodies[i], headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        http_s[i] = time.perf_counter() - t
                        return
                    key = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                key = type(exc).__name__
            errors[key] = errors.get(key, 0) + 1
            await asyncio.sleep(0.05 * (attempt + 1))
        failed += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60), trace_configs=[trace]
    ) as http:
        tasks = []
        t0 = loop.time() + 0.02
        for i in range(n):
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, i, due)))
        await asyncio.gather(*tasks)
    return Paced(sent, late, http_s, errors, failed, queued, max_wait)


# -- sampling backlogs while a phase runs -------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    sent: int
    applied: int
    delivered: int
    redis_queued: int
    redis_unacked: int
    outbox: int
    pg_active: int  # backends of the database running a statement
    pg_lock_waits: int  # of which waiting for a lock another transaction holds


# Other backends of the bench database (not this poller) running a statement, and those waiting for a
# lock (a row another transaction updated or locked FOR UPDATE and has not committed yet).
PG_ACTIVITY = text(
    "SELECT count(*) FILTER (WHERE state = 'active'), "
    "count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
# What the lock waiters are running, and what the backend that blocks each one last ran.
PG_LOCK_WAITERS = text(
    "SELECT left(regexp_replace(w.query, '\\s+', ' ', 'g'), 90), "
    "left(regexp_replace(coalesce(b.query, '?'), '\\s+', ' ', 'g'), 90) "
    "FROM pg_stat_activity w "
    "LEFT JOIN pg_stat_activity b ON b.pid = (pg_blocking_pids(w.pid))[1] "
    "WHERE w.datname = current_database() AND w.state = 'active' AND w.wait_event_type = 'Lock'"
)


@dataclass
class Sampler:
    engine: AsyncEngine
    redis_url: str
    namespace: str
    receiver: Receiver | None
    every: float
    samples: list[Sample] = field(default_factory=list)
    # (waiting statement, blocking backend's last statement) -> times seen
    waiters: dict[tuple[str, str], int] = field(default_factory=dict)

    async def counts(self) -> tuple[int, int, int, int, int, int, int]:
        async with self.engine.connect() as conn:
            applied = int(
                await conn.scalar(text("SELECT count(*) FROM payments WHERE status = 'success'")) or 0
            )
            outbox = int(await conn.scalar(text("SELECT count(*) FROM job_outbox")) or 0)
            active, lock_waits = (await conn.execute(PG_ACTIVITY)).one()
            if lock_waits:
                for waiting, blocker in (await conn.execute(PG_LOCK_WAITERS)).all():
                    self.waiters[(waiting, blocker)] = self.waiters.get((waiting, blocker), 0) + 1
        delivered = 0
        if self.receiver is not None:
            st = await asyncio.to_thread(self.receiver.stats, arrivals=False)
            delivered = int(st["posts"]) - int(st["duplicates"])
        queued, unacked = await asyncio.to_thread(self._redis_depth)
        return applied, delivered, queued, unacked, outbox, int(active), int(lock_waits)

    def _redis_depth(self) -> tuple[int, int]:
        """Dramatiq's Redis broker: message ids waiting in the list ``ns:default``; every message not
        acked yet (waiting, prefetched by a worker or running) in the hash ``ns:default.msgs``."""
        import redis

        r = redis.Redis.from_url(self.redis_url)
        try:
            return int(r.llen(f"{self.namespace}:default")), int(r.hlen(f"{self.namespace}:default.msgs"))
        finally:
            r.close()

    async def run(self, paced_sent: list[float], stop: asyncio.Event) -> None:
        base = await self.counts()
        while not stop.is_set():
            applied, delivered, queued, unacked, outbox, active, lock_waits = await self.counts()
            now = time.time()
            n_sent = sum(1 for s in paced_sent if s <= now)
            self.samples.append(
                Sample(
                    now,
                    n_sent,
                    applied - base[0],
                    delivered - base[1],
                    queued,
                    unacked,
                    outbox,
                    active,
                    lock_waits,
                )
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every)


# -- one phase ----------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    checkout_ids: list[str]
    paced: Paced
    cpu: dict[str, float]
    busy: float
    wall: float
    samples: list[Sample]
    waiters: dict[tuple[str, str], int]
    rows: list[dict[str, Any]] = field(default_factory=list)  # per payment, from the database
    arrivals: dict[str, float] = field(default_factory=dict)  # webhook-id -> receiver arrival
    repeats: dict[str, int] = field(default_factory=dict)  # webhook-id -> times it arrived, when > 1
    signatures: dict[str, int] = field(default_factory=dict)  # the receiver's verified / bad / unsigned


async def wait_until(check: Any, what: str, within: float, procs: list[Proc]) -> None:
    deadline = time.monotonic() + within
    while True:
        done, state = await check()
        if done:
            return
        for p in procs:
            p.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {within:.0f}s ({state})")
        await asyncio.sleep(0.1)


async def count_success(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM payments WHERE status = 'success'")) or 0)


def unique_posts(receiver: Receiver) -> int:
    st = receiver.stats(arrivals=False)
    return int(st["posts"]) - int(st["duplicates"])


async def run_phase(
    name: str,
    *,
    url: str,
    seeded: Seeded,
    indexes: range,
    rate: float,
    concurrency: int,
    engine: AsyncEngine,
    receiver: Receiver | None,
    redis_url: str,
    namespace: str,
    meter: CpuMeter | None,
    sample_every: float,
    within: float,
    procs: list[Proc],
) -> Phase:
    """Fire the callbacks of `indexes` at `rate`; return once every one is applied and (with a
    receiver) every webhook arrived."""
    bodies = [callback_body(seeded, i) for i in indexes]
    success0 = await count_success(engine)
    posts0 = await asyncio.to_thread(unique_posts, receiver) if receiver is not None else 0
    sampler = Sampler(engine, redis_url, namespace, receiver, sample_every) if meter else None
    stop = asyncio.Event()
    if meter:
        meter.begin()
    sampling = None
    fire = asyncio.create_task(fire_paced(url, bodies, rate, concurrency))
    if sampler is not None:
        # Sends counted by their schedule (the sender's own times exist only once it is done).
        t_start = time.time()
        sampling = asyncio.create_task(sampler.run([t_start + i / rate for i in range(len(bodies))], stop))
    paced = await fire
    if paced.failed:
        stop.set()
        raise RuntimeError(f"{name}: {paced.failed} callbacks refused 5 times: {paced.errors}")
    n = len(bodies)

    async def applied() -> tuple[bool, str]:
        got = await count_success(engine) - success0
        return got >= n, f"{got} of {n} applied"

    await wait_until(applied, f"{name}: callbacks applied", within, procs)
    if receiver is not None:

        async def delivered() -> tuple[bool, str]:
            got = await asyncio.to_thread(unique_posts, receiver) - posts0
            return got >= n, f"{got} of {n} webhooks arrived"

        with contextlib.suppress(TimeoutError):
            await wait_until(delivered, f"{name}: webhooks delivered", within, procs)
    cpu, busy, wall = meter.end() if meter else ({}, 0.0, 0.0)
    stop.set()
    if sampling is not None:
        await sampling
    return Phase(
        name,
        [seeded.checkout_ids[i] for i in indexes],
        paced,
        cpu,
        busy,
        wall,
        sampler.samples if sampler else [],
        sampler.waiters if sampler else {},
    )


PER_PAYMENT = text(
    """
    SELECT p.checkout_request_id AS checkout, p.status::text AS status,
           extract(epoch FROM p.completed_at)::float8 AS completed,
           m.id AS msg_id, extract(epoch FROM m.created_at)::float8 AS msg_created,
           d.status::text AS delivery_status, d.attempts AS attempts,
           extract(epoch FROM a.attempted_at)::float8 AS first_attempted, a.latency_ms AS first_latency_ms,
           a.outcome AS first_outcome
    FROM payments p
    LEFT JOIN webhook_messages m ON m.object_id = p.id::text
    LEFT JOIN webhook_deliveries d ON d.message_id = m.id
    LEFT JOIN webhook_attempts a ON a.delivery_id = d.id AND a.number = 1
    WHERE p.checkout_request_id = ANY(:ids)
    """
)


async def load_rows(engine: AsyncEngine, phase: Phase) -> None:
    async with engine.connect() as conn:
        result = await conn.execute(PER_PAYMENT, {"ids": phase.checkout_ids})
        by_checkout = {r["checkout"]: dict(r) for r in result.mappings()}
    phase.rows = [by_checkout.get(c, {"checkout": c, "status": "missing"}) for c in phase.checkout_ids]


# -- report -------------------------------------------------------------------------------------------
def stats_line(label: str, values_s: list[float]) -> str:
    vals = [v for v in values_s if not math.isnan(v)]
    if not vals:
        return f"  {label:<44} n 0"
    q = {p: _pct(vals, p) * 1000 for p in QUANTILES}
    return (
        f"  {label:<44} n {len(vals):>5}  p50 {q[0.5]:>8.1f}  p90 {q[0.9]:>8.1f}  p99 {q[0.99]:>8.1f}  "
        f"max {max(vals) * 1000:>8.1f}  ms"
    )


def q(values_s: list[float], p: float) -> float:
    vals = [v for v in values_s if not math.isnan(v)]
    return _pct(vals, p) if vals else math.nan


def applied_latency(phase: Phase) -> list[float]:
    return [(r.get("completed") or math.nan) - s for r, s in zip(phase.rows, phase.paced.sent, strict=True)]


def arrival_of(phase: Phase, r: dict[str, Any]) -> float:
    msg = r.get("msg_id")
    return phase.arrivals.get(msg, math.nan) if msg else math.nan


def report_sender(phase: Phase) -> None:
    p = phase.paced
    late = [v for v in p.late if not math.isnan(v)]
    print(
        f"  sender: {len(p.sent)} callbacks at {p.rate:.1f}/s achieved; lateness p50 "
        f"{_pct(late, 0.5) * 1000:.1f} ms, p99 {_pct(late, 0.99) * 1000:.1f} ms, "
        f"max {max(late) * 1000:.1f} ms; "
        f"{p.queued_for_connection} waited for a connection (max {p.max_connection_wait * 1000:.1f} ms); "
        f"HTTP p50 {q(p.http, 0.5) * 1000:.1f} ms, p99 {q(p.http, 0.99) * 1000:.1f} ms; "
        f"retried errors: {p.errors or 'none'}"
    )


def report_backlog(phase: Phase, *, with_webhooks: bool) -> None:
    if not phase.samples:
        return
    s = phase.samples
    pend = max(s, key=lambda x: x.sent - x.applied)
    undeliv = max(s, key=lambda x: x.applied - x.delivered)
    t0 = s[0].t
    hooks = (
        f"applied, webhook not arrived max {undeliv.applied - undeliv.delivered} "
        f"(at +{undeliv.t - t0:.1f}s); "
        if with_webhooks
        else ""
    )
    print(
        f"  largest backlog ({len(s)} samples): callbacks sent, not applied max {pend.sent - pend.applied} "
        f"(at +{pend.t - t0:.1f}s); {hooks}Dramatiq queue max {max(x.redis_queued for x in s)} waiting, "
        f"{max(x.redis_unacked for x in s)} unacked; job_outbox max {max(x.outbox for x in s)} rows"
    )
    active = sum(x.pg_active for x in s) / len(s)
    waits = sum(x.pg_lock_waits for x in s) / len(s)
    print(
        f"  Postgres backends running a statement: mean {active:.1f}, max {max(x.pg_active for x in s)}; "
        f"of them waiting for a row lock: mean {waits:.1f}, max {max(x.pg_lock_waits for x in s)}"
    )
    for (waiting, blocker), seen in sorted(phase.waiters.items(), key=lambda kv: -kv[1])[:3]:
        print(f"    lock wait seen {seen}x: {waiting!r}")
        print(f"      blocked by a backend that last ran {blocker!r}")
    # A coarse timeline: cumulative counts every ~5 s since the phase started.
    step = max(1, round(5 / max(s[1].t - s[0].t, 1e-3))) if len(s) > 1 else 1
    cols = "  timeline   t s   sent  applied" + (" delivered" if with_webhooks else "") + "  queue  locks"
    print(cols)
    for x in s[::step]:
        hook_col = f" {x.delivered:>9}" if with_webhooks else ""
        print(
            f"  {'':9}{x.t - t0:>5.0f} {x.sent:>6} {x.applied:>8}{hook_col} {x.redis_queued:>6} "
            f"{x.pg_lock_waits:>6}"
        )


def report_cpu(phase: Phase, product: list[str]) -> None:
    if not phase.cpu:
        return
    n = len(phase.checkout_ids)
    cpus = os.cpu_count() or 1
    per_k = 1000 / n
    other = phase.busy - sum(phase.cpu.values())
    parts = "  ".join(f"{k} {v * per_k:.2f}" for k, v in phase.cpu.items())
    print(
        f"  CPU s per 1000 payments: {parts}  other processes {other * per_k:.2f} | machine "
        f"{phase.busy / phase.wall / cpus * 100:.0f}% of {cpus} CPUs over {phase.wall:.1f}s"
    )
    busy = ", ".join(f"{k} {phase.cpu[k] / phase.wall * 100:.0f}%" for k in product if k in phase.cpu)
    print(f"  product processes, share of one core over the phase: {busy}")


def report(
    args: argparse.Namespace, base: Phase, hook: Phase, reg: Registered, product: list[str]
) -> list[str]:
    problems: list[str] = []
    cpus = os.cpu_count() or 1
    print()
    print(
        f"webhook latency: Postgres + Redis, lipapush web + worker (--threads {args.worker_threads}) + "
        f"scheduler; {cpus} CPUs (shared: numbers are noisy); LOG_LEVEL={args.log_level}; "
        f"rate {args.rate:g}/s, {args.payments} payments per phase; endpoint mode {reg.mode}"
    )

    # baseline
    base_applied = applied_latency(base)
    print(f"\n[baseline] no webhook endpoint, {len(base.checkout_ids)} callbacks")
    report_sender(base)
    print(stats_line("callback sent -> applied (completed_at)", base_applied))
    report_backlog(base, with_webhooks=False)
    report_cpu(base, product)
    not_ok = sum(1 for r in base.rows if r.get("status") != "success")
    if not_ok:
        problems.append(f"baseline: {not_ok} payments not success")

    # webhooks
    hook_applied = applied_latency(hook)
    added: list[float] = []
    e2e: list[float] = []
    to_message: list[float] = []
    to_send: list[float] = []
    send: list[float] = []
    send_to_arrival: list[float] = []
    missing = 0
    for r, sent in zip(hook.rows, hook.paced.sent, strict=True):
        arrival = arrival_of(hook, r)
        completed = r.get("completed") or math.nan
        if math.isnan(arrival):
            missing += 1
            continue
        added.append(arrival - completed)
        e2e.append(arrival - sent)
        if r.get("msg_created") is not None:
            to_message.append(r["msg_created"] - completed)
        if r.get("first_attempted") is not None and r.get("first_latency_ms") is not None:
            started = r["first_attempted"] - r["first_latency_ms"] / 1000
            to_send.append(started - (r.get("msg_created") or completed))
            send.append(r["first_latency_ms"] / 1000)
            send_to_arrival.append(arrival - started)
    n = len(hook.checkout_ids)
    arrived = [arrival_of(hook, r) for r in hook.rows]
    arrived = [a for a in arrived if not math.isnan(a)]
    span = (max(arrived) - min(arrived)) if len(arrived) > 1 else math.nan
    ids = {r.get("msg_id") for r in hook.rows if r.get("msg_id")}
    dups = sum(1 for k, v in hook.repeats.items() if k in ids and v > 1)
    retried = sum(1 for r in hook.rows if (r.get("attempts") or 0) > 1)
    first_failed = sum(1 for r in hook.rows if r.get("first_outcome") not in (None, "delivered"))
    not_ok = sum(1 for r in hook.rows if r.get("status") != "success")
    not_succeeded = sum(1 for r in hook.rows if r.get("delivery_status") != "succeeded")
    sig = hook.signatures
    print(f"\n[webhooks] one endpoint ({reg.url}), {n} callbacks")
    report_sender(hook)
    print(stats_line("callback applied -> webhook delivered", added))
    print(stats_line("callback sent -> webhook delivered (e2e)", e2e))
    print(stats_line("callback sent -> applied (completed_at)", hook_applied))
    print("  where a delivery's time goes (first attempt):")
    print(stats_line("  applied -> event written (same transaction)", to_message))
    print(stats_line("  event written -> POST started", to_send))
    print(stats_line("  POST started -> answer (attempt latency_ms)", send))
    print(stats_line("  POST started -> arrived at receiver", send_to_arrival))
    print(
        f"  webhooks: {len(arrived)} of {n} arrived, "
        f"{len(arrived) / span if span else math.nan:.1f} deliveries/s "
        f"(first to last arrival); missing {missing}; duplicates {dups}; signatures at the receiver "
        f"(whole run): {sig.get('verified', 0)} verified, {sig.get('bad_signatures', 0)} bad, "
        f"{sig.get('unsigned', 0)} unsigned; more than one attempt {retried} (first attempt failed "
        f"{first_failed}); deliveries not succeeded {not_succeeded}"
    )
    report_backlog(hook, with_webhooks=True)
    report_cpu(hook, product)
    if missing:
        problems.append(f"{missing} webhooks never arrived")
    if sig.get("bad_signatures", 0) or sig.get("unsigned", 0):
        problems.append(f"{sig.get('bad_signatures', 0)} bad and {sig.get('unsigned', 0)} missing signatures")
    if not_ok:
        problems.append(f"webhooks phase: {not_ok} payments not success")

    # the ratio
    print("\nsummary (ms)                     p50        p99")
    b50, b99 = q(base_applied, 0.5) * 1000, q(base_applied, 0.99) * 1000
    a50, a99 = q(added, 0.5) * 1000, q(added, 0.99) * 1000
    h50, h99 = q(hook_applied, 0.5) * 1000, q(hook_applied, 0.99) * 1000
    e50, e99 = q(e2e, 0.5) * 1000, q(e2e, 0.99) * 1000
    print(f"  callback path, no webhooks {b50:>10.1f} {b99:>10.1f}   (baseline: sent -> applied)")
    print(f"  webhook added              {a50:>10.1f} {a99:>10.1f}   (applied -> delivered)")
    print(f"  ratio added / callback     {a50 / b50:>10.2f}x {a99 / b99:>9.2f}x")
    print(
        f"  callback path, w/ webhooks {h50:>10.1f} {h99:>10.1f}   "
        f"({h50 / b50:.2f}x, {h99 / b99:.2f}x baseline)"
    )
    print(f"  end to end                 {e50:>10.1f} {e99:>10.1f}   (sent -> delivered)")
    if problems:
        print("correctness: FAILED: " + "; ".join(problems))
    else:
        print("correctness: OK (every payment success, every webhook arrived once with a valid signature)")
    return problems


# -- the run ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=3000, help="timed callbacks per phase")
    parser.add_argument("--rate", type=float, default=100.0, help="callbacks per second, paced")
    parser.add_argument("--warmup", type=int, default=200, help="untimed callbacks before the baseline")
    parser.add_argument(
        "--webhook-warmup", type=int, default=100, help="untimed callbacks before the webhook phase"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="the sender's connections at most")
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the product processes")
    parser.add_argument("--sample-every", type=float, default=0.5, help="seconds between backlog samples")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for a phase to finish")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy raw stacks into DIR (webhook phase)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the process logs")
    args = parser.parse_args(argv)

    n, w1, w2 = args.payments, args.warmup, args.webhook_warmup
    total = w1 + n + w2 + n
    within = args.timeout or 60.0 + n / 10
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-bench-wh-"))
    namespace = f"lipapush-bench-{secrets.token_hex(4)}"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    procs: list[Proc] = []
    receiver: Receiver | None = None
    db_name: str | None = None

    idle_busy = psutil.cpu_percent(interval=1.0)
    if idle_busy > 10:
        print(
            f"warning: the machine is {idle_busy:.0f}% busy before the run; latencies will be noisy",
            file=sys.stderr,
        )
    try:
        database_url, db_name = create_pg_database(args.pg_admin_url, "wh")
        t = time.perf_counter()
        upgrade(database_url)
        seeded = asyncio.run(seed(database_url, total))
        print(
            f"seeded {total} pending payments in {time.perf_counter() - t:.1f}s ({db_name})", file=sys.stderr
        )

        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "LIPAPUSH_"))}
        env.update(
            DATABASE_URL=database_url,
            PUBLIC_BASE_URL=base_url,
            LOG_LEVEL=args.log_level,
            PYTHONUNBUFFERED="1",
            REDIS_URL=args.redis_url,
            REDIS_NAMESPACE=namespace,
            WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        )
        procs.append(start_proc("web", ["web", "--host", "127.0.0.1", "--port", str(port)], env, workdir))
        procs.append(start_proc("worker", ["worker", "--threads", str(args.worker_threads)], env, workdir))
        procs.append(start_proc("scheduler", ["scheduler"], env, workdir))
        wait_log_line(procs[1], "worker running")
        asyncio.run(wait_healthy(base_url, procs))
        product = [p.name for p in procs]

        # `lipapush web` serves from a forked child (web/supervisor.py): count each process's tree.
        named = {p.name: tree_pids(p.popen.pid) for p in procs}
        named["bench"] = [os.getpid()]
        named["postgres"] = []
        named["redis"] = _named_pids("redis-server")
        by_name = {"postgres": "postgres"}
        callback_url = f"{base_url}/callbacks/daraja/{seeded.token}"
        hook_port = _free_port()

        async def run_all() -> tuple[Phase, Phase, Registered]:
            nonlocal receiver
            engine = _engine(database_url)
            common: dict[str, Any] = dict(
                url=callback_url,
                seeded=seeded,
                rate=args.rate,
                concurrency=args.concurrency,
                engine=engine,
                redis_url=args.redis_url,
                namespace=namespace,
                sample_every=args.sample_every,
                within=within,
                procs=procs,
            )
            try:
                if w1:
                    await run_phase("warm-up", indexes=range(0, w1), receiver=None, meter=None, **common)
                print(f"baseline: {n} callbacks at {args.rate:g}/s, no endpoint", file=sys.stderr)
                base = await run_phase(
                    "baseline",
                    indexes=range(w1, w1 + n),
                    receiver=None,
                    meter=CpuMeter(named=dict(named), by_name=by_name),
                    **common,
                )
                reg = await register_endpoint(database_url, f"http://127.0.0.1:{hook_port}/webhooks")
                receiver = Receiver(record=True, secrets=[reg.secret], port=hook_port)
                hook_named = dict(named)
                hook_named["receiver"] = [receiver.pid]
                if w2:
                    await run_phase(
                        "webhook warm-up",
                        indexes=range(w1 + n, w1 + n + w2),
                        receiver=receiver,
                        meter=None,
                        **common,
                    )
                print(f"webhooks: {n} callbacks at {args.rate:g}/s, one endpoint", file=sys.stderr)
                spies = start_profilers(args.profile, procs) if args.profile else []
                hook = await run_phase(
                    "webhooks",
                    indexes=range(w1 + n + w2, total),
                    receiver=receiver,
                    meter=CpuMeter(named=hook_named, by_name=by_name),
                    **common,
                )
                stop_profilers(spies)
                # Retries (5 s later) and late duplicates: give stragglers a moment before reading.
                await asyncio.sleep(1.0)
                st = await asyncio.to_thread(receiver.stats)
                hook.arrivals, hook.repeats = st["arrivals"], st["repeats"]
                hook.signatures = {k: int(st[k]) for k in ("verified", "bad_signatures", "unsigned")}
                await load_rows(engine, base)
                await load_rows(engine, hook)
                return base, hook, reg
            finally:
                await engine.dispose()

        base, hook, reg = asyncio.run(run_all())
        problems = report(args, base, hook, reg, product)
        return 1 if problems else 0
    finally:
        for p in procs:
            p.stop()
        if receiver is not None:
            receiver.stop()
        with contextlib.suppress(Exception):
            delete_redis_namespace(args.redis_url, namespace)
        if db_name and not args.keep:
            with contextlib.suppress(Exception):
                wait_backends_gone(args.pg_admin_url, db_name, within=10)
            drop_pg_database(args.pg_admin_url, db_name)
        if args.keep:
            print(f"kept: {workdir} {db_name or ''}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
