"""`lipapush channel add/list/verify/primary/rename` and `lipapush app create --channel` / `app channel`
against the running test server, as an operator would type them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from sqlalchemy import select

from core.apps.models import App
from core.runtime import unit_of_work
from core.tenants.models import Environment, MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.services import TestDatabase
from tests.web.test_cli_support import Run, clean_env, lipapush


async def test_add_list_primary_rename_and_apps_on_a_channel(
    server: LiveServer, database: TestDatabase, tmp_path: Path
) -> None:
    tenant, owner = await make_tenant(name="Duka CLI", environment=Environment.simulator)
    env = clean_env(tmp_path / "home", **database.env(), COLUMNS="250")

    async def cli(*args: str) -> Run:
        return await asyncio.to_thread(lipapush, *args, env=env, cwd=tmp_path)

    till = str(random.randint(5_000_000, 5_999_999))
    added = await cli(
        "channel", "add", "--tenant", owner.email, "--name", "Westlands till", "--kind", "till",
        "--till-number", till, "--url", server.url,
    )  # fmt: skip
    assert added.returncode == 0, added
    assert "Added channel Westlands till (" in added.stdout
    assert "Channel “Westlands till” verified." in added.stdout
    async with unit_of_work(readonly=True) as session:
        rows = (
            await session.execute(
                select(MpesaChannel.id, MpesaChannel.name, MpesaChannel.is_primary, MpesaChannel.till_number)
                .where(MpesaChannel.tenant_id == tenant.id)
                .order_by(MpesaChannel.created_at)
            )
        ).all()
    assert [(r[1], r[2], r[3]) for r in rows] == [("Main", True, None), ("Westlands till", False, till)]
    main_id, branch_id = str(rows[0][0]), str(rows[1][0])

    listed = await cli("channel", "list", "--tenant", owner.email)
    assert listed.returncode == 0, listed
    lines = [line for line in listed.stdout.splitlines() if main_id in line or branch_id in line]
    assert main_id in lines[0] and "yes" in lines[0] and "verified" in lines[0]
    assert branch_id in lines[1] and till in lines[1] and "simulator" in lines[1] and "test" in lines[1]

    dup = await cli("channel", "add", "--tenant", owner.email, "--name", "main", "--url", server.url)
    assert (dup.returncode, dup.stderr) == (
        1,
        "This business already has a channel named “main”: choose another name, or rename that one.\n",
    )
    bad = await cli("channel", "primary", "--tenant", owner.email, "not-an-id")
    assert (bad.returncode, bad.stderr) == (
        1,
        "'not-an-id' is not a channel id: copy the id column of `lipapush channel list`.\n",
    )

    app = await cli("app", "create", "--tenant", owner.email, "--name", "Branch shop", "--channel", branch_id)
    assert app.returncode == 0, app
    assert f"Westlands till: Till {till} (simulator)" in app.stdout
    async with unit_of_work(readonly=True) as session:
        made = await session.scalar(select(App).where(App.tenant_id == tenant.id, App.name == "Branch shop"))
    assert made is not None and str(made.channel_id) == branch_id
    moved = await cli("app", "channel", "--tenant", owner.email, str(made.id), "--channel", main_id)
    assert (moved.returncode, moved.stdout) == (0, "channel: Main: Paybill 174379 (simulator)\n")

    primary = await cli("channel", "primary", "--tenant", owner.email, branch_id)
    assert (primary.returncode, primary.stdout) == (0, "primary channel: Westlands till\n")
    renamed = await cli("channel", "rename", "--tenant", owner.email, main_id, "--name", "Head office")
    assert (renamed.returncode, renamed.stdout) == (0, "renamed: Head office\n")
    verify = await cli("channel", "verify", "--tenant", owner.email, main_id, "--url", server.url)
    assert verify.returncode == 0, verify
    assert "Channel “Head office” verified: Duka CLI is active." in verify.stdout
