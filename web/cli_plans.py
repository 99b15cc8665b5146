"""`lipapush api-plan …`: the platform's API plans and who is on which (the operator's, as an admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from core.errors import LipapushError
from core.money import format_cents
from core.plans import use_cases, use_cases_admin
from core.plans.schemas import PlanIn, PlanOut, PlanStatusOut
from web.cli import _fail, _run, app, bootstrap, console, print_table
from web.cli_tenants import OPERATOR, _acting_for, _find_tenant

plan_app = typer.Typer(
    help="API plans: monthly live-push quota, push rate per key, monthly fee.", no_args_is_help=True
)
app.add_typer(plan_app, name="api-plan")


def _quota(value: int | None) -> str:
    return "no limit" if value is None else f"{value:,}"


@plan_app.command("list")
def plan_list() -> None:
    """Every plan, cheapest first, with how many businesses are on it."""
    rt = bootstrap()
    rows = _run(rt, use_cases_admin.list_plans(OPERATOR))
    table = Table(
        "code",
        "name",
        "fee a month",
        "live pushes a month",
        "pushes per key a minute",
        "offered",
        "businesses",
    )
    for p, count in rows:
        table.add_row(
            p.code + (" (default)" if p.is_default else ""),
            p.name,
            format_cents(p.monthly_fee_cents) if p.monthly_fee_cents else "free",
            _quota(p.live_pushes_per_month),
            str(p.pushes_per_key_per_minute or "default"),
            "yes" if p.public else "no",
            str(count),
        )
    print_table(table)


@plan_app.command("save")
def plan_save(
    code: Annotated[str, typer.Argument(help="lower-case letters, digits and dashes, e.g. growth")],
    name: Annotated[str, typer.Option(help="What owners read, e.g. Growth")],
    fee: Annotated[int, typer.Option(help="Monthly fee in whole KES (0: free)")] = 0,
    live_pushes: Annotated[
        int | None,
        typer.Option(help="Live payment requests per Nairobi calendar month (leave out: no limit)"),
    ] = None,
    per_key_per_minute: Annotated[
        int | None, typer.Option(help="STK pushes one API key may start a minute (leave out: the platform's)")
    ] = None,
    description: Annotated[str | None, typer.Option(help="One sentence for owners")] = None,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="Not offered to owners; assigned by an admin")
    ] = False,
) -> None:
    """Create a plan, or change the plan with this code (its businesses get the new limits at once)."""
    try:
        data = PlanIn(
            code=code,
            name=name,
            description=description,
            monthly_fee_cents=fee * 100,
            live_pushes_per_month=live_pushes,
            pushes_per_key_per_minute=per_key_per_minute,
            public=not hidden,
        )
    except ValidationError as exc:
        raise _fail("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    rt = bootstrap()
    try:
        saved: PlanOut = _run(rt, use_cases_admin.save_plan(OPERATOR, data))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    fee_text = format_cents(saved.monthly_fee_cents) if saved.monthly_fee_cents else "free"
    console.print(
        f"saved: {saved.code} · {saved.name} · {fee_text}"
        f" · {_quota(saved.live_pushes_per_month)} live pushes a month",
        highlight=False,
    )


def _status_line(s: PlanStatusOut) -> str:
    left = "no limit" if s.remaining is None else f"{s.remaining:,} left"
    unpaid = f" (chosen: {s.chosen.name}, unpaid)" if s.unpaid else ""
    return f"{s.effective.name}{unpaid} · {s.month}: {s.live_pushes:,} live pushes, {left}"


@plan_app.command("assign")
def plan_assign(
    tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")],
    code: Annotated[str, typer.Argument(help="The plan's code (see `lipapush api-plan list`)")],
    paid_until: Annotated[
        datetime | None,
        typer.Option(help="Count a plan with a fee as paid until then (UTC, e.g. 2027-01-31)"),
    ] = None,
) -> None:
    """Put a business on a plan (hidden plans too)."""
    rt = bootstrap()

    async def main() -> PlanStatusOut:
        t = await _find_tenant(tenant)
        # A date typed without a zone is UTC, as the help says.
        until = paid_until.replace(tzinfo=UTC) if paid_until and not paid_until.tzinfo else paid_until
        return await use_cases_admin.assign_plan(OPERATOR, t.id, code=code, paid_until=until)

    try:
        status = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(_status_line(status), highlight=False)


@plan_app.command("show")
def plan_show(tenant: Annotated[str, typer.Option(help="Owner email, slug or id of the business")]) -> None:
    """A business's plan and this month's live pushes against its quota."""
    rt = bootstrap()

    async def main() -> PlanStatusOut:
        return await use_cases.plan_status(await _acting_for(tenant))

    try:
        status = _run(rt, main())
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(_status_line(status), highlight=False)
