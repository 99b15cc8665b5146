"""`lipapush tenant …` and `lipapush apikey …`."""

from __future__ import annotations

import asyncio
import uuid
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError
from rich.table import Table

from core.access.actor import Actor, Via
from core.access.permissions import ApiScope
from core.apps import use_cases as app_cases
from core.auth import use_cases as people
from core.auth import use_cases_admin as account_admin
from core.auth.models import ApiKeyMode
from core.auth.schemas import ApiKeyOut, ApiKeyRolled
from core.db import Scope, narrow_scope
from core.errors import DarajaUnavailable, LipapushError, NotFound
from core.notify.sms import validate_sender_id
from core.payments.push import send_verification_push
from core.runtime import Runtime, runtime, unit_of_work
from core.tenants import use_cases_admin as tenant_admin
from core.tenants.models import ChannelKind, Environment, Tenant, TenantKind, TenantStatus
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants
from web.cli import (
    UrlOption,
    _fail,
    _run,
    apikey_app,
    app,
    bootstrap,
    bootstrap_client,
    console,
    print_table,
    tenant_app,
)

# The operator at the terminal: trusted, every permission; narrowed with `.acting_for(tenant_id)` when
# a command acts for one business. The same use cases as the admin panel do the work.
OPERATOR = Actor.system(via=Via.cli)
SCOPE_NAMES = ", ".join(s.value for s in ApiScope)


async def _find_tenant(ref: str) -> Tenant:
    """A tenant by owner/staff email, slug or id."""
    return await tenant_admin.find_tenant(OPERATOR, ref)


async def _acting_for(ref: str) -> Actor:
    """The operator acting for the business `ref` names."""
    return OPERATOR.acting_for((await _find_tenant(ref)).id)


async def _verify_and_wait(
    rt: Runtime, tenant_id: uuid.UUID, wait: float, channel_id: uuid.UUID | None = None
) -> str | None:
    """Send the KES 1 test push (through `channel_id`, default the primary channel) and wait up to
    `wait` seconds for its result.

    Returns why the channel is not verified when the push was not sent or the payment failed (the
    caller exits non-zero with it), None when it was verified or M-Pesa has not answered yet."""
    async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
        channel = await tenants.channel_or_primary(session, tenant_id, channel_id)
        via_serve = (
            channel is not None
            and channel.environment is Environment.simulator
            and not rt.settings.DARAJA_SIMULATOR_URL
        )
    console.print("Sending the KES 1 test push to the owner's phone…")
    try:
        payment = await send_verification_push(tenant_id=tenant_id, channel_id=channel_id)
    except DarajaUnavailable as exc:
        if via_serve:
            # A simulator channel pushes to the simulator inside `serve`: "M-Pesa" is that server.
            return (
                f"Test push not sent: lipapush serve did not answer at {rt.settings.base_url} "
                "(start it with `lipapush serve`, or give --url if it runs elsewhere)."
            )
        return f"Test push not sent: {exc.message}"
    except LipapushError as exc:
        return f"Test push not sent: {exc.message}"
    console.print(
        f"Test push sent (CheckoutRequestID {payment.checkout_request_id}). Waiting for M-Pesa…",
        soft_wrap=True,
    )
    deadline = asyncio.get_running_loop().time() + wait
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
            tenant = await tenants.get(session, tenant_id)
            channel = await tenants.channel_or_primary(session, tenant_id, channel_id)
            if channel is None or channel.verification_payment_id != payment.id:
                break
            if channel.verified_at is not None:
                done = "Channel verified" if channel.is_primary else f"Channel “{channel.name}” verified"
                console.print(f"[green]{done}: {tenant.name} is {tenant.status.value}.[/green]")
                return None
            if channel.verification_error:
                return f"Test payment failed: {channel.verification_error}"
    console.print(
        "[yellow]No answer yet: the business activates as soon as the test payment succeeds.[/yellow]"
    )
    return None


class CollectingKind(StrEnum):
    """The channel kinds `--kind` offers: the ones that collect (a B2C shortcode is a payout channel)."""

    paybill = "paybill"
    till = "till"


def channel_options(
    environment: Environment,
    kind: CollectingKind,
    short_code: str | None,
    till_number: str | None,
    consumer_key: str | None,
    consumer_secret: str | None,
    passkey: str | None,
) -> ChannelIn:
    """A channel from the command's options (`tenant create`, `channel add`), or exit 1 saying why not."""
    try:
        return ChannelIn(
            environment=environment,
            kind=ChannelKind(kind.value),
            business_short_code=short_code,
            till_number=till_number,
            consumer_key=SecretStr(consumer_key) if consumer_key else None,
            consumer_secret=SecretStr(consumer_secret) if consumer_secret else None,
            passkey=SecretStr(passkey) if passkey else None,
        )
    except ValidationError as exc:
        raise _fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(help="Business name")],
    email: Annotated[str, typer.Option(help="Owner's email (login)")],
    phone: Annotated[str, typer.Option(help="Owner's M-Pesa phone: receives the KES 1 test push")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Owner's password")],
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
    hotspot: Annotated[
        bool, typer.Option("--hotspot", help="A WiFi hotspot provider (pays a subscription, not commission)")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Create a business, its owner and its M-Pesa channel, then send the KES 1 test push.

    A `simulator` channel needs no keys: test values are filled in. Exits 1 when the business could
    not be created, or was created but the test push was not sent or the test payment failed.
    """
    rt = bootstrap_client(url)
    channel_in = channel_options(
        environment, kind, short_code, till_number, consumer_key, consumer_secret, passkey
    )

    async def main() -> tuple[str, str | None]:
        # Its owner's email must be free across every business; then the new business's own rows.
        async with unit_of_work(scope=Scope.platform("lipapush tenant create")) as session:
            tenant, user = await signup(
                session,
                business_name=name,
                email=email,
                password=password,
                phone=phone,
                kind=TenantKind.hotspot if hotspot else TenantKind.business,
            )
            await narrow_scope(session, tenant.id)
            await tenants.save_channel(session, tenant=tenant, data=channel_in, box=rt.secrets, by=user.id)
            tenant_id, slug, trial_until = tenant.id, tenant.slug, tenant.trial_until
        console.print(f"Created business [bold]{name}[/bold] ({slug}), owner {user.email}.")
        if trial_until is not None:
            console.print(f"Free WiFi trial until {trial_until:%d %b %Y %H:%M} UTC: then it must subscribe.")
        return user.email, await _verify_and_wait(rt, tenant_id, wait)

    try:
        owner, failure = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if failure:
        raise _fail(
            f"{failure} The business was created: send the test push again with "
            f"`lipapush tenant verify {owner}`."
        )


@tenant_app.command("verify")
def tenant_verify(
    tenant: Annotated[str, typer.Argument(help="Owner email, slug or id")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the test payment")] = 20.0,
    url: UrlOption = None,
) -> None:
    """Re-send the KES 1 test push that verifies the channel. Exits 1 when it was not sent or the
    test payment failed."""
    rt = bootstrap_client(url)

    async def main() -> str | None:
        t = await _find_tenant(tenant)
        return await _verify_and_wait(rt, t.id, wait)

    try:
        failure = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if failure:
        raise _fail(failure)


@tenant_app.command("list")
def tenant_list() -> None:
    """All businesses with their status."""
    rt = bootstrap()

    rows = _run(rt, tenant_admin.list_tenants(OPERATOR))
    # Emails are what people copy from here: they fold in a narrow terminal, never end in "…".
    table = Table()
    table.add_column("slug", overflow="fold")
    table.add_column("name", overflow="fold")
    table.add_column("number", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("email", overflow="fold")
    table.add_column("created", no_wrap=True)
    for t in rows:
        colour = {TenantStatus.active: "green", TenantStatus.suspended: "red"}.get(t.status, "yellow")
        table.add_row(
            t.slug,
            t.name,
            t.business_number or "",
            f"[{colour}]{t.status.value}[/{colour}]",
            t.email,
            f"{t.created_at:%Y-%m-%d}",
        )
    print_table(table)


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")],
    name: Annotated[str, typer.Option()] = "default",
    mode: Annotated[
        ApiKeyMode | None,
        typer.Option(
            help="test or live (default: the business's mode: test on a simulator or sandbox channel, "
            "live on a verified production one)"
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="What the key may do; repeat for several (default: every scope but payouts:read and "
            f"payouts:write, which money out needs on purpose). One of: {SCOPE_NAMES}"
        ),
    ] = None,
    app: Annotated[
        str | None, typer.Option(help="The app's name or id (default: the business's first app)")
    ] = None,
) -> None:
    """Create an API key and print it once (it is stored hashed and cannot be shown again)."""
    rt = bootstrap()

    async def main() -> str:
        actor = await _acting_for(tenant)
        app_id = await _app_id(actor, app) if app else None
        return (
            await people.create_api_key(actor, name=name, mode=mode, scopes=scope or None, app_id=app_id)
        ).key

    try:
        key = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    err_note = "Store it now: it is shown only once."
    console.print(key, soft_wrap=True, highlight=False)
    typer.echo(err_note, err=True)


async def _app_id(actor: Actor, wanted: str) -> uuid.UUID:
    """An app of the business by id or by name (any case); NotFound lists the names there are."""
    found = await app_cases.list_apps(actor)
    for a in found:
        if str(a.id) == wanted or a.name.lower() == wanted.strip().lower():
            return a.id
    names = ", ".join(a.name for a in found) or "none"
    raise NotFound(f"No app {wanted!r} in this business (its apps: {names}). `lipapush app list` shows them.")


_OVERLAP_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _overlap_seconds(text: str) -> int:
    """'0', '90s', '30m', '24h' or '7d' as seconds (a bare number is seconds)."""
    value = text.strip().lower()
    unit = _OVERLAP_UNITS.get(value[-1:], 0) if value else 0
    number = value[:-1] if unit else value
    if not number.isdigit() or len(number) > 9:
        raise _fail(f"{text!r} is not an overlap: write e.g. 0 (revoke now), 30m, 24h or 7d.")
    return int(number) * (unit or 1)


@apikey_app.command("roll")
def apikey_roll(
    tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")],
    key_id: Annotated[str, typer.Argument(help="The key's id (see `lipapush apikey list`)")],
    overlap: Annotated[
        str, typer.Option(help="How long the old key keeps working: 30m, 24h, 7d (at most); 0 revokes it now")
    ] = "24h",
) -> None:
    """Replace an API key with a new one (same name and scopes), printed once. The old key keeps working
    for the overlap, so systems can move to the new one; roll a leaked key with --overlap 0."""
    try:
        key_uuid = uuid.UUID(key_id)
    except ValueError:
        raise _fail(f"{key_id!r} is not a key id: copy the id column of `lipapush apikey list`.") from None
    seconds = _overlap_seconds(overlap)
    rt = bootstrap()

    async def main() -> ApiKeyRolled:
        return await people.roll_api_key(await _acting_for(tenant), key_uuid, overlap_seconds=seconds)

    try:
        rolled = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(rolled.key, soft_wrap=True, highlight=False)
    old = rolled.replaces
    if old.revoked_at is not None:
        typer.echo(f"Store it now: it is shown only once. The old key {old.prefix}… is revoked.", err=True)
    else:
        typer.echo(
            f"Store it now: it is shown only once. The old key {old.prefix}… works until "
            f"{old.expires_at:%Y-%m-%d %H:%M} UTC.",
            err=True,
        )


@apikey_app.command("revoke")
def apikey_revoke(
    tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")],
    key_id: Annotated[str, typer.Argument(help="The key's id (see `lipapush apikey list`)")],
) -> None:
    """Revoke an API key: requests with it are refused from now on. Other keys keep working."""
    try:
        key_uuid = uuid.UUID(key_id)
    except ValueError:
        raise _fail(f"{key_id!r} is not a key id: copy the id column of `lipapush apikey list`.") from None
    rt = bootstrap()

    async def main() -> None:
        await people.revoke_api_key(await _acting_for(tenant), key_uuid)

    try:
        _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print("revoked")


@apikey_app.command("list")
def apikey_list(
    tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")],
) -> None:
    """A business's API keys: id, name, prefix, scopes, when created and last used (and from which
    network), and revoked or rolled ones. The keys themselves are stored hashed and cannot be shown."""
    rt = bootstrap()

    async def main() -> list[ApiKeyOut]:
        return await people.list_api_keys(await _acting_for(tenant))

    try:
        keys = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    table = Table("id", "name", "prefix", "scopes", "created", "last used", "from", "revoked / expires")
    for k in keys:
        if k.revoked_at:
            state = f"revoked {k.revoked_at:%Y-%m-%d}"
        elif k.expires_at:
            state = f"expires {k.expires_at:%Y-%m-%d %H:%M}"
        else:
            state = ""
        table.add_row(
            str(k.id),
            k.name,
            k.prefix + "…",
            "all" if set(k.scopes) == {s.value for s in ApiScope} else " ".join(k.scopes),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
            k.last_used_network or "-",
            state,
        )
    print_table(table)


__all__ = ["runtime"]


keys_app = typer.Typer(help="Encryption keys for stored secrets.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with the first key in ENCRYPTION_KEYS. Put the new key first,
    keep the old ones after it, run this, then drop the old keys."""
    rt = bootstrap()

    try:
        counts = _run(rt, tenant_admin.rotate_secrets(OPERATOR))
    except RuntimeError as exc:
        raise _fail(str(exc)) from None
    parts = [f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in counts.items()]
    said = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
    console.print(f"re-encrypted {said or 'nothing'} under the first key")


ussd_app = typer.Typer(help="USSD menu access for merchants on feature phones.", no_args_is_help=True)
app.add_typer(ussd_app, name="ussd")


@ussd_app.command("set")
def ussd_set(
    email: Annotated[str, typer.Option(help="The user's email")],
    phone: Annotated[str | None, typer.Option(help="07…/01…/+254…; default: the business phone")] = None,
    pin: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="4 digits")
    ] = "",
) -> None:
    """Register the phone and PIN that open a user's USSD merchant menu (clears a lockout)."""
    rt = bootstrap()

    try:
        number = _run(rt, account_admin.set_ussd_access_for(OPERATOR, email=email, phone=phone, pin=pin))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"USSD ready: dial {rt.settings.USSD_CODE} from 0{number[3:]} and enter the PIN.")


@ussd_app.command("remove")
def ussd_remove(email: Annotated[str, typer.Option(help="The user's email")]) -> None:
    """Turn off a user's USSD menu (a lost phone)."""
    rt = bootstrap()

    try:
        _run(rt, account_admin.remove_ussd_access_of(OPERATOR, email=email))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print("USSD access removed.")


@tenant_app.command("sender-id")
def tenant_sender_id(
    tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")],
    sender_id: Annotated[
        str,
        typer.Argument(
            help="As registered with Africa's Talking; an empty string goes back to the platform's"
        ),
    ],
) -> None:
    """Set the SMS sender id of a business. Only the platform assigns these: a sender id belongs to the
    Africa's Talking account, so a business must not pick another business's."""
    rt = bootstrap()
    try:
        value = validate_sender_id(sender_id)
    except ValueError as exc:
        raise _fail(str(exc)) from None

    async def main() -> None:
        await tenant_admin.set_sms_sender_id(await _acting_for(tenant), sender_id=sender_id)

    try:
        _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"SMS sender id: {value or 'the platform default'}")
