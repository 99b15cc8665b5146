"""`lipapush router …` as an operator runs it, against a RouterOS stand-in on a real port."""

from __future__ import annotations

from sim.routeros import RouterSim
from tests.e2e.conftest import NewBusiness, Serve, run_cli


async def test_router_add_list_sync(serve: Serve, new_business: NewBusiness) -> None:
    biz = await new_business(name="Kangemi Net")
    async with RouterSim(username="lipapush-api", password="router-pw", identity="Kangemi-Gate") as sim:
        added = await run_cli(
            serve, "router", "add", "--tenant", biz.email, "--name", "Gate A", "--host", "127.0.0.1",
            "--port", str(sim.port), "--username", "lipapush-api", "--password", "router-pw",
        )  # fmt: skip
        assert added.returncode == 0, added.output
        assert "Added router Gate A" in added.stdout
        assert "Router answers: Kangemi-Gate, RouterOS 7.18.2" in added.stdout
        assert "router-pw" not in added.stdout + added.stderr
        listed = await run_cli(serve, "router", "list", "--tenant", biz.email)
        assert listed.returncode == 0 and "Gate A" in listed.stdout and "up" in listed.stdout
        synced = await run_cli(serve, "router", "sync", "--tenant", biz.email, "Gate A")
        assert synced.returncode == 0, synced.output
        assert "Router Gate A reconciled (up)." in synced.stdout
        dup = await run_cli(
            serve, "router", "add", "--tenant", biz.email, "--name", "Gate A", "--host", "127.0.0.1",
            "--username", "lipapush-api", "--password", "x",
        )  # fmt: skip
        assert dup.returncode != 0 and "already have a router called 'Gate A'" in dup.output
        port = sim.port
    down = await run_cli(serve, "router", "test", "--tenant", biz.email, "Gate A")
    assert down.returncode == 1 and f"127.0.0.1:{port}" in down.stdout


async def test_subscription_plans_cli(serve: Serve) -> None:
    import secrets

    name = f"Monthly {secrets.token_hex(3)}"
    added = await run_cli(
        serve, "subscription", "plan-add", "--name", name, "--period", "monthly", "--price", "1500"
    )
    assert added.returncode == 0, added.output
    assert f"Subscription plan {name}: KES 1,500 monthly" in added.stdout
    again = await run_cli(
        serve, "subscription", "plan-add", "--name", name, "--period", "yearly", "--price", "9"
    )
    assert again.returncode != 0 and "already exists" in again.output
    listed = await run_cli(serve, "subscription", "plans")
    assert name in listed.stdout and "1,500" in listed.stdout
