"""The async client lipapush uses for MikroTik hotspot routers, over the RouterOS API (librouteros).

librouteros is blocking, not thread-safe, and without ``.tag`` support a connection carries one command at a
time. So every operation runs its commands in a worker thread of a small dedicated pool, while an
``asyncio.Lock`` per router keeps at most one operation in flight per router, however many tasks and clients
share it. The connection an operation used stays open, logged in, for KEEP_IDLE seconds under that router's
slot, and the next operation on the router takes it instead of connecting and logging in again (a batch of
vouchers is one connection, not one per voucher). When the router closed a kept connection meanwhile (a
reboot), the operation starts again on a new one, provided none of its commands had been answered. A
connection that failed in any way is never reused: after a timeout or a partial read the stream is out of
step.

Replies are read as the strings the router sent. librouteros' ``Api`` guesses types (a voucher named
``"123456"`` comes back as ``int``, one named ``"yes"`` as ``True``), so this module uses only its transport
and wire protocol and parses sentences itself.

Pure client: no database, no settings. Errors are :class:`RouterError` subclasses whose ``message`` tells
the operator what to do and whose ``retry`` says whether trying again later can help.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from librouteros import create_transport
from librouteros.exceptions import ConnectionClosed, FatalError, ProtocolError
from librouteros.login import encode_password
from librouteros.protocol import ApiProtocol

__all__ = [
    "ActiveSession",
    "HotspotUser",
    "ProfileSpec",
    "RouterAddress",
    "RouterClient",
    "RouterError",
    "RouterInfo",
    "RouterLoginFailed",
    "RouterRefused",
    "RouterUnreachable",
    "UserSpec",
]

T = TypeVar("T")
Row = dict[str, str]
log = logging.getLogger(__name__)

USER = "/ip/hotspot/user"
PROFILE = "/ip/hotspot/user/profile"
ACTIVE = "/ip/hotspot/active"
COOKIE = "/ip/hotspot/cookie"
SERVER = "/ip/hotspot"

# Threads only wait on sockets; one operation per router at a time, so this is how many routers are
# talked to at once. A dead router holds its thread for at most about one timeout.
POOL_SIZE = 16
# Each read is bounded by the address timeout; this bounds a whole operation, for a router that dribbles
# bytes just fast enough to never trip the per-read timeout.
DEADLINE_FACTOR = 4.0
# A connection is kept, logged in, this many seconds after an operation, for the next one on the same
# router (from this event loop); it is closed after any error, and not reused once KEEP_MAX_AGE old (a new
# connection checks the profiles again).
KEEP_IDLE = 5.0
KEEP_MAX_AGE = 60.0
# Upsert tries again this often when another writer creates or removes the same item between our read
# and our write.
RACE_ATTEMPTS = 3

MAX_NAME = 64
MAX_COMMENT = 255
# Not ours to choose: it is whatever the operator set on the router.
MAX_API_PASSWORD = 256


# --- errors ----------------------------------------------------------------------------------------------


class RouterError(Exception):
    """A router operation failed. ``message`` says what went wrong and what to do; ``retry`` whether
    trying the same thing again later can succeed."""

    default_retry: ClassVar[bool] = False

    def __init__(self, message: str, *, retry: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry: bool = self.default_retry if retry is None else retry


class RouterUnreachable(RouterError):
    """No usable connection: refused, timed out, reset or closed, DNS, TLS handshake."""

    default_retry = True


class RouterLoginFailed(RouterError):
    """The router rejected the API user name or password."""


class RouterRefused(RouterError):
    """The router answered a command with ``!trap``; ``trap_message`` is its own wording."""

    def __init__(
        self,
        message: str,
        *,
        trap_message: str,
        category: int | None = None,
        command: str | None = None,
        retry: bool | None = None,
    ) -> None:
        super().__init__(message, retry=_transient(trap_message, category) if retry is None else retry)
        self.trap_message = trap_message
        self.category = category
        self.command = command


# Category 2 is "execution of command interrupted" (refs §3.4); the phrases are a router that is busy,
# not one that disagrees with what we asked.
_TRANSIENT_PHRASES = ("interrupted", "timed out", "busy", "try again", "temporarily")


def _transient(message: str, category: int | None) -> bool:
    lowered = message.lower()
    return category == 2 or any(phrase in lowered for phrase in _TRANSIENT_PHRASES)


def _duplicate(exc: RouterRefused) -> bool:
    lowered = exc.trap_message.lower()
    return "already have" in lowered or "already exists" in lowered


def _gone(exc: RouterRefused) -> bool:
    return exc.trap_message.lower().startswith("no such item")


# --- values ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterAddress:
    """How to reach one router's API. For api-ssl pass ``tls=True`` and the api-ssl port (8729)."""

    host: str
    port: int = 8728
    username: str = "admin"
    password: str = field(default="", repr=False)
    tls: bool = False
    tls_insecure: bool = False  # skip certificate and host name checks: self-signed router certificates
    timeout: float = 8.0

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def service(self) -> str:
        return "api-ssl" if self.tls else "api"


@dataclass(frozen=True)
class RouterInfo:
    identity: str
    version: str
    uptime: str
    board: str
    cpu_load: int | None
    hotspot_servers: list[str]


@dataclass(frozen=True)
class HotspotUser:
    id: str
    name: str
    profile: str | None
    comment: str | None
    disabled: bool
    uptime: str | None
    bytes_in: int | None
    bytes_out: int | None
    limit_uptime: str | None  # None: no limit (RouterOS treats 0 the same)
    limit_bytes_total: int | None


@dataclass(frozen=True)
class ActiveSession:
    id: str
    user: str
    address: str | None
    mac: str | None
    uptime: str | None


@dataclass(frozen=True)
class UserSpec:
    """A hotspot user as it should be on the router. None limits mean no limit; ``server`` None means all
    hotspot servers."""

    name: str
    password: str = field(repr=False)
    profile: str
    limit_uptime: str | None = None  # RouterOS duration text: "1h", "1d", "00:30:00"
    limit_bytes_total: int | None = None
    comment: str = ""
    server: str | None = None


@dataclass(frozen=True)
class ProfileSpec:
    """A hotspot user profile as it should be on the router; None leaves a setting unset."""

    name: str
    rate_limit: str | None = None  # router's view rx/tx: "2M/5M" is 2M upload, 5M download
    shared_users: int = 1
    session_timeout: str | None = None


# --- input checks ----------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DURATION = re.compile(
    r"(?=\d)(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?"  # 1w2d3h4m5s, any subset, in that order
    r"|\d+"  # bare seconds
    r"|(?:\d+d ?)?\d{1,2}:\d{2}:\d{2}"  # 01:00:00, 1d 02:00:00
)
_RATE_TOKEN = re.compile(r"\d+(?:\.\d+)?[kKMGs]?(?:/\d+(?:\.\d+)?[kKMGs]?)?")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


def _check_text(
    what: str, value: object, *, limit: int = MAX_NAME, empty: bool = False, secret: bool = False
) -> str:
    # Values go on the wire as ASCII words: anything else would fail to encode mid-operation, and a
    # control character would be stored on the router as is.
    shown = "" if secret else f" {value!r:.80}"
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text")
    if not value and not empty:
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what}{shown} is longer than {limit} characters")
    if not value.isascii() or _CONTROL.search(value):
        raise ValueError(f"{what}{shown} must be printable ASCII")
    return value


def _check_duration(what: str, value: str) -> str:
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise ValueError(f"{what} {value!r:.80} is not a RouterOS duration such as 1h, 30m, 1d or 00:30:00")
    return value


def _check_count(what: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be a whole number of at least {minimum}")
    return value


def _check_rate_limit(value: str) -> str:
    _check_text("rate limit", value, limit=128)
    tokens = value.split(" ")
    if len(tokens) > 6 or not all(_RATE_TOKEN.fullmatch(t) for t in tokens):
        raise ValueError(f"rate limit {value!r} is not RouterOS rate-limit text such as 2M/5M")
    return value


def _check_address(address: RouterAddress) -> None:
    host = address.host
    if not isinstance(host, str) or not host or len(host) > 253 or re.search(r"[\s\x00-\x1f\x7f/]", host):
        raise ValueError(f"router host {host!r:.80} is not a host name or IP address")
    if isinstance(address.port, bool) or not isinstance(address.port, int) or not 0 < address.port < 65536:
        raise ValueError(f"router port {address.port!r} must be between 1 and 65535")
    if not address.timeout > 0:
        raise ValueError("router timeout must be positive")
    _check_text("router API user name", address.username)
    _check_text("router API password", address.password, limit=MAX_API_PASSWORD, empty=True, secret=True)


def _check_user(spec: UserSpec) -> None:
    _check_text("hotspot user name", spec.name)
    _check_text("hotspot user password", spec.password, empty=True, secret=True)
    _check_text("hotspot user profile", spec.profile)
    if spec.limit_uptime is not None:
        _check_duration("limit-uptime", spec.limit_uptime)
    if spec.limit_bytes_total is not None:
        _check_count("limit-bytes-total", spec.limit_bytes_total, minimum=0)
    _check_text("comment", spec.comment, limit=MAX_COMMENT, empty=True)
    if spec.server is not None:
        _check_text("hotspot server", spec.server)


def _check_profile(spec: ProfileSpec) -> None:
    _check_text("hotspot profile name", spec.name)
    if spec.rate_limit is not None:
        _check_rate_limit(spec.rate_limit)
    _check_count("shared-users", spec.shared_users, minimum=1)
    if spec.session_timeout is not None:
        _check_duration("session-timeout", spec.session_timeout)


def _check_ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        # Hotspot is IPv4-only (refs §5.8).
        raise ValueError(f"client address {value!r:.80} is not an IPv4 address") from None


def _check_mac(value: str) -> str:
    if not isinstance(value, str) or not _MAC.fullmatch(value):
        raise ValueError(f"MAC address {value!r:.80} is not in the form AA:BB:CC:DD:EE:FF")
    return value.upper()


# --- reading rows ----------------------------------------------------------------------------------------


def _text(row: Row, key: str) -> str | None:
    value = row.get(key)
    return value if value else None


def _number(row: Row, key: str) -> int | None:
    value = row.get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _flag(row: Row, key: str) -> bool:
    # RouterOS 7 prints true/false, 6 yes/no.
    return row.get(key, "").lower() in ("true", "yes")


def _limit(value: str | None) -> str | None:
    # 0 is how RouterOS spells "no limit".
    return None if value is None or value.strip() in ("", "0", "0s", "00:00:00") else value


def _hotspot_user(row: Row) -> HotspotUser:
    bytes_limit = _number(row, "limit-bytes-total")
    return HotspotUser(
        id=row.get(".id", ""),
        name=row.get("name", ""),
        profile=_text(row, "profile"),
        comment=_text(row, "comment"),
        disabled=_flag(row, "disabled"),
        uptime=_text(row, "uptime"),
        bytes_in=_number(row, "bytes-in"),
        bytes_out=_number(row, "bytes-out"),
        limit_uptime=_limit(row.get("limit-uptime")),
        limit_bytes_total=bytes_limit or None,
    )


def _active_session(row: Row) -> ActiveSession:
    return ActiveSession(
        id=row.get(".id", ""),
        user=row.get("user", ""),
        address=_text(row, "address"),
        mac=_text(row, "mac-address"),
        uptime=_text(row, "uptime"),
    )


# --- the connection (worker-thread side) -----------------------------------------------------------------


class _RedactSecrets(logging.Filter):
    """librouteros logs every word it sends at DEBUG, the login and hotspot passwords included."""

    _word = re.compile(r"(=(?:password|response|new-password|old-password)=).*$")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._word.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


logging.getLogger("librouteros").addFilter(_RedactSecrets())


@functools.cache
def _tls_context(insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _attributes(words: Iterable[str]) -> Row:
    row: Row = {}
    for word in words:
        if word.startswith("="):
            key, _, value = word[1:].partition("=")
            row[key] = value
    return row


_HINTS = (
    ("input does not match any value of profile", "create the profile on the router first"),
    ("not enough permissions", "give the API user's group the read, write and api policies"),
    ("not enough privileges", "give the API user's group the read, write and api policies"),
    ("no such command prefix", "check that the hotspot package is installed and enabled on the router"),
    ("already have", "an item with this name already exists"),
    ("already exists", "an item with this name already exists"),
)


class _Session:
    """One API connection. One worker thread at a time uses it, for one operation, while the router's lock
    is held; between operations it may wait, logged in, for the next one (see ``_Slot``). ``abort`` is
    called from the event loop to unblock the thread when the operation's deadline passes."""

    def __init__(self, address: RouterAddress) -> None:
        self.address = address
        self._guard = threading.Lock()
        self._sock: socket.socket | None = None
        self._protocol: Any = None
        self._aborted = False
        self._opened_at = 0.0
        self._completed = 0  # commands answered with !done in the current operation
        # Profiles this connection brought in line with a spec, by name: ``provision`` skips those.
        self.ensured: dict[str, ProfileSpec] = {}

    def run(self, job: Callable[[_Session], T]) -> T:
        """Run ``job`` on this connection, opening it first if needed. On any error it is closed."""
        try:
            if self._protocol is not None:
                self._completed = 0
                try:
                    return job(self)
                except (ConnectionClosed, ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
                    if self._completed or self._aborted:
                        raise
                    # The router closed the kept connection while it waited (a reboot, a dropped link)
                    # and nothing of this operation was answered: start it again on a new connection.
                    log.debug("kept connection to %s was closed (%r); reconnecting", self.address.where, exc)
                    self.close()
            self._open()
            self._completed = 0
            return job(self)
        except BaseException as exc:
            self.close()
            if isinstance(exc, RouterError) or not isinstance(exc, Exception):
                raise
            error = self._unreachable(exc)
            if error is None:
                raise  # a bug, not the network: let it show as what it is
            raise error from exc

    def reusable(self, now: float) -> bool:
        return self._protocol is not None and not self._aborted and now - self._opened_at < KEEP_MAX_AGE

    def abort(self) -> None:
        with self._guard:
            self._aborted = True
            if self._sock is not None:
                # shutdown, not close: it wakes a recv blocked in the worker thread, and the fd stays
                # the worker's to close. socket.socket's own, so a TLS socket's SSL state is not touched.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def _open(self) -> None:
        address = self.address
        wrapper = None
        if address.tls:
            context = _tls_context(address.tls_insecure)

            def wrapper(sock: socket.socket) -> socket.socket:
                # librouteros does not close the plain socket when the handshake fails.
                try:
                    return context.wrap_socket(sock, server_hostname=address.host)
                except BaseException:
                    sock.close()
                    raise

        transport = create_transport(
            address.host, port=address.port, saddr=None, timeout=address.timeout, ssl_wrapper=wrapper
        )
        with self._guard:
            self._sock = transport.sock
            aborted = self._aborted
        if aborted:
            raise TimeoutError("operation deadline passed")
        self._protocol = ApiProtocol(transport=transport, encoding="ASCII")
        self._opened_at = time.monotonic()
        self._login()

    def close(self) -> None:
        """Close the connection (idempotent). Called by the worker thread, or by the event loop for a
        connection no thread is using."""
        with self._guard:
            sock, self._sock = self._sock, None
            self._protocol = None
            self.ensured.clear()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _login(self) -> None:
        address = self.address
        name = f"=name={address.username}"
        try:
            _, done = self.command("/login", name, f"=password={address.password}")
            challenge = done.get("ret")
            if challenge:
                # Before 6.43 the router answers any /login with an MD5 challenge (refs §3.5).
                response = encode_password(challenge, address.password)
                self.command("/login", name, f"=response={response}")
        except RouterRefused as exc:
            raise RouterLoginFailed(
                f"Router {address.where} rejected the login of API user {address.username!r} "
                f"({exc.trap_message}): check the API user and password on the router, and that the "
                "user's group has the api policy."
            ) from None
        except binascii.Error:
            raise ProtocolError("login challenge is not hex") from None

    # --- commands

    def command(self, command: str, *words: str) -> tuple[list[Row], Row]:
        """Send one command; returns its ``!re`` rows and the ``!done`` attributes, or raises
        :class:`RouterRefused` for a ``!trap``."""
        self._protocol.writeSentence(command, *words)
        rows: list[Row] = []
        traps: list[Row] = []
        while True:
            reply, raw = self._protocol.readSentence()
            attrs = _attributes(raw)
            if reply == "!re":
                rows.append(attrs)
            elif reply == "!trap":
                traps.append(attrs)
            elif reply == "!done":
                self._completed += 1
                break
            # anything else ("!empty" from 7.18 on) carries nothing we need
        if traps:
            raise self._refused(command, traps)
        return rows, attrs

    def print(self, menu: str, props: Sequence[str], **where: str) -> list[Row]:
        query = [f"?{key}={value}" for key, value in where.items()]
        rows, _ = self.command(f"{menu}/print", f"=.proplist={','.join(props)}", *query)
        return [row for row in rows if all(row.get(key) == value for key, value in where.items())]

    def add(self, menu: str, values: Mapping[str, str]) -> str:
        _, done = self.command(f"{menu}/add", *_words(values))
        return done.get("ret", "")

    def set(self, menu: str, item_id: str, values: Mapping[str, str]) -> None:
        self.command(f"{menu}/set", f"=.id={item_id}", *_words(values))

    def unset(self, menu: str, item_id: str, prop: str) -> None:
        self.command(f"{menu}/unset", f"=numbers={item_id}", f"=value-name={prop}")

    def remove(self, menu: str, item_id: str) -> bool:
        """False when the item was already gone."""
        try:
            self.command(f"{menu}/remove", f"=.id={item_id}")
        except RouterRefused as exc:
            if _gone(exc):
                return False
            raise
        return True

    # --- errors

    def _refused(self, command: str, traps: Sequence[Row]) -> RouterRefused:
        trap_message = "; ".join(t.get("message", "") or "(no message)" for t in traps)
        category_text = traps[0].get("category", "")
        category = int(category_text) if category_text.isdigit() else None
        hint = next((h for phrase, h in _HINTS if phrase in trap_message.lower()), None)
        message = f"Router {self.address.where} refused {command}: {trap_message}"
        message += f" ({hint})." if hint else "."
        return RouterRefused(message, trap_message=trap_message, category=category, command=command)

    def _unreachable(self, exc: Exception) -> RouterUnreachable | None:
        address = self.address
        where, service = address.where, address.service
        online = "check that the router is online and reachable from this server"
        if isinstance(exc, TimeoutError):
            text = f"Router {where} did not answer within {address.timeout:g}s: {online}."
        elif isinstance(exc, ConnectionRefusedError):
            text = (
                f"Router {where} refused the connection: check that the {service} service is enabled "
                f"on port {address.port} (/ip service) and allows this server's address."
            )
        elif isinstance(exc, socket.gaierror):
            text = f"Router host {address.host!r} could not be resolved ({exc.strerror}): check the address."
        elif isinstance(exc, ssl.SSLCertVerificationError):
            text = (
                f"Router {where}'s TLS certificate was not accepted ({exc.verify_message}): install a "
                "certificate this server trusts on api-ssl, or allow unverified TLS for this router."
            )
        elif isinstance(exc, ssl.SSLError):
            text = (
                f"TLS handshake with router {where} failed ({exc.reason or exc}): check that port "
                f"{address.port} is the api-ssl service and that it has a certificate."
            )
        elif isinstance(exc, ConnectionClosed | ConnectionError | FatalError):
            if isinstance(exc, FatalError):
                detail = f"!fatal {exc}"
            elif isinstance(exc, ConnectionError):
                detail = exc.strerror or type(exc).__name__
            else:
                detail = "in the middle of a reply"
            text = (
                f"Router {where} closed the connection ({detail}): check that port {address.port} is the "
                f"{service} service and that the router is not rebooting."
            )
        elif isinstance(exc, ProtocolError):
            text = (
                f"Router {where} did not speak the RouterOS API ({exc}): check that port {address.port} "
                f"is the {service} service."
            )
        elif isinstance(exc, OSError):
            text = f"Router {where} could not be reached ({exc.strerror or exc}): {online}."
        else:
            return None
        return RouterUnreachable(text)


def _words(values: Mapping[str, str]) -> list[str]:
    return [f"={key}={value}" for key, value in values.items()]


# --- operations (worker-thread side) ---------------------------------------------------------------------


def _read_info(s: _Session) -> RouterInfo:
    identity = s.print("/system/identity", ("name",))
    resources = s.print("/system/resource", ("uptime", "version", "board-name", "cpu-load"))
    resource = resources[0] if resources else {}
    try:
        servers = [row.get("name", "") for row in s.print(SERVER, ("name",))]
    except RouterRefused as exc:
        if "no such command" not in exc.trap_message.lower():
            raise
        servers = []  # no hotspot package: still a router we can describe
    return RouterInfo(
        identity=identity[0].get("name", "") if identity else "",
        version=resource.get("version", ""),
        uptime=resource.get("uptime", ""),
        board=resource.get("board-name", ""),
        cpu_load=_number(resource, "cpu-load"),
        hotspot_servers=servers,
    )


def _upsert(
    s: _Session,
    menu: str,
    name: str,
    values: Mapping[str, str | None],
    *,
    prefer: Callable[[Row], bool] = lambda _row: True,
) -> str:
    """Create or update the item called ``name``; None values are unset. Returns its ``.id``.

    Looked up by name every time: ids change on reboot (refs §4.6)."""
    wanted = {key: value for key, value in values.items() if value is not None}
    cleared = [key for key, value in values.items() if value is None]
    for _ in range(RACE_ATTEMPTS):
        rows = s.print(menu, (".id", "name", *cleared, *([] if menu != USER else ["server"])), name=name)
        row = next((r for r in rows if prefer(r)), rows[0] if rows else None)
        if row is None:
            try:
                new_id = s.add(menu, {"name": name, **wanted})
            except RouterRefused as exc:
                if _duplicate(exc):
                    continue  # another writer created it since we looked: update theirs
                raise
            if new_id:
                return new_id
            continue  # no =ret= on this version: read the id back
        try:
            s.set(menu, row[".id"], wanted)
            for prop in cleared:
                if _limit(row.get(prop)) is not None:
                    s.unset(menu, row[".id"], prop)
        except RouterRefused as exc:
            if _gone(exc):
                continue  # removed since we looked: create it again
            raise
        return row[".id"]
    raise RouterRefused(
        f"Router {s.address.where}: {name!r} in {menu} kept changing under us; try again.",
        trap_message="item changed concurrently",
        command=f"{menu}/add",
        retry=True,
    )


def _upsert_user(s: _Session, spec: UserSpec) -> str:
    server = spec.server or "all"
    values: dict[str, str | None] = {
        "password": spec.password,
        "profile": spec.profile,
        "limit-uptime": spec.limit_uptime,
        "limit-bytes-total": None if spec.limit_bytes_total is None else str(spec.limit_bytes_total),
        "comment": spec.comment,
        "server": server,
    }
    return _upsert(s, USER, spec.name, values, prefer=lambda row: row.get("server", "all") == server)


def _ensure_profile(s: _Session, spec: ProfileSpec) -> None:
    values: dict[str, str | None] = {
        "rate-limit": spec.rate_limit,
        "shared-users": str(spec.shared_users),
        "session-timeout": spec.session_timeout,
    }
    _upsert(s, PROFILE, spec.name, values)
    s.ensured[spec.name] = spec


def _no_such_profile(exc: RouterRefused) -> bool:
    return "input does not match any value of profile" in exc.trap_message.lower()


def _provision(s: _Session, profile: ProfileSpec, user: UserSpec) -> str:
    if s.ensured.get(profile.name) == profile:
        # This connection made the profile, at most KEEP_MAX_AGE ago: only the user is needed.
        try:
            return _upsert_user(s, user)
        except RouterRefused as exc:
            if not _no_such_profile(exc):
                raise
            # Removed on the router since: make it again, then the user.
    _ensure_profile(s, profile)
    return _upsert_user(s, user)


def _kick(s: _Session, name: str) -> int:
    return sum(s.remove(ACTIVE, row[".id"]) for row in s.print(ACTIVE, (".id", "user"), user=name))


def _remove_user(s: _Session, name: str) -> bool:
    existed = False
    for row in s.print(USER, (".id", "name"), name=name):
        existed = s.remove(USER, row[".id"]) or existed
    # Sessions after the user: with the user gone nobody can log back in between the two steps. MAC
    # cookies too, or a device would be logged straight back in if the name is ever reused.
    _kick(s, name)
    for row in s.print(COOKIE, (".id", "user"), user=name):
        s.remove(COOKIE, row[".id"])
    return existed


_USER_PROPS = (
    ".id",
    "name",
    "profile",
    "comment",
    "disabled",
    "uptime",
    "bytes-in",
    "bytes-out",
    "limit-uptime",
    "limit-bytes-total",
)


def _users(s: _Session, prefix: str | None) -> list[HotspotUser]:
    # The API has no prefix or regex queries (refs §3.7): filter here.
    rows = s.print(USER, _USER_PROPS)
    return [_hotspot_user(r) for r in rows if prefix is None or r.get("comment", "").startswith(prefix)]


def _active(s: _Session) -> list[ActiveSession]:
    return [_active_session(r) for r in s.print(ACTIVE, (".id", "user", "address", "mac-address", "uptime"))]


def _login(s: _Session, user: str, password: str, ip: str, mac: str) -> None:
    words = {"user": user, "password": password, "ip": ip, "mac-address": mac}
    s.command(f"{ACTIVE}/login", *_words(words))


# --- the client (event-loop side) ------------------------------------------------------------------------

_pool_guard = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_slots_guard = threading.Lock()
# Per event loop: an asyncio.Lock belongs to the loop that first waits on it.
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], _Slot]] = (
    weakref.WeakKeyDictionary()
)


class _Slot:
    """One router, seen from one event loop: the lock that lets one operation at a time talk to it, and
    the connection kept from the last operation. Only the lock holder takes or parks the connection;
    a parked one is used by no thread, so the loop may close it when it has waited KEEP_IDLE."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self._idle: _Session | None = None
        self._timer: asyncio.TimerHandle | None = None

    def take(self, address: RouterAddress) -> _Session:
        kept, self._idle = self._idle, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if kept is not None and kept.address == address and kept.reusable(time.monotonic()):
            return kept
        if kept is not None:
            kept.close()  # another address (the password changed, another timeout), or too old
        return _Session(address)

    def park(self, session: _Session) -> None:
        if KEEP_IDLE <= 0 or not session.reusable(time.monotonic()):
            session.close()
            return
        self._idle = session
        self._timer = asyncio.get_running_loop().call_later(KEEP_IDLE, self._expire, session)

    def _expire(self, session: _Session) -> None:
        if self._idle is session:
            self._idle, self._timer = None, None
            session.close()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_guard:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="routeros")
        return _pool


def _router_slot(key: tuple[str, int]) -> _Slot:
    loop = asyncio.get_running_loop()
    with _slots_guard:
        per_loop = _slots.get(loop)
        if per_loop is None:
            per_loop = _slots[loop] = {}
        slot = per_loop.get(key)
        if slot is None:
            slot = per_loop[key] = _Slot()
        return slot


class RouterClient:
    """Hotspot operations on one router. Cheap to create; safe to share between tasks, and any number of
    clients for the same router still send it one operation at a time (on the connection the last one
    left open, when it is still there)."""

    def __init__(self, address: RouterAddress) -> None:
        _check_address(address)
        self.address = address
        self._key = (address.host.lower(), address.port)

    def __repr__(self) -> str:
        return f"RouterClient({self.address!r})"

    async def info(self) -> RouterInfo:
        """Identity, RouterOS version, uptime, board, CPU load and hotspot server names."""
        return await self._run("reading its status", _read_info)

    async def ensure_profile(self, spec: ProfileSpec) -> None:
        """Create the hotspot user profile, or bring the one with that name in line with ``spec``."""
        _check_profile(spec)
        await self._run("updating a profile", lambda s: _ensure_profile(s, spec))

    async def upsert_user(self, spec: UserSpec) -> str:
        """Create the hotspot user, or bring the one with that name in line with ``spec``; returns its
        current ``.id``. Safe to repeat, and to race with another writer."""
        _check_user(spec)
        return await self._run("updating a user", lambda s: _upsert_user(s, spec))

    async def remove_user(self, name: str) -> bool:
        """Remove the user with its active sessions and MAC cookies; False when there was no such user."""
        _check_text("hotspot user name", name)
        return await self._run("removing a user", lambda s: _remove_user(s, name))

    async def users(self, *, comment_prefix: str | None = None) -> list[HotspotUser]:
        """Hotspot users, only those whose comment starts with ``comment_prefix`` if given."""
        if comment_prefix is not None:
            _check_text("comment prefix", comment_prefix, limit=MAX_COMMENT, empty=True)
        return await self._run("listing users", lambda s: _users(s, comment_prefix))

    async def active(self) -> list[ActiveSession]:
        return await self._run("listing sessions", _active)

    async def kick(self, name: str) -> int:
        """End the user's active sessions; returns how many. The user stays, and a device with a MAC
        cookie may log straight back in (use ``remove_user`` to keep it out)."""
        _check_text("hotspot user name", name)
        return await self._run("ending sessions", lambda s: _kick(s, name))

    async def provision(self, profile: ProfileSpec, user: UserSpec) -> str:
        """``ensure_profile(profile)`` then ``upsert_user(user)`` in one operation, on one connection;
        the profile step is skipped when the same connection already brought it in line (and done
        again should the router say it has gone). Returns the user's current ``.id``."""
        _check_profile(profile)
        _check_user(user)
        if user.profile != profile.name:
            raise ValueError(f"user profile {user.profile!r} is not the profile given ({profile.name!r})")
        return await self._run("provisioning a user", lambda s: _provision(s, profile, user))

    async def login(self, *, user: str, password: str, ip: str, mac: str) -> None:
        """Log a client device in as ``user`` from the server side (``/ip/hotspot/active/login``)."""
        _check_text("hotspot user name", user)
        _check_text("hotspot user password", password, empty=True, secret=True)
        ip, mac = _check_ipv4(ip), _check_mac(mac)
        await self._run("logging a client in", lambda s: _login(s, user, password, ip, mac))

    async def _run(self, what: str, job: Callable[[_Session], T]) -> T:
        slot = _router_slot(self._key)
        lock = slot.lock
        await lock.acquire()
        try:
            session = slot.take(self.address)
            future = asyncio.get_running_loop().run_in_executor(_executor(), session.run, job)
        except BaseException:
            lock.release()
            raise

        def finished(done: asyncio.Future[T]) -> None:
            # The lock is held for as long as the thread talks to the router, even when the caller has
            # given up on it: nothing else may start on this router before that connection is free or
            # gone. Only a connection whose operation succeeded in time is kept (a failed one is closed
            # by its thread; an aborted one is not reusable).
            try:
                if done.cancelled() or done.exception() is not None:
                    session.close()
                else:
                    slot.park(session)
            finally:
                lock.release()

        future.add_done_callback(finished)
        deadline = self.address.timeout * DEADLINE_FACTOR
        try:
            done, _ = await asyncio.wait({future}, timeout=deadline)
        except asyncio.CancelledError:
            session.abort()
            raise
        if not done:
            session.abort()
            raise RouterUnreachable(
                f"Router {self.address.where} did not finish {what} within {deadline:g}s: check that it is "
                "online and not overloaded."
            )
        return future.result()
