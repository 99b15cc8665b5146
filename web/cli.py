"""The `lipapush` command line: the composition root for processes and bootstrap commands."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
import sys
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from core.config import Settings, SettingsError, data_dir, load_settings
from core.runtime import Runtime, configure
from core.text import has_unstorable

T = TypeVar("T")


# -- help ---------------------------------------------------------------------------------------------
# Typer prints a type column (`<str>`, `<bool>`, `<float>`) beside every option and argument. It says
# nothing the help text does not, and for flags (`--help <bool>`) it reads as if a value were wanted.
# Choices (`<paybill|till>`) and ranges stay: they are the useful part of that column.
class _QuietOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return super().display_type_rich(ctx) if _has_choices(self) else None


class _QuietArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return super().display_type_rich(ctx) if _has_choices(self) else None


def _has_choices(param: TyperOption | TyperArgument) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    return bool(descriptor is not None and descriptor.is_choice and not getattr(param, "is_flag", False))


def _quiet_types(params: Iterable[object]) -> None:
    # The parameters are built by Typer (and --help by click) before any hook of ours runs, so their
    # class is narrowed here, at help time; the subclasses add no state.
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _QuietOption
        elif type(param) is TyperArgument:
            param.__class__ = _QuietArgument


class _Command(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _quiet_types(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _Group(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _quiet_types(self.get_params(ctx))
        super().format_help(ctx, formatter)


def _quiet_help(typer_app: typer.Typer) -> None:
    """Use the help without type column for every command and group under `typer_app`, including the
    ones other modules registered (`sim`)."""
    typer_app.info.cls = _Group
    for command in typer_app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = _Command
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _quiet_help(group.typer_instance)


app = typer.Typer(help="lipapush: M-Pesa STK push collections for many businesses.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
admin_app = typer.Typer(help="Platform administrators.", no_args_is_help=True)
tenant_app = typer.Typer(help="Businesses (tenants).", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")

console = Console()
err = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


def _ready(settings: Settings) -> None:
    """Stop with one line unless the database exists and is migrated. Opening a missing SQLite file
    would create an empty one, and an unmigrated database fails deep in a query with a long traceback."""
    from core.migrate import DatabaseNotReady, check_ready

    try:
        check_ready(settings.DATABASE_URL)
    except DatabaseNotReady as exc:
        raise _fail(str(exc)) from None


def _setup_logging(settings: Settings) -> None:
    from web.logs import setup_logging

    setup_logging(settings.LOG_LEVEL, json=settings.LOG_JSON)


def bootstrap(**overrides: object) -> Runtime:
    """Settings + runtime for one-shot commands, whose output is for people: only warnings are logged."""
    from web.logs import setup_logging

    settings = _settings(**overrides)
    setup_logging("WARNING", json=settings.LOG_JSON)
    _ready(settings)
    return configure(settings)


def bootstrap_client(url: str | None) -> Runtime:
    """bootstrap() for commands that reach the running server: a simulator channel's test push goes
    to the simulator inside `serve`, and its callback comes back to it."""
    import logging

    rt = bootstrap(PUBLIC_BASE_URL=server_url(url, _settings()))
    # A push that cannot be sent is explained in one line by the command; the client's retry
    # warnings would only repeat it, three times, before that line.
    logging.getLogger("core.daraja.client").setLevel(logging.ERROR)
    return rt


# -- finding the running server -------------------------------------------------------------------------
# `serve` writes where it listens to <data dir>/server.json, so commands find it on any port without
# PUBLIC_BASE_URL. The file is removed when serve stops; a killed serve leaves it behind, hence the pid.
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Where `lipapush serve` runs, e.g. http://127.0.0.1:8001. Default: the running serve's "
        "address (server.json in the data directory), else PUBLIC_BASE_URL, else http://127.0.0.1:8000.",
    ),
]


def server_file() -> Path:
    return data_dir() / "server.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, only not ours to signal
    except OSError:
        return False
    return True


def running_server(database_url: str) -> dict[str, Any] | None:
    """What server.json says about the serve still running on this database, or None."""
    from core.migrate import database_location

    try:
        info = json.loads(server_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    if not isinstance(info.get("url"), str):
        return None
    # A serve on another database would not know the businesses this command reads or creates.
    if info.get("database") != database_location(database_url) or not _pid_alive(info["pid"]):
        return None
    return info


def server_url(explicit: str | None, settings: Settings) -> str:
    """--url, else the running serve's address, else PUBLIC_BASE_URL (its default included)."""
    if explicit is not None:
        if not explicit.startswith(("http://", "https://")):
            raise _fail(f"--url {explicit}: give the full address, e.g. http://127.0.0.1:8001", 2)
        return explicit.rstrip("/")
    running = running_server(settings.DATABASE_URL)
    return str(running["url"]) if running else settings.base_url


def _advertise(settings: Settings, url: str, port: int) -> None:
    from core.migrate import database_location

    path = server_file()
    info = {
        "url": url,
        "port": port,
        "pid": os.getpid(),
        "database": database_location(settings.DATABASE_URL),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".server.{os.getpid()}.json")
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # readers never see half a file
    except OSError as exc:
        err.print(
            f"[yellow]Could not write {path} ({exc.strerror}): other lipapush commands will not find "
            "this server; give them --url or set PUBLIC_BASE_URL.[/yellow]",
            soft_wrap=True,
        )


def _unadvertise() -> None:
    path = server_file()
    with contextlib.suppress(OSError, ValueError):
        # Another serve may have taken the file over since; it is theirs then.
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def _run(rt: Runtime, coro: Awaitable[T]) -> T:
    async def main() -> T:
        try:
            return await coro
        finally:
            await rt.aclose()

    return asyncio.run(main())  # type: ignore[arg-type]


def _fail(message: str, code: int = 1) -> typer.Exit:
    # soft_wrap: one message is one line, whatever the terminal width (scripts match on it).
    err.print(f"[red]{escape(message)}[/red]", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def print_table(table: Table) -> None:
    """A table fits the terminal (long cells wrap, never cut); piped or redirected, each row stays on
    one line at its natural width, because rich would otherwise squeeze it into 80 columns."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(width=100_000), table).maximum
    Console(file=console.file, width=max(natural, console.width), no_color=console.no_color).print(table)


# -- processes ------------------------------------------------------------------------------------
def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a second serve on a busy port must
    fail here, before it migrates, re-sends outbox jobs or starts a worker and a scheduler."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise _fail(
            f"cannot listen on {host}: {exc.strerror}; give --host an address of this machine"
        ) from None
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets that say they are TCP.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind at once after a restart
        sock.bind(address)
        sock.listen(2048)  # connections made while the app starts wait instead of being refused
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            holder = running_server_on(port)
            by = f" (lipapush serve, pid {holder['pid']})" if holder else ""
            raise _fail(f"port {port} is in use{by}: use --port or stop the other lipapush") from None
        if exc.errno == errno.EACCES:
            raise _fail(
                f"port {port} needs root: use --port with a port above 1023, e.g. --port 8000"
            ) from None
        raise _fail(f"cannot listen on {host}:{port} ({exc.strerror}): check --host and --port") from None
    return sock


def running_server_on(port: int) -> dict[str, Any] | None:
    """The lipapush serve (on any database) that server.json says listens on `port`, if alive."""
    try:
        info = json.loads(server_file().read_text(encoding="utf-8"))
        alive = isinstance(info.get("pid"), int) and _pid_alive(info["pid"])
        return info if alive and info.get("port") == port else None
    except (OSError, ValueError, AttributeError):
        return None


def _migrate(settings: Settings, revision: str = "head") -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from core.migrate import DatabaseNotReady, database_location, upgrade

    database_url, owner_url = settings.DATABASE_URL, settings.MIGRATION_DATABASE_URL
    try:
        warnings = upgrade(database_url, revision, migration_url=owner_url)
    except DatabaseNotReady as exc:
        raise _fail(str(exc)) from None
    except (OSError, SQLAlchemyError) as exc:
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        check = (
            "MIGRATION_DATABASE_URL"
            if owner_url
            # The app's own role may not create tables: migrations run as the schema's owner.
            else "DATABASE_URL (or set MIGRATION_DATABASE_URL to the schema owner's)"
            if "permission denied" in reason
            else "DATABASE_URL"
        )
        raise _fail(
            f"Cannot migrate the database at {database_location(owner_url or database_url)} ({reason}): "
            f"check {check} and that the database server is running."
        ) from None
    for warning in warnings:
        err.print(f"[yellow]warning: {escape(warning)}[/yellow]", soft_wrap=True, highlight=False)


def _serve(
    settings: Settings,
    sock: socket.socket,
    host: str,
    *,
    simulator: bool,
    worker: bool,
    scheduler: bool,
    bot: bool = True,
    advertise: bool = False,
    workers: int | None = None,
) -> None:
    """Run the app on `sock`: in this process, or (`workers`) in that many forked children that a
    supervisor replaces the moment one dies (web/supervisor.py)."""
    import uvicorn

    from web.app import create_app

    _setup_logging(settings)
    _migrate(settings)
    rt = configure(settings)
    application = create_app(
        rt, mount_simulator=simulator, run_worker=worker, with_scheduler=scheduler, with_bot=bot
    )
    config = uvicorn.Config(
        application,
        host=host,
        port=int(sock.getsockname()[1]),
        log_level=settings.LOG_LEVEL.lower(),
        proxy_headers=True,
        log_config=None,  # keep our handlers (and their token redaction) instead of uvicorn's own
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # Stop advertising first: uvicorn re-raises SIGTERM once it has stopped, and the process
            # then ends without running our `finally`.
            if advertise:
                _unadvertise()
            await super().shutdown(sockets)

    from web.warmup import warm_up

    warm_up(application)
    if workers is None:
        Server(config).run(sockets=[sock])
        return
    from web.supervisor import Supervisor

    raise typer.Exit(Supervisor(lambda: Server(config).run(sockets=[sock]), workers=workers).run())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port)", min=0, max=65535)] = 8000,
) -> None:
    """Everything in one process: API, callbacks, worker, scheduler and the Daraja simulator.

    Migrates the database first. With no settings: SQLite in the data directory ($LIPAPUSH_HOME, else
    ~/.local/share/lipapush) and the in-process broker. Other lipapush commands find this server
    through server.json there.
    """
    from core.migrate import database_location

    sock = _listen(host, port)
    with contextlib.closing(sock):
        port = int(sock.getsockname()[1])
        if not os.environ.get("PUBLIC_BASE_URL"):
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
            os.environ["PUBLIC_BASE_URL"] = f"http://{shown}:{port}"
        settings = _settings()
        broker = "redis" if settings.REDIS_URL else "in-process"
        console.print(
            f"lipapush on [bold]http://{host}:{port}[/bold]  (API docs /docs, Daraja simulator /sim/daraja, "
            f"broker {broker})\ndatabase {database_location(settings.DATABASE_URL)}",
            soft_wrap=True,
        )
        # Advertised as soon as it listens: a command run while serve starts waits in the backlog.
        _advertise(settings, settings.base_url, port)
        try:
            _serve(settings, sock, host, simulator=True, worker=True, scheduler=True, advertise=True)
        finally:
            _unadvertise()


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "0.0.0.0",  # noqa: S104 - a container listens on all interfaces
    port: Annotated[int, typer.Option(help="Port to listen on", min=0, max=65535)] = 8000,
    with_simulator: Annotated[bool, typer.Option(help="Also mount the Daraja simulator")] = False,
    workers: Annotated[
        int,
        typer.Option(
            envvar="WEB_CONCURRENCY",
            min=1,
            max=64,
            help="Processes serving requests, forked from one that loaded the app: a process that dies "
            "is replaced within milliseconds",
        ),
    ] = 1,
) -> None:
    """The HTTP API and callbacks only (production: run `worker` and `scheduler` beside it)."""
    sock = _listen(host, port)
    with contextlib.closing(sock):
        settings = _settings()
        if not settings.REDIS_URL:
            err.print("[yellow]REDIS_URL is not set: jobs will wait for a `lipapush serve` process.[/yellow]")
        # Polling belongs to `lipapush bot`; the web process takes updates only by webhook.
        _serve(
            settings,
            sock,
            host,
            simulator=with_simulator,
            worker=False,
            scheduler=False,
            bot=bool(settings.TELEGRAM_WEBHOOK_SECRET),
            workers=workers,
        )


@app.command()
def worker(
    threads: Annotated[int, typer.Option(help="Worker threads per process")] = 8,
    processes: Annotated[int, typer.Option(help="Worker processes (one async loop each)")] = 1,
) -> None:
    """Run jobs from the Redis broker."""
    import signal
    import subprocess
    import sys
    import threading

    import web.app  # noqa: F401  - the composition root imports every job module

    settings = _settings()
    if not settings.REDIS_URL:
        raise _fail("REDIS_URL is required for a separate worker (without it, use `lipapush serve`).")
    _ready(settings)
    _setup_logging(settings)
    # Async jobs run on one event-loop thread per process, so more CPU means more processes.
    children = [
        subprocess.Popen([sys.argv[0], "worker", "--threads", str(threads), "--processes", "1"])  # noqa: S603
        for _ in range(max(0, processes - 1))
    ]
    rt = configure(settings)
    rt.jobs.start_worker(threads=threads)
    console.print(f"worker running: {processes} process(es) × {threads} threads")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for child in children:
        child.terminate()
    rt.jobs.stop_worker()
    for child in children:
        child.wait(timeout=30)


@app.command()
def bot() -> None:
    """Run the Telegram bot (long polling). Needs TELEGRAM_BOT_TOKEN; TELEGRAM_API_BASE points it at
    another Bot API server. In production the web process can take updates by webhook instead."""
    import web.app  # noqa: F401  - every job module, so notifications sent from here are known

    settings = _settings()
    if not settings.TELEGRAM_BOT_TOKEN:
        raise _fail("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set it.")
    _ready(settings)
    _setup_logging(settings)
    rt = configure(settings)

    async def main() -> None:
        from web.telegram import BotRunner

        runner = BotRunner(settings.model_copy(update={"TELEGRAM_WEBHOOK_SECRET": None}))
        await runner.start()
        console.print("bot polling for updates")
        try:
            await runner.wait()
        finally:
            await runner.stop()

    _run(rt, main())


@app.command()
def scheduler() -> None:
    """Periodic jobs (reconciliation, sweeps) and the job-outbox relay.

    Run one, or one per machine for failover: exactly one leads (a Postgres advisory lock) and the
    others stand by, taking over within seconds of its death."""
    import signal

    from core.jobs.scheduler import run_scheduler
    from web.app import periodic_jobs

    settings = _settings()
    if not settings.REDIS_URL:
        raise _fail("REDIS_URL is required for a separate scheduler (without it, use `lipapush serve`).")
    _ready(settings)
    _setup_logging(settings)
    rt = configure(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await run_scheduler(rt, periodic_jobs(rt), relay_every=5.0, stop=stop)

    _run(rt, main())


# -- database ---------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Create the database if needed and apply migrations (safe to run again)."""
    from core.migrate import database_location

    settings = _settings()
    _migrate(settings, revision)
    console.print(f"database {database_location(settings.DATABASE_URL)} is up to date", soft_wrap=True)


@app.command()
def keygen(
    env: Annotated[
        bool,
        typer.Option(
            "--env",
            help="Print ENCRYPTION_KEYS, SECRET_KEY, AT_CALLBACK_SECRET and POSTGRES_PASSWORD as .env "
            "lines, for a first start: lipapush keygen --env >> .env",
        ),
    ] = False,
) -> None:
    """Print a new Fernet key for ENCRYPTION_KEYS (put it first to rotate; keep the old ones after it)."""
    import secrets

    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    if not env:
        console.print(key)
        return
    # typer.echo, not rich: the lines go into a file, and rich would wrap them at the terminal width.
    # token_urlsafe's alphabet is [A-Za-z0-9_-]: AT_CALLBACK_SECRET's pattern, and POSTGRES_PASSWORD
    # goes into DATABASE_URL unescaped. 48 bytes give 64 characters, twice SECRET_KEY's minimum.
    typer.echo(f"ENCRYPTION_KEYS={key}")
    typer.echo(f"SECRET_KEY={secrets.token_urlsafe(48)}")
    typer.echo(f"AT_CALLBACK_SECRET={secrets.token_urlsafe(32)}")
    typer.echo(f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}")


# -- bootstrap ---------------------------------------------------------------------------------------
@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a platform administrator."""
    from core.access.actor import Actor, Via
    from core.auth.use_cases_admin import create_platform_admin
    from core.errors import LipapushError

    rt = bootstrap()
    try:
        _run(rt, create_platform_admin(Actor.system(via=Via.cli), email=email, password=password))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"platform admin {email} created")


from web import (  # noqa: E402,F401  - register their commands
    cli_apps,
    cli_billing,
    cli_c2b,
    cli_channels,
    cli_hotspot,
    cli_mcp,
    cli_payouts,
    cli_plans,
    cli_tenants,
    cli_usage,
)
from web.cli_sim import sim_app  # noqa: E402

app.add_typer(sim_app, name="sim")
_quiet_help(app)


def main() -> None:
    # An argument that is not UTF-8 reaches Python as lone surrogates (PEP 383), which no database can
    # store and most code cannot even print: refused here, by position, before any command runs.
    for position, arg in enumerate(sys.argv[1:], 1):
        if has_unstorable(arg):
            _fail(
                f"Argument {position} is not valid UTF-8 text: retype it, or use a UTF-8 locale "
                "(LANG=C.UTF-8)."
            )
            raise SystemExit(2)
    app()
