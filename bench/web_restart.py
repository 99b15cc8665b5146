"""How fast a crashed web process answers again (issue 15, finding 10: the goal is < 2 s).

Baseline, measured in the same run: a cold start of `lipapush web` (a new Python process importing
lipapush, building the app and answering /healthz), which is what a restart cost before the
supervisor. Then `--kills` times: SIGKILL the serving child and time until /healthz answers 200
again (the supervisor forks a replacement from the parent that already loaded the app).

    .venv/bin/python bench/web_restart.py                      # SQLite in a temp dir
    .venv/bin/python bench/web_restart.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LIPAPUSH = [sys.executable, "-m", "web.cli"] if not Path(sys.prefix, "bin", "lipapush").exists() else [
    str(Path(sys.prefix, "bin", "lipapush"))
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
        return bool(r.status == 200)
    return False


def wait_healthy(url: str, deadline: float = 120.0) -> float:
    start = time.perf_counter()
    while not healthy(url):
        if time.perf_counter() - start > deadline:
            raise SystemExit(f"not healthy after {deadline}s")
        time.sleep(0.01)
    return time.perf_counter() - start


def child_of(pid: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    return int(entry.name)
    raise SystemExit("no serving child found")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="default: SQLite in a temp dir")
    ap.add_argument("--kills", type=int, default=10)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="lipapush-bench-restart-")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(LIPAPUSH_HOME=tmp, DATABASE_URL=args.database_url or f"sqlite+aiosqlite:///{tmp}/b.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*LIPAPUSH, "web", "--host", "127.0.0.1", "--port", str(port)]
    log = open(Path(tmp, "web.log"), "ab")  # noqa: SIM115 - closed at the end

    # A first start migrates the database: untimed.
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_healthy(url)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    colds = []
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(url)
        colds.append(time.perf_counter() - start)
        if _ < 2:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    restarts = []
    for _ in range(args.kills):
        time.sleep(5.5)  # a child that lived < 5 s is treated as crash-looping and waits before refork
        victim = child_of(proc.pid)
        start = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        restarts.append(wait_healthy(url))
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()

    cold = statistics.median(colds)
    median = statistics.median(restarts)
    print(f"cold start to healthy (baseline, median of 3): {cold:.2f} s")
    print(
        f"child SIGKILL to healthy, {len(restarts)} kills: median {median:.3f} s, max {max(restarts):.3f} s"
    )
    print(f"ratio restart/cold start: {median / cold:.3f} (goal: back within 2 s; max {max(restarts):.2f} s)")


if __name__ == "__main__":
    main()
