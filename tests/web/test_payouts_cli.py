"""`lipapush payout-channel`, `initiator set`, `payout send/list/limits` and `balance` as an operator
types them, against the running test server (its worker sends what the command records)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from sqlalchemy import select

from core.payouts.models import Payout, PayoutStatus
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.payouts import PASSWORD, short_code
from tests.support.services import TestDatabase
from tests.web.test_cli_support import LIPAPUSH, Run, clean_env


async def payouts_of(tenant_id: object) -> list[Payout]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Payout).where(Payout.tenant_id == tenant_id).order_by(Payout.created_at)
            )
        )


async def test_a_payout_channel_a_confirmed_payout_and_the_balance(
    server: LiveServer, database: TestDatabase, tmp_path: Path
) -> None:
    tenant, owner = await make_tenant(name="Duka CLI Payouts")
    env = clean_env(
        tmp_path / "home",
        **database.env(),
        COLUMNS="250",
        LIPAPUSH_INITIATOR_PASSWORD=PASSWORD,
        LIPAPUSH_CONSUMER_SECRET="b2c-consumer-secret",
    )

    async def cli(*args: str, answer: str = "") -> Run:
        def run() -> Run:
            done = subprocess.run(
                [*LIPAPUSH, *args],
                env=env,
                cwd=tmp_path,
                input=answer,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            return Run(done.returncode, done.stdout, done.stderr)

        return await asyncio.to_thread(run)

    code = short_code()
    added = await cli(
        "payout-channel", "add", "--tenant", owner.email, "--name", "Salaries", "--short-code", code,
        "--environment", "production", "--consumer-key", "b2c-consumer-key", "--initiator-name", "apiop",
        "--wait", "60",
    )  # fmt: skip
    assert added.returncode == 0, added
    assert "Added payout channel Salaries (" in added.stdout
    assert "Initiator apiop of “Salaries” verified." in added.stdout
    async with unit_of_work(readonly=True) as session:
        channel = await session.scalar(
            select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id, MpesaChannel.name == "Salaries")
        )
    assert channel is not None and channel.initiator_verified_at is not None

    declined = await cli(
        "payout", "send", "--tenant", owner.email, "--phone", "0722000111", "--amount", "250",
        "--name", "Wanjiku", answer="n\n",
    )  # fmt: skip
    assert (declined.returncode, declined.stderr) == (1, "Not sent.\n")
    assert declined.stdout == "Send KES 250 to Wanjiku (0722000111)? [y/N]: "
    assert await payouts_of(tenant.id) == []

    paid = await cli(
        "payout", "send", "--tenant", owner.email, "--phone", "0722000111", "--amount", "250",
        "--name", "Wanjiku", "--reference", "Float top up", "--wait", "60", answer="y\n",
    )  # fmt: skip
    assert paid.returncode == 0, paid
    [row] = await payouts_of(tenant.id)
    assert (row.status, row.amount, row.source.value, row.reference) == (
        PayoutStatus.success,
        250,
        "cli",
        "Float top up",
    )
    assert f"Payout {row.id}: KES 250 to Wanjiku (0722000111), pending." in paid.stdout
    assert paid.stdout.endswith(
        f"Paid: KES 250 to {row.recipient_name} (0722000111): paid, receipt {row.receipt}\n"
    )

    refused = await cli(
        "payout", "send", "--tenant", owner.email, "--phone", "0722002040", "--amount", "100", "--yes",
        "--command", "salary", "--wait", "60",
    )  # fmt: skip
    assert refused.returncode == 1, refused
    assert refused.stderr == (
        "Not paid: KES 100 to 0722002040: failed. The recipient is not a registered M-Pesa customer.\n"
    )

    listed = await cli("payout", "list", "--tenant", owner.email)
    assert listed.returncode == 0, listed
    lines = [line for line in listed.stdout.splitlines() if "0722" in line]
    assert "0722002040" in lines[0] and "failed" in lines[0] and "not a registered" in lines[0]
    assert "0722000111" in lines[1] and "success" in lines[1] and str(row.receipt) in lines[1]

    shown = await cli("balance", "--tenant", owner.email, "--wait", "60")
    assert shown.returncode == 0, shown
    [line] = [line for line in shown.stdout.splitlines() if "Salaries" in line]
    assert code in line and "KES 99,750.00" in line and "live" in line

    limits = await cli("payout", "limits", "--tenant", owner.email, "--per-payout", "1000")
    assert (limits.returncode, limits.stdout) == (
        0,
        "Duka CLI Payouts: at most KES 1,000 a payout, KES 300,000 a day (platform default).\n",
    )
    over = await cli(
        "payout", "send", "--tenant", owner.email, "--phone", "0722000111", "--amount", "1001", "--yes"
    )
    assert over.returncode == 1 and over.stderr.startswith("KES 1,001 is more than Duka CLI Payouts may send")

    again = await cli(
        "initiator",
        "set",
        "--tenant",
        owner.email,
        "--channel",
        str(channel.id),
        "--name",
        "apiop",
        "--wait",
        "60",
    )
    assert again.returncode == 0, again
    assert again.stdout.splitlines()[0] == "Initiator apiop set on “Salaries”."
    assert "Initiator apiop of “Salaries” verified." in again.stdout
