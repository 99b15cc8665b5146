"""`lipapush c2b …`: customers paying a channel's till or paybill straight (core.c2b, docs/c2b.md)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from core.access.actor import Actor
from core.c2b import use_cases
from core.c2b.models import AccountsRule
from core.c2b.schemas import C2BAccountsIn, C2BRegisterIn, C2BSettingsIn, C2BStateOut
from core.errors import LipapushError
from core.tenants import use_cases_channels
from web.cli import UrlOption, _fail, _run, app, bootstrap, bootstrap_client, console, print_table
from web.cli_tenants import _acting_for

c2b_app = typer.Typer(
    help="C2B: customers paying a till or paybill straight, with no prompt (register, status, validation).",
    no_args_is_help=True,
)
app.add_typer(c2b_app, name="c2b")

TenantOption = Annotated[str, typer.Option(help="Owner email, slug or id of the business")]
ChannelOption = Annotated[str, typer.Option(help="The channel's id or name (see `lipapush channel list`)")]


class OnOff(StrEnum):
    on = "on"
    off = "off"


class RuleChoice(StrEnum):
    known_references = AccountsRule.known_references.value
    none = "none"


async def _channel(actor: Actor, value: str) -> uuid.UUID:
    """A channel of the business by id, or by name ignoring case."""
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    views = await use_cases_channels.list_channels(actor)
    found = [v.channel.id for v in views if v.channel.name.casefold() == value.strip().casefold()]
    if len(found) != 1:
        raise _fail(f"No channel named {value!r} in this business: see `lipapush channel list`.")
    return found[0]


def _number(s: C2BStateOut) -> str:
    return f"Till {s.till_number}" if s.till_number else f"Paybill {s.short_code}"


def _print_state(s: C2BStateOut) -> None:
    registered = f"yes ({s.api_version}, {s.registered_at:%Y-%m-%d %H:%M} UTC)" if s.registered_at else "no"
    console.print(f"channel: {s.channel_name} ({_number(s)}, {s.mode.value})", soft_wrap=True)
    console.print(f"registered: {registered}", soft_wrap=True, highlight=False)
    rule = s.accounts_rule.value if s.accounts_rule else "none"
    console.print(
        f"validation: {'on' if s.validation else 'off'}, rule: {rule}, account numbers: {s.accounts}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"confirmation URL: {s.confirmation_url}", soft_wrap=True, highlight=False)
    console.print(f"validation URL: {s.validation_url}", soft_wrap=True, highlight=False)
    for note in s.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)


@c2b_app.command("register")
def c2b_register(
    tenant: TenantOption,
    channel: ChannelOption,
    v2: Annotated[
        bool, typer.Option("--v2", help="Register through v2 (the payer's number comes masked)")
    ] = False,
    cancel_without_answer: Annotated[
        bool,
        typer.Option(
            "--cancel-without-answer",
            help="When our validation answer does not reach M-Pesa in time, cancel the payment "
            "(ResponseType Cancelled) instead of completing it",
        ),
    ] = False,
    url: UrlOption = None,
) -> None:
    """Tell M-Pesa where to report payments made straight to the channel's short code. Exits 1 when M-Pesa
    refuses (in production a short code takes one registration: the message says how to remove it)."""
    rt = bootstrap_client(url)
    data = C2BRegisterIn(
        version="v2" if v2 else "v1", response_type="Cancelled" if cancel_without_answer else "Completed"
    )

    async def main() -> C2BStateOut:
        actor = await _acting_for(tenant)
        return (await use_cases.register_urls(actor, await _channel(actor, channel), data)).state

    try:
        state = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(
        f"Registered C2B URLs for {_number(state)} ({data.version}): payments made straight to it are "
        "recorded as source c2b.",
        soft_wrap=True,
        highlight=False,
    )
    _print_state(state)


@c2b_app.command("status")
def c2b_status(tenant: TenantOption) -> None:
    """C2B on every channel of the business that collects."""
    rt = bootstrap()

    async def main() -> list[C2BStateOut]:
        return await use_cases.c2b_overview(await _acting_for(tenant))

    try:
        rows = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if not rows:
        console.print("No paybill or till channel yet: `lipapush channel add` adds one.")
        return
    table = Table("id", "name", "number", "mode", "registered", "validation", "rule", "accounts")
    for s in rows:
        table.add_row(
            str(s.channel_id),
            s.channel_name,
            _number(s),
            s.mode.value,
            f"{s.api_version} {s.registered_at:%Y-%m-%d}" if s.registered_at else "no",
            "on" if s.validation else "off",
            s.accounts_rule.value if s.accounts_rule else "none",
            str(s.accounts),
        )
    print_table(table)


@c2b_app.command("validation")
def c2b_validation(
    tenant: TenantOption,
    channel: ChannelOption,
    state: Annotated[OnOff, typer.Argument(help="on or off")],
    rule: Annotated[
        RuleChoice | None,
        typer.Option(help="known_references: only listed account numbers; none: any (default: unchanged)"),
    ] = None,
) -> None:
    """Switch the channel's validation on or off (and its accounts rule). M-Pesa asks only once Safaricom
    has enabled external validation for the short code."""
    rt = bootstrap()
    fields: dict[str, object] = {"validation": state is OnOff.on}
    if rule is not None:
        fields["accounts_rule"] = None if rule is RuleChoice.none else AccountsRule(rule.value)

    async def main() -> C2BStateOut:
        actor = await _acting_for(tenant)
        return await use_cases.change_c2b_settings(
            actor, await _channel(actor, channel), C2BSettingsIn.model_validate(fields)
        )

    try:
        out = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    _print_state(out)


@c2b_app.command("accounts")
def c2b_accounts(
    tenant: TenantOption,
    channel: ChannelOption,
    add: Annotated[
        list[str] | None, typer.Option("--add", help="An account number to accept (repeat)")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="An account number to stop accepting (repeat)")
    ] = None,
) -> None:
    """The account numbers the known_references rule accepts: add, remove, then list them."""
    rt = bootstrap()
    body = None
    if add:
        try:
            body = C2BAccountsIn(references=add)
        except ValidationError as exc:
            raise _fail(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None

    async def main() -> list[str]:
        actor = await _acting_for(tenant)
        channel_id = await _channel(actor, channel)
        if body is not None:
            await use_cases.add_c2b_accounts(actor, channel_id, body)
        for ref in remove or []:
            await use_cases.remove_c2b_account(actor, channel_id, ref)
        return [a.reference for a in await use_cases.list_c2b_accounts(actor, channel_id)]

    try:
        refs = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if not refs:
        console.print("No account numbers listed.")
        return
    for ref in refs:
        console.print(ref, soft_wrap=True, highlight=False, markup=False)
