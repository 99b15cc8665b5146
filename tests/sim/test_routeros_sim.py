"""The RouterOS API simulator over real TCP, driven by the real librouteros client.

librouteros is synchronous, so its calls run in a worker thread (``asyncio.to_thread``) while the simulator
serves from the test's event loop. Byte-level checks (tags, ``!empty``, ``/cancel``) use a tiny raw client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
import librouteros
import pytest
from librouteros import protocol as lr_protocol
from librouteros.api import Api
from librouteros.exceptions import ConnectionClosed, FatalError, LibRouterosError, TrapError
from librouteros.login import token as token_login
from librouteros.query import And, Key, Or

from sim.routeros import RouterSim, create_control_app
from sim.routeros.protocol import (
    ProtocolError,
    decode_length,
    encode_length,
    encode_sentence,
    prefix_size,
    read_sentence,
)
from tests.support.servers import serving

T = TypeVar("T")
PASSWORD = "s3cret"
V6 = "6.49.10"
V7 = "7.18.2"
DUPLICATE = "failure: already have user with this name for this server"


# --- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture
async def router() -> AsyncIterator[RouterSim]:
    async with RouterSim(password=PASSWORD) as sim:
        yield sim


def connect(sim: RouterSim, *, password: str = PASSWORD, timeout: float = 3.0, **kw: Any) -> Api:
    return librouteros.connect("127.0.0.1", "admin", password, port=sim.port, timeout=timeout, **kw)


async def in_thread(sim: RouterSim, work: Callable[[Api], T], **kw: Any) -> T:
    """Log in, run ``work(api)`` in a worker thread, close."""

    def job() -> T:
        api = connect(sim, **kw)
        try:
            return work(api)
        finally:
            api.close()

    return await asyncio.to_thread(job)


class Raw:
    """A bare-bones API client for looking at the sentences themselves."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sim: RouterSim, *, login: bool = True) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        raw = cls(reader, writer)
        if login:
            assert await raw.command("/login", "=name=admin", f"=password={PASSWORD}") == [["!done"]]
        return raw

    async def send(self, *words: str) -> None:
        self.writer.write(encode_sentence(words))
        await self.writer.drain()

    async def read(self) -> list[str]:
        return await asyncio.wait_for(read_sentence(self.reader), 3)

    async def command(self, *words: str) -> list[list[str]]:
        """Send one untagged command and collect sentences up to its ``!done``."""
        await self.send(*words)
        out = []
        while True:
            sentence = await self.read()
            out.append(sentence)
            if sentence[0] in ("!done", "!fatal"):
                return out

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# --- wire format -----------------------------------------------------------------------------------------

BOUNDARIES = [
    (0, 1),
    (0x7F, 1),
    (0x80, 2),
    (0x3FFF, 2),
    (0x4000, 3),
    (0x1FFFFF, 3),
    (0x200000, 4),
    (0xFFFFFFF, 4),
    (0x10000000, 5),
    (0xFFFFFFFF, 5),
]


@pytest.mark.parametrize(("length", "size"), BOUNDARIES)
def test_length_prefix_round_trips_at_every_boundary(length: int, size: int) -> None:
    prefix = encode_length(length)
    assert len(prefix) == size
    assert prefix_size(prefix[0]) == size
    assert decode_length(prefix) == length
    if size < 5:
        # librouteros speaks the 1-4 byte forms; both sides must agree on them byte for byte.
        assert prefix == lr_protocol.encode_length(length)
        assert lr_protocol.decode_length(prefix) == length
    else:
        assert prefix[0] == 0xF0


def test_length_prefix_examples_from_the_manual() -> None:
    assert encode_length(200) == bytes.fromhex("80C8")
    assert encode_length(20000) == bytes.fromhex("C04E20")
    assert encode_length(3_000_000) == bytes.fromhex("E02DC6C0")


@pytest.mark.parametrize("first", [0xF1, 0xF7, 0xF8, 0xFF])
def test_reserved_control_bytes_are_rejected(first: int) -> None:
    with pytest.raises(ProtocolError):
        prefix_size(first)


@pytest.mark.parametrize("length", [0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
async def test_words_round_trip_through_a_stream(length: int) -> None:
    reader = asyncio.StreamReader()
    words = ["/ip/hotspot/user/add", "=comment=" + "x" * (length - len("=comment=")), "=name=a"]
    reader.feed_data(encode_sentence(words) + encode_sentence([]))
    reader.feed_eof()
    assert await read_sentence(reader) == words
    assert len(words[1].encode()) == length
    assert await read_sentence(reader) == []


async def test_oversized_word_is_refused_before_it_is_buffered() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(encode_length(0x10000000))
    with pytest.raises(ProtocolError):
        await read_sentence(reader, max_word=1024)


async def test_reserved_control_byte_closes_the_connection(router: RouterSim) -> None:
    raw = await Raw.open(router)
    raw.writer.write(b"\xf8")
    await raw.writer.drain()
    assert await asyncio.wait_for(raw.reader.read(), 3) == b""
    await raw.close()


@pytest.mark.parametrize("size", [200, 20_000, 3_000_000])
async def test_large_words_travel_both_ways(router: RouterSim, size: int) -> None:
    comment = "c" * size

    def work(api: Api) -> Any:
        users = api.path("ip", "hotspot", "user")
        users.add(name="BIG", comment=comment)
        return tuple(users.select(Key("comment")))

    assert await in_thread(router, work) == ({"comment": comment},)


# --- login -----------------------------------------------------------------------------------------------


async def test_login_with_the_right_password(router: RouterSim) -> None:
    rows = await in_thread(router, lambda api: tuple(api("/system/identity/print")))
    assert rows == ({"name": "MikroTik"},)


@pytest.mark.parametrize(
    ("version", "message"), [(V7, "invalid user name or password (6)"), (V6, "cannot log in")]
)
async def test_wrong_password_is_a_trap(version: str, message: str) -> None:
    async with RouterSim(password=PASSWORD, version=version) as sim:
        with pytest.raises(TrapError) as caught:
            await asyncio.to_thread(connect, sim, password="nope")
        assert caught.value.message == message
        # The router stays usable for a client with the right password.
        assert await in_thread(sim, lambda api: tuple(api("/system/identity/print")))


async def test_wrong_password_reply_is_trap_then_done_and_the_connection_stays(router: RouterSim) -> None:
    raw = await Raw.open(router, login=False)
    assert await raw.command("/login", "=name=admin", "=password=nope") == [
        ["!trap", "=message=invalid user name or password (6)"],
        ["!done"],
    ]
    assert await raw.command("/login", "=name=admin", f"=password={PASSWORD}") == [["!done"]]
    await raw.close()


async def test_command_before_login_is_fatal(router: RouterSim) -> None:
    raw = await Raw.open(router, login=False)
    assert await raw.command("/system/resource/print") == [["!fatal", "not logged in"]]
    assert await asyncio.wait_for(raw.reader.read(), 3) == b""
    await raw.close()


async def test_credentials_can_change(router: RouterSim) -> None:
    router.set_credentials("billing", "pw2")
    with pytest.raises(TrapError):
        await asyncio.to_thread(connect, router)

    def job() -> Any:
        api = librouteros.connect("127.0.0.1", "billing", "pw2", port=router.port, timeout=3)
        with contextlib.closing(api):
            return tuple(api("/system/identity/print"))

    assert await asyncio.to_thread(job) == ({"name": "MikroTik"},)


async def test_pre_643_router_wants_the_challenge_login() -> None:
    async with RouterSim(password=PASSWORD, version="6.40.9") as sim:
        rows = await in_thread(
            sim, lambda api: tuple(api("/system/identity/print")), login_method=token_login
        )
        assert rows == ({"name": "MikroTik"},)
        # A plain login "succeeds" (the old router just hands out a challenge) but nothing runs after it.
        with pytest.raises(FatalError, match="not logged in"):
            await in_thread(sim, lambda api: tuple(api("/system/identity/print")))


async def test_challenge_response_by_hand() -> None:
    async with RouterSim(password=PASSWORD, version="6.40.9") as sim:
        raw = await Raw.open(sim, login=False)
        [[done, ret]] = await raw.command("/login")
        assert done == "!done" and ret.startswith("=ret=")
        challenge = bytes.fromhex(ret[len("=ret=") :])
        response = "00" + hashlib.md5(b"\x00" + PASSWORD.encode() + challenge).hexdigest()
        assert await raw.command("/login", "=name=admin", f"=response={response}") == [["!done"]]
        await raw.close()


async def test_quit_is_fatal(router: RouterSim) -> None:
    def work(api: Api) -> None:
        tuple(api("/quit"))

    with pytest.raises(FatalError, match="session terminated on request"):
        await in_thread(router, work)


# --- hotspot users and profiles --------------------------------------------------------------------------


async def test_hotspot_user_add_print_update_remove(router: RouterSim) -> None:
    def work(api: Api) -> dict[str, Any]:
        users = api.path("ip", "hotspot", "user")
        new_id = users.add(
            name="K7QM2XHP",
            password="K7QM2XHP",
            **{"limit-uptime": "01:00:00", "limit-bytes-total": 1_000_000_000, "comment": "pay:QGH123"},
        )
        first = tuple(users)
        users.update(**{".id": new_id, "comment": "pay:QGH124", "disabled": True})
        second = tuple(users)
        users.remove(new_id)
        return {"id": new_id, "first": first, "second": second, "after": tuple(users)}

    out = await in_thread(router, work)
    assert out["id"] == "*1"
    [row] = out["first"]
    assert row[".id"] == "*1"
    assert row["name"] == "K7QM2XHP"
    assert row["password"] == "K7QM2XHP"
    assert row["profile"] == "default"
    assert row["limit-uptime"] == "1h"  # normalised the way RouterOS prints durations
    assert row["limit-bytes-total"] == 1_000_000_000
    assert row["uptime"] == "0s"
    assert row["disabled"] is False
    assert row["comment"] == "pay:QGH123"
    [row] = out["second"]
    assert row["comment"] == "pay:QGH124"
    assert row["disabled"] is True
    assert out["after"] == ()
    assert router.users() == []


async def test_ids_are_hex_and_keep_counting_up(router: RouterSim) -> None:
    def work(api: Api) -> list[str]:
        users = api.path("ip", "hotspot", "user")
        ids = [users.add(name=f"u{n}") for n in range(27)]
        users.remove(ids[-1])
        ids.append(users.add(name="again"))
        return ids

    ids = await in_thread(router, work)
    assert ids[9] == "*A"
    assert ids[25] == "*1A"
    assert ids[-1] == "*1C"  # a removed id is not reused


async def test_duplicate_user_name_is_a_trap(router: RouterSim) -> None:
    def work(api: Api) -> None:
        users = api.path("ip", "hotspot", "user")
        users.add(name="K7QM2XHP", password="x")
        users.add(name="K7QM2XHP", password="y")

    with pytest.raises(TrapError) as caught:
        await in_thread(router, work)
    assert caught.value.message == DUPLICATE
    assert caught.value.category is None
    assert [u["password"] for u in router.users()] == ["x"]


async def test_renaming_onto_an_existing_user_is_a_trap(router: RouterSim) -> None:
    def work(api: Api) -> None:
        users = api.path("ip", "hotspot", "user")
        users.add(name="A")
        b = users.add(name="B")
        users.update(**{".id": b, "name": "A"})

    with pytest.raises(TrapError, match="already have user"):
        await in_thread(router, work)


async def test_user_profile_add_print_update_remove(router: RouterSim) -> None:
    def work(api: Api) -> dict[str, Any]:
        profiles = api.path("ip", "hotspot", "user", "profile")
        pid = profiles.add(
            name="1H-5M", **{"rate-limit": "2M/5M", "shared-users": 1, "session-timeout": "1h"}
        )
        users = api.path("ip", "hotspot", "user")
        users.add(name="V1", profile="1H-5M")
        before = tuple(profiles.select(Key("name"), Key("rate-limit"), Key("shared-users"), Key("default")))
        profiles.update(**{".id": pid, "rate-limit": "4M/10M", "name": "1H-10M"})
        after = tuple(profiles.select(Key(".id"), Key("name"), Key("rate-limit"), Key("session-timeout")))
        user_profile = tuple(users.select(Key("profile")))
        profiles.remove(pid)
        return {"id": pid, "before": before, "after": after, "user": user_profile, "left": tuple(profiles)}

    out = await in_thread(router, work)
    assert out["id"] == "*1"
    assert out["before"] == (
        {"name": "default", "shared-users": 1, "default": True},
        {"name": "1H-5M", "rate-limit": "2M/5M", "shared-users": 1, "default": False},
    )
    assert out["after"][1] == {".id": "*1", "name": "1H-10M", "rate-limit": "4M/10M", "session-timeout": "1h"}
    # Users point at profiles, not at their names: a rename follows through.
    assert out["user"] == ({"profile": "1H-10M"},)
    assert [p["name"] for p in out["left"]] == ["default"]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("nope", "input does not match any value of profile"),
        ("p-1", "ambiguous value of profile, more than one possible value matches input"),
    ],
)
async def test_user_profile_must_exist(router: RouterSim, profile: str, message: str) -> None:
    def work(api: Api) -> None:
        profiles = api.path("ip", "hotspot", "user", "profile")
        profiles.add(name="p-1h")
        profiles.add(name="p-1d")
        api.path("ip", "hotspot", "user").add(name="V", profile=profile)

    with pytest.raises(TrapError) as caught:
        await in_thread(router, work)
    assert caught.value.message == message


async def test_unique_profile_prefix_is_accepted_like_on_a_router(router: RouterSim) -> None:
    def work(api: Api) -> Any:
        api.path("ip", "hotspot", "user", "profile").add(name="expired")
        users = api.path("ip", "hotspot", "user")
        users.add(name="V", profile="exp")
        return tuple(users.select(Key("profile")))

    assert await in_thread(router, work) == ({"profile": "expired"},)


async def test_remove_missing_id_is_no_such_item(router: RouterSim) -> None:
    with pytest.raises(TrapError) as caught:
        await in_thread(router, lambda api: api.path("ip", "hotspot", "user").remove("*99"))
    assert caught.value.message == "no such item"


async def test_remove_several_ids_at_once(router: RouterSim) -> None:
    def work(api: Api) -> Any:
        users = api.path("ip", "hotspot", "user")
        ids = [users.add(name=n) for n in ("a", "b", "c")]
        users.remove(ids[0], ids[2])
        return tuple(users.select(Key("name")))

    assert await in_thread(router, work) == ({"name": "b"},)


async def test_unknown_parameter_and_commands(router: RouterSim) -> None:
    def trap(call: Callable[[Api], Any]) -> tuple[str, int | None]:
        try:
            with contextlib.closing(connect(router)) as api:
                call(api)
        except TrapError as exc:
            return exc.message, exc.category
        raise AssertionError("no trap")

    def checks() -> list[tuple[str, int | None]]:
        users = ("ip", "hotspot", "user")
        return [
            trap(lambda api: api.path(*users).add(name="x", colour="red")),
            trap(lambda api: tuple(api("/ip/frobnicate/print"))),
            trap(lambda api: tuple(api("/ip/hotspot/user/frobnicate"))),
            trap(lambda api: api.path(*users).add(name="y", **{"limit-uptime": "soon"})),
            trap(lambda api: api.path(*users).add(name="z", disabled="maybe")),
        ]

    results = await asyncio.to_thread(checks)
    assert results[0] == ("unknown parameter colour", None)
    assert results[1] == ("no such command prefix", 0)
    assert results[2] == ("no such command", 0)
    assert "limit-uptime" in results[3][0]
    assert "disabled" in results[4][0]
    assert router.users() == []


async def test_disable_enable_unset_and_count_only(router: RouterSim) -> None:
    def work(api: Api) -> dict[str, Any]:
        users = api.path("ip", "hotspot", "user")
        uid = users.add(name="V", **{"limit-uptime": "30m"})
        tuple(users("disable", **{".id": uid}))
        disabled = tuple(users.select(Key("disabled")))
        tuple(users("enable", numbers="V"))
        tuple(users("unset", **{".id": uid, "value-name": "limit-uptime"}))
        [row] = tuple(users)
        count = tuple(users("print", **{"count-only": ""}))
        return {"disabled": disabled, "row": row, "count": count}

    out = await in_thread(router, work)
    assert out["disabled"] == ({"disabled": True},)
    assert out["row"]["disabled"] is False
    assert "limit-uptime" not in out["row"]
    assert out["count"] == ({"ret": 1},)


# --- print: queries, proplist, !empty --------------------------------------------------------------------


async def test_where_queries(router: RouterSim) -> None:
    def work(api: Api) -> dict[str, list[str]]:
        users = api.path("ip", "hotspot", "user")
        users.add(name="A1", profile="default", comment="pay:1", **{"limit-bytes-total": 100})
        users.add(name="B2", comment="pay:2", disabled=True, **{"limit-bytes-total": 200})
        users.add(name="C3", **{"limit-bytes-total": 300})
        name = Key("name")
        comment = Key("comment")
        limit = Key("limit-bytes-total")

        def names(*where: Any) -> list[str]:
            return [str(r["name"]) for r in users.select(name).where(*where)]

        return {
            "eq": names(name == "B2"),
            "ne": names(name != "B2"),
            "in": names(name.In("A1", "C3")),
            "and": names(And(comment == "pay:2", Key("disabled") == True)),  # noqa: E712
            "or": names(Or(name == "A1", name == "C3")),
            "many": names(limit > 100, limit < 300),
            "bool": names(Key("disabled") == False),  # noqa: E712
            "none": names(name == "ZZ"),
            "has": [str(r["name"]) for r in api.rawCmd("/ip/hotspot/user/print", "?comment")],
            "lacks": [str(r["name"]) for r in api.rawCmd("/ip/hotspot/user/print", "?-comment")],
            "plain": [str(r["name"]) for r in api.rawCmd("/ip/hotspot/user/print", "?name=C3")],
            "not-or": [
                str(r["name"]) for r in api.rawCmd("/ip/hotspot/user/print", "?name=A1", "?name=B2", "?#|!")
            ],
        }

    out = await in_thread(router, work)
    assert out == {
        "eq": ["B2"],
        "ne": ["A1", "C3"],
        "in": ["A1", "C3"],
        "and": ["B2"],
        "or": ["A1", "C3"],
        "many": ["B2"],
        "bool": ["A1", "C3"],
        "none": [],
        "has": ["A1", "B2"],
        "lacks": ["C3"],
        "plain": ["C3"],
        "not-or": ["C3"],
    }


async def test_proplist_limits_the_properties(router: RouterSim) -> None:
    def work(api: Api) -> Any:
        users = api.path("ip", "hotspot", "user")
        users.add(name="123456", password="p")
        return tuple(users.select(Key(".id"), Key("name"), Key("no-such-prop")))

    # librouteros turns a numeric-looking name into an int: compare voucher names as str(row["name"]).
    assert await in_thread(router, work) == ({".id": "*1", "name": 123456},)


@pytest.mark.parametrize(("version", "empty"), [(V7, True), (V6, False)])
async def test_empty_print_says_empty_on_718_only(version: str, empty: bool) -> None:
    async with RouterSim(password=PASSWORD, version=version) as sim:
        raw = await Raw.open(sim)
        expected = [["!empty"], ["!done"]] if empty else [["!done"]]
        assert await raw.command("/ip/hotspot/user/print") == expected
        assert await raw.command("/ip/hotspot/user/print", "?name=nobody") == expected
        await raw.close()
        # librouteros ignores !empty either way.
        assert await in_thread(sim, lambda api: tuple(api.path("ip", "hotspot", "active"))) == ()


async def test_flags_print_in_the_versions_style() -> None:
    for version, flag in ((V7, "=disabled=false"), (V6, "=disabled=no")):
        async with RouterSim(password=PASSWORD, version=version) as sim:
            raw = await Raw.open(sim)
            await raw.command("/ip/hotspot/user/add", "=name=V", "=disabled=no")
            [row, _done] = await raw.command("/ip/hotspot/user/print", "=.proplist=disabled")
            assert row == ["!re", flag]
            await raw.close()


# --- system ----------------------------------------------------------------------------------------------


async def test_system_resource_print(router: RouterSim) -> None:
    router.advance(3 * 86400 + 3600 + 61)
    [row] = await in_thread(router, lambda api: tuple(api("/system/resource/print")))
    assert row["version"] == "7.18.2 (stable)"
    assert row["board-name"] == "hAP ac^2"
    assert row["uptime"] == "3d1h1m1s"
    assert isinstance(row["cpu-load"], int)
    assert isinstance(row["free-memory"], int)
    assert row["free-memory"] < row["total-memory"]


async def test_version_knob_changes_resource_print(router: RouterSim) -> None:
    router.version = V6
    [row] = await in_thread(router, lambda api: tuple(api("/system/resource/print")))
    assert row["version"] == "6.49.10 (long-term)"


async def test_identity_and_hotspot_servers(router: RouterSim) -> None:
    def work(api: Api) -> Any:
        tuple(api("/system/identity/set", name="shop-1"))
        return tuple(api("/system/identity/print")), tuple(api.path("ip", "hotspot").select(Key("name")))

    identity, servers = await in_thread(router, work)
    assert identity == ({"name": "shop-1"},)
    assert servers == ({"name": "hotspot1"},)


async def test_system_reboot_drops_the_connection(router: RouterSim) -> None:
    def work(api: Api) -> None:
        assert tuple(api("/system/reboot")) == ()
        tuple(api("/system/identity/print"))

    with pytest.raises((LibRouterosError, ConnectionError)):
        await in_thread(router, work)
    assert await in_thread(router, lambda api: tuple(api("/system/identity/print")))


async def test_reboot_changes_ids_and_ends_sessions(router: RouterSim) -> None:
    def add(api: Api) -> str:
        return api.path("ip", "hotspot", "user").add(name="V")

    old = await in_thread(router, add)
    router.simulate_login("V")
    await router.reboot()
    assert router.active() == []
    [user] = router.users()
    assert user["name"] == "V" and user[".id"] != old


# --- hotspot sessions ------------------------------------------------------------------------------------


async def test_active_sessions_print_and_remove(router: RouterSim) -> None:
    def add(api: Api) -> None:
        api.path("ip", "hotspot", "user").add(name="K7QM", password="K7QM", **{"limit-uptime": "1h"})

    await in_thread(router, add)
    session = router.simulate_login("K7QM", address="10.5.50.23", mac_address="AA:BB:CC:DD:EE:FF")
    router.advance(600)

    def look(api: Api) -> Any:
        active = api.path("ip", "hotspot", "active")
        return tuple(
            active.select(Key(".id"), Key("user"), Key("address"), Key("mac-address"), Key("uptime"))
        )

    rows = await in_thread(router, look)
    assert rows == (
        {
            ".id": session[".id"],
            "user": "K7QM",
            "address": "10.5.50.23",
            "mac-address": "AA:BB:CC:DD:EE:FF",
            "uptime": "10m",
        },
    )
    assert router.active()[0]["session-time-left"] == "50m"

    def kick(api: Api) -> Any:
        active = api.path("ip", "hotspot", "active")
        for row in active.select(Key(".id")).where(Key("user") == "K7QM"):
            active.remove(row[".id"])
        return tuple(active)

    assert await in_thread(router, kick) == ()
    # The session's time is now on the user's counter; the host is no longer authorised.
    assert router.users()[0]["uptime"] == "10m"
    [host] = router.rows("/ip/hotspot/host")
    assert host["authorized"] == "false"


async def test_limit_uptime_ends_the_session_on_its_own(router: RouterSim) -> None:
    await in_thread(
        router, lambda api: api.path("ip", "hotspot", "user").add(name="V", **{"limit-uptime": "30m"})
    )
    router.simulate_login("V")
    router.advance(3600)
    assert router.active() == []
    assert router.users()[0]["uptime"] == "30m"
    with pytest.raises(Exception, match="reached uptime limit"):
        router.simulate_login("V")


async def test_limit_bytes_total_ends_the_session(router: RouterSim) -> None:
    await in_thread(
        router, lambda api: api.path("ip", "hotspot", "user").add(name="D", **{"limit-bytes-total": 1000})
    )
    session = router.simulate_login("D")
    router.add_traffic(session[".id"], bytes_in=400, bytes_out=700)
    assert router.active() == []
    assert router.users()[0]["bytes-out"] == "700"


async def test_shared_users_limits_sessions(router: RouterSim) -> None:
    await in_thread(router, lambda api: api.path("ip", "hotspot", "user").add(name="V"))
    router.simulate_login("V")
    with pytest.raises(Exception, match="no more sessions"):
        router.simulate_login("V")


async def test_active_login_command(router: RouterSim) -> None:
    def work(api: Api) -> Any:
        api.path("ip", "hotspot", "user").add(name="K7", password="pw")
        active = api.path("ip", "hotspot", "active")
        tuple(
            active("login", user="K7", password="pw", ip="10.5.50.9", **{"mac-address": "AA:AA:AA:AA:AA:01"})
        )
        return tuple(active.select(Key("user"), Key("address"), Key("login-by")))

    assert await in_thread(router, work) == ({"user": "K7", "address": "10.5.50.9", "login-by": "http-pap"},)
    assert router.rows("/ip/hotspot/cookie")[0]["user"] == "K7"


# --- knobs -----------------------------------------------------------------------------------------------


async def test_down_refuses_connections_then_comes_back(router: RouterSim) -> None:
    await router.set_down(True)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(connect, router)
    await router.set_down(False)
    assert await in_thread(router, lambda api: tuple(api("/system/identity/print")))


async def test_down_close_mode_hangs_up_at_once(router: RouterSim) -> None:
    await router.set_down(True, mode="close")
    with pytest.raises((LibRouterosError, ConnectionError)):
        await asyncio.to_thread(connect, router)


async def test_down_hang_mode_times_the_client_out(router: RouterSim) -> None:
    await router.set_down(True, mode="hang")
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(connect, router, timeout=0.3)


async def test_going_down_drops_open_connections(router: RouterSim) -> None:
    api = await asyncio.to_thread(connect, router)
    try:
        await router.set_down(True)
        with pytest.raises((LibRouterosError, ConnectionError)):
            await asyncio.to_thread(lambda: tuple(api("/system/identity/print")))
    finally:
        api.close()


async def test_down_from_the_start() -> None:
    async with RouterSim(password=PASSWORD, down=True) as sim:
        assert sim.port
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(connect, sim)


async def test_slow_router_times_the_client_out(router: RouterSim) -> None:
    router.slow = 0.3
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(connect, router, timeout=0.1)
    # A patient client gets there.
    assert await in_thread(router, lambda api: tuple(api("/system/identity/print")), timeout=3)


async def test_trap_next(router: RouterSim) -> None:
    router.trap_next("failure: simulated outage", command="/ip/hotspot/user/add", category=4, count=2)

    def work(api: Api) -> list[Any]:
        users = api.path("ip", "hotspot", "user")
        out: list[Any] = [tuple(users)]  # other commands are untouched
        for name in ("a", "b", "c"):
            try:
                out.append(users.add(name=name))
            except TrapError as exc:
                out.append((exc.message, exc.category))
        return out

    assert await in_thread(router, work) == [
        (),
        ("failure: simulated outage", 4),
        ("failure: simulated outage", 4),
        "*1",
    ]
    assert router.faults == []


async def test_trap_on_the_nth_add(router: RouterSim) -> None:
    router.trap_next("failure: race", command="/ip/hotspot/user/add", after=2)

    def work(api: Api) -> list[str]:
        users = api.path("ip", "hotspot", "user")
        out = []
        for name in ("a", "b", "c", "d"):
            try:
                out.append(users.add(name=name))
            except TrapError as exc:
                out.append(exc.message)
        return out

    assert await in_thread(router, work) == ["*1", "*2", "failure: race", "*3"]


async def test_fatal_and_drop_faults(router: RouterSim) -> None:
    router.fatal_next("out of memory")
    with pytest.raises(FatalError, match="out of memory"):
        await in_thread(router, lambda api: tuple(api("/system/identity/print")))
    router.drop_next()
    with pytest.raises(ConnectionClosed):
        await in_thread(router, lambda api: tuple(api("/system/identity/print")))
    router.hang_next()
    with pytest.raises(TimeoutError):
        await in_thread(router, lambda api: tuple(api("/system/identity/print")), timeout=0.3)


async def test_calls_log_redacts_passwords(router: RouterSim) -> None:
    await in_thread(
        router, lambda api: api.path("ip", "hotspot", "user").add(name="V", password="VOUCHER-PW")
    )
    words = [c.words for c in router.calls]
    assert words == [
        ("/login", "=name=admin", "=password=***"),
        ("/ip/hotspot/user/add", "=name=V", "=password=***"),
    ]
    assert PASSWORD not in repr(router.calls) and "VOUCHER-PW" not in repr(router.calls)
    assert router.calls[1].attrs == {"name": "V", "password": "***"}


# --- tags, listen, cancel, async client, many routers ----------------------------------------------------


async def test_tags_are_echoed(router: RouterSim) -> None:
    raw = await Raw.open(router)
    await raw.send("/system/identity/print", ".tag=7")
    assert await raw.read() == ["!re", "=name=MikroTik", ".tag=7"]
    assert await raw.read() == ["!done", ".tag=7"]
    await raw.send("/ip/frob/print", ".tag=8")
    assert await raw.read() == ["!trap", "=message=no such command prefix", "=category=0", ".tag=8"]
    assert await raw.read() == ["!done", ".tag=8"]
    await raw.close()


async def test_listen_then_cancel(router: RouterSim) -> None:
    await in_thread(router, lambda api: api.path("ip", "hotspot", "user").add(name="V"))
    raw = await Raw.open(router)
    await raw.send("/ip/hotspot/active/listen", "=.proplist=user", ".tag=l")
    await asyncio.sleep(0.05)
    session = router.simulate_login("V")
    assert await raw.read() == ["!re", "=user=V", ".tag=l"]
    router.simulate_logout(user="V")
    assert await raw.read() == ["!re", f"=.id={session['.id']}", "=.dead=true", ".tag=l"]
    await raw.send("/cancel", "=tag=l", ".tag=c")
    assert await raw.read() == ["!trap", "=message=interrupted", "=category=2", ".tag=l"]
    assert await raw.read() == ["!done", ".tag=l"]
    assert await raw.read() == ["!done", ".tag=c"]
    await raw.close()


async def test_cancel_interrupts_a_slow_tagged_command(router: RouterSim) -> None:
    raw = await Raw.open(router)
    router.slow = 5
    await raw.send("/ip/hotspot/user/print", ".tag=slow")
    await asyncio.sleep(0.05)
    router.slow = 0
    await raw.send("/cancel", ".tag=c")
    assert await raw.read() == ["!trap", "=message=interrupted", "=category=2", ".tag=slow"]
    assert await raw.read() == ["!done", ".tag=slow"]
    assert await raw.read() == ["!done", ".tag=c"]
    await raw.close()


async def test_async_librouteros_client(router: RouterSim) -> None:
    api = await librouteros.async_connect("127.0.0.1", "admin", PASSWORD, port=router.port, timeout=3)
    try:
        users = api.path("ip", "hotspot", "user")
        new_id = await users.add(name="ASYNC", password="x")
        rows = [r async for r in users.select(Key("name")).where(Key(".id") == new_id)]
        assert rows == [{"name": "ASYNC"}]
        await users.remove(new_id)
        assert [r async for r in users] == []
    finally:
        await api.close()


async def test_many_routers_in_one_process() -> None:
    sims = [RouterSim(password=PASSWORD, identity=f"site-{n}") for n in range(8)]
    for sim in sims:
        await sim.start()
    try:
        assert len({sim.port for sim in sims}) == 8

        def name(api: Api) -> Any:
            [row] = tuple(api("/system/identity/print"))
            return row["name"]

        async def identity(sim: RouterSim) -> Any:
            return await in_thread(sim, name)

        assert await asyncio.gather(*(identity(sim) for sim in sims)) == [f"site-{n}" for n in range(8)]
    finally:
        for sim in sims:
            await sim.stop()


# --- HTTP control API ------------------------------------------------------------------------------------


async def test_http_control_api(router: RouterSim) -> None:
    async with serving(create_control_app(router), lifespan="on") as base:
        url = f"{base}/_sim/routers/{router.port}"
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
            listing = (await http.get(f"{base}/_sim/routers")).json()
            assert [r["port"] for r in listing] == [router.port]

            await in_thread(
                router, lambda api: api.path("ip", "hotspot", "user").add(name="V", password="pw")
            )
            r = await http.post(f"{url}/active", json={"user": "V", "address": "10.5.50.77"})
            assert r.status_code == 201, r.text
            assert r.json()["address"] == "10.5.50.77"
            r = await http.post(f"{url}/active", json={"user": "ghost"})
            assert r.status_code == 409
            state = (await http.get(f"{url}/state")).json()
            assert [u["name"] for u in state["/ip/hotspot/user"]] == ["V"]
            assert len(state["/ip/hotspot/active"]) == 1
            assert (await http.get(f"{url}/menus/ip/hotspot/active")).json()[0]["user"] == "V"
            assert (await http.delete(f"{url}/active", params={"user": "V"})).json() == {"ended": 1}

            calls = (await http.get(f"{url}/calls", params={"command": "/ip/hotspot/user/add"})).json()
            assert calls[0]["words"] == ["/ip/hotspot/user/add", "=name=V", "=password=***"]

            r = await http.post(
                f"{url}/faults", json={"message": "failure: busy", "command": "/system/identity/print"}
            )
            assert r.status_code == 201
            with pytest.raises(TrapError, match="failure: busy"):
                await in_thread(router, lambda api: tuple(api("/system/identity/print")))

            info = (await http.patch(url, json={"version": V6, "slow": 0})).json()
            assert info["version"] == V6 and info["empty_reply"] is False and info["bool_style"] == "yes"

            assert (await http.patch(url, json={"down": True})).json()["down"] is True
            with pytest.raises(ConnectionRefusedError):
                await asyncio.to_thread(connect, router)
            assert (await http.patch(url, json={"down": False})).json()["down"] is False

            await http.patch(url, json={"username": "billing", "password": "pw9"})
            with pytest.raises(TrapError):
                await asyncio.to_thread(connect, router)

            r = await http.post(f"{base}/_sim/routers", json={"identity": "spawned", "password": "p"})
            assert r.status_code == 201
            port = r.json()["port"]

            def spawned() -> Any:
                api = librouteros.connect("127.0.0.1", "admin", "p", port=port, timeout=3)
                with contextlib.closing(api):
                    return tuple(api("/system/identity/print"))

            assert await asyncio.to_thread(spawned) == ({"name": "spawned"},)
            assert (await http.delete(f"{base}/_sim/routers/{port}")).json() == {"stopped": True}
            assert (await http.get(f"{base}/_sim/routers/{port}")).status_code == 404
