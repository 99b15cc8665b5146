"""`lipapush tenant …` and `lipapush apikey …`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError
from rich.table import Table
from sqlalchemy import or_, select

from core.audit.service import record
from core.auth.models import ApiKeyMode, User
from core.auth.pins import new_pin_hash, register_ussd, remove_ussd
from core.auth.service import auth
from core.errors import LipapushError, NotFound
from core.notify.sms import validate_sender_id
from core.payments.push import send_verification_push
from core.phones import Msisdn, normalize_msisdn
from core.runtime import Runtime, runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment, Tenant, TenantKind, TenantStatus
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants
from web.cli import _fail, _run, apikey_app, app, bootstrap, console, tenant_app


async def _find_tenant(ref: str) -> Tenant:
    """A tenant by owner/staff email, slug or id."""
    async with unit_of_work(readonly=True) as session:
        conds = [Tenant.slug == ref, Tenant.email == ref.lower()]
        with contextlib.suppress(ValueError):
            conds.append(Tenant.id == uuid.UUID(ref))
        tenant = await session.scalar(select(Tenant).where(or_(*conds)))
        if tenant is None:
            user = await session.scalar(select(User).where(User.email == ref.strip().lower()))
            if user is not None and user.tenant_id is not None:
                tenant = await session.get(Tenant, user.tenant_id)
        if tenant is None:
            raise NotFound(f"No business matches '{ref}' (give the owner's email, the slug or the id).")
        return tenant


async def _verify_and_wait(rt: Runtime, tenant_id: uuid.UUID, wait: float) -> None:
    console.print("Sending the KES 1 test push to the owner's phone…")
    try:
        payment = await send_verification_push(tenant_id=tenant_id)
    except LipapushError as exc:
        hint = ""
        if "reached" in exc.message or "answer" in exc.message:
            hint = f"\nIs `lipapush serve` running at {rt.settings.base_url}?"
        console.print(f"[red]Test push not sent: {exc.message}[/red]{hint}")
        console.print("Re-send it with `lipapush tenant verify <email>`.")
        return
    console.print(f"Test push sent (CheckoutRequestID {payment.checkout_request_id}). Waiting for M-Pesa…")
    deadline = asyncio.get_running_loop().time() + wait
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        async with unit_of_work(readonly=True) as session:
            tenant = await tenants.get(session, tenant_id)
            channel = await tenants.get_channel(session, tenant_id)
            if channel is None or channel.verification_payment_id != payment.id:
                break
            if channel.verified_at is not None:
                console.print(f"[green]Channel verified: {tenant.name} is {tenant.status.value}.[/green]")
                return
            if channel.verification_error:
                console.print(f"[red]Test payment failed: {channel.verification_error}[/red]")
                return
    console.print(
        "[yellow]No answer yet: the business activates as soon as the test payment succeeds.[/yellow]"
    )


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(help="Business name")],
    email: Annotated[str, typer.Option(help="Owner's email (login)")],
    phone: Annotated[str, typer.Option(help="Owner's M-Pesa phone: receives the KES 1 test push")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Owner's password")],
    environment: Annotated[
        Environment, typer.Option(help="simulator, sandbox or production")
    ] = Environment.simulator,
    kind: Annotated[ChannelKind, typer.Option(help="paybill or till")] = ChannelKind.paybill,
    short_code: Annotated[str | None, typer.Option(help="Paybill, or the Store/HO number of a till")] = None,
    till_number: Annotated[str | None, typer.Option(help="Till number (till channels)")] = None,
    consumer_key: Annotated[str | None, typer.Option()] = None,
    consumer_secret: Annotated[str | None, typer.Option(help="Better: set LIPAPUSH_CONSUMER_SECRET")] = None,
    passkey: Annotated[str | None, typer.Option(help="Better: set LIPAPUSH_PASSKEY")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the test payment")] = 20.0,
    hotspot: Annotated[
        bool, typer.Option("--hotspot", help="A WiFi hotspot provider (pays a subscription, not commission)")
    ] = False,
) -> None:
    """Create a business, its owner and its M-Pesa channel, then send the KES 1 test push.

    A `simulator` channel needs no keys: test values are filled in.
    """
    rt = bootstrap()
    try:
        channel_in = ChannelIn(
            environment=environment,
            kind=kind,
            business_short_code=short_code,
            till_number=till_number,
            consumer_key=SecretStr(consumer_key) if consumer_key else None,
            consumer_secret=SecretStr(consumer_secret) if consumer_secret else None,
            passkey=SecretStr(passkey) if passkey else None,
        )
    except ValidationError as exc:
        raise _fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None

    async def main() -> None:
        async with unit_of_work() as session:
            tenant, user = await signup(
                session,
                business_name=name,
                email=email,
                password=password,
                phone=phone,
                kind=TenantKind.hotspot if hotspot else TenantKind.business,
            )
            await tenants.save_channel(session, tenant=tenant, data=channel_in, box=rt.secrets, by=user.id)
            tenant_id, slug = tenant.id, tenant.slug
        console.print(f"Created business [bold]{name}[/bold] ({slug}), owner {user.email}.")
        await _verify_and_wait(rt, tenant_id, wait)

    try:
        _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None


@tenant_app.command("verify")
def tenant_verify(
    tenant: Annotated[str, typer.Argument(help="Owner email, slug or id")],
    wait: Annotated[float, typer.Option()] = 20.0,
) -> None:
    """Re-send the KES 1 test push that verifies the channel."""
    rt = bootstrap()

    async def main() -> None:
        t = await _find_tenant(tenant)
        await _verify_and_wait(rt, t.id, wait)

    try:
        _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None


@tenant_app.command("list")
def tenant_list() -> None:
    """All businesses with their status."""
    rt = bootstrap()

    async def main() -> list[Tenant]:
        async with unit_of_work(readonly=True) as session:
            return list(await session.scalars(select(Tenant).order_by(Tenant.created_at)))

    rows = _run(rt, main())
    table = Table("slug", "name", "number", "status", "email", "created")
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
    console.print(table)


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")],
    name: Annotated[str, typer.Option()] = "default",
    mode: Annotated[ApiKeyMode, typer.Option(help="live or test (only a label for now)")] = ApiKeyMode.live,
) -> None:
    """Create an API key and print it once (it is stored hashed and cannot be shown again)."""
    rt = bootstrap()

    async def main() -> str:
        t = await _find_tenant(tenant)
        async with unit_of_work() as session:
            _, key = await auth.create_api_key(session, tenant_id=t.id, created_by=None, name=name, mode=mode)
            return key

    try:
        key = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    err_note = "Store it now: it is shown only once."
    console.print(key, soft_wrap=True, highlight=False)
    typer.echo(err_note, err=True)


@apikey_app.command("revoke")
def apikey_revoke(
    tenant: Annotated[str, typer.Option()],
    key_id: Annotated[str, typer.Argument(help="The key's id (see `lipapush apikey list`)")],
) -> None:
    rt = bootstrap()

    async def main() -> None:
        t = await _find_tenant(tenant)
        async with unit_of_work() as session:
            await auth.revoke_api_key(session, tenant_id=t.id, key_id=uuid.UUID(key_id), by=None)

    try:
        _run(rt, main())
    except (LipapushError, ValueError) as exc:
        raise _fail(getattr(exc, "message", str(exc))) from None
    console.print("revoked")


@apikey_app.command("list")
def apikey_list(tenant: Annotated[str, typer.Option()]) -> None:
    rt = bootstrap()

    async def main() -> list:  # type: ignore[type-arg]
        t = await _find_tenant(tenant)
        async with unit_of_work(readonly=True) as session:
            return await auth.list_api_keys(session, tenant_id=t.id)

    table = Table("id", "name", "prefix", "created", "last used", "revoked")
    for k in _run(rt, main()):
        table.add_row(
            str(k.id),
            k.name,
            k.prefix + "…",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
            f"{k.revoked_at:%Y-%m-%d}" if k.revoked_at else "",
        )
    console.print(table)


__all__ = ["runtime"]


keys_app = typer.Typer(help="Encryption keys for stored secrets.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with the first key in ENCRYPTION_KEYS. Put the new key first,
    keep the old ones after it, run this, then drop the old keys."""
    rt = bootstrap()

    async def main() -> int:
        async with unit_of_work() as session:
            n = await tenants.rotate_secrets(session, box=rt.secrets)
            from core.audit.service import record

            await record(session, action="secrets.rotated", detail={"channels": n})
            return n

    try:
        n = _run(rt, main())
    except RuntimeError as exc:
        raise _fail(str(exc)) from None
    console.print(f"re-encrypted the secrets of {n} channel(s) under the first key")


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

    async def main() -> str:
        pin_hash = await new_pin_hash(pin)
        async with unit_of_work() as session:
            user = await session.scalar(select(User).where(User.email == email.strip().lower()))
            if user is None or user.tenant_id is None:
                raise NotFound(f"No business user has the email {email}.")
            number = (
                normalize_msisdn(phone)
                if phone
                else Msisdn((await tenants.get(session, user.tenant_id)).phone)
            )
            await register_ussd(session, user=user, phone=number, pin_hash=pin_hash)
            return number

    try:
        number = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"USSD ready: dial {rt.settings.USSD_CODE} from 0{number[3:]} and enter the PIN.")


@ussd_app.command("remove")
def ussd_remove(email: Annotated[str, typer.Option(help="The user's email")]) -> None:
    """Turn off a user's USSD menu (a lost phone)."""
    rt = bootstrap()

    async def main() -> None:
        async with unit_of_work() as session:
            user = await session.scalar(select(User).where(User.email == email.strip().lower()))
            if user is None:
                raise NotFound(f"No user has the email {email}.")
            await remove_ussd(session, user=user)

    try:
        _run(rt, main())
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
        t = await _find_tenant(tenant)
        async with unit_of_work() as session:
            row = await tenants.get(session, t.id)
            row.sms_sender_id = value
            await record(
                session, action="settings.sms_sender_id", tenant_id=row.id, detail={"sender_id": value}
            )

    try:
        _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"SMS sender id: {value or 'the platform default'}")
