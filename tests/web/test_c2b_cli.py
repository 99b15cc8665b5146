"""`lipapush c2b register/status/validation/accounts` against the running test server, as an operator
would type them; a payment to the registered short code then reaches the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.tenants.models import Environment, Mode
from tests.conftest import LiveServer
from tests.core.c2b.support import c2b_business, channel_row, payments_with_receipt
from tests.support.services import TestDatabase
from tests.web.test_c2b_api import applied, sim_pay, sim_record
from tests.web.test_cli_support import Run, clean_env, lipapush


async def test_register_status_validation_and_accounts(
    server: LiveServer, database: TestDatabase, tmp_path: Path
) -> None:
    biz = await c2b_business(name="C2B CLI Duka", environment=Environment.simulator)
    email = biz.owner.email
    env = clean_env(tmp_path / "home", **database.env(), COLUMNS="250")

    async def cli(*args: str) -> Run:
        return await asyncio.to_thread(lipapush, *args, env=env, cwd=tmp_path)

    done = await cli("c2b", "register", "--tenant", email, "--channel", "main", "--url", server.url)
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"Registered C2B URLs for Paybill {biz.short_code} (v1): payments made straight to it are "
        "recorded as source c2b."
    )
    assert f"confirmation URL: {server.url}/callbacks/daraja/{biz.token}/c2b-confirmation" in lines
    assert (await channel_row(biz.channel_id)).c2b_api_version == "v1"

    status = await cli("c2b", "status", "--tenant", email)
    assert status.returncode == 0, status
    [row] = [line for line in status.stdout.splitlines() if str(biz.channel_id) in line]
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[1:] == ["Main", f"Paybill {biz.short_code}", "test", cells[4], "off", "none", "0"]
    assert cells[4].startswith("v1 20")

    on = await cli(
        "c2b",
        "validation",
        "--tenant",
        email,
        "--channel",
        str(biz.channel_id),
        "on",
        "--rule",
        "known_references",
    )
    assert on.returncode == 0, on
    assert "validation: on, rule: known_references, account numbers: 0" in on.stdout.splitlines()

    accounts = await cli(
        "c2b",
        "accounts",
        "--tenant",
        email,
        "--channel",
        "Main",
        "--add",
        "ADM-1",
        "--add",
        "ADM-2",
        "--remove",
        "adm-2",
    )
    assert (accounts.returncode, accounts.stdout) == (0, "ADM-1\n")
    bad = await cli("c2b", "accounts", "--tenant", email, "--channel", "Main", "--add", "X" * 21)
    assert bad.returncode == 1
    assert bad.stderr.startswith("An account number is at most 20 characters (an M-Pesa limit)")
    off = await cli("c2b", "validation", "--tenant", email, "--channel", "Main", "off", "--rule", "none")
    assert off.returncode == 0 and "validation: off, rule: none, account numbers: 1" in off.stdout
    unknown = await cli("c2b", "validation", "--tenant", email, "--channel", "Westlands", "on")
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "No channel named 'Westlands' in this business: see `lipapush channel list`.\n",
    )

    # The URLs registered are the running server's: a customer's payment to the simulator reaches it.
    sim = f"{server.url}/sim/daraja"
    trans_id = await sim_pay(sim, biz.short_code, amount=80)
    assert (await sim_record(sim, trans_id))["outcome"] == "completed"
    [inbox] = await applied(biz.channel_id, trans_id)
    assert inbox.outcome == "applied"
    [p] = await payments_with_receipt(trans_id)
    assert (p.amount, p.mode, p.commission_cents) == (80, Mode.test, 0)

    again = await cli("c2b", "register", "--tenant", email, "--channel", "Main", "--v2", "--url", server.url)
    assert again.returncode == 0, again
    assert "(v2)" in again.stdout.splitlines()[0]
    assert (await channel_row(biz.channel_id)).c2b_api_version == "v2"
