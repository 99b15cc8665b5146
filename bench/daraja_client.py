"""STK pushes per second through our Daraja client (core.daraja) against ``mpesakit`` 2.2.0, both at the
same concurrency against one Daraja stand-in. Run by hand:

    .venv/bin/pip install mpesakit==2.2.0        # a benchmark-only dependency, not in pyproject
    .venv/bin/python bench/daraja_client.py                       # 5000 pushes, 50 at once, 3 rounds
    .venv/bin/python bench/daraja_client.py --pushes 3000 --rounds 1 --profile /tmp/daraja-prof

What happens:

1. One simulator process: ``sim.daraja.create_app()`` under uvicorn (its defaults: uvloop, httptools,
   one process), access log off. Every push is for a phone ending in 9999, the simulator's "lost
   callback" scenario: the push is accepted and recorded as on any other number, but no callback is
   ever sent, so callbacks cost the server nothing. ``POST /_sim/reset`` before every run, so each run
   starts from an empty simulator and fetches its own OAuth token.
2. Each run is a fresh client process (``--runner``), so the two clients never share a core or a warm
   interpreter, and the same logging set-up as ``lipapush web`` (``web.logs.setup_logging`` at
   ``--log-level``, INFO by default; stderr goes to a file):

   * **ours**: ``core.runtime.configure(Settings(...))`` then ``runtime().daraja()``: the client and
     the HTTP session exactly as the product builds them (``Runtime._make_daraja``), with the
     in-process token cache of ``lipapush serve``, or with ``--redis-url`` the Redis one of a production
     deployment (keys under a throw-away ``REDIS_NAMESPACE``, deleted at the end). Per push, a
     ``StkPushRequest`` (the client's input model) and ``stk_push`` with the credentials a test-mode
     channel gives (mode ``test`` and the production URL set, so the mode guard runs on every call, as
     in the product).
   * **mpesakit**: ``AsyncMpesaClient(key, secret, environment="sandbox")`` as its README shows; the only
     change is its httpx client's ``base_url``, pointed at the stand-in instead of Safaricom's sandbox.
     Per push, ``client.stk_push(...)`` with the passkey (it builds the timestamp and password itself).

   Both do ``--warmup`` untimed pushes first (token fetched, connections opened), then ``--pushes``
   timed ones with ``--concurrency`` tasks each taking the next push; every push must be accepted with
   a distinct CheckoutRequestID, else the run fails. Runs alternate (the order swapped every round);
   the medians are compared.
3. Prints per run: pushes/s (first timed push to last answer), latency p50/p99, CPU seconds per 1000
   pushes of the client process, of the simulator, and of everything else on the machine in that
   window (large: the machine was shared and the rates are low); then the medians, the ratio
   ours / mpesakit, and each side's **CPU-bound ceiling** (1000 / its client CPU s per 1000 pushes): the
   rate that client would reach with a core and an infinitely fast server to itself. On two cores the
   client and the simulator each want one, so the measured rate is capped by the slower of the two.

``--profile DIR`` adds one run of each side (not in the medians) under ``py-spy record`` (raw collapsed
stacks in ``DIR/<side>.txt``; ``pip install py-spy``) and prints, per side, the frames taking the most
of the push path's samples, inclusive (start-up and the idle event loop left out).
The machine should be quiet (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere in the checkout, installed package or not.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
SHORT_CODE = "174379"
CONSUMER_KEY = "bench-key"
CONSUMER_SECRET = "bench-secret"
CALLBACK_URL = "https://merchant.example/callbacks/daraja/bench"
SIDES = ("ours", "mpesakit")

Push = Callable[[int], Awaitable[str]]

SERVER_CODE = """
import sys, uvicorn
from sim.daraja import create_app
uvicorn.run(create_app(callback_delay=1.0), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False)
"""


def phone(i: int) -> str:
    # ...9999: the simulator's "lost callback" number, so no callback is ever scheduled. The middle digits
    # vary so CheckoutRequestIDs (time + the last nine digits) do not collide within a millisecond.
    return f"2547{i % 10_000:04d}9999"


# -- the two clients (in the runner process) -----------------------------------------------------------
@contextlib.asynccontextmanager
async def ours(url: str, log_level: str, redis_url: str | None) -> Any:
    from core.config import Settings
    from core.daraja import DarajaCredentials, StkPushRequest
    from core.runtime import configure

    namespace = f"bench-daraja-{os.getpid()}-{time.monotonic_ns()}"
    settings = Settings(
        DATABASE_URL="sqlite+aiosqlite:///:memory:",
        LOG_LEVEL=log_level,
        REDIS_URL=redis_url,
        REDIS_NAMESPACE=namespace,
    )
    rt = configure(settings)
    client = rt.daraja()
    creds = DarajaCredentials.model_validate(
        {
            "base_url": url,
            "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET,
            "passkey": SANDBOX_PASSKEY,
            "business_short_code": SHORT_CODE,
            "party_b": SHORT_CODE,
            "transaction_type": "CustomerPayBillOnline",
            "mode": "test",
            "production_url": settings.DARAJA_PRODUCTION_URL,
        }
    )

    async def push(i: int) -> str:
        req = StkPushRequest(
            phone=phone(i),
            amount=10 + i % 990,
            callback_url=CALLBACK_URL,
            account_reference=f"INV{i % 1_000_000:06d}",
            description="Bench order",
        )
        accepted = await client.stk_push(creds, req)
        return accepted.checkout_request_id

    try:
        yield push
    finally:
        if (redis := rt.redis()) is not None:
            keys = [k async for k in redis.scan_iter(match=f"{namespace}:*")]
            if keys:
                await redis.delete(*keys)
        await rt.aclose()


@contextlib.asynccontextmanager
async def mpesakit(url: str, log_level: str, redis_url: str | None) -> Any:
    from mpesakit import AsyncMpesaClient

    client = AsyncMpesaClient(CONSUMER_KEY, CONSUMER_SECRET, environment="sandbox")
    # The one change to its defaults: the stand-in instead of sandbox.safaricom.co.ke.
    client.http_client.base_url = url
    client.http_client._client.base_url = url

    async def push(i: int) -> str:
        resp = await client.stk_push(
            business_short_code=int(SHORT_CODE),
            transaction_type="CustomerPayBillOnline",
            amount=10 + i % 990,
            party_a=phone(i),
            party_b=SHORT_CODE,
            phone_number=phone(i),
            callback_url=CALLBACK_URL,
            account_reference=f"INV{i % 1_000_000:06d}",
            transaction_desc="Bench order",
            passkey=SANDBOX_PASSKEY,
        )
        if str(resp.ResponseCode) != "0":
            raise RuntimeError(f"push not accepted: {resp!r}")
        return str(resp.CheckoutRequestID)

    try:
        yield push
    finally:
        await client.aclose()


def _cpu_total() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "system", "nice", "irq", "softirq"))


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


async def _drive(push: Push, start: int, count: int, concurrency: int) -> tuple[list[float], list[str], int]:
    latencies: list[float] = []
    ids: list[str] = []
    failed = 0
    it = iter(range(start, start + count))

    async def worker() -> None:
        nonlocal failed
        for i in it:
            t0 = time.perf_counter()
            try:
                ids.append(await push(i))
            except Exception as exc:  # counted and reported: a benchmark of failures measures nothing
                failed += 1
                if failed <= 3:
                    print(f"push {i} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, ids, failed


async def runner(args: argparse.Namespace) -> dict[str, Any]:
    from web.logs import setup_logging

    # As `lipapush web` does at start: stdlib handlers on stderr (a file here), structlog through them.
    setup_logging(args.log_level)
    side = ours if args.runner == "ours" else mpesakit
    me, server = psutil.Process(), psutil.Process(args.server_pid)
    async with side(args.url, args.log_level, args.redis_url) as push:
        # The first push alone fetches the token: mpesakit has no single flight, so fifty first pushes
        # would each fetch one, and each new token revokes the one before (as Daraja's may).
        _, first_ids, first_failed = await _drive(push, 0, 1, 1)
        _, warm_ids, warm_failed = await _drive(push, 1, args.warmup, args.concurrency)
        warm_ids += first_ids
        warm_failed += first_failed
        c0, s0, m0 = _cpu(me), _cpu(server), _cpu_total()
        t0 = time.perf_counter()
        latencies, ids, failed = await _drive(push, 1 + args.warmup, args.pushes, args.concurrency)
        seconds = time.perf_counter() - t0
        c1, s1, m1 = _cpu(me), _cpu(server), _cpu_total()
    problems = []
    if warm_failed or failed:
        problems.append(f"{warm_failed + failed} pushes failed")
    if len(set(warm_ids + ids)) != len(warm_ids) + len(ids):
        problems.append("CheckoutRequestIDs repeated")
    xs = sorted(latencies)
    return {
        "side": args.runner,
        "pushes": len(ids),
        "seconds": seconds,
        "p50": xs[len(xs) // 2] * 1000,
        "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))] * 1000,
        "client_cpu": c1 - c0,
        "server_cpu": s1 - s0,
        "other_cpu": max(0.0, (m1 - m0) - (c1 - c0) - (s1 - s0)),
        "problems": problems,
    }


# -- the orchestrating process -------------------------------------------------------------------------
@dataclass
class Run:
    side: str
    pushes: int
    seconds: float
    p50: float
    p99: float
    client_cpu: float
    server_cpu: float
    other_cpu: float
    problems: list[str]

    @property
    def rate(self) -> float:
        return self.pushes / self.seconds if self.seconds else 0.0

    def per_1000(self, cpu: float) -> float:
        return cpu / self.pushes * 1000 if self.pushes else 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Simulator:
    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, str(self.port)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.post("/_sim/reset")
                return
            except OSError:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the simulator did not start: see {log}") from None
                time.sleep(0.1)

    def post(self, path: str) -> None:
        req = urllib.request.Request(self.url + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
        self._log.close()


def run_side(
    side: str, sim: Simulator, args: argparse.Namespace, workdir: Path, profile: Path | None = None
) -> Run:
    sim.post("/_sim/reset")
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--runner",
        side,
        "--url",
        sim.url,
        "--server-pid",
        str(sim.popen.pid),
        "--pushes",
        str(args.pushes),
        "--warmup",
        str(args.warmup),
        "--concurrency",
        str(args.concurrency),
        "--log-level",
        args.log_level,
        "--loop",
        args.loop,
    ]
    if args.redis_url:
        argv += ["--redis-url", args.redis_url]
    if profile is not None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        argv = [py_spy, "record", "-r", "200", "--format", "raw", "-o", str(profile), "--", *argv]
    with (workdir / f"{side}.stderr").open("ab") as err:
        out = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, check=False)
    # The runner's last line is its JSON result (py-spy, when profiling, prints lines of its own).
    lines = [line for line in out.stdout.decode().splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"the {side} runner failed (exit {out.returncode}): see {workdir / side}.stderr")
    return Run(**json.loads(lines[-1]))


def top_frames(path: Path, n: int = 30) -> tuple[int, list[tuple[float, str]]]:
    """Inclusive share of the push path's samples per frame: only stacks through a push worker count
    (start-up, imports and the idle loop do not), line numbers dropped so a function is one row."""
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "_drive.<locals>.worker" not in stack:
            continue
        frames = {re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")}
        for frame in frames:
            incl[frame] += int(count)
        total += int(count)
    return total, [(c / total * 100, frame) for frame, c in incl.most_common(n)] if total else []


HEAD = (
    f"{'side':>9} {'pushes':>6} {'secs':>6} {'pushes/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'client':>7} {'server':>7} {'other':>6}"
)


def _row(r: Run) -> str:
    return (
        f"{r.side:>9} {r.pushes:>6} {r.seconds:>6.2f} {r.rate:>9.0f} {r.p50:>7.1f} {r.p99:>7.1f} "
        f"{r.per_1000(r.client_cpu):>7.3f} {r.per_1000(r.server_cpu):>7.3f} {r.per_1000(r.other_cpu):>6.3f}"
    )


def report(args: argparse.Namespace, runs: list[Run]) -> None:
    from importlib.metadata import version

    print()
    print(
        f"Daraja client: {args.pushes} STK pushes per run after {args.warmup} warm-up, concurrency "
        f"{args.concurrency}, {args.rounds} rounds; {os.cpu_count()} CPUs; client loop {args.loop}; "
        f"our token cache {'Redis' if args.redis_url else 'in-process'}; "
        f"mpesakit {version('mpesakit')}, httpx {version('httpx')}, aiohttp {version('aiohttp')}"
    )
    print("per run (CPU seconds per 1000 pushes: the client process / the simulator / everything else):")
    print(HEAD)
    for r in runs:
        print(_row(r))
    med: dict[str, dict[str, float]] = {}
    for side in SIDES:
        rs = [r for r in runs if r.side == side]
        med[side] = {
            "rate": statistics.median(r.rate for r in rs),
            "p50": statistics.median(r.p50 for r in rs),
            "p99": statistics.median(r.p99 for r in rs),
            "client": statistics.median(r.per_1000(r.client_cpu) for r in rs),
            "server": statistics.median(r.per_1000(r.server_cpu) for r in rs),
            "other": statistics.median(r.per_1000(r.other_cpu) for r in rs),
        }
    print()
    print("medians:")
    for side in SIDES:
        m = med[side]
        print(
            f"{side:>9}: {m['rate']:>6.0f} pushes/s  p50 {m['p50']:.1f} ms  p99 {m['p99']:.1f} ms  "
            f"client CPU {m['client']:.3f} s/1000  simulator {m['server']:.3f} s/1000  "
            f"other {m['other']:.3f} s/1000  ceiling {1000 / m['client']:.0f} pushes/s"
        )
    o, b = med["ours"], med["mpesakit"]
    print()
    print(f"ratio ours / mpesakit, pushes/s:            {o['rate'] / b['rate']:.2f}x")
    print(f"ratio mpesakit / ours, client CPU per push:  {b['client'] / o['client']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pushes", type=int, default=5000, help="timed pushes per run")
    p.add_argument("--warmup", type=int, default=500, help="untimed pushes first, per run")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="runs per side, alternating")
    p.add_argument("--log-level", default="INFO", help="the product's LOG_LEVEL in both client processes")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="the clients' loop")
    p.add_argument(
        "--redis-url",
        help="ours with REDIS_URL set, as in production: the token cache shared in Redis (mpesakit has none)",
    )
    p.add_argument("--profile", type=Path, help="also one py-spy'd run per side, stacks kept here")
    p.add_argument("--keep", action="store_true", help="keep the simulator's and the runners' logs")
    p.add_argument("--runner", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.runner:
        if args.loop == "uvloop":
            import uvloop

            uvloop.install()
        print(json.dumps(asyncio.run(runner(args))))
        return 0

    busy = psutil.cpu_percent(interval=1.0)
    if busy > 15:
        print(f"warning: the machine is {busy:.0f}% busy before the run; rates will be low", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="bench-daraja-"))
    sim = Simulator(workdir / "simulator.log")
    runs: list[Run] = []
    profiles: dict[str, Path] = {}
    try:
        for rnd in range(args.rounds):
            for side in SIDES if rnd % 2 == 0 else SIDES[::-1]:
                run = run_side(side, sim, args, workdir)
                print(_row(run), flush=True)
                runs.append(run)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            for side in SIDES:
                profiles[side] = args.profile / f"{side}.txt"
                run_side(side, sim, args, workdir, profile=profiles[side])
    finally:
        sim.stop()
    report(args, runs)
    for side, path in profiles.items():
        samples, frames = top_frames(path)
        print(f"\n{side}: share of the push path's {samples} samples per frame, inclusive (py-spy, {path}):")
        for share, frame in frames:
            print(f"  {share:5.1f}%  {frame}")
    problems = [f"{r.side}: {p}" for r in runs for p in r.problems]
    if args.keep or problems:
        print(f"\nlogs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
