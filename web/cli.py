"""The `lipapush` command line: the composition root for processes and bootstrap commands."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from core.config import Settings, SettingsError, load_settings
from core.runtime import Runtime, configure

T = TypeVar("T")

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
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _setup_logging(settings: Settings) -> None:
    from web.logs import setup_logging

    setup_logging(settings.LOG_LEVEL, json=settings.LOG_JSON)


def bootstrap(**overrides: object) -> Runtime:
    """Settings + runtime for one-shot commands, whose output is for people: only warnings are logged."""
    from web.logs import setup_logging

    settings = _settings(**overrides)
    setup_logging("WARNING", json=settings.LOG_JSON)
    return configure(settings)


def _run(rt: Runtime, coro: Awaitable[T]) -> T:
    async def main() -> T:
        try:
            return await coro
        finally:
            await rt.aclose()

    return asyncio.run(main())  # type: ignore[arg-type]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


# -- processes ------------------------------------------------------------------------------------
def _serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    simulator: bool,
    worker: bool,
    scheduler: bool,
    bot: bool = True,
) -> None:
    import uvicorn

    from core.migrate import upgrade
    from web.app import create_app

    _setup_logging(settings)
    upgrade(settings.DATABASE_URL)
    rt = configure(settings)
    application = create_app(
        rt, mount_simulator=simulator, run_worker=worker, with_scheduler=scheduler, with_bot=bot
    )
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=settings.LOG_LEVEL.lower(),
        proxy_headers=True,
        log_config=None,  # keep our handlers (and their token redaction) instead of uvicorn's own
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Everything in one process: API, callbacks, worker, scheduler and the Daraja simulator.

    Migrates the database first. With no settings: SQLite file ./lipapush.db and the in-process broker.
    """
    if not os.environ.get("PUBLIC_BASE_URL"):
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        os.environ["PUBLIC_BASE_URL"] = f"http://{shown}:{port}"
    settings = _settings()
    broker = "redis" if settings.REDIS_URL else "in-process"
    console.print(
        f"lipapush on [bold]http://{host}:{port}[/bold]  (API docs /docs, Daraja simulator /sim/daraja, "
        f"database {settings.DATABASE_URL.split('@')[-1]}, broker {broker})"
    )
    _serve(settings, host, port, simulator=True, worker=True, scheduler=True)


@app.command()
def web(
    host: Annotated[str, typer.Option()] = "0.0.0.0",  # noqa: S104 - a container listens on all interfaces
    port: Annotated[int, typer.Option()] = 8000,
    with_simulator: Annotated[bool, typer.Option(help="Also mount the Daraja simulator")] = False,
) -> None:
    """The HTTP API and callbacks only (production: run `worker` and `scheduler` beside it)."""
    settings = _settings()
    if not settings.REDIS_URL:
        err.print("[yellow]REDIS_URL is not set: jobs will wait for a `lipapush serve` process.[/yellow]")
    # Polling belongs to `lipapush bot`; the web process takes updates only by webhook.
    _serve(
        settings,
        host,
        port,
        simulator=with_simulator,
        worker=False,
        scheduler=False,
        bot=bool(settings.TELEGRAM_WEBHOOK_SECRET),
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
    """Periodic jobs (reconciliation) and the job-outbox relay. Run one per deployment."""
    import signal

    from core.jobs.scheduler import run_scheduler
    from web.app import periodic_jobs

    settings = _settings()
    if not settings.REDIS_URL:
        raise _fail("REDIS_URL is required for a separate scheduler (without it, use `lipapush serve`).")
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
    """Apply migrations (safe to run again)."""
    from core.migrate import upgrade

    settings = _settings()
    upgrade(settings.DATABASE_URL, revision)
    console.print("database is up to date")


@app.command()
def keygen() -> None:
    """Print a new Fernet key for ENCRYPTION_KEYS (put it first to rotate; keep the old ones after it)."""
    from cryptography.fernet import Fernet

    console.print(Fernet.generate_key().decode())


# -- bootstrap ---------------------------------------------------------------------------------------
@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a platform administrator."""
    from core.auth.models import Role
    from core.auth.service import auth
    from core.errors import LipapushError
    from core.runtime import unit_of_work

    rt = bootstrap()

    async def main() -> None:
        async with unit_of_work() as session:
            await auth.create_user(
                session, email=email, password=password, role=Role.platform_admin, tenant_id=None
            )

    try:
        _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"platform admin {email} created")


from web import cli_billing, cli_hotspot, cli_tenants  # noqa: E402,F401  - register their commands
from web.cli_sim import sim_app  # noqa: E402

app.add_typer(sim_app, name="sim")


def main() -> None:
    app()
