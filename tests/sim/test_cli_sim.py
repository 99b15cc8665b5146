"""`lipapush sim …`: each stand-in starts as its own process on the port it is given and answers there."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import librouteros
import pytest

from tests.support.services import free_port

_LIPAPUSH = Path(sys.executable).with_name("lipapush")
LIPAPUSH: list[str] = (
    [str(_LIPAPUSH)] if _LIPAPUSH.exists() else [sys.executable, "-c", "from web.cli import main; main()"]
)
# Two shared cores and a cold import of FastAPI: start-up can take several seconds under load.
START_DEADLINE = 60.0


@dataclass
class Sim:
    command: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def answers(self, probe: Callable[[], bool]) -> None:
        """Wait until ``probe`` succeeds; fail with the process's output if it exits or never answers."""
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"`{self.command}` exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if probe():
                    return
            except (httpx.TransportError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`{self.command}` did not answer within {START_DEADLINE}s:\n{self.output()}")
            time.sleep(0.3)


@contextmanager
def running(*args: str) -> Iterator[Sim]:
    # Output goes to a file, not a pipe: a server's access log must never fill a pipe nobody reads.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*LIPAPUSH, "sim", *args], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield Sim(f"lipapush sim {' '.join(args)}", proc, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_sim_daraja_issues_tokens() -> None:
    port = free_port()
    token_url = f"http://127.0.0.1:{port}/oauth/v1/generate?grant_type=client_credentials"
    with running("daraja", "--port", str(port)) as sim:
        sim.answers(lambda: "access_token" in httpx.get(token_url, auth=("k", "s")).json())


def test_sim_telegram_answers_get_me() -> None:
    port = free_port()
    with running("telegram", "--port", str(port)) as sim:
        sim.answers(lambda: httpx.get(f"http://127.0.0.1:{port}/bot123:abc/getMe").json()["ok"] is True)


def test_sim_at_accepts_an_sms_with_its_key() -> None:
    port = free_port()
    with running("at", "--port", str(port), "--api-key", "k-1", "--username", "shop") as sim:
        sim.answers(lambda: httpx.get(f"http://127.0.0.1:{port}/_sim/messages").json() == [])
        r = httpx.post(
            f"http://127.0.0.1:{port}/version1/messaging",
            headers={"apiKey": "k-1", "Accept": "application/json"},
            data={"username": "shop", "to": "+254712345678", "message": "hello"},
        )
        assert r.status_code == 201, r.text
        [sent] = httpx.get(f"http://127.0.0.1:{port}/_sim/messages").json()
        assert sent["message"] == "hello"


def test_sim_pesapal_gives_a_token_for_its_credentials() -> None:
    port = free_port()

    def token(key: str, secret: str) -> httpx.Response:
        return httpx.post(
            f"http://127.0.0.1:{port}/api/Auth/RequestToken",
            json={"consumer_key": key, "consumer_secret": secret},
            headers={"Accept": "application/json"},
        )

    with running("pesapal", "--port", str(port), "--consumer-key", "ck", "--consumer-secret", "cs") as sim:
        sim.answers(lambda: bool(token("ck", "cs").json().get("token")))
        assert not token("ck", "wrong").json().get("token")


def test_sim_routeros_serves_the_api_and_its_control_port() -> None:
    port, control = free_port(), free_port()
    args = ("--port", str(port), "--user", "api", "--password", "pw", "--control-port", str(control))
    with running("routeros", *args, "--identity", "gate") as sim:
        sim.answers(lambda: httpx.get(f"http://127.0.0.1:{control}/_sim/routers").status_code == 200)
        api = librouteros.connect(host="127.0.0.1", port=port, username="api", password="pw", timeout=10)
        try:
            [identity] = api("/system/identity/print")
        finally:
            api.close()
        assert identity["name"] == "gate"
