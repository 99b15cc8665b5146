"""core.hotspot.routeros against the RouterOS API stand-in (sim.routeros) over real TCP.

The simulator serves from the test's event loop while the client's librouteros calls run in its worker
threads, exactly as in production; assertions read the simulator's own state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from core.hotspot import routeros
from core.hotspot.routeros import (
    ActiveSession,
    ProfileSpec,
    RouterAddress,
    RouterClient,
    RouterError,
    RouterLoginFailed,
    RouterRefused,
    RouterUnreachable,
    UserSpec,
)
from sim.routeros import RouterSim
from sim.routeros.state import USER_PROFILE

API_USER = "api"
API_PASSWORD = "secret-Api-pw"
V6 = "6.49.10"
V7 = "7.18.2"
DUPLICATE = "failure: already have user with this name for this server"
PROFILE = "lp-2m5m"


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username=API_USER, password=API_PASSWORD) as router:
        yield router


def address(sim: RouterSim, **kw: Any) -> RouterAddress:
    return RouterAddress(
        **{
            "host": "127.0.0.1",
            "port": sim.port,
            "username": API_USER,
            "password": API_PASSWORD,
            "timeout": 3.0,
            **kw,
        }
    )


def client(sim: RouterSim, **kw: Any) -> RouterClient:
    return RouterClient(address(sim, **kw))


def voucher(name: str = "K7QM2XHP", **kw: Any) -> UserSpec:
    return UserSpec(**{"name": name, "password": name, "profile": PROFILE, **kw})


async def with_profile(sim: RouterSim) -> RouterClient:
    c = client(sim)
    await c.ensure_profile(ProfileSpec(PROFILE, rate_limit="2M/5M"))
    return c


def named(rows: Sequence[Mapping[str, str]], name: str, key: str = "name") -> list[Mapping[str, str]]:
    return [r for r in rows if r.get(key) == name]


def assert_sequential(sim: RouterSim) -> None:
    """Connections never overlap: each one's commands form one run, starting with its login."""
    runs = [
        (conn, [c.command for c in calls])
        for conn, calls in itertools.groupby(sim.calls, lambda c: c.connection)
    ]
    connections = [conn for conn, _ in runs]
    assert len(connections) == len(set(connections)), "two connections to the router were interleaved"
    assert all(commands[0] == "/login" for _, commands in runs)


# --- reading ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "flag"), [(V7, "false"), (V6, "no")])
async def test_info_on_v6_and_v7(version: str, flag: str) -> None:
    async with RouterSim(
        username=API_USER,
        password=API_PASSWORD,
        version=version,
        identity="1234",
        hotspot_servers=("hs1", "hs2"),
    ) as sim:
        c = client(sim)
        info = await c.info()
        assert info.identity == "1234"  # numeric-looking, and still text
        assert info.version.startswith(version)
        assert info.board == "hAP ac^2"
        assert info.cpu_load == 3
        assert info.uptime.endswith("s")
        assert info.hotspot_servers == ["hs1", "hs2"]
        # Flags print differently per version; both read the same.
        await c.ensure_profile(ProfileSpec(PROFILE))
        await c.upsert_user(voucher())
        assert sim.users()[0]["disabled"] == flag
        [user] = await c.users()
        assert user.disabled is False


async def test_pre_643_router_gets_the_challenge_login() -> None:
    async with RouterSim(username=API_USER, password=API_PASSWORD, version="6.40.9") as sim:
        info = await client(sim).info()
        assert info.version.startswith("6.40.9")
        with pytest.raises(RouterLoginFailed):
            await client(sim, password="wrong-password").info()


async def test_users_and_comment_prefix(sim: RouterSim) -> None:
    c = await with_profile(sim)
    await c.upsert_user(voucher("A1", comment="lp:1", limit_uptime="1h", limit_bytes_total=5_000_000))
    await c.upsert_user(voucher("B2", comment="lp:2"))
    await c.upsert_user(voucher("C3", comment="12345"))  # numeric-looking comment stays text
    await c.upsert_user(voucher("D4"))

    everyone = await c.users()
    assert [u.name for u in everyone] == ["A1", "B2", "C3", "D4"]
    assert everyone[2].comment == "12345"
    assert everyone[3].comment is None

    ours = await c.users(comment_prefix="lp:")
    assert [u.name for u in ours] == ["A1", "B2"]
    a1, b2 = ours
    assert a1.id == named(sim.users(), "A1")[0][".id"]
    assert a1.profile == PROFILE
    assert a1.limit_uptime == "1h"
    assert a1.limit_bytes_total == 5_000_000
    assert (a1.uptime, a1.bytes_in, a1.bytes_out) == ("0s", 0, 0)
    assert (b2.limit_uptime, b2.limit_bytes_total) == (None, None)


async def test_active_sessions(sim: RouterSim) -> None:
    c = await with_profile(sim)
    await c.upsert_user(voucher("A1"))
    assert await c.active() == []
    row = sim.simulate_login("A1", address="10.5.50.23", mac_address="AA:BB:CC:DD:EE:FF")
    sim.advance(90)
    assert await c.active() == [
        ActiveSession(id=row[".id"], user="A1", address="10.5.50.23", mac="AA:BB:CC:DD:EE:FF", uptime="1m30s")
    ]


# --- profiles and users ----------------------------------------------------------------------------------


async def test_ensure_profile_creates_then_updates_in_place(sim: RouterSim) -> None:
    c = client(sim)
    await c.ensure_profile(ProfileSpec(PROFILE, rate_limit="2M/5M", shared_users=2, session_timeout="1h"))
    [first] = named(sim.profiles(), PROFILE)
    assert (first["rate-limit"], first["shared-users"], first["session-timeout"]) == ("2M/5M", "2", "1h")

    await c.ensure_profile(ProfileSpec(PROFILE, rate_limit="4M/8M 8M/16M 3M/6M 16/16", shared_users=3))
    [second] = named(sim.profiles(), PROFILE)
    assert second[".id"] == first[".id"]
    assert second["rate-limit"] == "4M/8M 8M/16M 3M/6M 16/16"
    assert second["shared-users"] == "3"
    assert "session-timeout" not in second  # None means unset, not "leave as it was"
    assert [p["name"] for p in sim.profiles()] == ["default", PROFILE]

    await c.ensure_profile(ProfileSpec(PROFILE, rate_limit="4M/8M 8M/16M 3M/6M 16/16", shared_users=3))
    assert named(sim.profiles(), PROFILE) == [second]


async def test_upsert_user_creates_then_updates_by_name(sim: RouterSim) -> None:
    c = await with_profile(sim)
    await c.ensure_profile(ProfileSpec("lp-other"))
    spec = voucher("K7QM2XHP", limit_uptime="01:00:00", limit_bytes_total=1_000_000_000, comment="lp:a")
    user_id = await c.upsert_user(spec)
    [row] = sim.users()
    assert row[".id"] == user_id
    assert row["name"] == row["password"] == "K7QM2XHP"
    assert row["profile"] == PROFILE
    assert row["limit-uptime"] == "1h"
    assert row["limit-bytes-total"] == "1000000000"
    assert row["comment"] == "lp:a"
    assert row["server"] == "all"

    again = await c.upsert_user(
        UserSpec("K7QM2XHP", "new-pw", "lp-other", limit_uptime="1d", comment="lp:b", server="hotspot1")
    )
    assert again == user_id
    [row] = sim.users()
    assert row["password"] == "new-pw"
    assert row["profile"] == "lp-other"
    assert row["limit-uptime"] == "1d"
    assert "limit-bytes-total" not in row
    assert row["comment"] == "lp:b"
    assert row["server"] == "hotspot1"


async def test_numeric_looking_name(sim: RouterSim) -> None:
    c = await with_profile(sim)
    first = await c.upsert_user(voucher("12345678"))
    second = await c.upsert_user(voucher("12345678", limit_uptime="30m"))
    assert first == second
    [row] = sim.users()
    assert row["name"] == "12345678" and row["limit-uptime"] == "30m"
    [user] = await c.users()
    assert user.name == "12345678" and isinstance(user.name, str)
    sim.simulate_login("12345678")
    assert [s.user for s in await c.active()] == ["12345678"]
    assert await c.kick("12345678") == 1
    assert await c.remove_user("12345678") is True
    assert sim.users() == []


async def test_ids_change_on_reboot_and_upsert_still_finds_the_user(sim: RouterSim) -> None:
    c = await with_profile(sim)
    before = await c.upsert_user(voucher())
    await sim.reboot()
    after = await c.upsert_user(voucher(comment="lp:after-reboot"))
    assert after != before
    [row] = sim.users()
    assert row[".id"] == after and row["comment"] == "lp:after-reboot"


async def test_remove_user_takes_its_sessions_and_cookies(sim: RouterSim) -> None:
    c = await with_profile(sim)
    await c.upsert_user(voucher("GONE"))
    await c.upsert_user(voucher("STAYS"))
    sim.simulate_login("GONE", address="10.5.50.30", mac_address="AA:AA:AA:AA:AA:01")
    sim.simulate_login("STAYS", address="10.5.50.31", mac_address="AA:AA:AA:AA:AA:02")
    assert named(sim.rows("/ip/hotspot/cookie"), "GONE", "user")

    assert await c.remove_user("GONE") is True
    assert [u["name"] for u in sim.users()] == ["STAYS"]
    assert [a["user"] for a in sim.active()] == ["STAYS"]
    assert [k["user"] for k in sim.rows("/ip/hotspot/cookie")] == ["STAYS"]

    assert await c.remove_user("GONE") is False
    assert [u["name"] for u in sim.users()] == ["STAYS"]


async def test_kick(sim: RouterSim) -> None:
    c = await with_profile(sim)
    await c.ensure_profile(ProfileSpec("two-devices", shared_users=2))
    await c.upsert_user(UserSpec("FAMILY", "pw", "two-devices"))
    await c.upsert_user(voucher("OTHER"))
    sim.simulate_login("FAMILY")
    sim.simulate_login("FAMILY")
    sim.simulate_login("OTHER")
    assert await c.kick("FAMILY") == 2
    assert [a["user"] for a in sim.active()] == ["OTHER"]
    assert await c.kick("FAMILY") == 0
    assert [u["name"] for u in sim.users()] == ["FAMILY", "OTHER"]  # kicked, not removed


async def test_server_side_login(sim: RouterSim) -> None:
    c = await with_profile(sim)
    await c.upsert_user(voucher("K7"))
    await c.login(user="K7", password="K7", ip="10.5.50.9", mac="aa:bb:cc:dd:ee:09")
    [session] = sim.active()
    assert (session["user"], session["address"], session["mac-address"]) == (
        "K7",
        "10.5.50.9",
        "AA:BB:CC:DD:EE:09",
    )
    assert session["login-by"] == "http-pap"

    with pytest.raises(RouterRefused) as caught:
        await c.login(user="K7", password="not-it", ip="10.5.50.10", mac="AA:BB:CC:DD:EE:10")
    assert caught.value.retry is False
    assert caught.value.command == "/ip/hotspot/active/login"
    assert "invalid username or password" in caught.value.trap_message


# --- failures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "wording"), [(V7, "invalid user name or password"), (V6, "cannot log in")]
)
async def test_wrong_api_password(version: str, wording: str) -> None:
    async with RouterSim(username=API_USER, password=API_PASSWORD, version=version) as sim:
        with pytest.raises(RouterLoginFailed) as caught:
            await client(sim, password="wrong-password").info()
        assert caught.value.retry is False
        assert "check the API user and password" in caught.value.message
        assert wording in caught.value.message
        assert "wrong-password" not in str(caught.value)
        assert f"'{API_USER}'" in caught.value.message


@pytest.mark.parametrize("mode", ["refuse", "close", "hang"])
async def test_router_down(sim: RouterSim, mode: str) -> None:
    c = client(sim, timeout=0.5)
    await sim.set_down(True, mode=mode)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(RouterUnreachable) as caught:
        await c.upsert_user(voucher())
    assert time.monotonic() - started < 1.5
    assert caught.value.retry is True
    assert "127.0.0.1" in caught.value.message

    await sim.set_down(False)
    assert (await c.info()).identity == "MikroTik"


async def test_down_messages_say_what_to_check(sim: RouterSim) -> None:
    c = client(sim, timeout=0.5)
    await sim.set_down(True, mode="refuse")
    with pytest.raises(RouterUnreachable, match=r"refused the connection: check that the api service"):
        await c.info()
    await sim.set_down(True, mode="hang")
    with pytest.raises(RouterUnreachable, match=r"did not answer within 0.5s"):
        await c.info()


async def test_unknown_host_is_unreachable() -> None:
    c = RouterClient(RouterAddress("router.invalid", password=API_PASSWORD, timeout=2))
    with pytest.raises(RouterUnreachable) as caught:
        await c.info()
    assert caught.value.retry is True
    assert "router.invalid" in caught.value.message


async def test_tls_to_a_plain_api_port_is_unreachable(sim: RouterSim) -> None:
    started = time.monotonic()
    with pytest.raises(RouterUnreachable) as caught:
        await client(sim, tls=True, tls_insecure=True, timeout=0.5).info()
    assert time.monotonic() - started < 1.5
    assert caught.value.retry is True


async def test_slow_router_beyond_the_timeout(sim: RouterSim) -> None:
    c = client(sim, timeout=0.3)
    sim.slow = 0.6
    started = time.monotonic()
    with pytest.raises(RouterUnreachable, match="did not answer"):
        await c.info()
    assert time.monotonic() - started < 1.0
    sim.slow = 0.1  # slow, but within the timeout
    assert (await c.info()).identity == "MikroTik"


async def test_a_dribbling_router_hits_the_operation_deadline(
    sim: RouterSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every reply comes within the per-read timeout, but the operation as a whole takes too long.
    monkeypatch.setattr(routeros, "DEADLINE_FACTOR", 2.0)
    c = client(sim, timeout=0.5)
    sim.slow = 0.3
    started = time.monotonic()
    with pytest.raises(RouterUnreachable, match=r"did not finish reading its status within 1s"):
        await c.info()
    assert time.monotonic() - started < 1.4
    # The abandoned connection was torn down and the router is free again.
    sim.slow = 0
    assert (await asyncio.wait_for(c.info(), 2)).identity == "MikroTik"


async def test_fatal_and_dropped_connections_are_unreachable(sim: RouterSim) -> None:
    c = await with_profile(sim)
    sim.fatal_next("out of memory", command="/ip/hotspot/user/add")
    with pytest.raises(RouterUnreachable, match="out of memory") as caught:
        await c.upsert_user(voucher())
    assert caught.value.retry is True
    sim.drop_next(command="/ip/hotspot/user/add")
    with pytest.raises(RouterUnreachable, match="closed the connection"):
        await c.upsert_user(voucher())
    # Nothing was half-done: the next attempt creates the user once.
    await c.upsert_user(voucher())
    assert len(sim.users()) == 1


async def test_trap_on_add_is_refused(sim: RouterSim) -> None:
    c = await with_profile(sim)
    sim.trap_next("failure: simulated outage", command="/ip/hotspot/user/add", category=4)
    with pytest.raises(RouterRefused) as caught:
        await c.upsert_user(voucher())
    assert caught.value.trap_message == "failure: simulated outage"
    assert caught.value.category == 4
    assert caught.value.retry is False
    assert "failure: simulated outage" in caught.value.message
    assert sim.users() == []


async def test_transient_trap_may_be_retried(sim: RouterSim) -> None:
    c = await with_profile(sim)
    sim.trap_next("interrupted", command="/ip/hotspot/user/add", category=2)
    with pytest.raises(RouterRefused) as caught:
        await c.upsert_user(voucher())
    assert caught.value.retry is True


async def test_unknown_profile_says_to_create_it(sim: RouterSim) -> None:
    with pytest.raises(RouterRefused, match="create the profile on the router first") as caught:
        await client(sim).upsert_user(UserSpec("K7", "K7", "no-such-profile"))
    assert caught.value.trap_message == "input does not match any value of profile"


# --- races and concurrency -------------------------------------------------------------------------------


async def test_concurrent_upserts_to_one_router_are_serialised(
    sim: RouterSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No kept connections: one per operation, so the log shows any two operations overlapping.
    monkeypatch.setattr(routeros, "KEEP_IDLE", 0)
    await with_profile(sim)
    sim.calls.clear()
    # Separate clients, as separate jobs would have: the per-router lock is shared all the same.
    names = [f"V{n:03d}" for n in range(20)]
    ids = await asyncio.gather(*(client(sim).upsert_user(voucher(n, comment=f"lp:{n}")) for n in names))
    assert len(set(ids)) == 20
    assert sorted(u["name"] for u in sim.users()) == names
    assert {u["name"]: u[".id"] for u in sim.users()} == dict(zip(names, ids, strict=True))
    assert_sequential(sim)
    assert len({c.connection for c in sim.calls}) == 20


async def test_concurrent_upserts_of_one_name_leave_one_user(
    sim: RouterSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routeros, "KEEP_IDLE", 0)
    c = await with_profile(sim)
    sim.calls.clear()
    ids = await asyncio.gather(*(c.upsert_user(voucher("SAME", comment=f"lp:{n}")) for n in range(10)))
    assert len(set(ids)) == 1
    assert len(sim.users()) == 1
    assert_sequential(sim)


async def test_a_user_created_by_someone_else_in_between_is_updated(sim: RouterSim) -> None:
    c = await with_profile(sim)
    state = sim.state
    real_execute = state.execute
    raced: list[Any] = []

    def execute(path: str, attrs: Mapping[str, str], queries: Sequence[str]) -> Any:
        if path == "/ip/hotspot/user/add" and not raced:
            # Another writer's add lands between our print and our add.
            raced.append(real_execute(path, {"name": attrs["name"], "comment": "theirs"}, []))
        return real_execute(path, attrs, queries)

    sim.state.execute = execute  # type: ignore[method-assign]
    user_id = await c.upsert_user(voucher("RACED", comment="ours", limit_uptime="2h"))
    assert raced
    [row] = sim.users()
    assert row[".id"] == user_id
    assert (row["comment"], row["limit-uptime"], row["profile"]) == ("ours", "2h", PROFILE)
    commands = [call.command for call in sim.calls]
    assert commands[-3:] == ["/ip/hotspot/user/add", "/ip/hotspot/user/print", "/ip/hotspot/user/set"]


async def test_a_duplicate_trap_with_nothing_there_is_retried(sim: RouterSim) -> None:
    c = await with_profile(sim)
    sim.trap_next(DUPLICATE, command="/ip/hotspot/user/add")
    user_id = await c.upsert_user(voucher())
    assert [u[".id"] for u in sim.users()] == [user_id]


async def test_concurrent_operations_share_the_kept_connection_one_at_a_time(sim: RouterSim) -> None:
    c = await with_profile(sim)
    names = [f"V{n:03d}" for n in range(20)]
    await asyncio.gather(*(client(sim).upsert_user(voucher(n)) for n in names), c.users(), c.active())
    assert sorted(u["name"] for u in sim.users()) == names
    assert len({call.connection for call in sim.calls}) == 1
    assert [call.command for call in sim.calls].count("/login") == 1


# --- the kept connection ---------------------------------------------------------------------------------

PROFILE_SPEC = ProfileSpec(PROFILE, rate_limit="2M/5M")


def commands(sim: RouterSim) -> list[str]:
    return [call.command for call in sim.calls]


async def test_provision_sends_profile_and_user_on_one_connection(sim: RouterSim) -> None:
    c = client(sim)
    first_id = await c.provision(PROFILE_SPEC, voucher("FIRST"))
    assert commands(sim) == [
        "/login",
        "/ip/hotspot/user/profile/print",
        "/ip/hotspot/user/profile/add",
        "/ip/hotspot/user/print",
        "/ip/hotspot/user/add",
    ]
    assert named(sim.users(), "FIRST")[0][".id"] == first_id
    assert named(sim.profiles(), PROFILE)[0]["rate-limit"] == "2M/5M"
    sim.calls.clear()
    # The next voucher, from another client as another job would: the same connection, no login, and
    # the profile this connection made is not checked again.
    await client(sim).provision(PROFILE_SPEC, voucher("SECOND"))
    assert commands(sim) == ["/ip/hotspot/user/print", "/ip/hotspot/user/add"]
    assert sim.info()["connections"] == 1
    sim.calls.clear()
    # A different spec for the profile is applied.
    await c.provision(ProfileSpec(PROFILE, rate_limit="1M/2M"), voucher("THIRD"))
    assert commands(sim)[:2] == ["/ip/hotspot/user/profile/print", "/ip/hotspot/user/profile/set"]
    assert named(sim.profiles(), PROFILE)[0]["rate-limit"] == "1M/2M"
    with pytest.raises(ValueError, match="is not the profile given"):
        await c.provision(ProfileSpec("other"), voucher("FOURTH"))


async def test_a_profile_removed_meanwhile_is_made_again(sim: RouterSim) -> None:
    c = client(sim)
    await c.provision(PROFILE_SPEC, voucher("FIRST"))
    await c.remove_user("FIRST")
    [profile] = named(sim.profiles(), PROFILE)
    sim.state.remove(sim.state.tables[USER_PROFILE], {".id": profile[".id"]})  # by hand, on the router
    sim.calls.clear()
    await c.provision(PROFILE_SPEC, voucher("SECOND"))
    assert commands(sim) == [
        "/ip/hotspot/user/print",
        "/ip/hotspot/user/add",  # refused: no such profile
        "/ip/hotspot/user/profile/print",
        "/ip/hotspot/user/profile/add",
        "/ip/hotspot/user/print",
        "/ip/hotspot/user/add",
    ]
    assert [u["profile"] for u in sim.users()] == [PROFILE]


async def test_a_kept_connection_closes_after_idle_seconds(
    sim: RouterSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routeros, "KEEP_IDLE", 0.2)
    c = client(sim)
    await c.info()
    assert sim.info()["connections"] == 1

    async def closed() -> bool:
        return sim.info()["connections"] == 0

    await wait_for(closed, 2.0)
    sim.calls.clear()
    await c.info()
    assert commands(sim)[0] == "/login"


async def test_a_kept_connection_is_not_reused_after_max_age_or_by_another_address(
    sim: RouterSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client(sim).info()
    sim.calls.clear()
    await client(sim, timeout=2.5).info()  # another address: its own connection
    assert commands(sim)[0] == "/login"
    monkeypatch.setattr(routeros, "KEEP_MAX_AGE", 0.0)
    sim.calls.clear()
    await client(sim, timeout=2.5).info()
    assert commands(sim)[0] == "/login"
    assert len({call.connection for call in sim.calls}) == 1


async def test_a_connection_the_router_dropped_while_kept_is_replaced(sim: RouterSim) -> None:
    c = client(sim)
    await c.provision(PROFILE_SPEC, voucher("FIRST"))
    await sim.reboot()  # drops every connection, ours included
    sim.calls.clear()
    await c.provision(PROFILE_SPEC, voucher("SECOND"))  # no error: nothing of it had been answered
    assert commands(sim)[:3] == ["/login", "/ip/hotspot/user/profile/print", "/ip/hotspot/user/profile/set"]
    assert sorted(u["name"] for u in sim.users()) == ["FIRST", "SECOND"]
    # The router going away altogether is still an error, and a failed connection is not kept.
    await sim.set_down(True, mode="close")
    with pytest.raises(RouterUnreachable):
        await c.info()
    await sim.set_down(False)
    sim.calls.clear()
    await c.info()
    assert commands(sim)[0] == "/login"


async def test_a_connection_that_failed_is_not_kept(sim: RouterSim) -> None:
    c = await with_profile(sim)
    sim.trap_next("failure: simulated outage", command="/ip/hotspot/user/add", category=4)
    with pytest.raises(RouterRefused):
        await c.upsert_user(voucher())
    sim.calls.clear()
    await c.upsert_user(voucher())
    assert commands(sim)[0] == "/login"
    # One that timed out neither.
    slow = client(sim, timeout=0.2)
    await slow.info()
    sim.slow = 0.5
    with pytest.raises(RouterUnreachable):
        await slow.info()
    sim.slow = 0
    sim.calls.clear()
    await slow.info()
    assert commands(sim)[0] == "/login"


async def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_the_same_router_from_two_event_loops_works() -> None:
    # A lock belongs to one loop; a client used from a fresh loop (a CLI, another thread) gets its own.
    async with RouterSim(username=API_USER, password=API_PASSWORD) as sim:
        c = client(sim)
        assert (await c.info()).identity == "MikroTik"
        port = sim.port

    def elsewhere() -> str:
        async def main() -> str:
            async with RouterSim(username=API_USER, password=API_PASSWORD, port=port) as again:
                return (await RouterClient(address(again)).info()).identity

        return asyncio.run(main())

    assert await asyncio.to_thread(elsewhere) == "MikroTik"


# --- inputs and secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        UserSpec("", "pw", PROFILE),
        UserSpec("x" * 65, "pw", PROFILE),
        UserSpec("Wanjirũ", "pw", PROFILE),
        UserSpec("bad\nname", "pw", PROFILE),
        UserSpec("OK", "pw\x00", PROFILE),
        UserSpec("OK", "p" * 65, PROFILE),
        UserSpec("OK", "pw", ""),
        UserSpec("OK", "pw", PROFILE, limit_uptime="an hour"),
        UserSpec("OK", "pw", PROFILE, limit_uptime=""),
        UserSpec("OK", "pw", PROFILE, limit_bytes_total=-1),
        UserSpec("OK", "pw", PROFILE, comment="caf\xe9"),
        UserSpec("OK", "pw", PROFILE, server="hs\t1"),
    ],
)
async def test_bad_user_specs_are_not_sent(sim: RouterSim, spec: UserSpec) -> None:
    with pytest.raises(ValueError):
        await client(sim).upsert_user(spec)
    assert sim.calls == []


@pytest.mark.parametrize(
    "spec",
    [
        ProfileSpec("x" * 65),
        ProfileSpec("p", rate_limit="fast"),
        ProfileSpec("p", rate_limit="2M/5M\n"),
        ProfileSpec("p", shared_users=0),
        ProfileSpec("p", session_timeout="soon"),
    ],
)
async def test_bad_profile_specs_are_not_sent(sim: RouterSim, spec: ProfileSpec) -> None:
    with pytest.raises(ValueError):
        await client(sim).ensure_profile(spec)
    assert sim.calls == []


async def test_bad_login_inputs_are_not_sent(sim: RouterSim) -> None:
    c = client(sim)
    with pytest.raises(ValueError, match="IPv4"):
        await c.login(user="K7", password="K7", ip="fe80::1", mac="AA:BB:CC:DD:EE:FF")
    with pytest.raises(ValueError, match="MAC"):
        await c.login(user="K7", password="K7", ip="10.5.50.9", mac="AABBCCDDEEFF")
    with pytest.raises(ValueError):
        await c.remove_user("")
    assert sim.calls == []


@pytest.mark.parametrize(
    "kw",
    [{"host": ""}, {"host": "a b"}, {"port": 0}, {"port": 70000}, {"timeout": 0}, {"password": "pässword"}],
)
def test_bad_addresses_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        RouterClient(RouterAddress(**{"host": "10.0.0.1", "password": API_PASSWORD, **kw}))
    assert "pässword" not in str(caught.value)


async def test_passwords_never_show(sim: RouterSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="librouteros")
    addr = address(sim, timeout=0.5)
    assert API_PASSWORD not in repr(addr)
    assert API_PASSWORD not in repr(RouterClient(addr))
    assert "VOUCHER-PW" not in repr(UserSpec("V", "VOUCHER-PW", PROFILE))

    errors: list[RouterError] = []
    c = RouterClient(addr)
    sim.trap_next("failure: simulated outage", command="/ip/hotspot/user/add", after=1)
    for attempt in (
        c.upsert_user(UserSpec("V", "VOUCHER-PW", "no-such-profile")),
        c.upsert_user(UserSpec("V", "VOUCHER-PW", "default")),
        RouterClient(address(sim, password="Wrong-" + API_PASSWORD)).info(),
    ):
        with pytest.raises(RouterError) as caught:
            await attempt
        errors.append(caught.value)
    await sim.set_down(True, mode="hang")
    with pytest.raises(RouterError) as caught:
        await c.info()
    errors.append(caught.value)

    assert [type(e) for e in errors] == [RouterRefused, RouterRefused, RouterLoginFailed, RouterUnreachable]
    for error in errors:
        assert API_PASSWORD not in str(error) and API_PASSWORD not in repr(error)
        assert "VOUCHER-PW" not in str(error)
    # librouteros logs every word it sends at DEBUG.
    assert "=password=***" in caplog.text
    assert API_PASSWORD not in caplog.text and "VOUCHER-PW" not in caplog.text
