"""The performance guard CI prints: three benchmarks in their seconds-long ``--smoke`` mode, one after
another on Postgres + Redis, then their ratios against the baselines measured in the same runs.

    .venv/bin/python bench/smoke.py
    .venv/bin/python bench/smoke.py --only P2 --pg-url postgresql://postgres@127.0.0.1:5432/test

* P1 ``bench/callback_ingest.py --smoke``: Daraja callbacks end to end (web + worker) / pgbench doing
  the same writes;
* P2 ``bench/push_throughput.py --smoke``: STK pushes accepted per second (web + worker + simulator) /
  a bare FastAPI endpoint doing one asyncpg INSERT;
* P5 ``bench/ussd_latency.py --smoke --postgres``: USSD hops per second / a bare FastAPI endpoint;
* P4 ``bench/export_xlsx_raw.py --smoke --postgres``: the customer and transaction exports / bare
  openpyxl write-only, time and memory growth.

A bench whose services or tools are missing (Postgres, Redis, pgbench) is skipped with one line saying
why. Each bench's report is printed as it ran; a bench that fails or overruns ``--timeout`` (it is
interrupted like Ctrl-C, so it cleans up) is reported as failed. The ratios are printed, never asserted:
on a shared CI machine they move with the load, and this always exits 0. Full runs and what the figures
mean: bench/README.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SMOKE_LINE = re.compile(r"^SMOKE (P\d+) .*? = (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Bench:
    key: str
    label: str  # what the summary line calls the ratio
    script: str
    extra: tuple[str, ...]  # arguments besides --smoke and the service URLs
    needs_pgbench: bool = False


BENCHES = (
    Bench("P1", "P1 callbacks e2e/pgbench", "callback_ingest.py", (), needs_pgbench=True),
    Bench("P2", "P2 pushes web+worker/bare", "push_throughput.py", ()),
    Bench("P5", "P5 USSD hops/bare", "ussd_latency.py", ("--postgres",)),
    Bench("P4", "P4 exports ours/bare", "export_xlsx_raw.py", ()),
)


def find_pgbench() -> str | None:
    # As bench/callback_ingest.py looks for it: PATH, else Debian's versioned directory.
    return shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))[-1:]), None
    )


def postgres_problem(url: str) -> str | None:
    """Why Postgres cannot be used (None: it answers)."""
    import asyncio

    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[dev]')"

    async def ping() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        await conn.close()

    try:
        asyncio.run(ping())
    except Exception as exc:
        return f"Postgres at {url} does not answer ({type(exc).__name__}: {exc})"
    return None


def redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install -e '.[dev]')"
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"Redis at {url} does not answer ({type(exc).__name__}: {exc})"
    return None


def command(bench: Bench, pg_url: str, redis_url: str) -> list[str]:
    cmd = [sys.executable, str(BENCH / bench.script), "--smoke", *bench.extra]
    if bench.key == "P5":
        return [*cmd, "--pg-server", pg_url.rsplit("/", 1)[0], "--redis-url", redis_url]
    if bench.key == "P4":
        return [*cmd, "--postgres", pg_url.rsplit("/", 1)[0]]
    return [*cmd, "--pg-admin-url", pg_url, "--redis-url", redis_url]


def run(bench: Bench, cmd: list[str], timeout: float) -> tuple[str, float]:
    """Run one bench, print its report, and return its summary value and its duration."""
    started = time.monotonic()
    print(f"-- {bench.key}: {' '.join(Path(c).name if c == sys.executable else c for c in cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    overran = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        overran = True
        # Like Ctrl-C: the bench's `finally` stops its servers and drops its database.
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    except BaseException:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        raise
    took = time.monotonic() - started
    for line in out.splitlines():
        print(f"   {line}")
    found = SMOKE_LINE.search(out)
    if overran:
        value = f"failed: still running after {timeout:.0f} s, interrupted"
    elif found is None:
        value = f"failed: exit {proc.returncode}, no SMOKE line"
    elif proc.returncode != 0:
        value = f"{found[2]} (exit {proc.returncode}: see its report)"
    else:
        value = found[2]
    if overran or found is None or proc.returncode != 0:
        tail = err.strip().splitlines()[-25:]
        if tail:
            print(f"   {bench.key} stderr (last {len(tail)} lines):")
            for line in tail:
                print(f"   ! {line}")
    return value, took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_pg = os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    parser.add_argument("--pg-url", default=default_pg, help="a Postgres database URL of a superuser")
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds one bench may take (150)")
    parser.add_argument("--budget", type=float, default=400.0, help="seconds for all of them (400)")
    parser.add_argument("--only", default="P1,P2,P5,P4", help="comma-separated: P1,P2,P5,P4")
    args = parser.parse_args()
    pg_url = re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", args.pg_url)
    wanted = {k.strip().upper() for k in args.only.split(",")}

    started = time.monotonic()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench smoke: {os.cpu_count()} CPUs, load average {load} (a busy machine lowers every ratio)")
    services = postgres_problem(pg_url) or redis_problem(args.redis_url)
    results: list[tuple[Bench, str, float | None]] = []
    for bench in BENCHES:
        if bench.key not in wanted:
            continue
        left = args.budget - (time.monotonic() - started)
        if services:
            results.append((bench, f"skipped: {services}", None))
        elif bench.needs_pgbench and find_pgbench() is None:
            results.append(
                (bench, "skipped: pgbench not found (Debian: apt-get install postgresql-contrib)", None)
            )
        elif left < 30:
            results.append((bench, f"skipped: the smoke budget of {args.budget:.0f} s is spent", None))
        else:
            try:
                value, took = run(bench, command(bench, pg_url, args.redis_url), min(args.timeout, left))
            except Exception as exc:
                value, took = f"failed: {type(exc).__name__}: {exc}", 0.0
            results.append((bench, value, took))
    print()
    print("== bench smoke: ours / baseline from the same run (printed, not asserted; bench/README.md) ==")
    for bench, value, spent in results:
        print(f"{bench.label} = {value}" + ("" if spent is None else f"   [{spent:.0f} s]"))
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a guard for the log, never a gate
        print(f"bench smoke failed: {type(exc).__name__}: {exc}")
    sys.exit(0)
