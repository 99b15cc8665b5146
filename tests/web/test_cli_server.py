"""The CLI finds `lipapush serve` on any port (server.json), a failed test push fails the command, and a
second serve on a busy port stops before it does any work."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import services
from tests.web.test_cli_support import LIPAPUSH, Run, clean_env, lipapush

pytestmark = pytest.mark.e2e

START_DEADLINE = 60.0
PIN_MESSAGE = "The customer entered a wrong M-Pesa PIN."


def dead_port() -> int:
    """A port nothing listens on (bound and released: connections to it are refused)."""
    return services.free_port()


@dataclass
class Serve:
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_serve(home: Path, port: int, cwd: Path, log: Path) -> Serve:
    # PUBLIC_BASE_URL points at a dead port: the CLI must find serve through server.json, not by luck.
    env = clean_env(home, SIM_CALLBACK_DELAY="0.2", COLUMNS="300")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*LIPAPUSH, "serve", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Serve(home=home, port=port, proc=proc, log=log, env=env)
    deadline = time.monotonic() + START_DEADLINE
    while True:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{srv.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{srv.url}/healthz", timeout=2).status_code == 200:
                return srv
        if time.monotonic() > deadline:
            pytest.fail(f"serve not healthy after {START_DEADLINE}s:\n{srv.output()}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    root = tmp_path_factory.mktemp("cli-serve")
    srv = start_serve(root / "home", services.free_port(), root, root / "serve.log")
    try:
        yield srv
    finally:
        stop(srv.proc)


def cli_env(srv: Serve, **extra: str) -> dict[str, str]:
    return clean_env(srv.home, PUBLIC_BASE_URL=f"http://127.0.0.1:{dead_port()}", COLUMNS="300", **extra)


def tenant_create(srv: Serve, email: str, phone: str, *extra: str) -> Run:
    args = [
        "tenant", "create", "--name", "Duka", "--email", email, "--password", "a-long-password",
        "--phone", phone, "--environment", "simulator", "--wait", "15", *extra,
    ]  # fmt: skip
    return lipapush(*args, env=cli_env(srv), cwd=srv.home.parent)


class TestServerFile:
    def test_banner_names_the_database_and_server_json_names_the_server(self, serve: Serve) -> None:
        banner = serve.output().splitlines()[:2]
        assert banner == [
            f"lipapush on http://127.0.0.1:{serve.port}  (API docs /docs, Daraja simulator /sim/daraja, "
            "broker in-process)",
            f"database {serve.home}/lipapush.db",
        ]
        info = json.loads((serve.home / "server.json").read_text())
        assert info["url"] == serve.url
        assert info["port"] == serve.port
        assert info["pid"] == serve.proc.pid
        assert info["database"] == f"{serve.home}/lipapush.db"

    def test_tenant_create_finds_serve_on_another_port(self, serve: Serve) -> None:
        made = tenant_create(serve, "found@example.com", "0712345678")
        assert made.returncode == 0, made
        assert "Channel verified: Duka is active." in made.stdout, made
        assert made.stderr == "", made

    def test_a_hotspot_provider_starts_on_its_free_trial(self, serve: Serve) -> None:
        made = tenant_create(serve, "wifi-trial@example.com", "0712345672", "--hotspot")
        assert made.returncode == 0, made
        trial = [line for line in made.stdout.splitlines() if line.startswith("Free WiFi trial until ")]
        assert len(trial) == 1 and trial[0].endswith(" UTC: then it must subscribe."), made

    def test_a_failed_test_payment_exits_1_with_one_line(self, serve: Serve) -> None:
        made = tenant_create(serve, "wrong-pin@example.com", "0712342001")
        assert made.returncode == 1, made
        assert "Created business Duka" in made.stdout, made
        assert made.stderr == (
            f"Test payment failed: {PIN_MESSAGE} The business was created: send the test push again "
            "with `lipapush tenant verify wrong-pin@example.com`.\n"
        ), made

        again = lipapush(
            "tenant", "verify", "wrong-pin@example.com", env=cli_env(serve), cwd=serve.home.parent
        )
        assert again.returncode == 1, again
        assert again.stderr == f"Test payment failed: {PIN_MESSAGE}\n", again

    def test_url_option_wins_over_server_json(self, serve: Serve) -> None:
        port = dead_port()
        made = tenant_create(serve, "by-url@example.com", "0712345671", "--url", f"http://127.0.0.1:{port}")
        assert made.returncode == 1, made
        assert made.stderr == (
            f"Test push not sent: lipapush serve did not answer at http://127.0.0.1:{port} (start it "
            "with `lipapush serve`, or give --url if it runs elsewhere). The business was created: send "
            "the test push again with `lipapush tenant verify by-url@example.com`.\n"
        ), made

        verified = lipapush(
            "tenant", "verify", "by-url@example.com", "--url", serve.url, env=cli_env(serve), cwd=serve.home
        )
        assert verified.returncode == 0, verified
        assert "Channel verified: Duka is active." in verified.stdout, verified

    def test_url_must_be_an_address(self, serve: Serve) -> None:
        run = lipapush(
            "tenant", "verify", "x@example.com", "--url", "localhost:8000", env=cli_env(serve), cwd=serve.home
        )
        assert run.returncode == 2, run
        assert run.stderr == "--url localhost:8000: give the full address, e.g. http://127.0.0.1:8001\n", run

    def test_a_second_serve_on_the_busy_port_starts_no_work(self, serve: Serve, tmp_path: Path) -> None:
        before = serve.output()
        second = lipapush("serve", "--port", str(serve.port), env=serve.env, cwd=tmp_path, timeout=60)
        assert second.returncode == 1, second
        assert second.stdout == "", second
        assert second.stderr.splitlines()[-1] == (
            f"port {serve.port} is in use (lipapush serve, pid {serve.proc.pid}): "
            "use --port or stop the other lipapush"
        ), second
        # Nothing migrated, resent or started: its whole output is that line.
        assert second.stderr.count("\n") == 1, second
        assert json.loads((serve.home / "server.json").read_text())["pid"] == serve.proc.pid
        assert "resending" not in serve.output()[len(before) :]

    def test_a_port_held_by_something_else(self, tmp_path: Path) -> None:
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            run = lipapush("serve", "--port", str(port), env=clean_env(tmp_path / "home"), cwd=tmp_path)
        assert run.returncode == 1, run
        assert run.stderr == f"port {port} is in use: use --port or stop the other lipapush\n", run
        assert not (tmp_path / "home").exists()  # no database, no server.json


class TestWithoutServe:
    def test_stale_server_json_is_ignored_and_the_push_fails_in_one_line(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        env = clean_env(home, COLUMNS="300")
        assert lipapush("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
        # A serve that was killed: its pid is gone, the file stayed.
        gone = subprocess.Popen(["true"])
        gone.wait()
        (home / "server.json").write_text(
            json.dumps({"url": "http://127.0.0.1:1", "pid": gone.pid, "database": str(home / "lipapush.db")})
        )
        port = dead_port()
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        made = lipapush(
            "tenant", "create", "--name", "Duka", "--email", "alone@example.com", "--password",
            "a-long-password", "--phone", "0712345678", "--environment", "simulator",
            env=env, cwd=tmp_path,
        )  # fmt: skip
        assert made.returncode == 1, made
        assert made.stderr == (
            f"Test push not sent: lipapush serve did not answer at http://127.0.0.1:{port} (start it "
            "with `lipapush serve`, or give --url if it runs elsewhere). The business was created: send "
            "the test push again with `lipapush tenant verify alone@example.com`.\n"
        ), made

    def test_clean_exit_removes_server_json(self, tmp_path: Path) -> None:
        srv = start_serve(tmp_path / "home", services.free_port(), tmp_path, tmp_path / "serve.log")
        try:
            assert (srv.home / "server.json").is_file()
        finally:
            stop(srv.proc)
        assert not (srv.home / "server.json").exists(), srv.output()
        assert (srv.home / "lipapush.db").is_file()
