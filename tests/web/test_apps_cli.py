"""`lipapush app create/list/rename/hosts/archive` against the test database, as an operator would
type them: the same use cases as the API, Rich tables, errors on stderr with exit code 1."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.services import TestDatabase
from tests.web.test_cli_support import Run, clean_env, lipapush


async def test_create_list_rename_hosts_archive(
    server: LiveServer, database: TestDatabase, tmp_path: Path
) -> None:
    tenant, owner = await make_tenant(environment=Environment.simulator)
    env = clean_env(tmp_path / "home", **database.env(), COLUMNS="250")

    async def cli(*args: str) -> Run:
        return await asyncio.to_thread(lipapush, *args, env=env, cwd=tmp_path)

    empty = await cli("app", "list", "--tenant", tenant.slug)
    assert (empty.returncode, empty.stdout.strip()) == (
        0,
        "No apps yet: `lipapush app create --tenant … --name …` makes one.",
    )
    made = await cli(
        "app", "create", "--tenant", owner.email, "--name", "Shop", "--callback-host", "Shop.Example.com"
    )
    assert made.returncode == 0, made
    assert "Shop" in made.stdout and "shop.example.com" in made.stdout and "test" in made.stdout
    assert "(simulator)" in made.stdout
    bad = await cli(
        "app", "create", "--tenant", owner.email, "--name", "POS", "--callback-host", "https://x.io/"
    )
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == (
        "'https://x.io/' is not a host name: give only the host, e.g. shop.example.com (no https://, port or "
        "path).\n"
    )
    dup = await cli("app", "create", "--tenant", owner.email, "--name", "shop")
    assert (dup.returncode, dup.stderr) == (
        1,
        "This business already has an app named “shop”: choose another name, or rename that app.\n",
    )
    assert (await cli("app", "create", "--tenant", owner.email, "--name", "POS")).returncode == 0

    listed = await cli("app", "list", "--tenant", owner.email)
    assert listed.returncode == 0, listed
    lines = [line for line in listed.stdout.splitlines() if " Shop " in line or " POS " in line]
    assert len(lines) == 2 and " Shop " in lines[0]  # oldest first
    shop_id, pos_id = (line.split()[1] for line in lines)

    renamed = await cli("app", "rename", "--tenant", owner.email, shop_id, "--name", "Shop website")
    assert (renamed.returncode, renamed.stdout) == (0, "renamed: Shop website\n")
    hosts = await cli("app", "hosts", "--tenant", owner.email, shop_id)
    assert (hosts.returncode, hosts.stdout) == (0, "callback hosts: none\n")
    archived = await cli("app", "archive", "--tenant", owner.email, pos_id)
    assert (archived.returncode, archived.stdout) == (0, "archived: POS\n")
    last = await cli("app", "archive", "--tenant", owner.email, shop_id)
    assert last.returncode == 1 and last.stderr.startswith("“Shop website” is this business's only app")
    nonsense = await cli("app", "archive", "--tenant", owner.email, "not-an-id")
    assert (nonsense.returncode, nonsense.stderr) == (
        1,
        "'not-an-id' is not an app id: copy the id column of `lipapush app list`.\n",
    )


async def test_a_key_for_a_named_app(server: LiveServer, database: TestDatabase, tmp_path: Path) -> None:
    from sqlalchemy import select

    from core.apps.models import App
    from core.auth.models import ApiKey
    from core.runtime import unit_of_work

    tenant, owner = await make_tenant(environment=Environment.simulator)
    env = clean_env(tmp_path / "home", **database.env(), COLUMNS="250")

    async def cli(*args: str) -> Run:
        return await asyncio.to_thread(lipapush, *args, env=env, cwd=tmp_path)

    assert (await cli("app", "create", "--tenant", owner.email, "--name", "POS")).returncode == 0
    made = await cli("apikey", "create", "--tenant", owner.email, "--app", "pos", "--name", "till 2")
    assert made.returncode == 0, made
    key = made.stdout.strip()
    assert key.startswith("lp_test_")
    async with unit_of_work() as session:
        app = await session.scalar(select(App).where(App.tenant_id == tenant.id, App.name == "POS"))
        row = await session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == tenant.id, ApiKey.name == "till 2")
        )
    assert app is not None and row is not None and row.app_id == app.id
    missing = await cli("apikey", "create", "--tenant", owner.email, "--app", "Kiosk")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "No app 'Kiosk' in this business (its apps: POS)." in " ".join(missing.stderr.split())
