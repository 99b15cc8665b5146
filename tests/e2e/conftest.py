"""End-to-end harness: the real `lipapush serve` as a separate OS process, driven only through its
public faces (the REST API, the callback URL, the CLI and the simulator's inspection endpoints).

One serve process per test session (the Daraja simulator inside it keeps its request log for the whole
run), a fresh database per session (Postgres when TEST_DATABASE_URL is set, else a temp SQLite file),
and new businesses per test. Waiting is always polling against a deadline, never a fixed sleep.

Where the product gives no public signal that something *did not* happen (a duplicate callback was
processed and changed nothing), the tests read the `callback_inbox` table read-only to know the
callback has been processed before they look at the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from core.config import Settings
from core.phones import normalize_msisdn
from tests.support import services

SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
SANDBOX_SHORT_CODE = "174379"
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

SERVE_START_DEADLINE = 60.0  # a ceiling, not a wait: a loaded 2-core machine starts serve in 5-20 s
CLI_TIMEOUT = 60.0
FINAL_TIMEOUT = 20.0

_LIPAPUSH = Path(sys.executable).with_name("lipapush")
LIPAPUSH: list[str] = (
    [str(_LIPAPUSH)] if _LIPAPUSH.exists() else [sys.executable, "-c", "from web.cli import main; main()"]
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: kills the processes of a deployment of its own under load (run alone: -m chaos)"
    )


# Figures a test wants shown after the run (the chaos test's counts and timings), as (title, text).
SUMMARY: list[tuple[str, str]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for title, body in SUMMARY:
        terminalreporter.write_sep("-", title)
        terminalreporter.write_line(body)


# -- the serve process ---------------------------------------------------------------------------------
@dataclass
class Serve:
    url: str
    env: dict[str, str]
    cli_env: dict[str, str]
    workdir: Path
    log_path: Path
    # For the tests' own read-only inspection: the owner's URL, which row-level security does not bind.
    db_url: str
    proc: subprocess.Popen[bytes]
    api_keys: list[str] = field(default_factory=list)
    telegram_url: str = ""

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


_SERVE: Serve | None = None


_HOMES = tempfile.TemporaryDirectory(prefix="lipapush-e2e-homes-")


def _base_env() -> dict[str, str]:
    """This process's environment minus every lipapush setting, so nothing from the developer's shell
    (or a .env-style export) leaks into the product under test.

    Each call gets its own LIPAPUSH_HOME: serve writes its address there (server.json) and the CLI run
    with the same environment must find that serve, never another test's or the developer's own."""
    drop = set(Settings.model_fields)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("PESAPAL_", "PLATFORM_", "LIPAPUSH_"))
    }
    env["LIPAPUSH_HOME"] = tempfile.mkdtemp(prefix="home-", dir=_HOMES.name)
    return env


def spawn_serve(env: dict[str, str], *, workdir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """`lipapush serve --port <port>` in its own session (so a test can kill it whole), log appended."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [*LIPAPUSH, "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture(scope="session")
def serve() -> Iterator[Serve]:
    """`lipapush serve --port <free port>` as a separate OS process, logs captured to a file."""
    global _SERVE
    try:
        db = services.create_database("e2e")
    except OSError as exc:
        if services.REQUIRE:
            raise
        pytest.skip(f"TEST_DATABASE_URL is set but Postgres is unreachable: {exc}")
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-e2e-"))
    export_dir = workdir / "exports"
    export_dir.mkdir()
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    tg_port = services.free_port()
    tg_log = (workdir / "telegram-sim.log").open("wb")
    # The Telegram Bot API stand-in as its own process, so the bot inside serve talks HTTP to it.
    tg_proc = subprocess.Popen(
        [*LIPAPUSH, "sim", "telegram", "--port", str(tg_port)],
        env=_base_env(),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=tg_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait_port(tg_port, tg_proc)

    env = _base_env()
    env.update(
        DATABASE_URL=db.url,
        MIGRATION_DATABASE_URL=db.migration_url,  # serve migrates as the owner
        REDIS_NAMESPACE=services.redis_namespace(),
        SIM_CALLBACK_DELAY="0.3",
        RECONCILE_AFTER_SECONDS="2",
        EXPIRE_AFTER_SECONDS="60",
        EXPORT_DIR=str(export_dir),
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        COLUMNS="500",  # rich must not wrap the CLI's lines (an API key is printed on one line)
        TELEGRAM_BOT_TOKEN=E2E_BOT_TOKEN,
        TELEGRAM_API_BASE=f"http://127.0.0.1:{tg_port}",
        # Production is serve's own simulator under another host name: a live business's pushes stay on
        # this machine, and the Daraja client's mode check still tells production from the simulator.
        DARAJA_PRODUCTION_URL=f"http://localhost:{port}/sim/daraja",
        # No Africa's Talking credentials: SMS stay in the outbox (the embedded default).
        AT_CALLBACK_SECRET=AT_SECRET,
        # The developer's webhook receiver in the tests listens on 127.0.0.1.
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
    )
    if services.REDIS_URL:
        env["REDIS_URL"] = services.REDIS_URL
    cli_env = {**env, "PUBLIC_BASE_URL": url}

    log_path = workdir / "serve.log"
    proc = spawn_serve(env, workdir=workdir, port=port, log_path=log_path)
    srv = Serve(
        url=url,
        env=env,
        cli_env=cli_env,
        workdir=workdir,
        log_path=log_path,
        db_url=db.migration_url,
        proc=proc,
        telegram_url=f"http://127.0.0.1:{tg_port}",
    )
    try:
        _wait_healthy(srv)
        _SERVE = srv
        yield srv
    finally:
        _SERVE = None
        _stop(proc)
        _stop(tg_proc)
        tg_log.close()
        services.drop_database(db)
        if os.environ.get("E2E_KEEP_LOGS") == "1":
            print(f"\nlipapush serve log kept at {log_path}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


E2E_BOT_TOKEN = "424242:E2E-lipapush"
AT_SECRET = "e2e-at-callback-secret-0001"


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + SERVE_START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"a stand-in exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {SERVE_START_DEADLINE}s")


def _wait_healthy(srv: Serve) -> None:
    deadline = time.monotonic() + SERVE_START_DEADLINE
    with httpx.Client(base_url=srv.url, timeout=2.0) as c:
        while True:
            rc = srv.proc.poll()
            if rc is not None:
                pytest.fail(f"lipapush serve exited with code {rc} before it was healthy:\n{srv.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if c.get("/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"lipapush serve not healthy after {SERVE_START_DEADLINE}s:\n{srv.log_tail()}")
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _SERVE is not None and item.get_closest_marker("e2e"):
        report.sections.append(("lipapush serve log (tail)", _SERVE.log_tail(80)))
    return report


# -- HTTP ---------------------------------------------------------------------------------------------
@pytest.fixture
async def http(serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=serve.url, timeout=30) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sim_requests(http: httpx.AsyncClient, *, phone: str | None = None) -> list[dict[str, Any]]:
    """STK push bodies the simulator received (all of them, or those for one MSISDN)."""
    r = await http.get("/sim/daraja/_sim/requests")
    r.raise_for_status()
    rows: list[dict[str, Any]] = r.json()
    if phone is not None:
        rows = [b for b in rows if str(b.get("PhoneNumber")) == phone]
    return rows


async def sim_callbacks(http: httpx.AsyncClient, checkout_request_id: str) -> list[dict[str, Any]]:
    """The callbacks the simulator delivered for one CheckoutRequestID: {url, body, status_code, error}."""
    r = await http.get("/sim/daraja/_sim/callbacks")
    r.raise_for_status()
    return [
        c for c in r.json() if c["body"]["Body"]["stkCallback"]["CheckoutRequestID"] == checkout_request_id
    ]


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, what: str, timeout: float = FINAL_TIMEOUT, interval: float = 0.1
) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` after the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)


# -- businesses ---------------------------------------------------------------------------------------
_seq = itertools.count(1)
_used_msisdns: set[str] = set()


def unique_email(prefix: str = "e2e") -> str:
    return f"{prefix}-{next(_seq)}-{uuid.uuid4().hex[:8]}@example.com"


def unique_phone(last4: str = "0111") -> str:
    """A fresh 07… number never used before in this run; its last four digits pick the simulator's
    outcome (1032 cancelled, 9999 lost callback, …; anything not in the table succeeds)."""
    assert re.fullmatch(r"\d{4}", last4)
    while True:
        local = f"07{10 + secrets.randbelow(20)}{secrets.randbelow(100):02d}{last4}"
        try:
            msisdn = normalize_msisdn(local)
        except ValueError:
            continue
        if msisdn not in _used_msisdns:
            _used_msisdns.add(msisdn)
            return local


def msisdn(local: str) -> str:
    return "254" + local[1:]


@dataclass
class Business:
    name: str
    email: str
    password: str
    phone: str  # the owner's MSISDN (254…)
    key: str  # an API key (lp_test_… on the simulator, lp_live_… for a live business)
    slug: str
    tenant_id: str
    callback_url: str
    cli_output: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


@dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"$ lipapush {' '.join(self.args)}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


async def run_cli(serve: Serve, *args: str) -> CliResult:
    """Run `lipapush <args>` as its own process with the serve environment (plus PUBLIC_BASE_URL)."""
    proc = await asyncio.create_subprocess_exec(
        *LIPAPUSH,
        *args,
        env=serve.cli_env,
        cwd=serve.workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"`lipapush {' '.join(args)}` did not finish within {CLI_TIMEOUT}s") from None
    assert proc.returncode is not None
    return CliResult(args, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def login(http: httpx.AsyncClient, email: str, password: str) -> str:
    r = await http.post("/api/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


NewBusiness = Callable[..., Awaitable[Business]]

# `tenant create` arguments for a production channel: the public sandbox passkey, which the simulator
# behind DARAJA_PRODUCTION_URL expects.
LIVE_CHANNEL_ARGS = (
    "--environment", "production",
    "--short-code", "174379",
    "--consumer-key", "e2e-key",
    "--consumer-secret", "e2e-secret",
    "--passkey", "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
)  # fmt: skip


@pytest.fixture(scope="session")
def new_business(serve: Serve) -> NewBusiness:
    """Create a business the way the README does: `lipapush tenant create … --environment simulator`
    (which sends the KES 1 test push and waits for it) and `lipapush apikey create --tenant <email>`,
    which prints a test key. `live=True`: a production channel instead (on serve's simulator behind
    DARAJA_PRODUCTION_URL), whose key is a live one and whose payments earn commission."""

    async def create(*, name: str = "Mama Mboga", phone: str | None = None, live: bool = False) -> Business:
        email = unique_email()
        password = f"pass-{secrets.token_hex(6)}"
        owner_phone = phone or unique_phone("5678")
        made = await run_cli(
            serve,
            "tenant", "create",
            "--name", name,
            "--email", email,
            "--password", password,
            "--phone", owner_phone,
            *(LIVE_CHANNEL_ARGS if live else ("--environment", "simulator")),
        )  # fmt: skip
        assert made.returncode == 0, made.output
        assert f"Created business {name}" in made.stdout, made.output
        assert f"Channel verified: {name} is active." in made.stdout, made.output

        keyed = await run_cli(serve, "apikey", "create", "--tenant", email)
        assert keyed.returncode == 0, keyed.output
        key = keyed.stdout.strip()
        assert re.fullmatch(rf"lp_{'live' if live else 'test'}_[A-Za-z0-9_\-]{{43}}", key), keyed.output
        assert "shown only once" in keyed.stderr
        serve.api_keys.append(key)

        async with httpx.AsyncClient(base_url=serve.url, timeout=30) as c:
            r = await c.get("/api/settings", headers=bearer(key))
        assert r.status_code == 200, r.text
        settings = r.json()
        assert settings["business"]["status"] == "active"
        assert settings["business"]["email"] == email
        assert settings["channel"]["verified"] is True
        return Business(
            name=name,
            email=email,
            password=password,
            phone=msisdn(owner_phone),
            key=key,
            slug=settings["business"]["slug"],
            tenant_id=settings["business"]["id"],
            callback_url=settings["channel"]["callback_url"],
            cli_output=made.stdout + keyed.stdout,
        )

    return create


@pytest.fixture(scope="session")
def api_business(serve: Serve) -> NewBusiness:
    """Create a business through the REST API alone: POST /api/signup, POST /api/settings with the
    given channel (the KES 1 test push), wait until verified, then POST /api/api-keys."""

    async def create(*, name: str = "Duka la Mama", phone: str | None = None, **channel: Any) -> Business:
        email = unique_email("api")
        password = f"pass-{secrets.token_hex(6)}"
        owner_phone = phone or unique_phone("5678")
        async with httpx.AsyncClient(base_url=serve.url, timeout=30) as c:
            r = await c.post(
                "/api/signup",
                json={"business_name": name, "email": email, "password": password, "phone": owner_phone},
            )
            assert r.status_code == 201, r.text
            jwt = r.json()["access_token"]
            r = await c.post(
                "/api/settings", json={"environment": "simulator", **channel}, headers=bearer(jwt)
            )
            assert r.status_code == 200, r.text
            assert r.json()["verification_error"] is None, r.text

            async def verified() -> dict[str, Any] | None:
                s = await c.get("/api/settings", headers=bearer(jwt))
                body: dict[str, Any] = s.json()
                assert body["channel"]["verification_error"] is None, body
                return body if body["channel"]["verified"] else None

            settings = await wait_for(verified, what=f"channel of {name} verified")
            assert settings["business"]["status"] == "active"
            r = await c.post("/api/api-keys", json={"name": "e2e"}, headers=bearer(jwt))
            assert r.status_code == 201, r.text
            key = r.json()["key"]
        serve.api_keys.append(key)
        return Business(
            name=name,
            email=email,
            password=password,
            phone=msisdn(owner_phone),
            key=key,
            slug=settings["business"]["slug"],
            tenant_id=settings["business"]["id"],
            callback_url=settings["channel"]["callback_url"],
        )

    return create


# -- payments -------------------------------------------------------------------------------------------
async def push(
    http: httpx.AsyncClient, biz: Business, *, phone: str, amount: int = 100, **extra: Any
) -> dict[str, Any]:
    r = await http.post(
        "/api/stk-push", json={"phone": phone, "amount": amount, **extra}, headers=biz.headers
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "pending"
    assert body["checkout_request_id"], body
    return body


async def wait_final(http: httpx.AsyncClient, biz: Business, payment_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        r = await http.get(f"/api/transactions/{payment_id}", headers=biz.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return None if body["status"] == "pending" else body

    final: dict[str, Any] = await wait_for(probe, what=f"payment {payment_id} final")
    return final


async def customer(http: httpx.AsyncClient, biz: Business, phone: str) -> dict[str, Any] | None:
    """One row of the customer book, by exact MSISDN."""
    r = await http.get("/api/customers", params={"q": phone, "per_page": 500}, headers=biz.headers)
    assert r.status_code == 200, r.text
    rows = [c for c in r.json()["items"] if c["phone"] == msisdn(phone) or c["phone"] == phone]
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


async def all_customers(http: httpx.AsyncClient, biz: Business) -> list[dict[str, Any]]:
    r = await http.get("/api/customers", params={"per_page": 500}, headers=biz.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def all_transactions(http: httpx.AsyncClient, biz: Business) -> list[dict[str, Any]]:
    r = await http.get("/api/transactions", params={"limit": 200}, headers=biz.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def success_callback(
    *,
    checkout_request_id: str,
    merchant_request_id: str,
    amount: int,
    phone: str,
    receipt: str | None = None,
) -> dict[str, Any]:
    """A well-formed STK success callback body, as Daraja would send it."""
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": merchant_request_id,
                "CheckoutRequestID": checkout_request_id,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {
                    "Item": [
                        {"Name": "Amount", "Value": float(amount)},
                        {
                            "Name": "MpesaReceiptNumber",
                            "Value": receipt or "TK" + secrets.token_hex(4).upper(),
                        },
                        {"Name": "Balance"},
                        {"Name": "TransactionDate", "Value": int(time.strftime("%Y%m%d%H%M%S"))},
                        {
                            "Name": "PhoneNumber",
                            "Value": int(msisdn(phone) if phone.startswith("0") else phone),
                        },
                    ]
                },
            }
        }
    }


# -- read-only database inspection (callback processing has no public signal) -----------------------------
class Inbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rows(
        self, *, checkout_request_id: str | None = None, request_id: str | None = None
    ) -> list[dict[str, Any]]:
        assert (checkout_request_id is None) != (request_id is None)
        column, value = (
            ("checkout_request_id", checkout_request_id)
            if checkout_request_id
            else ("request_id", request_id)
        )
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT id, checkout_request_id, request_id, processed_at, outcome, error "
                    f"FROM callback_inbox WHERE {column} = :v ORDER BY id"
                ),
                {"v": value},
            )
            return [dict(r._mapping) for r in result]

    async def wait_processed(
        self, *, count: int, checkout_request_id: str | None = None, request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Wait until `count` inbox rows exist for the key and every one has been processed."""

        async def probe() -> list[dict[str, Any]] | None:
            rows = await self.rows(checkout_request_id=checkout_request_id, request_id=request_id)
            done = len(rows) >= count and all(r["processed_at"] is not None for r in rows)
            return rows if done else None

        rows: list[dict[str, Any]] = await wait_for(
            probe, what=f"{count} callback(s) {checkout_request_id or request_id} processed"
        )
        return rows


@pytest.fixture(scope="session")
async def inbox(serve: Serve) -> AsyncIterator[Inbox]:
    engine = create_async_engine(serve.db_url, poolclass=NullPool)
    try:
        yield Inbox(engine)
    finally:
        await engine.dispose()
