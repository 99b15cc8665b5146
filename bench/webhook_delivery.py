"""Signed webhook deliveries through `WebhookSender`, against a bare aiohttp client. Run by hand:

    .venv/bin/python bench/webhook_delivery.py                          # 5000 messages, 50 at once
    .venv/bin/python bench/webhook_delivery.py --messages 2000 --rounds 2 --profile

What happens:

1. A receiver (bench/_webhook_receiver.py: raw asyncio + httptools on uvloop) runs as its own process
   on 127.0.0.1 and answers 200 ``ok`` to every POST, recording each ``webhook-id`` and counting the
   connections it accepted. The URL uses the name ``localhost`` (``--host``), so a connection is
   resolved as a merchant's name would be.
2. Each message is a ``payment.succeeded`` event built by ``core.webhooks.signing.event_body`` from a
   ``PaymentOut`` as the API returns it (~600 bytes), with its own ``msg_`` id; the bodies are built
   before the clock starts (the product stores them when the event happens, not when it sends).
3. In the timed loop, ``--concurrency`` tasks each take the next message, sign it with
   ``core.webhooks.signing.sign`` (a fresh timestamp, one ``new_secret()`` secret) and POST it:

   * **ours**: ``WebhookSender(allow_private=True, max_connections=C)`` ``.send(url, body, headers)``:
     the URL shape check on every send; for every new connection, the name resolved through the event
     loop and each address checked (``resolve_checked``, as the session's resolver) and a connection to
     that IP literal; aiohttp's pool (at most 20 connections to one host); the response read up to 4 KiB;
     a ``DeliveryResult``.
   * **baseline**: a bare ``aiohttp.ClientSession`` (``TCPConnector(limit=C)``), posting the same signed
     bodies with the same headers (Content-Type, User-Agent, the three ``webhook-*``) and reading the
     answer. The same signing work on both sides, so the ratio isolates the transport and the guard.

   Each run uses a fresh client, sends ``--warmup`` untimed messages first (this opens the pool's
   connections), then ``--messages`` timed ones. Runs alternate ours / baseline (``--rounds`` each,
   the order swapped every round); the medians are compared.
4. Prints, per run and as medians: deliveries/s (first timed send to last answer), latency p50/p99 of
   one POST (after signing: the transport call only), CPU ms per delivery of this process (the sender)
   and of the receiver, the CPU other processes took during the run, and connections the receiver
   accepted; then the ratio ours / baseline. Every run must deliver every message exactly once (the
   receiver's record), else exit 1. A last untimed check sends ``--verify`` messages per side to a
   receiver that verifies each signature with the ``standardwebhooks`` package.

``--profile`` adds one cProfile'd run of each side after the timed ones (not in the medians) and prints
where the sender's time went. The machine should be quiet: the sender and the receiver each want a core.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psutil

from bench._webhook_receiver import Receiver
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.schemas import PaymentOut
from core.webhooks.delivery import USER_AGENT, DeliveryOutcome, WebhookSender
from core.webhooks.signing import event_body, new_message_id, new_secret, sign

Post = Callable[[bytes, dict[str, str]], Awaitable[bool]]


# -- the messages --------------------------------------------------------------------------------------
def payment_data(i: int, *, now: datetime) -> dict[str, Any]:
    """A successful STK payment as the API returns it (PaymentOut, JSON mode)."""
    created = now - timedelta(seconds=40 + i % 20)
    return PaymentOut(
        id=uuid.uuid4(),
        status=PaymentStatus.success,
        amount=10 + (i * 7919) % 4990,
        phone=f"2547{i % 10**8:08d}",
        customer_name="Wanjiku Mwangi Njoroge",
        account_reference=f"INV{i % 10**9:09d}",
        description="Order payment",
        source=PaymentSource.api,
        checkout_request_id=f"ws_CO_{created:%d%m%Y%H%M%S}{i % 10**9:09d}",
        merchant_request_id=f"{29115 + i % 1000}-{34620561 + i}-1",
        receipt=f"TK{i % 36**8:08X}"[:10],
        result_code="0",
        result_desc="The service request is processed successfully.",
        flag=None,
        created_at=created,
        completed_at=created + timedelta(seconds=9),
    ).model_dump(mode="json")


def make_messages(count: int) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    return [
        (
            new_message_id(),
            event_body("payment.succeeded", payment_data(i, now=now), created_at=now, version=3),
        )
        for i in range(count)
    ]


# -- the two clients -----------------------------------------------------------------------------------
class Side:
    name = ""

    async def __aenter__(self) -> Post:
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        raise NotImplementedError


class Ours(Side):
    name = "ours"

    def __init__(self, url: str, concurrency: int) -> None:
        self.url, self.concurrency = url, concurrency

    async def __aenter__(self) -> Post:
        self.sender = WebhookSender(allow_private=True, max_connections=self.concurrency)
        url, sender = self.url, self.sender

        async def post(body: bytes, headers: dict[str, str]) -> bool:
            result = await sender.send(url, body, headers)
            return result.outcome is DeliveryOutcome.delivered

        return post

    async def __aexit__(self, *exc: object) -> None:
        await self.sender.aclose()


class Baseline(Side):
    name = "baseline"

    def __init__(self, url: str, concurrency: int) -> None:
        self.url, self.concurrency = url, concurrency

    async def __aenter__(self) -> Post:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=15, connect=5),
        )
        url, session = self.url, self.session
        fixed = {"Content-Type": "application/json", "User-Agent": USER_AGENT}

        async def post(body: bytes, headers: dict[str, str]) -> bool:
            async with session.post(url, data=body, headers={**fixed, **headers}) as resp:
                await resp.read()
                return resp.status == 200

        return post

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


# -- one run -------------------------------------------------------------------------------------------
@dataclass
class Run:
    side: str
    delivered: int
    failed: int
    seconds: float
    latencies: list[float]
    sender_cpu: float
    receiver_cpu: float
    other_cpu: float
    connections: int
    problems: list[str]

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def _drive(
    post: Post, messages: list[tuple[str, bytes]], secret: str, concurrency: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    failed = 0
    it = iter(messages)

    async def worker() -> None:
        nonlocal failed
        for msg_id, body in it:
            headers = sign(body, msg_id=msg_id, timestamp=datetime.now(UTC), secrets=[secret])
            t0 = time.perf_counter()
            try:
                ok = await post(body, headers)
            except (aiohttp.ClientError, OSError, TimeoutError):
                ok = False
            latencies.append(time.perf_counter() - t0)
            if not ok:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failed


def _cpu_total() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


async def one_run(
    side: Side,
    receiver: Receiver,
    *,
    secret: str,
    warmup: int,
    count: int,
    concurrency: int,
    profiler: cProfile.Profile | None = None,
) -> Run:
    messages = make_messages(warmup + count)
    receiver.stats(arrivals=False, reset=True)
    recv = psutil.Process(receiver.pid)
    async with side as post:
        _, warm_failed = await _drive(post, messages[:warmup], secret, concurrency)
        r0, me0, m0 = recv.cpu_times(), time.process_time(), _cpu_total()
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        latencies, failed = await _drive(post, messages[warmup:], secret, concurrency)
        seconds = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
        r1, me1, m1 = recv.cpu_times(), time.process_time(), _cpu_total()
    stats = receiver.stats(reset=True)
    problems = []
    if warm_failed or failed:
        problems.append(f"{side.name}: {warm_failed + failed} sends not delivered")
    expected = {m for m, _ in messages}
    got = set(stats["arrivals"])
    if got != expected or stats["duplicates"]:
        problems.append(
            f"{side.name}: receiver saw {len(got & expected)}/{len(expected)} ids, "
            f"{len(got - expected)} unknown, {stats['duplicates']} duplicates"
        )
    sender_cpu = me1 - me0
    receiver_cpu = (r1.user + r1.system) - (r0.user + r0.system)
    return Run(
        side=side.name,
        delivered=count - failed,
        failed=failed,
        seconds=seconds,
        latencies=latencies,
        sender_cpu=sender_cpu,
        receiver_cpu=receiver_cpu,
        other_cpu=max(0.0, (m1 - m0) - sender_cpu - receiver_cpu),
        connections=stats["connections"],
        problems=problems,
    )


async def verify_check(host: str, secret: str, count: int, concurrency: int) -> list[str]:
    """Both sides' signatures verify at a receiver using the standardwebhooks package."""
    problems = []
    with Receiver(record=True, secrets=[secret], reject_bad=True) as receiver:
        target = receiver.url("/webhooks/lipapush", host=host)
        for side in (Ours(target, concurrency), Baseline(target, concurrency)):
            messages = make_messages(count)
            async with side as post:
                _, failed = await _drive(post, messages, secret, concurrency)
            stats = receiver.stats(arrivals=False, reset=True)
            if failed or stats["verified"] != count or stats["bad_signatures"] or stats["unsigned"]:
                problems.append(
                    f"{side.name}: {failed} not delivered, {stats['verified']}/{count} signatures verified, "
                    f"{stats['bad_signatures']} bad, {stats['unsigned']} unsigned"
                )
    return problems


# -- report --------------------------------------------------------------------------------------------
def _row(r: Run) -> str:
    per = 1000 / r.delivered if r.delivered else 0.0
    return (
        f"{r.side:>9} {r.delivered:>6} {r.seconds:>7.2f} {r.rate:>9.0f} "
        f"{r.pct(0.5):>7.2f} {r.pct(0.99):>7.2f} {r.sender_cpu * per:>10.3f} "
        f"{r.receiver_cpu * per:>9.3f} {r.other_cpu * per:>8.3f} {r.connections:>6}"
    )


HEAD = (
    f"{'side':>9} {'msgs':>6} {'secs':>7} {'deliv/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'sender ms':>10} {'recv ms':>9} {'other':>8} {'conns':>6}"
)


def _median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def report(args: argparse.Namespace, runs: list[Run], loop_name: str) -> None:
    cpus = os.cpu_count() or 1
    print()
    print(
        f"webhook delivery: {args.messages} messages, concurrency {args.concurrency}, {args.rounds} rounds; "
        f"{cpus} CPUs; sender loop {loop_name}; receiver on uvloop in its own process; url host {args.host}"
    )
    print("per run (CPU columns: ms per delivery of this process / the receiver / every other process):")
    print(HEAD)
    for r in runs:
        print(_row(r))
    ours = [r for r in runs if r.side == "ours"]
    base = [r for r in runs if r.side == "baseline"]
    med = {name: statistics.median(r.rate for r in rs) for name, rs in (("ours", ours), ("baseline", base))}
    p50 = {
        name: statistics.median(r.pct(0.5) for r in rs) for name, rs in (("ours", ours), ("baseline", base))
    }
    p99 = {
        name: statistics.median(r.pct(0.99) for r in rs) for name, rs in (("ours", ours), ("baseline", base))
    }
    cpu = {
        name: statistics.median(r.sender_cpu / r.delivered * 1000 for r in rs)
        for name, rs in (("ours", ours), ("baseline", base))
    }
    print()
    print("medians:")
    for name in ("baseline", "ours"):
        print(
            f"  {name:>8}: {med[name]:8.0f} deliveries/s   p50 {p50[name]:6.2f} ms   "
            f"p99 {p99[name]:6.2f} ms   sender CPU {cpu[name]:.3f} ms/delivery"
        )
    print(
        f"  ratio ours/baseline: deliveries/s {med['ours'] / med['baseline']:.3f}x   "
        f"p50 {p50['ours'] / p50['baseline']:.2f}x   p99 {p99['ours'] / p99['baseline']:.2f}x   "
        f"sender CPU per delivery {cpu['ours'] / cpu['baseline']:.2f}x"
    )
    print(
        "  ours = WebhookSender.send: URL shape check per send, resolve_checked (getaddrinfo + "
        "address check) and a connect to the checked IP per new connection, aiohttp pool (at most "
        "20 connections per host), capped read, DeliveryResult; both sides sign each attempt "
        "(standardwebhooks HMAC) inside the timed loop."
    )
    print(f"  aiohttp {aiohttp.__version__}, yarl {version('yarl')}, multidict {version('multidict')}")
    busy = sum(r.other_cpu for r in runs) / sum(r.seconds for r in runs)
    print(
        f"  other processes used {busy:.2f} CPUs on average during the timed runs "
        f"(of {cpus}); on a shared machine the rates are noisy, the CPU per delivery less so."
    )


def print_profile(name: str, profiler: cProfile.Profile, delivered: int) -> None:
    out = io.StringIO()
    st = pstats.Stats(profiler, stream=out)
    total = st.total_tt  # type: ignore[attr-defined]
    print()
    print(
        f"profile, {name}: {total:.2f} s of profiled time for {delivered} deliveries "
        f"({total / delivered * 1000:.3f} ms each, cProfile overhead included)"
    )
    st.sort_stats("tottime").print_stats(18)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    for line in lines[start:]:
        if line.strip():
            print("  " + line.replace(str(Path(sys.prefix)), "<venv>")[:170])
    # Cumulative time of the steps that answer "where does ours spend it".
    wanted = (
        "sign",
        "send",
        "check_url_shape",
        "resolve_checked",
        "resolve",
        "_create_direct_connection",
        "_request",
        "read",
        "getaddrinfo",
        "model_dump",
    )
    raw: dict[tuple[str, int, str], Any] = st.stats  # type: ignore[attr-defined]
    rows = []
    for (file, _line, func), (_cc, nc, _tt, ct, _callers) in raw.items():
        if func in wanted and (
            "lipapush" in file
            or "core/webhooks" in file
            or "aiohttp" in file
            or "asyncio" in file
        ):
            rows.append((ct, nc, f"{Path(file).parent.name}/{Path(file).name}:{func}"))
    rows.sort(reverse=True)
    print("  cumulative, selected:")
    for ct, nc, label in rows[:12]:
        print(f"    {label:<55} calls {nc:>7}  cum {ct:6.2f} s  ({ct / delivered * 1000:.3f} ms/delivery)")


# -- main ----------------------------------------------------------------------------------------------
async def run_all(args: argparse.Namespace) -> int:
    secret = new_secret()
    problems: list[str] = []
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp,
        Receiver(record=True, dump=Path(tmp) / "arrivals.json") as receiver,
    ):
        url = receiver.url("/webhooks/lipapush", host=args.host)
        for rnd in range(args.rounds):
            order: list[Side] = [Ours(url, args.concurrency), Baseline(url, args.concurrency)]
            if rnd % 2 == 0:
                order.reverse()
            for side in order:
                run = await one_run(
                    side,
                    receiver,
                    secret=secret,
                    warmup=args.warmup,
                    count=args.messages,
                    concurrency=args.concurrency,
                )
                problems += run.problems
                runs.append(run)
                print(f"  round {rnd + 1} {side.name}: {run.rate:.0f} deliveries/s", file=sys.stderr)
        report(args, runs, args.loop)
        if args.profile:
            for side in (Baseline(url, args.concurrency), Ours(url, args.concurrency)):
                profiler = cProfile.Profile()
                run = await one_run(
                    side,
                    receiver,
                    secret=secret,
                    warmup=args.warmup,
                    count=args.messages,
                    concurrency=args.concurrency,
                    profiler=profiler,
                )
                problems += run.problems
                print_profile(
                    f"{side.name} ({run.rate:.0f} deliveries/s under the profiler)", profiler, run.delivered
                )
    if args.verify:
        problems += await verify_check(args.host, secret, args.verify, min(args.concurrency, args.verify))
    print()
    if problems:
        print("correctness: FAILED: " + "; ".join(problems))
        return 1
    print(
        "correctness: OK (every message delivered exactly once in every run; "
        f"{args.verify} per side verified by standardwebhooks at the receiver)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000, help="timed messages per run (5000)")
    parser.add_argument("--concurrency", type=int, default=50, help="sends in flight and pool size (50)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating (3)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed messages before each run (200)")
    parser.add_argument(
        "--host", default="localhost", help="host name in the URL (localhost; 127.0.0.1 skips DNS)"
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the sender's loop (asyncio: the worker's Dramatiq event-loop thread runs a plain asyncio loop)",
    )
    parser.add_argument(
        "--verify", type=int, default=200, help="signature-verified messages per side at the end"
    )
    parser.add_argument("--profile", action="store_true", help="one extra cProfile'd run per side, printed")
    args = parser.parse_args()
    if args.warmup < args.concurrency:
        args.warmup = args.concurrency
    if args.loop == "uvloop":
        import uvloop

        return uvloop.run(run_all(args))
    return asyncio.run(run_all(args))


if __name__ == "__main__":
    sys.exit(main())
