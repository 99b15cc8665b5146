"""`lipapush sim …`: run one of the local stand-ins for an outside service on its own."""

from __future__ import annotations

from typing import Annotated

import typer

sim_app = typer.Typer(help="Local stand-ins for outside services.", no_args_is_help=True)


@sim_app.command("daraja")
def sim_daraja(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8001,
    callback_delay: Annotated[float | None, typer.Option(help="Seconds before the callback")] = None,
) -> None:
    """Run the Daraja simulator alone."""
    from sim.daraja import run

    run(host=host, port=port, callback_delay=callback_delay)


@sim_app.command("telegram")
def sim_telegram(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8081,
) -> None:
    """Run the Telegram Bot API stand-in alone (point TELEGRAM_API_BASE at it)."""
    from sim.telegram import run

    run(host=host, port=port)
