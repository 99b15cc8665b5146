"""`lipapush web` keeps its serving processes alive: a child that dies is forked again from the parent
that loaded the app (no re-import, the socket never closes); SIGTERM stops them all; a killed parent
takes its children with it. No timing assertions: only that it comes back and who is running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import services
from tests.web.test_cli_support import LIPAPUSH, clean_env

pytestmark = pytest.mark.e2e

DEADLINE = 60.0


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def wait_for(what: str, check: object, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached in {DEADLINE}s:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    return False


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = services.free_port()
    log = tmp_path / "web.log"
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/web.db")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*LIPAPUSH, "web", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("a healthy web", lambda: proc.poll() is not None or healthy(url), log)
        assert proc.poll() is None, log.read_text(errors="replace")
        yield proc, url, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_a_killed_child_is_replaced_and_sigterm_stops_all(
    web: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, url, log = web
    wait_for("two serving children", lambda: len(children_of(proc.pid)) == 2, log)
    before = children_of(proc.pid)
    victim = min(before)

    os.kill(victim, signal.SIGKILL)

    wait_for("a replacement child", lambda: len(children_of(proc.pid) - before) == 1, log)
    wait_for("healthy again", lambda: healthy(url), log)
    assert before - {victim} <= children_of(proc.pid)  # the other child served on undisturbed
    assert f"web process {victim} ended (signal SIGKILL)" in log.read_text(errors="replace")

    survivors = children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    wait_for("children gone", lambda: not any(Path(f"/proc/{pid}").exists() for pid in survivors), log)


def test_children_die_with_a_killed_parent(web: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    proc, url, log = web
    wait_for("two serving children", lambda: len(children_of(proc.pid)) == 2, log)
    kids = children_of(proc.pid)

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    # PR_SET_PDEATHSIG: no orphan keeps serving (and holding the port) once its parent is gone.
    wait_for("orphans gone", lambda: not any(Path(f"/proc/{pid}").exists() for pid in kids), log)
    assert not healthy(url)
