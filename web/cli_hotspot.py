"""`lipapush router …`: hotspot providers' MikroTik routers."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from core.access.actor import Actor
from core.billing import use_cases_admin as money
from core.billing.models import SubscriptionPeriod
from core.errors import LipapushError, NotFound
from core.hotspot.models import Router
from core.hotspot.provision import reconcile_router
from core.hotspot.schemas import RouterIn
from core.hotspot.use_cases_routers import add_router, check_router_connection, list_routers
from core.runtime import runtime
from web.cli import _fail, _run, app, bootstrap, console, print_table
from web.cli_tenants import OPERATOR, _acting_for

router_app = typer.Typer(help="Hotspot routers (MikroTik, RouterOS API).", no_args_is_help=True)
app.add_typer(router_app, name="router")


@router_app.command("add")
def router_add(
    tenant: Annotated[str, typer.Option(help="The provider: owner email, slug or id")],
    name: Annotated[str, typer.Option(help="A name for the router, e.g. 'Gate A'")],
    host: Annotated[str, typer.Option(help="IP or host name the platform reaches the API on")],
    username: Annotated[str, typer.Option(help="The RouterOS API user")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="The API user's password")],
    port: Annotated[int, typer.Option(help="8728 (api) or 8729 (api-ssl)")] = 8728,
    tls: Annotated[bool, typer.Option(help="api-ssl")] = False,
    hotspot_server: Annotated[str, typer.Option(help="The /ip hotspot server name")] = "hotspot1",
) -> None:
    """Register a router (the password is encrypted at rest), then check it answers."""
    rt = bootstrap()
    try:
        data = RouterIn(
            name=name,
            host=host,
            port=port,
            username=username,
            password=password,
            tls=tls,
            hotspot_server=hotspot_server,
        )
    except ValidationError as exc:
        raise _fail(
            "; ".join(f"{e['loc'][-1]}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        ) from None

    async def main() -> tuple[Actor, Router]:
        actor = await _acting_for(tenant)
        return actor, await add_router(actor, data)

    try:
        actor, added = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"Added router {added.name} ({added.id}).")
    _check(actor, added)


def _check(actor: Actor, router: Router) -> None:
    checked = _run(runtime(), check_router_connection(actor, router.id))
    if not checked.answered:
        console.print(f"[red]Router does not answer:[/red] {checked.error}")
        raise typer.Exit(1)
    r = checked.router
    console.print(f"[green]Router answers:[/green] {r.identity}, RouterOS {r.version}, up {r.uptime}")


async def _find_router(tenant: str, name: str) -> tuple[Actor, Router]:
    actor = await _acting_for(tenant)
    for r in await list_routers(actor):
        if r.name == name or str(r.id) == name:
            return actor, r
    raise NotFound(f"The provider has no router called {name!r} (see `lipapush router list`).")


@router_app.command("test")
def router_test(
    tenant: Annotated[str, typer.Option(help="The provider: owner email, slug or id")],
    name: Annotated[str, typer.Argument(help="Router name or id")],
) -> None:
    """Log in to the router and print its identity, RouterOS version and uptime."""
    rt = bootstrap()
    try:
        actor, r = _run(rt, _find_router(tenant, name))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    _check(actor, r)


@router_app.command("sync")
def router_sync(
    tenant: Annotated[str, typer.Option(help="The provider: owner email, slug or id")],
    name: Annotated[str, typer.Argument(help="Router name or id")],
) -> None:
    """Reconcile now: put missing vouchers back, start clocks of first logins, remove expired ones."""
    rt = bootstrap()

    async def main() -> Router:
        actor, r = await _find_router(tenant, name)
        await reconcile_router(router_id=str(r.id))
        return next(fresh for fresh in await list_routers(actor) if fresh.id == r.id)

    try:
        r = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    if r.last_error and r.status.value == "down":
        raise _fail(f"Router {r.name} did not answer: {r.last_error}")
    console.print(f"Router {r.name} reconciled ({r.status.value}).")


@router_app.command("list")
def router_list(tenant: Annotated[str, typer.Option(help="The provider: owner email, slug or id")]) -> None:
    """A provider's routers and their health."""
    rt = bootstrap()

    async def main() -> list[Router]:
        return await list_routers(await _acting_for(tenant))

    try:
        rows = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    table = Table("name", "address", "status", "RouterOS", "last seen", "last error")
    for r in rows:
        table.add_row(
            r.name,
            f"{r.host}:{r.port}",
            r.status.value,
            r.version or "",
            f"{r.last_seen_at:%Y-%m-%d %H:%M}" if r.last_seen_at else "",
            (r.last_error or "")[:60],
        )
    print_table(table)


subscription_app = typer.Typer(help="Hotspot providers' subscription plans (Pesapal).", no_args_is_help=True)
app.add_typer(subscription_app, name="subscription")


@subscription_app.command("plan-add")
def subscription_plan_add(
    name: Annotated[str, typer.Option(help="e.g. 'Monthly'")],
    period: Annotated[SubscriptionPeriod, typer.Option(help="monthly or yearly")],
    price: Annotated[int, typer.Option(help="Whole shillings", min=1, max=1_000_000)],
) -> None:
    """Offer a subscription plan to hotspot providers."""
    rt = bootstrap()

    try:
        plan = _run(rt, money.add_subscription_plan(OPERATOR, name=name, period=period, price=price))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(f"Subscription plan {plan.name}: KES {plan.price:,} {plan.period.value} ({plan.id}).")


@subscription_app.command("plans")
def subscription_plans() -> None:
    """The subscription plans on offer."""
    rt = bootstrap()

    table = Table("id", "name", "period", "price (KES)")
    for p in _run(rt, money.subscription_plans(OPERATOR)):
        table.add_row(str(p.id), p.name, p.period.value, f"{p.price:,}")
    print_table(table)
