"""One simulated router's configuration: menus as tables of items, the verbs on them, and print queries.

Values are kept as strings in a canonical form (booleans ``true``/``false``, durations ``1h30m``) and rendered
at print time in the version's style: RouterOS 7 prints ``true``/``false``, RouterOS 6 ``yes``/``no``.

Error strings come from refs §3.8 where it lists them (duplicate hotspot user, unknown profile, ambiguous
value, ``no such item``, ``no such command prefix``, ``no such command``, ``unknown parameter``); the others
(marked "not from refs" below) are plausible stand-ins, not quotes of a real router.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["str", "bool", "duration", "duration-none", "int", "int-unlimited"]
Row = dict[str, str]
Sentence = list[str]
Listener = Callable[[Row], None]

NO_SUCH_ITEM = "no such item"
NO_SUCH_PREFIX = "no such command prefix"
NO_SUCH_COMMAND = "no such command"
DUPLICATE_HOTSPOT_USER = "failure: already have user with this name for this server"
INTERRUPTED = "interrupted"

# Where simulated hotspot clients get their addresses from (refs §5.7 uses 10.5.48.0/22).
_CLIENT_NET = "10.5.50."


class RosTrap(Exception):
    """A command failed; the server answers ``!trap =message=... [=category=N]`` then ``!done``."""

    def __init__(self, message: str, category: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.category = category

    def sentence(self) -> Sentence:
        words = ["!trap", f"=message={self.message}"]
        if self.category is not None:
            words.append(f"=category={self.category}")
        return words


# --- values ----------------------------------------------------------------------------------------------

_DURATION_UNITS = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_CLOCK = re.compile(r"(?:(\d+)d\s*)?(\d+):(\d{1,2}):(\d{1,2})")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int | None:
    """Seconds in a RouterOS time value (``1h30m``, ``1d``, ``01:00:00``, ``1d 02:00:00``, bare seconds)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    clock = _CLOCK.fullmatch(text)
    if clock:
        days, hours, minutes, seconds = (int(g or 0) for g in clock.groups())
        return days * 86400 + hours * 3600 + minutes * 60 + seconds
    total = 0
    pos = 0
    for match in _DURATION_UNITS.finditer(text):
        if match.start() != pos:
            return None
        pos = match.end()
        unit = match.group(2)
        if unit != "ms":
            total += int(match.group(1)) * _UNIT_SECONDS[unit]
    return total if pos == len(text) and pos > 0 else None


def format_duration(seconds: float) -> str:
    """RouterOS API style: ``2d20h12m20s``, weeks as ``w``; zero is ``0s``."""
    rest = int(seconds)
    if rest <= 0:
        return "0s"
    out = []
    for unit, size in _UNIT_SECONDS.items():
        count, rest = divmod(rest, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def parse_version(version: str) -> tuple[int, ...]:
    """``"7.18.2 (stable)"`` → ``(7, 18, 2)``; ``"7.19beta2"`` → ``(7, 19)``."""
    head = version.split()[0] if version.split() else "0"
    parts = []
    for part in head.split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts) or (0,)


def format_id(number: int) -> str:
    return f"*{number:X}"


def parse_id(text: str) -> int | None:
    if not text.startswith("*"):
        return None
    try:
        return int(text[1:], 16)
    except ValueError:
        return None


_BOOL_IN = {"yes": "true", "true": "true", "no": "false", "false": "false"}


# --- menus -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prop:
    kind: Kind = "str"
    # Printed when the item has no value of its own; None leaves the property out of print.
    default: str | None = None
    # Values must name an item of this menu (by unique prefix, like RouterOS enums) or be in ``extra``.
    ref: str | None = None
    extra: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    writable: bool = True


@dataclass(frozen=True, slots=True)
class Menu:
    path: str
    props: Mapping[str, Prop]
    key: str | None = "name"
    verbs: frozenset[str] = frozenset({"print", "add", "set", "remove", "unset", "enable", "disable"})
    duplicate: str = "failure: item with such name already exists"  # not from refs
    singleton: bool = False


_LIST_VERBS = frozenset({"print", "add", "set", "remove", "unset", "enable", "disable", "listen"})
_READ_REMOVE = frozenset({"print", "remove", "listen"})


def _p(
    kind: Kind = "str",
    default: str | None = None,
    *,
    ref: str | None = None,
    extra: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
) -> Prop:
    return Prop(kind, default, ref=ref, extra=extra, choices=choices)


def _ro(kind: Kind = "str", default: str | None = None) -> Prop:
    return Prop(kind, default, writable=False)


USER = "/ip/hotspot/user"
USER_PROFILE = "/ip/hotspot/user/profile"
ACTIVE = "/ip/hotspot/active"
HOST = "/ip/hotspot/host"
COOKIE = "/ip/hotspot/cookie"
SERVER = "/ip/hotspot"
SERVER_PROFILE = "/ip/hotspot/profile"
RESOURCE = "/system/resource"
IDENTITY = "/system/identity"


def _menus() -> dict[str, Menu]:
    counters = {
        "uptime": _ro("duration", "0s"),
        "bytes-in": _ro("int", "0"),
        "bytes-out": _ro("int", "0"),
        "packets-in": _ro("int", "0"),
        "packets-out": _ro("int", "0"),
    }
    menus = [
        Menu(
            USER,
            {
                "server": _p(default="all", ref=SERVER, extra=("all",)),
                "name": _p(),
                "password": _p(),
                "profile": _p(default="default", ref=USER_PROFILE),
                "mac-address": _p(),
                "address": _p(),
                "email": _p(),
                "routes": _p(),
                "limit-uptime": _p("duration"),
                "limit-bytes-in": _p("int"),
                "limit-bytes-out": _p("int"),
                "limit-bytes-total": _p("int"),
                **counters,
                "dynamic": _ro("bool", "false"),
                "disabled": _p("bool", "false"),
                "comment": _p(),
            },
            verbs=_LIST_VERBS | {"reset-counters"},
            duplicate=DUPLICATE_HOTSPOT_USER,
        ),
        Menu(
            USER_PROFILE,
            {
                "name": _p(),
                "address-pool": _p(default="none"),
                "idle-timeout": _p("duration-none", "none"),
                "keepalive-timeout": _p("duration-none", "2m"),
                "status-autorefresh": _p("duration", "1m"),
                "shared-users": _p("int-unlimited", "1"),
                "rate-limit": _p(),
                "session-timeout": _p("duration"),
                "add-mac-cookie": _p("bool", "true"),
                "mac-cookie-timeout": _p("duration", "3d"),
                "address-list": _p(),
                "incoming-filter": _p(),
                "outgoing-filter": _p(),
                "incoming-packet-mark": _p(),
                "outgoing-packet-mark": _p(),
                "open-status-page": _p(default="always", choices=("always", "http-login")),
                "transparent-proxy": _p("bool", "false"),
                "parent-queue": _p(),
                "queue-type": _p(),
                "insert-queue-before": _p(),
                "on-login": _p(),
                "on-logout": _p(),
                "advertise": _p("bool", "false"),
                "default": _ro("bool", "false"),
                "comment": _p(),
            },
            duplicate="failure: profile with the same name already exists",  # not from refs
        ),
        Menu(
            ACTIVE,
            {
                "server": _ro(),
                "user": _ro(),
                "domain": _ro(),
                "address": _ro(),
                "mac-address": _ro(),
                "login-by": _ro(),
                "uptime": _ro("duration", "0s"),
                "session-time-left": _ro("duration"),
                "idle-time": _ro("duration", "0s"),
                "idle-timeout": _ro("duration-none"),
                "keepalive-timeout": _ro("duration-none"),
                "limit-bytes-total": _ro("int"),
                "bytes-in": _ro("int", "0"),
                "bytes-out": _ro("int", "0"),
                "packets-in": _ro("int", "0"),
                "packets-out": _ro("int", "0"),
                "radius": _ro("bool", "false"),
                "blocked": _ro("bool", "false"),
                "comment": _p(),
            },
            key=None,
            verbs=_READ_REMOVE | {"login"},
        ),
        Menu(
            HOST,
            {
                "mac-address": _ro(),
                "address": _ro(),
                "to-address": _ro(),
                "server": _ro(),
                "uptime": _ro("duration", "0s"),
                "idle-time": _ro("duration", "0s"),
                "bytes-in": _ro("int", "0"),
                "bytes-out": _ro("int", "0"),
                "authorized": _ro("bool", "false"),
                "bypassed": _ro("bool", "false"),
                "dynamic": _ro("bool", "true"),
                "comment": _p(),
            },
            key=None,
            verbs=_READ_REMOVE,
        ),
        Menu(
            COOKIE,
            {
                "user": _ro(),
                "domain": _ro(),
                "mac-address": _ro(),
                "expires-in": _ro("duration"),
            },
            key=None,
            verbs=_READ_REMOVE,
        ),
        Menu(
            SERVER,
            {
                "name": _p(),
                "interface": _p(default="bridge"),
                "address-pool": _p(default="none"),
                "profile": _p(default="default", ref=SERVER_PROFILE),
                "idle-timeout": _p("duration-none", "5m"),
                "keepalive-timeout": _p("duration-none", "none"),
                "login-timeout": _p("duration-none", "none"),
                "addresses-per-mac": _p("int-unlimited", "2"),
                "HTTPS": _ro("bool", "false"),
                "invalid": _ro("bool", "false"),
                "disabled": _p("bool", "false"),
                "comment": _p(),
            },
            duplicate="failure: server with the same name already exists",  # not from refs
        ),
        Menu(
            SERVER_PROFILE,
            {
                "name": _p(),
                "hotspot-address": _p(),
                "dns-name": _p(),
                "html-directory": _p(default="hotspot"),
                "html-directory-override": _p(),
                "rate-limit": _p(),
                "http-proxy": _p(default="0.0.0.0:0"),
                "smtp-server": _p(default="0.0.0.0"),  # noqa: S104 - a printed default, nothing binds
                "login-by": _p(default="cookie,http-chap"),
                "http-cookie-lifetime": _p("duration", "3d"),
                "split-user-domain": _p("bool", "false"),
                "ssl-certificate": _p(default="none"),
                "trial-uptime-limit": _p("duration", "30m"),
                "trial-uptime-reset": _p("duration", "1d"),
                "trial-user-profile": _p(default="default"),
                "use-radius": _p("bool", "false"),
                "default": _ro("bool", "false"),
                "comment": _p(),
            },
            duplicate="failure: profile with the same name already exists",  # not from refs
        ),
        Menu(
            "/ip/hotspot/walled-garden",
            {
                "action": _p(default="allow", choices=("allow", "deny")),
                "dst-host": _p(),
                "dst-port": _p(),
                "dst-address": _p(),
                "path": _p(),
                "method": _p(),
                "server": _p(),
                "src-address": _p(),
                "hits": _ro("int", "0"),
                "dynamic": _ro("bool", "false"),
                "disabled": _p("bool", "false"),
                "comment": _p(),
            },
            key=None,
            verbs=_LIST_VERBS,
        ),
        Menu(
            "/ip/hotspot/walled-garden/ip",
            {
                "action": _p(default="accept", choices=("accept", "drop", "reject")),
                "dst-host": _p(),
                "dst-address": _p(),
                "dst-address-list": _p(),
                "dst-port": _p(),
                "protocol": _p(),
                "server": _p(),
                "src-address": _p(),
                "src-address-list": _p(),
                "dynamic": _ro("bool", "false"),
                "invalid": _ro("bool", "false"),
                "disabled": _p("bool", "false"),
                "comment": _p(),
            },
            key=None,
            verbs=_LIST_VERBS,
        ),
        Menu(
            "/ip/hotspot/ip-binding",
            {
                "mac-address": _p(),
                "address": _p(),
                "to-address": _p(),
                "server": _p(default="all"),
                "type": _p(default="regular", choices=("regular", "bypassed", "blocked")),
                "disabled": _p("bool", "false"),
                "comment": _p(),
            },
            key=None,
            verbs=_LIST_VERBS,
        ),
        Menu(
            "/ppp/secret",
            {
                "name": _p(),
                "password": _p(),
                "service": _p(default="any"),
                "caller-id": _p(),
                "profile": _p(default="default", ref="/ppp/profile"),
                "local-address": _p(),
                "remote-address": _p(),
                "routes": _p(),
                "limit-bytes-in": _p("int", "0"),
                "limit-bytes-out": _p("int", "0"),
                "last-logged-out": _ro(),
                "disabled": _p("bool", "false"),
                "comment": _p(),
            },
            duplicate="failure: secret with the same name already exists",  # not from refs
        ),
        Menu(
            "/ppp/profile",
            {
                "name": _p(),
                "local-address": _p(),
                "remote-address": _p(),
                "rate-limit": _p(),
                "only-one": _p(default="default"),
                "session-timeout": _p("duration"),
                "idle-timeout": _p("duration"),
                "dns-server": _p(),
                "parent-queue": _p(),
                "address-list": _p(),
                "on-up": _p(),
                "on-down": _p(),
                "use-encryption": _p(default="default"),
                "default": _ro("bool", "false"),
                "comment": _p(),
            },
            duplicate="failure: profile with the same name already exists",  # not from refs
        ),
        Menu(
            "/ppp/active",
            {
                "name": _ro(),
                "service": _ro(),
                "caller-id": _ro(),
                "address": _ro(),
                "uptime": _ro("duration", "0s"),
                "encoding": _ro(),
                "session-id": _ro(),
                "limit-bytes-in": _ro("int", "0"),
                "limit-bytes-out": _ro("int", "0"),
                "radius": _ro("bool", "false"),
                "comment": _p(),
            },
            key=None,
            verbs=_READ_REMOVE,
        ),
        Menu(RESOURCE, {}, key=None, verbs=frozenset({"print"}), singleton=True),
        Menu(IDENTITY, {"name": _p()}, key=None, verbs=frozenset({"print", "set"}), singleton=True),
    ]
    return {m.path: m for m in menus}


MENUS: Mapping[str, Menu] = _menus()
_BUILTIN_VERBS = {"getall": "print"}
_SYSTEM_COMMANDS = frozenset({"/login", "/cancel", "/quit", "/system/reboot"})


@dataclass(slots=True)
class Item:
    id: int
    values: Row
    builtin: bool = False
    # Live counters of an active session: login clock, uptime/bytes it started with.
    meta: dict[str, float] = field(default_factory=dict)


class Table:
    def __init__(self, menu: Menu) -> None:
        self.menu = menu
        self.items: dict[int, Item] = {}
        self.next_id = 1

    def insert(self, values: Row, *, item_id: int | None = None, builtin: bool = False) -> Item:
        if item_id is None:
            item_id = self.next_id
            self.next_id += 1
        item = self.items[item_id] = Item(item_id, values, builtin)
        return item

    def ordered(self) -> list[Item]:
        return [self.items[k] for k in sorted(self.items)]

    def named(self, name: str) -> Item | None:
        key = self.menu.key
        if key is None:
            return None
        return next((i for i in self.ordered() if i.values.get(key) == name), None)

    def renumber(self) -> None:
        """New ids for every non-built-in item, as after a reboot (refs §3.4: ids "change on reboot")."""
        items = self.ordered()
        self.items = {}
        for item in items:
            if not item.builtin:
                item.id = self.next_id
                self.next_id += 1
            self.items[item.id] = item


# --- queries ---------------------------------------------------------------------------------------------


def _compare(left: str, right: str) -> int:
    for parse in (_as_int, parse_duration):
        a, b = parse(left), parse(right)
        if a is not None and b is not None:
            return (a > b) - (a < b)
    return (left > right) - (left < right)


def _as_int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def matches(row: Row, queries: Sequence[str], equal: Callable[[str, str, str], bool]) -> bool:
    """Evaluate print query words on ``row`` with RouterOS's stack machine (refs §3.7).

    The stack starts as infinitely many trues; the row matches when no false is left. ``?#`` digits index
    the stack from the top (0 = top); that detail is not in refs and not checked against a router.
    """
    stack: list[bool] = []

    def pop() -> bool:
        return stack.pop() if stack else True

    for word in queries:
        body = word[1:]
        if body.startswith("#"):
            _operations(stack, body[1:], pop)
            continue
        if body.startswith("-"):
            stack.append(body[1:] not in row)
            continue
        op = body[0] if body[:1] in ("=", "<", ">") else None
        if op is not None:
            body = body[1:]
        name, sep, value = body.partition("=")
        if not sep:
            if op is not None or not name:
                raise RosTrap(f"invalid query word {word}")  # not from refs
            stack.append(name in row)
            continue
        have = row.get(name)
        if have is None:
            stack.append(False)
        elif op in (None, "="):
            stack.append(equal(name, have, value))
        elif op == "<":
            stack.append(_compare(have, value) < 0)
        else:
            stack.append(_compare(have, value) > 0)
    return all(stack)


def _operations(stack: list[bool], ops: str, pop: Callable[[], bool]) -> None:
    i = 0
    while i < len(ops):
        ch = ops[i]
        if ch.isdigit():
            j = i
            while j < len(ops) and ops[j].isdigit():
                j += 1
            index = int(ops[i:j])
            value = stack[-1 - index] if index < len(stack) else True
            if j == len(ops):
                stack[:] = [value]
            else:
                stack.append(value)
            i = j
            continue
        if ch == "!":
            stack.append(not pop())
        elif ch == "&":
            b, a = pop(), pop()
            stack.append(a and b)
        elif ch == "|":
            b, a = pop(), pop()
            stack.append(a or b)
        elif ch == ".":
            top = pop()
            stack.extend((top, top))
        else:
            raise RosTrap(f"invalid query operation {ch}")  # not from refs
        i += 1


# --- the router ------------------------------------------------------------------------------------------


class RouterState:
    """Menus, items and the verbs on them for one router. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        *,
        version: str = "7.18.2",
        identity: str = "MikroTik",
        board_name: str = "hAP ac^2",
        hotspot_servers: Iterable[str] = ("hotspot1",),
        bool_style: Literal["true", "yes"] | None = None,
        empty_reply: bool | None = None,
        strict: bool = True,
        cpu_load: int = 3,
    ) -> None:
        self.version = version
        self.identity = identity
        self.board_name = board_name
        self.bool_style_override = bool_style
        self.empty_reply_override = empty_reply
        self.strict = strict
        self.cpu_load = cpu_load
        self._server_names = tuple(hotspot_servers)
        self._offset = 0.0
        self._listeners: dict[str, list[Listener]] = {}
        self.reset()

    # --- version-dependent behaviour

    @property
    def version(self) -> str:
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        self._version = value.split()[0] if value.split() else value
        self.version_tuple = parse_version(self._version)

    @property
    def bool_true(self) -> str:
        style = self.bool_style_override or ("true" if self.version_tuple >= (7,) else "yes")
        return style

    @property
    def empty_reply(self) -> bool:
        """Whether an empty print answers ``!empty`` before ``!done`` (RouterOS ≥ 7.18, refs §3.4)."""
        if self.empty_reply_override is not None:
            return self.empty_reply_override
        return self.version_tuple >= (7, 18)

    @property
    def login_failure(self) -> str:
        return "invalid user name or password (6)" if self.version_tuple >= (7,) else "cannot log in"

    @property
    def plain_login(self) -> bool:
        """``/login =name= =password=`` works from 6.43 on (refs §3.5)."""
        return self.version_tuple >= (6, 43)

    @property
    def challenge_login(self) -> bool:
        """The MD5 challenge login stopped working in 6.45.1 (refs §3.5)."""
        return self.version_tuple < (6, 45, 1)

    # --- lifecycle

    def now(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the router's clock forward: sessions age, limits and session timeouts are enforced."""
        self._offset += seconds
        self.expire()

    def reset(self) -> None:
        self.tables: dict[str, Table] = {path: Table(menu) for path, menu in MENUS.items()}
        self.booted = self.now()
        self._addresses = 0
        self.tables[USER_PROFILE].insert({"name": "default", "default": "true"}, item_id=0, builtin=True)
        self.tables[SERVER_PROFILE].insert({"name": "default", "default": "true"}, item_id=0, builtin=True)
        self.tables["/ppp/profile"].insert({"name": "default", "default": "true"}, item_id=0, builtin=True)
        self.tables["/ppp/profile"].insert(
            {"name": "default-encryption", "use-encryption": "yes", "default": "true"},
            item_id=0xFFFFFFFE,
            builtin=True,
        )
        servers = self.tables[SERVER]
        for n, name in enumerate(self._server_names, start=1):
            servers.insert({"name": name, "interface": f"bridge-hs{n}", "address-pool": f"hs-pool-{n}"})

    def reboot(self) -> None:
        """Sessions, hosts and cookies are gone, uptime restarts and every id changes."""
        self.expire()
        for path in (ACTIVE, HOST, COOKIE, "/ppp/active"):
            for item in list(self.tables[path].items.values()):
                self._remove_item(self.tables[path], item)
        for table in self.tables.values():
            table.renumber()
        self.booted = self.now()

    # --- listeners (``listen``)

    def subscribe(self, path: str, listener: Listener) -> Callable[[], None]:
        self._listeners.setdefault(path, []).append(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(path, [])
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    def _notify(self, table: Table, item: Item, *, dead: bool = False) -> None:
        listeners = self._listeners.get(table.menu.path)
        if not listeners:
            return
        row = {".id": format_id(item.id), ".dead": self.bool_true} if dead else self.render(table, item)
        for listener in list(listeners):
            listener(row)

    # --- rendering

    def _bool(self, value: str) -> str:
        if value == "true":
            return self.bool_true
        if value == "false":
            return "false" if self.bool_true == "true" else "no"
        return value

    def render(self, table: Table, item: Item) -> Row:
        row: Row = {".id": format_id(item.id)}
        values = {**item.values, **self._computed(table, item)}
        for name, prop in table.menu.props.items():
            value = values.get(name, prop.default)
            if value is None:
                continue
            row[name] = self._bool(value) if prop.kind == "bool" else value
        return row

    def rows(self, path: str) -> list[Row]:
        """Every item of a menu as print would show it (no proplist, no query)."""
        path = "/" + path.strip("/")
        if path == RESOURCE:
            return [self._resource()]
        if path == IDENTITY:
            return [{"name": self.identity}]
        table = self.tables.get(path)
        if table is None:
            raise KeyError(path)
        self.expire()
        return [self.render(table, item) for item in table.ordered()]

    def snapshot(self) -> dict[str, list[Row]]:
        return {path: self.rows(path) for path in MENUS}

    def _resource(self) -> Row:
        channel = "stable" if self.version_tuple >= (7,) else "long-term"
        return {
            "uptime": format_duration(self.now() - self.booted),
            "version": f"{self.version} ({channel})",
            "build-time": "2025-03-11 11:59:04",
            "factory-software": "6.44.6",
            "free-memory": "92274688",
            "total-memory": "134217728",
            "cpu": "ARMv7",
            "cpu-count": "4",
            "cpu-frequency": "716",
            "cpu-load": str(self.cpu_load),
            "free-hdd-space": "1638400",
            "total-hdd-space": "16777216",
            "write-sect-since-reboot": "512",
            "write-sect-total": "96400",
            "bad-blocks": "0",
            "architecture-name": "arm",
            "board-name": self.board_name,
            "platform": "MikroTik",
        }

    def _computed(self, table: Table, item: Item) -> Row:
        path = table.menu.path
        if path == ACTIVE:
            return self._session_counters(item)
        if path == USER:
            live = self._sessions_of(item)
            return {
                "uptime": format_duration(self._user_uptime(item, live)),
                "bytes-in": str(self._user_counter(item, live, "bytes-in")),
                "bytes-out": str(self._user_counter(item, live, "bytes-out")),
                "packets-in": str(int(item.meta.get("packets-in", 0))),
                "packets-out": str(int(item.meta.get("packets-out", 0))),
            }
        if path == HOST:
            return {"uptime": format_duration(self.now() - item.meta.get("since", self.now()))}
        return {}

    def _user_counter(self, user: Item, live: Iterable[Item], counter: str) -> int:
        return int(user.meta.get(counter, 0)) + sum(self._live(a, counter) for a in live)

    def _sessions_of(self, user: Item) -> list[Item]:
        name = user.values.get("name")
        return [a for a in self.tables[ACTIVE].ordered() if a.values.get("user") == name]

    def _live(self, session: Item, counter: str) -> int:
        if counter == "uptime":
            return int(session.meta.get("uptime0", 0) + self.now() - session.meta.get("start", self.now()))
        return int(session.meta.get(counter, 0))

    def _user_uptime(self, user: Item, live: Iterable[Item]) -> int:
        return int(user.meta.get("uptime", 0)) + sum(self._live(a, "uptime") for a in live)

    def _session_counters(self, session: Item) -> Row:
        out = {
            "uptime": format_duration(self._live(session, "uptime")),
            "bytes-in": str(self._live(session, "bytes-in")),
            "bytes-out": str(self._live(session, "bytes-out")),
            "packets-in": str(self._live(session, "bytes-in") // 1000),
            "packets-out": str(self._live(session, "bytes-out") // 1000),
        }
        user = self.tables[USER].named(session.values.get("user", ""))
        if user is not None:
            left = self._time_left(user, session)
            if left is not None:
                out["session-time-left"] = format_duration(left)
        return out

    def _time_left(self, user: Item, session: Item) -> int | None:
        """Seconds until limit-uptime or the profile's session-timeout ends this session, if either is set."""
        lefts = []
        limit = parse_duration(user.values.get("limit-uptime", "0")) or 0
        if limit:
            live = self._sessions_of(user)
            lefts.append(limit - self._user_uptime(user, live))
        profile = self.tables[USER_PROFILE].named(user.values.get("profile", "default"))
        timeout = parse_duration(profile.values.get("session-timeout", "0")) if profile else None
        if timeout:
            lefts.append(timeout - self._live(session, "uptime"))
        return max(0, min(lefts)) if lefts else None

    # --- commands

    def execute(self, path: str, attrs: Mapping[str, str], queries: Sequence[str]) -> list[Sentence]:
        """Run one command; returns its reply sentences (the last is ``!done``). Raises :class:`RosTrap`."""
        menu_path, _, verb = path.rpartition("/")
        verb = _BUILTIN_VERBS.get(verb, verb)
        menu = MENUS.get(menu_path)
        if menu is None:
            if path in MENUS or any(m.startswith(path + "/") for m in MENUS) or path in _SYSTEM_COMMANDS:
                raise RosTrap(NO_SUCH_COMMAND, 0)
            raise RosTrap(NO_SUCH_PREFIX, 0)
        if verb not in menu.verbs or verb == "listen":
            raise RosTrap(NO_SUCH_COMMAND, 0)
        self.expire()
        if verb == "print":
            return self._print(menu, attrs, queries)
        if menu.path == IDENTITY:
            return self._set_identity(attrs)
        table = self.tables[menu.path]
        if verb == "add":
            item = self.add(table, attrs)
            return [["!done", f"=ret={format_id(item.id)}"]]
        if verb == "login":
            self._api_login(attrs)
        elif verb == "reset-counters":
            for item in self._targets(table, attrs, allowed=set()):
                item.meta.clear()
                self._notify(table, item)
        elif verb == "set":
            self.set(table, attrs)
        elif verb == "remove":
            self.remove(table, attrs)
        elif verb == "unset":
            self.unset(table, attrs)
        else:
            self.set(table, {**attrs, "disabled": "no" if verb == "enable" else "yes"})
        return [["!done"]]

    def _print(self, menu: Menu, attrs: Mapping[str, str], queries: Sequence[str]) -> list[Sentence]:
        rows = [r for r in self.rows(menu.path) if matches(r, queries, self._equal_for(menu))]
        if "count-only" in attrs:
            return [["!done", f"=ret={len(rows)}"]]
        proplist = attrs.get(".proplist")
        wanted = [p for p in proplist.split(",") if p] if proplist is not None else None
        out: list[Sentence] = []
        for row in rows:
            shown = {k: row[k] for k in wanted if k in row} if wanted is not None else row
            out.append(["!re", *(f"={k}={v}" for k, v in shown.items())])
        if not out and self.empty_reply:
            out.append(["!empty"])
        out.append(["!done"])
        return out

    def _equal_for(self, menu: Menu) -> Callable[[str, str, str], bool]:
        def equal(name: str, have: str, want: str) -> bool:
            prop = menu.props.get(name)
            if prop is not None and prop.kind == "bool" and want in _BOOL_IN:
                return self._bool(_BOOL_IN[want]) == have
            if prop is not None and prop.kind.startswith("duration"):
                a, b = parse_duration(have), parse_duration(want)
                if a is not None and b is not None:
                    return a == b
            return have == want

        return equal

    def _set_identity(self, attrs: Mapping[str, str]) -> list[Sentence]:
        for name in attrs:
            if name != "name":
                raise RosTrap(f"unknown parameter {name}")
        if "name" in attrs:
            self.identity = attrs["name"]
        return [["!done"]]

    # --- generic verbs

    def _normalize(self, table: Table, name: str, value: str) -> str:
        prop = table.menu.props.get(name)
        if prop is None or not prop.writable:
            raise RosTrap(f"unknown parameter {name}")
        kind = prop.kind
        if kind == "bool":
            if value not in _BOOL_IN:
                raise RosTrap(f"invalid value for argument {name}")  # not from refs
            return _BOOL_IN[value]
        if kind in ("duration", "duration-none"):
            if kind == "duration-none" and value == "none":
                return value
            seconds = parse_duration(value)
            if seconds is None:
                raise RosTrap(f"invalid time value for argument {name}")  # not from refs
            return format_duration(seconds)
        if kind in ("int", "int-unlimited"):
            if kind == "int-unlimited" and value == "unlimited":
                return value
            if _as_int(value) is None or int(value) < 0:
                raise RosTrap(f"invalid value for argument {name}")  # not from refs
            return str(int(value))
        candidates: list[str] | None = None
        if prop.ref is not None:
            key = MENUS[prop.ref].key or "name"
            candidates = [*prop.extra, *(i.values.get(key, "") for i in self.tables[prop.ref].ordered())]
        elif prop.choices:
            candidates = list(prop.choices)
        if candidates is None or value in candidates:
            return value
        found = [c for c in candidates if c.startswith(value)] if value else []
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise RosTrap(f"ambiguous value of {name}, more than one possible value matches input")
        raise RosTrap(f"input does not match any value of {name}")

    def _values(self, table: Table, attrs: Mapping[str, str], *, skip: set[str]) -> Row:
        out: Row = {}
        for name, value in attrs.items():
            if name in skip:
                continue
            if not self.strict and name not in table.menu.props:
                out[name] = value
                continue
            out[name] = self._normalize(table, name, value)
        return out

    def _clash(self, table: Table, values: Row, ignore: Item | None) -> bool:
        key = table.menu.key
        if key is None or key not in values:
            return False
        server = values.get("server", "all")
        for other in table.items.values():
            if other is ignore or other.values.get(key) != values[key]:
                continue
            if table.menu.path != USER:
                return True
            theirs = other.values.get("server", "all")
            if "all" in (server, theirs) or server == theirs:
                return True
        return False

    def add(self, table: Table, attrs: Mapping[str, str]) -> Item:
        if "add" not in table.menu.verbs:
            raise RosTrap(NO_SUCH_COMMAND, 0)
        values = self._values(table, attrs, skip={"copy-from", "place-before"})
        key = table.menu.key
        if key is not None and not values.get(key):
            raise RosTrap(f"failure: {key} must be set")  # not from refs
        if self._clash(table, values, None):
            raise RosTrap(table.menu.duplicate)
        item = table.insert(values)
        self._notify(table, item)
        return item

    def _targets(self, table: Table, attrs: Mapping[str, str], *, allowed: set[str]) -> list[Item]:
        for name in attrs:
            if name not in allowed and name not in (".id", "numbers"):
                raise RosTrap(f"unknown parameter {name}")
        spec = attrs.get(".id", attrs.get("numbers"))
        if not spec:
            raise RosTrap(NO_SUCH_ITEM)
        found: list[Item] = []
        for part in spec.split(","):
            number = parse_id(part.strip())
            item = table.items.get(number) if number is not None else table.named(part.strip())
            if item is None:
                raise RosTrap(NO_SUCH_ITEM)
            if item not in found:
                found.append(item)
        return found

    def set(self, table: Table, attrs: Mapping[str, str]) -> list[Item]:
        writable = set(attrs) - {".id", "numbers"}
        targets = self._targets(table, attrs, allowed=writable)
        values = self._values(table, attrs, skip={".id", "numbers"})
        for item in targets:
            if self._clash(table, {**item.values, **values}, item):
                raise RosTrap(table.menu.duplicate)
        for item in targets:
            old_key = item.values.get(table.menu.key or "")
            item.values.update(values)
            new_key = item.values.get(table.menu.key or "")
            if table.menu.key and old_key != new_key and old_key is not None and new_key is not None:
                self._rename_references(table.menu.path, old_key, new_key)
            self._notify(table, item)
        return targets

    def _rename_references(self, path: str, old: str, new: str) -> None:
        """Items refer to each other by id on a router, so renaming a profile renames it everywhere."""
        for table in self.tables.values():
            for name, prop in table.menu.props.items():
                if prop.ref != path:
                    continue
                for item in table.items.values():
                    if item.values.get(name) == old:
                        item.values[name] = new

    def unset(self, table: Table, attrs: Mapping[str, str]) -> None:
        targets = self._targets(table, attrs, allowed={"value-name"})
        name = attrs.get("value-name", "")
        prop = table.menu.props.get(name)
        if prop is None or not prop.writable or name == table.menu.key:
            raise RosTrap(f"unknown parameter {name}")
        for item in targets:
            item.values.pop(name, None)
            self._notify(table, item)

    def remove(self, table: Table, attrs: Mapping[str, str]) -> None:
        targets = self._targets(table, attrs, allowed=set())
        for item in targets:
            if item.builtin:
                raise RosTrap("failure: default item can not be removed")  # not from refs
        for item in targets:
            self._remove_item(table, item)

    def _remove_item(self, table: Table, item: Item) -> None:
        if table.menu.path == ACTIVE:
            self._fold_session(item)
        del table.items[item.id]
        self._notify(table, item, dead=True)

    # --- hotspot sessions

    def _fold_session(self, session: Item) -> None:
        """A session ends: its uptime and traffic move to the user's counters, its host is unauthorised."""
        user = self.tables[USER].named(session.values.get("user", ""))
        if user is not None:
            for counter in ("uptime", "bytes-in", "bytes-out"):
                user.meta[counter] = user.meta.get(counter, 0) + self._live(session, counter)
            for counter in ("packets-in", "packets-out"):
                user.meta[counter] = user.meta.get(counter, 0) + self._live(session, counter[:-3]) // 1000
        hosts = self.tables[HOST]
        for host in hosts.items.values():
            if host.values.get("mac-address") == session.values.get("mac-address"):
                host.values["authorized"] = "false"
                self._notify(hosts, host)

    def _api_login(self, attrs: Mapping[str, str]) -> None:
        allowed = {"user", "password", "ip", "mac-address", "domain"}
        for name in attrs:
            if name not in allowed:
                raise RosTrap(f"unknown parameter {name}")
        self.hotspot_login(
            attrs.get("user", ""),
            password=attrs.get("password", ""),
            address=attrs.get("ip") or None,
            mac_address=attrs.get("mac-address") or None,
            domain=attrs.get("domain", ""),
            login_by="http-pap",
        )

    def hotspot_login(
        self,
        user: str,
        *,
        password: str | None = None,
        address: str | None = None,
        mac_address: str | None = None,
        server: str | None = None,
        domain: str = "",
        uptime: float = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
        login_by: str = "http-chap",
    ) -> Row:
        """A client logs in to the hotspot as ``user``: an active session (plus host and MAC cookie) appears.

        ``password`` None skips the password check (a test playing the client). Refusals raise
        :class:`RosTrap` with the hotspot's login-page wording (not from refs).
        """
        self.expire()
        users = self.tables[USER]
        account = users.named(user)
        if account is None or (password is not None and account.values.get("password", "") != password):
            raise RosTrap("invalid username or password")
        if account.values.get("disabled") == "true":
            raise RosTrap(f"user {user} is disabled")
        active = self.tables[ACTIVE]
        live = [a for a in active.items.values() if a.values.get("user") == user]
        limit = parse_duration(account.values.get("limit-uptime", "0")) or 0
        if limit and self._user_uptime(account, live) >= limit:
            raise RosTrap(f"user {user} has reached uptime limit")
        byte_limit = int(account.values.get("limit-bytes-total", "0"))
        if byte_limit and self._user_bytes(account, live) >= byte_limit:
            raise RosTrap(f"user {user} has reached traffic limit")
        profile = self.tables[USER_PROFILE].named(account.values.get("profile", "default"))
        profile_values = profile.values if profile is not None else {}
        shared = profile_values.get("shared-users", "1")
        if shared != "unlimited" and len(live) >= int(shared):
            raise RosTrap(f"no more sessions are allowed for user {user}")
        self._addresses += 1
        address = address or f"{_CLIENT_NET}{10 + self._addresses % 240}"
        high, low = divmod(self._addresses % 65536, 256)
        mac_address = mac_address or f"02:00:00:00:{high:02X}:{low:02X}"
        if server is None:
            wanted = account.values.get("server", "all")
            server = wanted if wanted != "all" else next(iter(self._server_list()), "hotspot1")
        values: Row = {
            "server": server,
            "user": user,
            **({"domain": domain} if domain else {}),
            "address": address,
            "mac-address": mac_address,
            "login-by": login_by,
            "idle-timeout": profile_values.get("idle-timeout", "none"),
            "keepalive-timeout": profile_values.get("keepalive-timeout", "2m"),
        }
        if "limit-bytes-total" in account.values:
            values["limit-bytes-total"] = account.values["limit-bytes-total"]
        session = active.insert(values)
        session.meta.update(
            {"start": self.now(), "uptime0": uptime, "bytes-in": bytes_in, "bytes-out": bytes_out}
        )
        self._upsert_host(server, address, mac_address)
        if profile_values.get("add-mac-cookie", "true") == "true":
            cookies = self.tables[COOKIE]
            cookie = cookies.insert(
                {
                    "user": user,
                    **({"domain": domain} if domain else {}),
                    "mac-address": mac_address,
                    "expires-in": profile_values.get("mac-cookie-timeout", "3d"),
                }
            )
            self._notify(cookies, cookie)
        self._notify(active, session)
        self.expire()
        return self.render(active, session)

    def _server_list(self) -> list[str]:
        return [i.values.get("name", "") for i in self.tables[SERVER].ordered()]

    def _upsert_host(self, server: str, address: str, mac_address: str) -> None:
        hosts = self.tables[HOST]
        host = next((h for h in hosts.items.values() if h.values.get("mac-address") == mac_address), None)
        if host is None:
            host = hosts.insert({"mac-address": mac_address, "address": address, "to-address": address})
            host.meta["since"] = self.now()
        host.values.update(server=server, authorized="true", address=address, **{"to-address": address})
        self._notify(hosts, host)

    def _user_bytes(self, user: Item, live: Iterable[Item]) -> int:
        stored = int(user.meta.get("bytes-in", 0) + user.meta.get("bytes-out", 0))
        return stored + sum(self._live(a, "bytes-in") + self._live(a, "bytes-out") for a in live)

    def add_traffic(self, session_id: str, *, bytes_in: int = 0, bytes_out: int = 0) -> None:
        number = parse_id(session_id)
        session = self.tables[ACTIVE].items.get(number if number is not None else -1)
        if session is None:
            raise RosTrap(NO_SUCH_ITEM)
        session.meta["bytes-in"] = session.meta.get("bytes-in", 0) + bytes_in
        session.meta["bytes-out"] = session.meta.get("bytes-out", 0) + bytes_out
        self.expire()

    def logout(self, *, user: str | None = None, session_id: str | None = None) -> int:
        """End sessions (a client leaving); returns how many ended."""
        active = self.tables[ACTIVE]
        number = parse_id(session_id) if session_id else None
        gone = [
            s
            for s in active.ordered()
            if (user is not None and s.values.get("user") == user) or (number is not None and s.id == number)
        ]
        for session in gone:
            self._remove_item(active, session)
        return len(gone)

    def expire(self) -> None:
        """Disconnect sessions whose user reached limit-uptime / limit-bytes-total or whose profile
        session-timeout ran out, as the router does on its own."""
        active = self.tables[ACTIVE]
        users = self.tables[USER]
        for session in active.ordered():
            if session.id not in active.items:
                continue
            user = users.named(session.values.get("user", ""))
            if user is None:
                continue
            left = self._time_left(user, session)
            if left is not None and left <= 0:
                # Stop the clock exactly at the limit, however far the test moved time on.
                overshoot = self._overshoot(user, session)
                session.meta["uptime0"] = session.meta.get("uptime0", 0) - overshoot
                self._remove_item(active, session)
                continue
            byte_limit = int(user.values.get("limit-bytes-total", "0") or 0)
            live = self._sessions_of(user)
            if byte_limit and self._user_bytes(user, live) >= byte_limit:
                for other in live:
                    self._remove_item(active, other)

    def _overshoot(self, user: Item, session: Item) -> int:
        over = []
        limit = parse_duration(user.values.get("limit-uptime", "0")) or 0
        if limit:
            live = self._sessions_of(user)
            over.append(self._user_uptime(user, live) - limit)
        profile = self.tables[USER_PROFILE].named(user.values.get("profile", "default"))
        timeout = parse_duration(profile.values.get("session-timeout", "0")) if profile else None
        if timeout:
            over.append(self._live(session, "uptime") - timeout)
        return max(0, max(over)) if over else 0
