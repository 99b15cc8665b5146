"""`lipapush app …`: a business's apps (what a developer integrates as: its keys, webhooks, channel)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from core.apps import use_cases
from core.apps.schemas import AppOut
from core.errors import LipapushError
from web.cli import _fail, _run, app, bootstrap, console, print_table
from web.cli_channels import channel_id_of
from web.cli_tenants import _acting_for

app_app = typer.Typer(
    help="Apps of a business: each has its keys, webhook endpoints and channel.", no_args_is_help=True
)
app.add_typer(app_app, name="app")

TenantOption = Annotated[str, typer.Option(help="Owner email, slug or id of the business")]


def _app_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _fail(f"{value!r} is not an app id: copy the id column of `lipapush app list`.") from None


def _table(rows: list[AppOut]) -> Table:
    table = Table("id", "name", "mode", "channel", "keys", "webhooks", "callback hosts", "created")
    for a in rows:
        table.add_row(
            str(a.id),
            a.name,
            a.mode.value,
            a.channel.label if a.channel else "no channel yet",
            str(a.key_count),
            str(a.webhook_endpoint_count),
            " ".join(a.callback_hosts) or "-",
            f"{a.created_at:%Y-%m-%d %H:%M}",
        )
    return table


@app_app.command("create")
def app_create(
    tenant: TenantOption,
    name: Annotated[str, typer.Option(help="1 to 80 characters, unique in the business")],
    callback_host: Annotated[
        list[str] | None,
        typer.Option(help="A host a push's own callback_url may point at; repeat for several (at most 20)"),
    ] = None,
    channel: Annotated[
        str | None, typer.Option(help="The channel's id (`lipapush channel list`); default: the primary one")
    ] = None,
) -> None:
    """Create an app on one of the business's M-Pesa channels and print it."""
    channel_id = channel_id_of(channel) if channel else None
    rt = bootstrap()

    async def main() -> AppOut:
        return await use_cases.create_app(
            await _acting_for(tenant), name=name, callback_hosts=callback_host, channel_id=channel_id
        )

    try:
        made = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    print_table(_table([made]))


@app_app.command("list")
def app_list(tenant: TenantOption) -> None:
    """A business's apps: mode, channel, working keys, webhook endpoints, callback hosts."""
    rt = bootstrap()

    async def main() -> list[AppOut]:
        return await use_cases.list_apps(await _acting_for(tenant))

    try:
        rows = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if not rows:
        console.print("No apps yet: `lipapush app create --tenant … --name …` makes one.")
        return
    print_table(_table(rows))


@app_app.command("rename")
def app_rename(
    tenant: TenantOption,
    app_id: Annotated[str, typer.Argument(help="The app's id (see `lipapush app list`)")],
    name: Annotated[str, typer.Option(help="The new name")],
) -> None:
    """Rename an app."""
    wanted = _app_id(app_id)
    rt = bootstrap()

    async def main() -> AppOut:
        return await use_cases.rename_app(await _acting_for(tenant), wanted, name=name)

    try:
        done = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"renamed: {done.name}", highlight=False)


@app_app.command("hosts")
def app_hosts(
    tenant: TenantOption,
    app_id: Annotated[str, typer.Argument(help="The app's id (see `lipapush app list`)")],
    callback_host: Annotated[
        list[str] | None, typer.Option(help="Repeat for several; none at all allows no callback_url")
    ] = None,
) -> None:
    """Replace the hosts a push's own callback_url may point at."""
    wanted = _app_id(app_id)
    rt = bootstrap()

    async def main() -> AppOut:
        return await use_cases.set_callback_hosts(
            await _acting_for(tenant), wanted, hosts=callback_host or []
        )

    try:
        done = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"callback hosts: {' '.join(done.callback_hosts) or 'none'}", highlight=False)


@app_app.command("channel")
def app_channel(
    tenant: TenantOption,
    app_id: Annotated[str, typer.Argument(help="The app's id (see `lipapush app list`)")],
    channel: Annotated[str, typer.Option(help="The channel's id (see `lipapush channel list`)")],
) -> None:
    """Send an app's pushes through another of the business's channels (one of the other mode only
    while the app has no working keys)."""
    wanted = _app_id(app_id)
    channel_id = channel_id_of(channel)
    rt = bootstrap()

    async def main() -> AppOut:
        return await use_cases.set_app_channel(await _acting_for(tenant), wanted, channel_id=channel_id)

    try:
        done = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"channel: {done.channel.label if done.channel else '-'}", highlight=False)


@app_app.command("archive")
def app_archive(
    tenant: TenantOption,
    app_id: Annotated[str, typer.Argument(help="The app's id (see `lipapush app list`)")],
) -> None:
    """Archive an app: its API keys are revoked at once. The business's last app cannot be archived."""
    wanted = _app_id(app_id)
    rt = bootstrap()

    async def main() -> AppOut:
        return await use_cases.archive_app(await _acting_for(tenant), wanted)

    try:
        done = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"archived: {done.name}", highlight=False)
