"""Platform admin → Plans (/admin/plans): every API plan with how many businesses are on it, and the
form that creates one or changes one (its businesses get the new limits from their next push). A
business's own plan, and assigning one to it, is on its page (/admin/tenants/{id}: web/panel/
admin_tenants.py, with `tenant_plan` below). The rules are core's (core.plans.use_cases_admin); this
module parses and renders."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import annotated_types
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.access.permissions import Permission
from core.errors import Conflict, InvalidInput, NotFound
from core.plans import use_cases, use_cases_admin
from core.plans.schemas import PlanIn, PlanOut
from web.panel.admin_access import admin_actor
from web.panel.app_settings_plan import month_label
from web.panel.forms import parse_whole
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import EAT, render

router = APIRouter(include_in_schema=False)

# Flash messages by key: the query string names one, it never carries text of its own.
DONE = {
    "created": "Plan created. Owners see it under Settings → Plan when it is offered to them.",
    "changed": "Plan changed: businesses on it get its limits from their next payment request.",
}
# PlanIn's fields by the form's names.
FORM_FIELDS = {
    "monthly_fee_cents": "fee",
    "live_pushes_per_month": "live_pushes",
    "pushes_per_key_per_minute": "per_key",
}
Text = Annotated[str, Form(max_length=600)]
Short = Annotated[str, Form(max_length=80)]


def _bounds(field: str) -> tuple[int, int]:
    """PlanIn's own limits for a number, so the form's messages never disagree with it."""
    meta = PlanIn.model_fields[field].metadata
    low = next(m.ge for m in meta if isinstance(m, annotated_types.Ge))
    high = next(m.le for m in meta if isinstance(m, annotated_types.Le))
    assert isinstance(low, int) and isinstance(high, int)
    return low, high


def _messages() -> dict[str, str]:
    fee_low, fee_high = _bounds("monthly_fee_cents")
    push_low, push_high = _bounds("live_pushes_per_month")
    rate_low, rate_high = _bounds("pushes_per_key_per_minute")
    return {
        "code": "Give a code of 2 to 40 lower-case letters, digits and dashes, like growth: the API and the "
        "CLI name the plan by it.",
        "name": "Give the plan a name of up to 80 characters, like Growth.",
        "description": "Keep the description to 500 characters.",
        "fee": f"Type the fee in whole shillings from {fee_low // 100:,} to {fee_high // 100:,}, like 3,000 "
        "(0: free).",
        "live_pushes": f"Type a whole number from {push_low:,} to {push_high:,}, or leave it empty for no "
        "monthly limit.",
        "per_key": f"Type a whole number from {rate_low:,} to {rate_high:,}, or leave it empty for the "
        "standard rate.",
        "public": "Choose yes or no.",
    }


def _number(raw: str, field: str, errors: dict[str, str], *, empty_is_none: bool) -> int | None:
    text = raw.strip()
    if not text:
        if not empty_is_none:
            errors[field] = _messages()[field]
        return None
    value = parse_whole(text, max_digits=None)
    if value is None:
        errors[field] = _messages()[field]
    return value


def plan_input(form: dict[str, str]) -> tuple[PlanIn | None, dict[str, str]]:
    """The plan form as PlanIn, or a message for each field that is wrong."""
    errors: dict[str, str] = {}
    fee = _number(form["fee"], "fee", errors, empty_is_none=False)
    live_pushes = _number(form["live_pushes"], "live_pushes", errors, empty_is_none=True)
    per_key = _number(form["per_key"], "per_key", errors, empty_is_none=True)
    if form["public"] not in ("yes", "no"):
        errors["public"] = _messages()["public"]
    try:
        data = PlanIn(
            code=form["code"].strip().lower(),
            name=" ".join(form["name"].split()),
            description=form["description"].strip() or None,
            monthly_fee_cents=(fee or 0) * 100,
            live_pushes_per_month=live_pushes,
            pushes_per_key_per_minute=per_key,
            public=form["public"] == "yes",
        )
    except ValidationError as exc:
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "code"
            field = FORM_FIELDS.get(name, name)
            errors.setdefault(field, _messages().get(field, str(e["msg"])))
        return None, errors
    return (None, errors) if errors else (data, errors)


def _values(plan: PlanOut | None) -> dict[str, str]:
    if plan is None:
        return {
            "code": "",
            "name": "",
            "description": "",
            "fee": "0",
            "live_pushes": "",
            "per_key": "",
            "public": "yes",
        }
    return {
        "code": plan.code,
        "name": plan.name,
        "description": plan.description or "",
        "fee": f"{plan.monthly_fee_cents // 100}",
        "live_pushes": "" if plan.live_pushes_per_month is None else str(plan.live_pushes_per_month),
        "per_key": "" if plan.pushes_per_key_per_minute is None else str(plan.pushes_per_key_per_minute),
        "public": "yes" if plan.public else "no",
    }


async def _page(
    request: Request,
    viewer: Viewer,
    *,
    editing: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    done: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    rows = await use_cases_admin.list_plans(admin_actor(viewer))
    plan, count = next(((p, n) for p, n in rows if p.code == editing), (None, 0)) if editing else (None, 0)
    if editing and plan is None:
        raise NotFound(f"No plan {editing!r}: choose one from the list on /admin/plans.")
    return render(
        request,
        "admin/plans.html",
        {
            "rows": rows,
            "editing": plan,
            "editing_count": count,
            "values": values or _values(plan),
            "errors": errors or {},
            "done": DONE.get(done or ""),
        },
        viewer=viewer,
        status=status,
    )


@router.get("/admin/plans", response_class=HTMLResponse)
async def plans_page(
    request: Request,
    viewer: CurrentViewer,
    edit: Annotated[str, Query(max_length=40)] = "",
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """`edit`: the code of the plan the form changes; none, a new plan."""
    return await _page(request, viewer, editing=edit.strip().lower(), done=done)


@router.post("/admin/plans", response_model=None)
async def save_plan(
    request: Request,
    viewer: CurrentViewer,
    editing: Short = "",
    code: Short = "",
    name: Short = "",
    description: Text = "",
    fee: Short = "",
    live_pushes: Short = "",
    per_key: Short = "",
    public: Short = "",
) -> Response:
    """`editing` names the plan being changed (its code stays); empty, the form makes a new plan and
    refuses a code that is taken, so a typo never changes another plan."""
    actor = admin_actor(viewer)
    actor.require(Permission.platform_admin)  # before the form's own errors
    form = {
        "code": editing or code,
        "name": name,
        "description": description,
        "fee": fee,
        "live_pushes": live_pushes,
        "per_key": per_key,
        "public": public,
    }
    data, errors = plan_input(form)
    if data is not None and not editing:
        taken = {p.code for p, _ in await use_cases_admin.list_plans(actor)}
        if data.code in taken:
            errors["code"] = (
                f"A plan {data.code!r} exists already: change it from the list, or choose another code."
            )
    if data is None or errors:
        return await _page(request, viewer, editing=editing, values=form, errors=errors, status=422)
    try:
        saved = await use_cases_admin.save_plan(actor, data)
    except (Conflict, InvalidInput) as exc:  # the default plan stays offered; a code taken meanwhile
        return await _page(
            request, viewer, editing=editing, values=form, errors={"form": exc.message}, status=exc.status
        )
    done = "changed" if editing else "created"
    return RedirectResponse(f"/admin/plans?done={done}#plan-{saved.code}", status_code=303)


# -- one business's plan (its section on /admin/tenants/{id}) ----------------------------------------
async def tenant_plan(viewer: Viewer, tenant_id: uuid.UUID) -> dict[str, Any]:
    """What the plan section of a business's page shows: its plan status (read as an admin acting for
    it) and every plan, hidden ones too, to assign; none for a hotspot provider, which is on no plan."""
    actor = admin_actor(viewer)
    try:
        status = await use_cases.plan_status(actor.for_business(tenant_id))
    except Conflict:
        return {"plan_status": None, "plan_month": None, "plan_choices": []}
    return {
        "plan_status": status,
        "plan_month": month_label(status.month),
        "plan_choices": [p for p, _ in await use_cases_admin.list_plans(actor)],
    }


def paid_until_of(day: date | None) -> datetime | None:
    """The last Nairobi day paid, as the moment the paid period ends (00:00 the day after, in UTC)."""
    if day is None:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=EAT).astimezone(UTC) + timedelta(days=1)
