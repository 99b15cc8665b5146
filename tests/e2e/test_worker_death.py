"""A paid voucher survives the death of the process provisioning it: `lipapush serve` is killed with
SIGKILL while the router is answering slowly, started again on the same database, and the voucher
reaches the router exactly once (one hotspot user, one SMS)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sim.routeros import RouterSim
from tests.e2e.conftest import (
    AT_SECRET,
    Serve,
    _base_env,
    _stop,
    _wait_healthy,
    bearer,
    run_cli,
    spawn_serve,
    unique_email,
    unique_phone,
    wait_for,
)
from tests.support import services


@pytest.fixture
def killable() -> Iterator[Serve]:
    """A serve of our own (not the session's), which this test may kill."""
    try:
        db = services.create_database("e2e-kill")
    except OSError as exc:
        if services.REQUIRE:
            raise
        pytest.skip(f"TEST_DATABASE_URL is set but Postgres is unreachable: {exc}")
    workdir = Path(tempfile.mkdtemp(prefix="lipapush-e2e-kill-"))
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    env = _base_env()
    env.update(
        DATABASE_URL=db.url,
        MIGRATION_DATABASE_URL=db.migration_url,  # serve migrates as the owner
        REDIS_NAMESPACE=services.redis_namespace(),
        SIM_CALLBACK_DELAY="0.3",
        JOB_VISIBILITY_SECONDS="3",  # resend an unfinished job 3 s after it went out (default 5 min)
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        COLUMNS="500",
        AT_CALLBACK_SECRET=AT_SECRET,
        PUBLIC_BASE_URL=url,
    )
    if services.REDIS_URL:
        env["REDIS_URL"] = services.REDIS_URL
    log_path = workdir / "serve.log"
    proc = spawn_serve(env, workdir=workdir, port=port, log_path=log_path)
    srv = Serve(
        url=url, env=env, cli_env=env, workdir=workdir, log_path=log_path, db_url=db.migration_url, proc=proc
    )
    try:
        _wait_healthy(srv)
        yield srv
    finally:
        _stop(srv.proc)
        services.drop_database(db)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_killed_while_provisioning_the_voucher_still_reaches_the_router_once(
    killable: Serve,
) -> None:
    srv = killable
    email, password = unique_email("wifi"), f"pass-{secrets.token_hex(6)}"
    made = await run_cli(
        srv, "tenant", "create", "--hotspot", "--name", "Kill Test WiFi", "--email", email,
        "--password", password, "--phone", unique_phone("5678"), "--environment", "simulator",
    )  # fmt: skip
    assert made.returncode == 0, made.output
    keyed = await run_cli(srv, "apikey", "create", "--tenant", email)
    assert keyed.returncode == 0, keyed.output
    h = bearer(keyed.stdout.strip())

    async with (
        RouterSim(username="api", password="router-pw") as sim,
        httpx.AsyncClient(base_url=srv.url, timeout=30) as http,
    ):
        r = await http.post(
            "/api/routers",
            json={
                "name": "gate",
                "host": "127.0.0.1",
                "port": sim.port,
                "username": "api",
                "password": "router-pw",
            },
            headers=h,
        )
        assert r.status_code == 201, r.text
        plan = await http.post(
            "/api/plans", json={"name": "1 hour", "price": 20, "validity_minutes": 60}, headers=h
        )
        assert plan.status_code == 201, plan.text
        tenant_id = (await http.get("/api/settings", headers=h)).json()["business"]["id"]

        sim.slow = 4.0  # every router reply takes 4 s: provisioning is in flight for a while
        sim.calls.clear()
        buyer = unique_phone("4321")
        bought = await http.post(
            f"/api/captive/{tenant_id}/initiate-mpesa",
            json={
                "router_id": r.json()["id"],
                "plan_id": plan.json()["id"],
                "phone": buyer,
                "ip": "10.9.9.9",
            },
        )
        assert bought.status_code == 201, bought.text
        status_url = bought.json()["status_url"]

        async def in_flight() -> bool:
            return any(call.words and call.words[0] == "/login" for call in sim.calls)

        await wait_for(in_flight, what="the worker logging in to the router")
        waiting = (await http.get(status_url)).json()
        assert (waiting["payment_status"], waiting["voucher"]) == ("success", None)
        assert waiting["message"].startswith("Paid. Your voucher is on its way to the WiFi router")
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
        assert sim.users() == []  # it died before the router said yes

        # The router is quick again; a new serve starts on the same database and port.
        sim.slow = 0.0
        port = int(srv.url.rsplit(":", 1)[1])
        srv.proc = spawn_serve(srv.env, workdir=srv.workdir, port=port, log_path=srv.log_path)
        _wait_healthy(srv)

        async def usable() -> dict[str, Any] | None:
            s = (await http.get(status_url)).json()
            return s["voucher"] if s.get("voucher") and s["voucher"]["usable"] else None

        voucher = await wait_for(usable, what="the voucher reaching the router after the restart", timeout=60)
        assert [str(u["name"]) for u in sim.users()] == [voucher["code"]]

    engine = create_async_engine(srv.db_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            vouchers = (await conn.execute(text("SELECT code, status FROM vouchers"))).all()
            sms = (
                await conn.execute(
                    text("SELECT body FROM notifications WHERE kind = 'hotspot.voucher' AND recipient = :p"),
                    {"p": "254" + buyer[1:]},
                )
            ).all()
    finally:
        await engine.dispose()
    assert [(c, s) for c, s in vouchers] == [(voucher["code"], "provisioned")]
    assert len(sms) == 1 and voucher["code"] in sms[0][0]
    if not services.REDIS_URL:  # the in-process broker's jobs are handed to the relay at start
        assert re.search(r"resending \d+ unfinished jobs from before the restart", srv.log_path.read_text())
