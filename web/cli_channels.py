"""`lipapush channel …`: a business's M-Pesa channels (a till per branch, a sandbox beside production)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
from rich.table import Table

from core.db import Scope
from core.errors import LipapushError
from core.runtime import unit_of_work
from core.tenants import use_cases_channels as use_cases
from core.tenants.models import ChannelKind, Environment
from core.tenants.service import tenants
from core.tenants.use_cases_channels import ChannelView
from web.cli import UrlOption, _fail, _run, app, bootstrap, bootstrap_client, console, print_table
from web.cli_tenants import CollectingKind, _acting_for, _verify_and_wait, channel_options

channel_app = typer.Typer(
    help="M-Pesa channels of a business: each is verified by its own KES 1 push; apps choose one.",
    no_args_is_help=True,
)
app.add_typer(channel_app, name="channel")

TenantOption = Annotated[str, typer.Option(help="Owner email, slug or id of the business")]
ChannelArg = Annotated[str, typer.Argument(help="The channel's id (see `lipapush channel list`)")]


def channel_id_of(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _fail(
            f"{value!r} is not a channel id: copy the id column of `lipapush channel list`."
        ) from None


def _table(rows: list[ChannelView]) -> Table:
    table = Table("id", "name", "primary", "kind", "number", "environment", "mode", "verification", "apps")
    for v in rows:
        c = v.channel
        table.add_row(
            str(c.id),
            c.name,
            "yes" if c.primary else "",
            c.kind.value,
            c.till_number if c.kind is ChannelKind.till and c.till_number else c.business_short_code,
            c.environment.value,
            c.mode.value,
            v.verification.state + (f": {v.verification.reason}" if v.verification.reason else ""),
            str(v.app_count),
        )
    return table


@channel_app.command("list")
def channel_list(tenant: TenantOption) -> None:
    """A business's channels, the primary one first, with where each one's KES 1 test stands."""
    rt = bootstrap()

    async def main() -> list[ChannelView]:
        return await use_cases.list_channels(await _acting_for(tenant))

    try:
        rows = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if not rows:
        console.print("No channel yet: `lipapush channel add --tenant … --name Main` adds one.")
        return
    print_table(_table(rows))


@channel_app.command("add")
def channel_add(
    tenant: TenantOption,
    name: Annotated[
        str, typer.Option(help="1 to 60 characters, unique in the business, e.g. 'Westlands till'")
    ],
    environment: Annotated[
        Environment, typer.Option(help="simulator, sandbox or production")
    ] = Environment.simulator,
    kind: Annotated[CollectingKind, typer.Option(help="paybill or till")] = CollectingKind.paybill,
    short_code: Annotated[str | None, typer.Option(help="Paybill, or the Store/HO number of a till")] = None,
    till_number: Annotated[str | None, typer.Option(help="Till number (till channels)")] = None,
    consumer_key: Annotated[str | None, typer.Option(help="From the Daraja app (not for simulator)")] = None,
    consumer_secret: Annotated[str | None, typer.Option(help="Better: set LIPAPUSH_CONSUMER_SECRET")] = None,
    passkey: Annotated[str | None, typer.Option(help="Better: set LIPAPUSH_PASSKEY")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the test payment")] = 20.0,
    url: UrlOption = None,
) -> None:
    """Add a channel and send its KES 1 test push to the owner's phone. Exits 1 when the push was
    not sent or the test payment failed (the channel is saved: `lipapush channel verify` resends)."""
    rt = bootstrap_client(url)
    data = channel_options(environment, kind, short_code, till_number, consumer_key, consumer_secret, passkey)

    async def main() -> tuple[uuid.UUID, str | None]:
        actor = await _acting_for(tenant)
        # The use case saves the channel and sends the test itself; here only the wait is the CLI's.
        added = await use_cases.add_channel(actor, name=name, data=data)
        c = added.view.channel
        console.print(f"Added channel [bold]{c.name}[/bold] ({c.id}), {c.environment.value}.")
        if added.error:
            return c.id, f"Test push not sent: {added.error}"
        return c.id, await _wait(actor.require_tenant(), c.id, wait)

    try:
        channel_id, failure = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if failure:
        raise _fail(
            f"{failure} Send the test again with `lipapush channel verify --tenant {tenant} {channel_id}`."
        )


async def _wait(tenant_id: uuid.UUID, channel_id: uuid.UUID, wait: float) -> str | None:
    """Wait for a test push already sent: poll the channel's verification state."""
    console.print("Test push sent to the owner's phone. Waiting for M-Pesa…")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        await asyncio.sleep(0.5)
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
            channel = await tenants.channel_or_primary(session, tenant_id, channel_id)
            if channel is None:
                return "The channel is gone."
            if channel.verified_at is not None:
                console.print(f"[green]Channel “{channel.name}” verified.[/green]")
                return None
            if channel.verification_error:
                return f"Test payment failed: {channel.verification_error}"
    console.print(
        "[yellow]No answer yet: the channel is verified as soon as the test payment succeeds.[/yellow]"
    )
    return None


@channel_app.command("verify")
def channel_verify(
    tenant: TenantOption,
    channel_id: ChannelArg,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the test payment")] = 20.0,
    url: UrlOption = None,
) -> None:
    """Send a channel's KES 1 test push again. Exits 1 when it was not sent or the payment failed."""
    wanted = channel_id_of(channel_id)
    rt = bootstrap_client(url)

    async def main() -> str | None:
        actor = await _acting_for(tenant)
        await use_cases.get_channel(actor, wanted)  # another business's id: "No such channel"
        return await _verify_and_wait(rt, actor.require_tenant(), wait, channel_id=wanted)

    try:
        failure = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if failure:
        raise _fail(failure)


@channel_app.command("primary")
def channel_primary(tenant: TenantOption, channel_id: ChannelArg) -> None:
    """Make a verified channel the primary one: the bot, USSD and the panel push through it."""
    wanted = channel_id_of(channel_id)
    rt = bootstrap()

    async def main() -> ChannelView:
        return await use_cases.make_primary(await _acting_for(tenant), wanted)

    try:
        done = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"primary channel: {done.channel.name}", highlight=False)


@channel_app.command("rename")
def channel_rename(
    tenant: TenantOption,
    channel_id: ChannelArg,
    name: Annotated[str, typer.Option(help="The new name")],
) -> None:
    """Rename a channel."""
    wanted = channel_id_of(channel_id)
    rt = bootstrap()

    async def main() -> ChannelView:
        return await use_cases.rename_channel(await _acting_for(tenant), wanted, name=name)

    try:
        done = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"renamed: {done.channel.name}", highlight=False)
