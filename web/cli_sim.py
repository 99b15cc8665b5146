"""`lipapush sim …`: run one of the local stand-ins for an outside service on its own."""

from __future__ import annotations

from typing import Annotated

import typer

sim_app = typer.Typer(help="Local stand-ins for outside services.", no_args_is_help=True)

Host = Annotated[str, typer.Option(help="Address to listen on")]
# The Pesapal stand-in's own test key and secret (sim.pesapal.app), repeated here so that `--help` does not
# import the stand-in; they are public test values that lipapush must be given too.
_PESAPAL_SIM = ("sim-key", "sim-secret")


@sim_app.command("daraja")
def sim_daraja(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8001,
    callback_delay: Annotated[float | None, typer.Option(help="Seconds before the callback")] = None,
) -> None:
    """Run the Daraja simulator alone (point DARAJA_SIMULATOR_URL at it)."""
    from sim.daraja import run

    run(host=host, port=port, callback_delay=callback_delay)


@sim_app.command("telegram")
def sim_telegram(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8081,
) -> None:
    """Run the Telegram Bot API stand-in alone (point TELEGRAM_API_BASE at it)."""
    from sim.telegram import run

    run(host=host, port=port)


@sim_app.command("at")
def sim_at(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8002,
    api_key: Annotated[str, typer.Option(help="The apiKey header to accept (AT_API_KEY)")] = "sim-at-key",
    username: Annotated[str, typer.Option(help="The username to accept (AT_USERNAME)")] = "sandbox",
    dlr_url: Annotated[
        str | None, typer.Option(help="Where delivery reports go: {PUBLIC_BASE_URL}/callbacks/at/delivery")
    ] = None,
    auto_dlr: Annotated[
        float | None, typer.Option(help="Seconds until each message's delivery report is sent on its own")
    ] = None,
) -> None:
    """Run the Africa's Talking SMS stand-in alone (point AT_BASE_URL at it)."""
    from sim.africastalking import run

    run(host, port, api_key=api_key, username=username, dlr_url=dlr_url, auto_dlr=auto_dlr)


@sim_app.command("pesapal")
def sim_pesapal(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8003,
    consumer_key: Annotated[str, typer.Option(help="PESAPAL_CONSUMER_KEY to accept")] = _PESAPAL_SIM[0],
    consumer_secret: Annotated[str, typer.Option(help="PESAPAL_CONSUMER_SECRET to accept")] = _PESAPAL_SIM[1],
    token_ttl: Annotated[float, typer.Option(help="Seconds a token stays valid")] = 300.0,
) -> None:
    """Run the Pesapal stand-in alone (point PESAPAL_BASE_URL at it)."""
    from sim.pesapal import run

    run(host, port, consumer_key=consumer_key, consumer_secret=consumer_secret, token_ttl=token_ttl)


@sim_app.command("routeros")
def sim_routeros(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port of the first router")] = 8728,
    user: Annotated[str, typer.Option(help="API user name")] = "admin",
    password: Annotated[str, typer.Option(help="API user password")] = "",
    version: Annotated[str, typer.Option(help="RouterOS version to play, e.g. 6.49.10")] = "7.18.2",
    identity: Annotated[str, typer.Option()] = "MikroTik",
    routers: Annotated[int, typer.Option(help="Routers on consecutive ports")] = 1,
    slow: Annotated[float, typer.Option(help="Seconds before every reply")] = 0.0,
    control_port: Annotated[int | None, typer.Option(help="Serve the HTTP /_sim control API here")] = None,
) -> None:
    """Run MikroTik RouterOS API stand-ins (add one with `lipapush router add --host --port`)."""
    from sim.routeros import run

    run(
        host,
        port,
        username=user,
        password=password,
        version=version,
        identity=identity,
        routers=routers,
        control_port=control_port,
        slow=slow,
    )
