"""`lipapush payout …`, `payout-channel …`, `initiator set` and `balance`: money out from the terminal.

Every command calls the same use cases as the API (core.payouts, core.lookups,
core/tenants/use_cases_initiators.py) as the operator acting for the business. A payout is sent by
the running server's worker after this command records it (as every payout is, never in the request),
so `payout send` waits for its result like `channel add` waits for the KES 1 test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError
from rich.table import Table

from core.db import Scope
from core.errors import LipapushError
from core.lookups import use_cases as lookup_use_cases
from core.lookups.models import Lookup, LookupStatus
from core.lookups.schemas import BalancesOut
from core.money import format_cents, format_kes
from core.notify.texts import local_phone
from core.payouts import use_cases
from core.payouts.models import Payout, PayoutStatus
from core.payouts.schemas import PayoutFilter, PayoutOut, parse_command, parse_payout_amount
from core.payouts.texts import payout_line
from core.payouts.use_cases_admin import UNSET, set_payout_limits
from core.phones import normalize_msisdn
from core.runtime import unit_of_work
from core.tenants import use_cases_initiators as initiators
from core.tenants.initiator_schemas import InitiatorIn, PayoutChannelIn, PayoutChannelOut
from core.tenants.models import Environment, MpesaChannel
from web.cli import _fail, _run, app, bootstrap, console, print_table
from web.cli_channels import channel_id_of
from web.cli_tenants import _acting_for

payout_app = typer.Typer(
    help="Payouts (B2C) of a business: send one, list them, set its limits.", no_args_is_help=True
)
channel_app = typer.Typer(help="Payout (B2C) channels of a business.", no_args_is_help=True)
initiator_app = typer.Typer(help="The Daraja initiator of a channel.", no_args_is_help=True)
app.add_typer(payout_app, name="payout")
app.add_typer(channel_app, name="payout-channel")
app.add_typer(initiator_app, name="initiator")

TenantOption = Annotated[str, typer.Option(help="Owner email, slug or id of the business")]
WaitOption = Annotated[float, typer.Option(help="Seconds to wait for M-Pesa's answer (0: do not wait)")]
PasswordOption = Annotated[
    str,
    typer.Option(
        prompt="Initiator password",
        hide_input=True,
        envvar="LIPAPUSH_INITIATOR_PASSWORD",
        help="The initiator's password (asked for, hidden; or LIPAPUSH_INITIATOR_PASSWORD)",
    ),
]


async def _poll(check: Callable[[], Awaitable[bool]], wait: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        if await check():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.3)


async def _payout(payout_id: uuid.UUID, tenant_id: uuid.UUID) -> Payout:
    async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
        row = await session.get(Payout, payout_id)
        assert row is not None
        return row


@payout_app.command("send")
def payout_send(
    tenant: TenantOption,
    phone: Annotated[str, typer.Option(help="Recipient's M-Pesa phone: 07…, 01…, +254… or 254…")],
    amount: Annotated[str, typer.Option(help="Whole shillings, 10 to 250 000")],
    name: Annotated[str | None, typer.Option(help="Who you mean to pay")] = None,
    reference: Annotated[
        str | None, typer.Option(help="Sent to M-Pesa as Remarks (2 to 100 characters)")
    ] = None,
    occasion: Annotated[str | None, typer.Option(help="Sent to M-Pesa as Occasion")] = None,
    command: Annotated[str, typer.Option(help="business, salary or promotion")] = "business",
    channel: Annotated[
        str | None, typer.Option(help="The payout channel's id (`lipapush payout-channel list`)")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Send again safely: the same key is one payout")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    wait: WaitOption = 20.0,
) -> None:
    """Pay money out to an M-Pesa phone, after asking "Send KES … to …?" (unless --yes). Exits 1 when
    it is refused or M-Pesa did not pay it."""
    try:
        msisdn = normalize_msisdn(phone)
        shillings = parse_payout_amount(amount)
        cmd = parse_command(command)
    except ValueError as exc:
        raise _fail(getattr(exc, "message", None) or str(exc)) from None
    channel_id = channel_id_of(channel) if channel else None
    who = f"{name} ({local_phone(msisdn)})" if name else local_phone(msisdn)
    if not yes and not typer.confirm(f"Send {format_kes(shillings)} to {who}?", default=False):
        raise _fail("Not sent.")
    rt = bootstrap()

    async def main() -> tuple[PayoutOut, Payout | None]:
        actor = await _acting_for(tenant)
        out = await use_cases.request_payout(
            actor,
            phone=msisdn,
            amount=shillings,
            name=name,
            reference=reference,
            occasion=occasion,
            command=cmd,
            channel_id=channel_id,
            idempotency_key=idempotency_key,
        )
        console.print(
            f"Payout {out.id}: {format_kes(out.amount)} to {who}, {out.status.value}.", highlight=False
        )
        if wait <= 0 or out.status.is_final:
            return out, None
        tenant_id = actor.require_tenant()

        async def final() -> bool:
            return (await _payout(out.id, tenant_id)).status.is_final

        await _poll(final, wait)
        return out, await _payout(out.id, tenant_id)

    try:
        out, row = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    shown = row or out
    if shown.status is PayoutStatus.success:
        console.print(f"[green]Paid[/green]: {payout_line(shown)}", highlight=False)
    elif shown.status.is_final:
        raise _fail(f"Not paid: {payout_line(shown)}")
    elif wait > 0:
        console.print(
            "[yellow]No answer from M-Pesa yet: the payout settles on its own (`lipapush payout list`). "
            "Is `lipapush serve` (or a worker) running?[/yellow]",
            highlight=False,
        )


@payout_app.command("list")
def payout_list(
    tenant: TenantOption,
    status: Annotated[PayoutStatus | None, typer.Option(help="Only payouts in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first")] = 20,
) -> None:
    """A business's payouts, newest first."""
    rt = bootstrap()

    async def main() -> list[PayoutOut]:
        page = await use_cases.list_payouts(
            await _acting_for(tenant), filters=PayoutFilter(status=status), limit=limit
        )
        return page.items

    try:
        rows = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if not rows:
        console.print("No payouts yet: `lipapush payout send --tenant … --phone … --amount …` sends one.")
        return
    table = Table("id", "created", "phone", "amount", "status", "receipt", "mode", "reason")
    for p in rows:
        table.add_row(
            str(p.id),
            f"{p.created_at:%Y-%m-%d %H:%M}",
            local_phone(p.phone),
            format_kes(p.amount),
            p.status.value,
            p.receipt or "",
            p.mode.value,
            "" if p.status is PayoutStatus.success else (p.result_desc or ""),
        )
    print_table(table)


def _limit(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    if value.strip().lower() == "default":
        return UNSET
    try:
        return int(value.replace(",", "").replace("_", ""))
    except ValueError:
        raise _fail(f"{option} {value!r}: give whole shillings, like 50000, or 'default'.") from None


@payout_app.command("limits")
def payout_limits(
    tenant: TenantOption,
    per_payout: Annotated[
        str | None, typer.Option(help="The most one payout may send (KES), or 'default' (PAYOUT_MAX_KES)")
    ] = None,
    daily: Annotated[
        str | None,
        typer.Option(
            help="The most a Nairobi day's payouts may send (KES), or 'default' (PAYOUT_DAILY_MAX_KES)"
        ),
    ] = None,
) -> None:
    """Show or change a business's payout limits (the platform operator's call: they guard against a
    leaked key or a hijacked account)."""
    each, day = _limit(per_payout, "--per-payout"), _limit(daily, "--daily")
    rt = bootstrap()

    async def main() -> str:
        actor = await _acting_for(tenant)
        view = await set_payout_limits(
            actor, tenant_id=actor.require_tenant(), per_payout_kes=each, daily_kes=day
        )
        own = {True: "", False: " (platform default)"}
        return (
            f"{view.business}: at most {format_kes(view.limits.per_payout_kes)} a payout"
            f"{own[view.own_per_payout]}, {format_kes(view.limits.daily_kes)} a day{own[view.own_daily]}."
        )

    try:
        console.print(_run(rt, main()), highlight=False)
    except LipapushError as exc:
        raise _fail(exc.message) from None


async def _wait_initiator(channel_id: uuid.UUID, tenant_id: uuid.UUID, wait: float) -> str | None:
    """Why the initiator is not proven (None: it is, or M-Pesa has not answered in `wait` seconds)."""

    async def read() -> MpesaChannel:
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
            row = await session.get(MpesaChannel, channel_id)
            assert row is not None
            return row

    async def settled() -> bool:
        row = await read()
        return row.initiator_verified_at is not None or row.initiator_error is not None

    console.print("Checking the initiator with a balance query…")
    await _poll(settled, wait)
    row = await read()
    if row.initiator_verified_at is not None:
        console.print(
            f"[green]Initiator {row.initiator_name} of “{row.name}” verified.[/green]", highlight=False
        )
        return None
    if row.initiator_error:
        return f"The initiator of “{row.name}” is not verified: {row.initiator_error}"
    console.print(
        "[yellow]No answer from M-Pesa yet: the initiator is verified as soon as it comes.[/yellow]",
        highlight=False,
    )
    return None


@channel_app.command("add")
def payout_channel_add(
    tenant: TenantOption,
    name: Annotated[str, typer.Option(help="1 to 60 characters, unique in the business, e.g. 'Salaries'")],
    short_code: Annotated[str, typer.Option(help="The B2C (bulk payment) short code")],
    initiator_name: Annotated[str, typer.Option(help="The API operator's username")],
    initiator_password: PasswordOption,
    environment: Annotated[
        Environment, typer.Option(help="simulator, sandbox or production")
    ] = Environment.simulator,
    consumer_key: Annotated[str | None, typer.Option(help="From the Daraja app (not for simulator)")] = None,
    consumer_secret: Annotated[
        str | None,
        typer.Option(envvar="LIPAPUSH_CONSUMER_SECRET", help="Better: set LIPAPUSH_CONSUMER_SECRET"),
    ] = None,
    wait: WaitOption = 20.0,
) -> None:
    """Add a B2C short code with its Daraja app and initiator, and prove the initiator with a balance
    check. Exits 1 when M-Pesa refused it (the channel is saved: `lipapush initiator set` retries)."""
    try:
        data = PayoutChannelIn(
            name=name,
            environment=environment,
            short_code=short_code,
            consumer_key=SecretStr(consumer_key) if consumer_key else None,
            consumer_secret=SecretStr(consumer_secret) if consumer_secret else None,
            initiator_name=initiator_name,
            initiator_password=SecretStr(initiator_password),
        )
    except ValidationError as exc:
        raise _fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    rt = bootstrap()

    async def main() -> str | None:
        actor = await _acting_for(tenant)
        out = await initiators.add_payout_channel(actor, data)
        console.print(f"Added payout channel [bold]{out.name}[/bold] ({out.id}), {out.environment.value}.")
        return await _wait_initiator(out.id, actor.require_tenant(), wait) if wait > 0 else None

    try:
        failure = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if failure:
        raise _fail(failure)


@channel_app.command("list")
def payout_channel_list(tenant: TenantOption) -> None:
    """The channels a business pays out through, with where each initiator stands."""
    rt = bootstrap()

    try:
        rows = _run(rt, _list_channels(tenant))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if not rows:
        console.print(
            "No payout channel yet: `lipapush payout-channel add --tenant … --name Salaries …` adds one."
        )
        return
    table = Table("id", "name", "kind", "short code", "environment", "mode", "initiator", "state")
    for c in rows:
        i = c.initiator
        state = i.verification + (f": {i.initiator_error}" if i.initiator_error else "")
        table.add_row(
            str(c.id),
            c.name,
            c.kind.value,
            c.short_code,
            c.environment.value,
            c.mode.value,
            i.initiator_name or "",
            state,
        )
    print_table(table)


async def _list_channels(tenant: str) -> list[PayoutChannelOut]:
    return await initiators.list_payout_channels(await _acting_for(tenant))


@initiator_app.command("set")
def initiator_set(
    tenant: TenantOption,
    channel: Annotated[str, typer.Option(help="The channel's id (`lipapush channel list`)")],
    name: Annotated[str, typer.Option(help="The API operator's username")],
    password: PasswordOption,
    wait: WaitOption = 20.0,
) -> None:
    """Set a channel's Daraja initiator (its password is asked for, hidden, and never shown again) and
    prove it with a balance check. Exits 1 when M-Pesa refused it."""
    wanted = channel_id_of(channel)
    try:
        data = InitiatorIn(initiator_name=name, initiator_password=SecretStr(password))
    except ValidationError as exc:
        raise _fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    rt = bootstrap()

    async def main() -> str | None:
        actor = await _acting_for(tenant)
        done = await initiators.set_initiator(actor, wanted, data)
        console.print(
            f"Initiator {done.initiator.initiator_name} set on “{done.initiator.channel_name}”.",
            highlight=False,
        )
        return await _wait_initiator(wanted, actor.require_tenant(), wait) if wait > 0 else None

    try:
        failure = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if failure:
        raise _fail(failure)


@app.command("balance")
def balance(
    tenant: TenantOption,
    channel: Annotated[
        str | None, typer.Option(help="One channel's id; default: every one with an initiator")
    ] = None,
    wait: WaitOption = 20.0,
) -> None:
    """Ask M-Pesa for the business's balance and show it (each channel with an initiator)."""
    channel_id = channel_id_of(channel) if channel else None
    rt = bootstrap()

    async def main() -> BalancesOut:
        actor = await _acting_for(tenant)
        asked = await lookup_use_cases.refresh_balance(actor, channel_id=channel_id)
        tenant_id = actor.require_tenant()

        async def answered() -> bool:
            async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
                for lookup in asked:
                    row = await session.get(Lookup, lookup.id)
                    if row is None or row.status is LookupStatus.pending:
                        return False
            return True

        if wait > 0 and not await _poll(answered, wait):
            console.print("[yellow]M-Pesa has not answered yet: showing the latest balance.[/yellow]")
        return await lookup_use_cases.balances(actor)

    try:
        shown = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    table = Table("channel", "short code", "mode", "utility", "working", "as of", "note")
    for c in shown.channels:
        if channel_id is not None and c.channel_id != channel_id:
            continue
        table.add_row(
            c.channel_name,
            c.short_code,
            c.mode.value,
            format_cents(c.utility_cents) if c.utility_cents is not None else "-",
            format_cents(c.working_cents) if c.working_cents is not None else "-",
            f"{c.as_of:%Y-%m-%d %H:%M}" if c.as_of else "never",
            c.last_error or ("asking…" if c.refreshing else ""),
        )
    print_table(table)
