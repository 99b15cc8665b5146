"""Platform admin: Commissions (/admin/commissions). One period (a preset or Nairobi dates, both
included) and what the platform earned in it: commission per business from the ledger, invoices and
their state, what business wallets hold and who is running low, and subscription revenue. Read-only;
a period that cannot be understood is shown next to its field and the page lists nothing."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from core.access.permissions import Permission
from core.billing import periods
from core.billing import use_cases_admin as admin
from core.db import utcnow
from core.errors import InvalidInput
from web.panel.admin_access import admin_actor
from web.panel.forms import parse_day
from web.panel.security import CurrentViewer
from web.panel.templating import EAT, render

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Query(max_length=40)]
SORTS = {
    "total": ("Highest total first", lambda r: (-r.total_cents, r.name)),
    "total_asc": ("Lowest total first", lambda r: (r.total_cents, r.name)),
    "name": ("Name", lambda r: (r.name.lower(), -r.total_cents)),
}


def _day(raw: str, field: str, errors: dict[str, str]) -> date | None:
    return parse_day(raw, field, errors, "Give a date like 2025-03-31.", required=True)


def _period(preset: str, raw_from: str, raw_to: str, today: date, errors: dict[str, str]) -> periods.Period:
    """Dates given (the custom form) win over a preset; neither: this month."""
    if raw_from or raw_to or preset == "custom":
        first, last = _day(raw_from, "from", errors), _day(raw_to, "to", errors)
        if first is not None and last is not None:
            try:
                return periods.custom_period(first, last)
            except InvalidInput as exc:
                errors[exc.field] = exc.message
        return periods.Period(first or today, last or today)
    try:
        return periods.preset_period(preset or "this_month", today=today)
    except InvalidInput as exc:
        errors[exc.field] = exc.message
        return periods.preset_period("this_month", today=today)


@router.get("/admin/commissions", response_class=HTMLResponse)
async def commissions_page(
    request: Request,
    viewer: CurrentViewer,
    period: Text = "",
    from_: Annotated[str, Query(alias="from", max_length=40)] = "",
    to: Text = "",
    sort: Text = "",
) -> HTMLResponse:
    actor = admin_actor(viewer)
    actor.require(Permission.platform_admin)  # refused before a period is read
    now: datetime = utcnow()
    errors: dict[str, str] = {}
    chosen = _period(period, from_, to, now.astimezone(EAT).date(), errors)
    sort = sort if sort in SORTS else "total"
    # how the sort links keep the period
    keep = (
        {"period": chosen.preset}
        if chosen.preset != "custom"
        else {"from": chosen.first.isoformat(), "to": chosen.last.isoformat()}
    )
    ctx: dict[str, object] = {
        "errors": errors,
        "period": chosen,
        "form": {"from": from_ or chosen.first.isoformat(), "to": to or chosen.last.isoformat()},
        "presets": periods.PRESETS,
        "sort": sort,
        "sorts": {k: v[0] for k, v in SORTS.items()},
        "sort_links": {k: "?" + urlencode({**keep, "sort": k}) for k in SORTS},
        "now": now,
    }
    if not errors:
        seen = await admin.commissions_overview(actor, period=chosen, now=now)
        ctx.update(
            earned=seen.earned,
            rows=sorted(seen.earned.rows, key=SORTS[sort][1]),
            invoices=seen.invoices,
            wallets=seen.wallets,
            subs=seen.subs,
        )
    return render(request, "admin/commissions.html", ctx, viewer=viewer, status=422 if errors else 200)
