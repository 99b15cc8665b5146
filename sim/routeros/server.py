"""The RouterOS API over TCP: one :class:`RouterSim` is one router on one port.

Real clients (librouteros) connect, log in and run commands exactly as against a router; tests turn the
knobs (down, slow, faults, version, credentials) and read the state and the calls log in-process, or over
HTTP through :func:`sim.routeros.control.create_control_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from sim.routeros.protocol import DEFAULT_MAX_WORD, Command, ProtocolError, encode_sentence, read_sentence
from sim.routeros.state import (
    ACTIVE,
    INTERRUPTED,
    MENUS,
    USER,
    USER_PROFILE,
    RosTrap,
    RouterState,
    Row,
    Sentence,
    matches,
)

logger = logging.getLogger("sim.routeros")

DownMode = Literal["refuse", "close", "hang"]
FaultKind = Literal["trap", "fatal", "drop", "hang"]
DOWN_MODES: tuple[DownMode, ...] = ("refuse", "close", "hang")
FAULT_KINDS: tuple[FaultKind, ...] = ("trap", "fatal", "drop", "hang")

NOT_LOGGED_IN = "not logged in"
QUIT = "session terminated on request"
_SECRET_ATTRS = ("=password=", "=response=", "=new-password=", "=old-password=")
# Commands a fault without an explicit ``command`` never hits: the session has to get going first.
_FAULT_EXEMPT = frozenset({"/login", "/cancel"})


def redact(words: Iterable[str]) -> tuple[str, ...]:
    """Sentence words with password-like attribute values replaced by ``***``."""
    out = []
    for word in words:
        prefix = next((p for p in _SECRET_ATTRS if word.startswith(p)), None)
        out.append(prefix + "***" if prefix is not None else word)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Call:
    """One sentence a client sent (passwords redacted)."""

    connection: int
    at: float
    words: tuple[str, ...]
    tag: str | None = None

    @property
    def command(self) -> str:
        return self.words[0]

    @property
    def attrs(self) -> dict[str, str]:
        return Command.parse(self.words).attrs

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "at": self.at,
            "command": self.command,
            "words": list(self.words),
            "tag": self.tag,
        }


@dataclass(slots=True)
class Fault:
    """A scripted failure for ``remaining`` commands matching ``command`` (None: any but login/cancel),
    after letting ``after`` matching commands through first."""

    kind: FaultKind
    message: str = ""
    category: int | None = None
    command: str | None = None
    remaining: int = 1
    after: int = 0

    def hits(self, path: str) -> bool:
        return path == self.command if self.command is not None else path not in _FAULT_EXEMPT

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "category": self.category,
            "command": self.command,
            "remaining": self.remaining,
            "after": self.after,
        }


@dataclass(eq=False)
class _Connection:
    id: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    logged_in: bool = False
    user: str | None = None
    challenge: bytes | None = None
    tasks: dict[asyncio.Task[None], str | None] = field(default_factory=dict)
    closed: bool = False

    def forget(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)

    def send(self, sentences: Iterable[Sentence], tag: str | None = None) -> None:
        if self.closed:
            return
        suffix = [f".tag={tag}"] if tag is not None else []
        self.writer.write(b"".join(encode_sentence([*s, *suffix]) for s in sentences))

    async def drain(self) -> None:
        if not self.closed:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def fatal(self, reason: str) -> None:
        self.send([["!fatal", reason]])
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    def abort(self) -> None:
        self.closed = True
        self.writer.transport.abort()


class RouterSim:
    """A RouterOS API endpoint with in-memory state. Start many: each one is just a listening socket."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "",
        logins: Mapping[str, str] | None = None,
        version: str = "7.18.2",
        identity: str = "MikroTik",
        board_name: str = "hAP ac^2",
        hotspot_servers: Iterable[str] = ("hotspot1",),
        slow: float = 0.0,
        down: bool = False,
        down_mode: DownMode = "refuse",
        empty_reply: bool | None = None,
        bool_style: Literal["true", "yes"] | None = None,
        strict: bool = True,
        max_word: int = DEFAULT_MAX_WORD,
    ) -> None:
        """``logins`` (API user → password) replaces ``username``/``password`` when given.

        ``version`` drives version-dependent replies: ``!empty`` for empty prints from 7.18,
        ``true``/``false`` flags from 7 (``yes``/``no`` before), the login-failure wording, and which login
        methods work.
        ``empty_reply``/``bool_style`` override those two. ``strict`` False accepts unknown properties.
        """
        self.host = host
        self._requested_port = port
        self.logins: dict[str, str] = dict(logins) if logins is not None else {username: password}
        self.state = RouterState(
            version=version,
            identity=identity,
            board_name=board_name,
            hotspot_servers=hotspot_servers,
            bool_style=bool_style,
            empty_reply=empty_reply,
            strict=strict,
        )
        self.slow = slow
        self.max_word = max_word
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._down = down
        self._down_mode: DownMode = down_mode
        self._port = 0
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._next_conn = 0

    # --- lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._sock is not None or self._server is not None

    async def start(self) -> int:
        """Bind (and, unless down in ``refuse`` mode, listen); returns the port."""
        if self.running:
            return self._port
        self._sock = self._bind(self._requested_port)
        self._port = int(self._sock.getsockname()[1])
        if not (self._down and self._down_mode == "refuse"):
            await self._listen()
        return self._port

    async def stop(self) -> None:
        await self._stop_listening()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        await self._drop_connections()

    async def __aenter__(self) -> RouterSim:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.setblocking(False)
        return sock

    async def _listen(self) -> None:
        if self._sock is None:
            self._sock = self._bind(self._port)
        self._server = await asyncio.start_server(self._accept, sock=self._sock)
        self._sock = None  # the server owns it now

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # 3.12+ waits for open connections here; they are dropped separately.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 0.5)

    async def _drop_connections(self) -> None:
        for conn in list(self._conns):
            for task in list(conn.tasks):
                task.cancel()
            conn.abort()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers, timeout=1.0)

    # --- knobs

    @property
    def down(self) -> bool:
        return self._down

    @property
    def down_mode(self) -> DownMode:
        return self._down_mode

    async def set_down(self, down: bool = True, mode: DownMode | None = None) -> None:
        """Take the router off the network or bring it back; going down drops every open connection.

        ``refuse``: nothing listens (connect fails with ConnectionRefusedError); ``close``: connections are
        accepted and closed at once; ``hang``: accepted and never answered (client timeouts).
        """
        if mode is not None:
            if mode not in DOWN_MODES:
                raise ValueError(f"down mode must be one of {DOWN_MODES}")
            self._down_mode = mode
        self._down = down
        if not self.running:
            return
        if down:
            await self._drop_connections()
            if self._down_mode == "refuse" and self._server is not None:
                await self._stop_listening()
                # Keep the port: bound but not listening refuses connections and stops anyone taking it.
                self._sock = self._bind(self._port)
            elif self._down_mode != "refuse" and self._server is None:
                await self._listen()
        elif self._server is None:
            await self._listen()

    @property
    def version(self) -> str:
        return self.state.version

    @version.setter
    def version(self, value: str) -> None:
        self.state.version = value

    def set_credentials(self, username: str, password: str) -> None:
        """Only this API user may log in from now on (open sessions stay logged in)."""
        self.logins = {username: password}

    def _queue(self, fault: Fault) -> None:
        if fault.remaining < 1 or fault.after < 0:
            raise ValueError("count must be at least 1 and after at least 0")
        self.faults.append(fault)

    def trap_next(
        self,
        message: str,
        *,
        category: int | None = None,
        command: str | None = None,
        count: int = 1,
        after: int = 0,
    ) -> None:
        """The next ``count`` commands (only those for ``command`` if given, e.g. ``/ip/hotspot/user/add``)
        answer ``!trap =message=<message>`` + ``!done`` instead of running; ``after`` lets that many
        matching commands succeed first (the N-th add fails)."""
        self._queue(Fault("trap", message, category, command, count, after))

    def fatal_next(self, message: str = QUIT, *, command: str | None = None, after: int = 0) -> None:
        """The next command gets ``!fatal <message>`` and the connection closes (librouteros FatalError)."""
        self._queue(Fault("fatal", message, None, command, 1, after))

    def drop_next(self, *, command: str | None = None, after: int = 0) -> None:
        """The next command's reply stops mid-sentence and the connection closes (ConnectionClosed)."""
        self._queue(Fault("drop", "", None, command, 1, after))

    def hang_next(self, *, command: str | None = None, after: int = 0) -> None:
        """The next command is never answered (the client times out)."""
        self._queue(Fault("hang", "", None, command, 1, after))

    def clear_faults(self) -> None:
        self.faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.hits(path) and fault.after > 0:
                fault.after -= 1
            elif fault.hits(path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # --- inspection and simulation

    def rows(self, path: str) -> list[Row]:
        return self.state.rows(path)

    def users(self) -> list[Row]:
        return self.state.rows(USER)

    def profiles(self) -> list[Row]:
        return self.state.rows(USER_PROFILE)

    def active(self) -> list[Row]:
        return self.state.rows(ACTIVE)

    def snapshot(self) -> dict[str, list[Row]]:
        return self.state.snapshot()

    def simulate_login(
        self,
        user: str,
        *,
        password: str | None = None,
        address: str | None = None,
        mac_address: str | None = None,
        server: str | None = None,
        uptime: float = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> Row:
        """A hotspot client logs in as ``user``; returns the new ``/ip/hotspot/active`` row.

        Raises :class:`RosTrap` when the router would refuse (no such user, disabled, limits, shared-users).
        """
        return self.state.hotspot_login(
            user,
            password=password,
            address=address,
            mac_address=mac_address,
            server=server,
            uptime=uptime,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
        )

    def simulate_logout(self, *, user: str | None = None, session_id: str | None = None) -> int:
        return self.state.logout(user=user, session_id=session_id)

    def add_traffic(self, session_id: str, *, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self.state.add_traffic(session_id, bytes_in=bytes_in, bytes_out=bytes_out)

    def advance(self, seconds: float) -> None:
        self.state.advance(seconds)

    async def reboot(self) -> None:
        """Connections drop, sessions end, every ``.id`` changes."""
        self.state.reboot()
        await self._drop_connections()

    def reset(self) -> None:
        """Factory state, empty calls log, no faults (knobs and credentials stay)."""
        self.state.reset()
        self.calls.clear()
        self.faults.clear()

    def info(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self._port,
            "version": self.state.version,
            "identity": self.state.identity,
            "users": sorted(self.logins),
            "down": self._down,
            "down_mode": self._down_mode,
            "slow": self.slow,
            "empty_reply": self.state.empty_reply,
            "bool_style": self.state.bool_true,
            "connections": len(self._conns),
            "faults": [f.to_json() for f in self.faults],
            "calls": len(self.calls),
        }

    # --- connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._next_conn += 1
        conn = _Connection(self._next_conn, reader, writer)
        self._conns.add(conn)
        try:
            if self._down and self._down_mode == "hang":
                while await reader.read(65536):
                    pass
            elif not self._down:
                await self._session(conn)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError, OSError) as exc:
            logger.debug("connection %s ended: %r", conn.id, exc)
        except asyncio.CancelledError:
            # Dropped by stop() or set_down() while a client kept it open. Ending quietly: a handler task
            # that ends cancelled makes Python 3.11's stream callback log an error.
            logger.debug("connection %s dropped", conn.id)
        finally:
            for running in list(conn.tasks):
                running.cancel()
            conn.close()
            self._conns.discard(conn)
            self._handlers.discard(task)

    async def _session(self, conn: _Connection) -> None:
        while not conn.closed:
            words = await read_sentence(conn.reader, max_word=self.max_word)
            if not words:
                continue  # empty sentences are ignored
            cmd = Command.parse(words)
            self.calls.append(Call(conn.id, time.time(), redact(words), cmd.tag))
            if not conn.logged_in:
                # Nothing runs concurrently with a login: later sentences wait until it is decided.
                await self._run(conn, cmd)
                await conn.drain()
                continue
            task = asyncio.create_task(self._run(conn, cmd))
            conn.tasks[task] = cmd.tag
            task.add_done_callback(conn.forget)

    async def _run(self, conn: _Connection, cmd: Command) -> None:
        if self.slow > 0:
            await asyncio.sleep(self.slow)
        path = cmd.path
        if not conn.logged_in and path != "/login":
            conn.fatal(NOT_LOGGED_IN)
            return
        fault = self._take_fault(path)
        if fault is not None:
            await self._apply(conn, cmd, fault)
            return
        if path == "/login":
            conn.send(self._login(conn, cmd), cmd.tag)
        elif path == "/cancel":
            await self._cancel(conn, cmd)
        elif path == "/quit":
            conn.fatal(QUIT)
        elif path == "/system/reboot":
            conn.send([["!done"]], cmd.tag)
            await conn.drain()
            # Not awaited here: rebooting drops this very connection, and with it this task.
            rebooting = asyncio.create_task(self.reboot())
            self._background.add(rebooting)
            rebooting.add_done_callback(self._background.discard)
        elif path.endswith("/listen"):
            await self._listen_to(conn, cmd)
        else:
            try:
                replies = self.state.execute(path, cmd.attrs, cmd.queries)
            except RosTrap as trap:
                replies = [trap.sentence(), ["!done"]]
            except Exception as exc:
                # A simulator bug: say so on the wire rather than leave the client waiting for its timeout.
                logger.exception("simulator error running %s", path)
                replies = [RosTrap(f"failure: simulator error: {exc!r}", 4).sentence(), ["!done"]]
            conn.send(replies, cmd.tag)
        await conn.drain()

    async def _apply(self, conn: _Connection, cmd: Command, fault: Fault) -> None:
        if fault.kind == "trap":
            conn.send([RosTrap(fault.message, fault.category).sentence(), ["!done"]], cmd.tag)
        elif fault.kind == "fatal":
            conn.fatal(fault.message)
        elif fault.kind == "drop":
            whole = encode_sentence(["!done", "=ret=*DEADBEEF"])
            conn.writer.write(whole[: len(whole) // 2])
            conn.close()
        else:
            await asyncio.Future()  # answered never; cancelled with the connection

    def _login(self, conn: _Connection, cmd: Command) -> list[Sentence]:
        state = self.state
        name = cmd.attrs.get("name")
        failed = [["!trap", f"=message={state.login_failure}"], ["!done"]]
        if name is not None and "response" in cmd.attrs:
            expected = self.logins.get(name)
            if conn.challenge is None or expected is None:
                return failed
            digest = hashlib.md5(b"\x00" + expected.encode() + conn.challenge, usedforsecurity=False)
            conn.challenge = None
            if cmd.attrs["response"].lower() != "00" + digest.hexdigest():
                return failed
            conn.logged_in, conn.user = True, name
            return [["!done"]]
        if name is not None and "password" in cmd.attrs and state.plain_login:
            if name in self.logins and secrets.compare_digest(
                self.logins[name].encode(), cmd.attrs["password"].encode()
            ):
                conn.logged_in, conn.user = True, name
                return [["!done"]]
            return failed
        if state.challenge_login:
            # Pre-6.43 routers answer any /login with a challenge (refs §3.5).
            conn.challenge = secrets.token_bytes(16)
            return [["!done", f"=ret={conn.challenge.hex()}"]]
        return failed

    async def _cancel(self, conn: _Connection, cmd: Command) -> None:
        me = asyncio.current_task()
        wanted = cmd.attrs.get("tag")
        targets = {
            task: tag
            for task, tag in conn.tasks.items()
            if task is not me and not task.done() and (wanted is None or tag == wanted)
        }
        for task in targets:
            task.cancel()
        if targets:
            await asyncio.wait(targets)
        for tag in targets.values():
            conn.send([RosTrap(INTERRUPTED, 2).sentence(), ["!done"]], tag)
        conn.send([["!done"]], cmd.tag)

    async def _listen_to(self, conn: _Connection, cmd: Command) -> None:
        menu_path = cmd.path.removesuffix("/listen")
        menu = MENUS.get(menu_path)
        if menu is None or "listen" not in menu.verbs:
            trap = RosTrap("no such command" if menu is not None else "no such command prefix", 0)
            conn.send([trap.sentence(), ["!done"]], cmd.tag)
            return
        changes: asyncio.Queue[Row] = asyncio.Queue()
        unsubscribe = self.state.subscribe(menu_path, changes.put_nowait)
        proplist = cmd.attrs.get(".proplist")
        wanted = [p for p in proplist.split(",") if p] if proplist is not None else None
        try:
            while True:
                row = await changes.get()
                if ".dead" not in row and not matches(row, cmd.queries, lambda _n, a, b: a == b):
                    continue
                if wanted is not None and ".dead" not in row:
                    row = {k: row[k] for k in wanted if k in row}
                conn.send([["!re", *(f"={k}={v}" for k, v in row.items())]], cmd.tag)
                await conn.drain()
        finally:
            unsubscribe()


def run(
    host: str = "127.0.0.1",
    port: int = 8728,
    *,
    username: str = "admin",
    password: str = "",
    version: str = "7.18.2",
    identity: str = "MikroTik",
    routers: int = 1,
    control_port: int | None = None,
    slow: float = 0.0,
) -> None:
    """Serve ``routers`` simulated routers on ``port``, ``port+1``, ...; with ``control_port`` also the
    HTTP control API (``/_sim/routers/...``) on that port."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                host,
                port,
                username=username,
                password=password,
                version=version,
                identity=identity,
                routers=routers,
                control_port=control_port,
                slow=slow,
            )
        )


async def serve(
    host: str = "127.0.0.1",
    port: int = 8728,
    *,
    username: str = "admin",
    password: str = "",
    version: str = "7.18.2",
    identity: str = "MikroTik",
    routers: int = 1,
    control_port: int | None = None,
    slow: float = 0.0,
) -> None:
    sims = [
        RouterSim(
            host=host,
            port=port + n if port else 0,
            username=username,
            password=password,
            version=version,
            identity=identity if routers == 1 else f"{identity}-{n + 1}",
            slow=slow,
        )
        for n in range(routers)
    ]
    for sim in sims:
        await sim.start()
        logger.warning("RouterOS API sim listening on %s:%s", host, sim.port)
    try:
        if control_port is None:
            await asyncio.Future()
        else:
            import uvicorn

            from sim.routeros.control import create_control_app

            app = create_control_app(sims, host=host)
            server = uvicorn.Server(uvicorn.Config(app, host=host, port=control_port, log_level="warning"))
            await server.serve()
    finally:
        for sim in sims:
            await sim.stop()
