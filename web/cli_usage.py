"""`lipapush usage`: API usage across businesses this month, as the admin's Usage page shows it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.errors import LipapushError
from core.usage.use_cases_admin import usage_across_businesses
from web.cli import _fail, _run, app, bootstrap, console, print_table
from web.cli_tenants import OPERATOR


@app.command("usage")
def usage(
    limit: Annotated[int, typer.Option(help="How many businesses to list, the busiest first (1-500)")] = 50,
    search: Annotated[str | None, typer.Option(help="Only businesses whose name or slug holds this")] = None,
) -> None:
    """API requests and live pushes per business this month (Nairobi), with each one's plan quota."""
    rt = bootstrap()
    try:
        out = _run(rt, usage_across_businesses(OPERATOR, limit=limit, search=search))
    except LipapushError as exc:
        raise _fail(exc.message) from None
    console.print(
        f"{out.month}: {out.businesses:,} businesses, {out.requests_month:,} API requests "
        f"({out.requests_24h:,} in the last 24 hours), {out.live_pushes_month:,} live pushes"
    )
    table = Table(
        "business", "plan", "requests 24 h", "401s 24 h", "requests month", "API pushes", "failures",
        "live pushes / quota",
    )  # fmt: skip
    for r in out.rows:
        quota = f"{r.live_push_quota:,}" if r.live_push_quota is not None else "no limit"
        plan = (r.plan or "not limited") + (" (unpaid)" if r.plan_unpaid else "")
        table.add_row(
            f"{r.name} ({r.slug})",
            plan,
            f"{r.requests_24h:,}",
            f"{r.refused_keys_24h:,}",
            f"{r.requests_month:,}",
            f"{r.api_pushes_month:,}",
            f"{r.failures_month:,}",
            f"{r.live_pushes_month:,} / {quota}",
        )
    print_table(table)
