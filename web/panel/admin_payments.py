"""Platform admin → Transactions: every payment across tenants (filters, keyset pages) and one payment
with its callbacks, jobs and ledger transfers. The queries are core.payments.use_cases_admin."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.access.permissions import Permission
from core.errors import InvalidInput, NotFound
from core.payments import use_cases_admin as admin
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.search import DEFAULT_LIMIT, MAX_LIMIT, PhoneMatch, phone_match
from web.panel.admin_access import admin_actor
from web.panel.forms import choice, page_url, parse_day
from web.panel.security import CurrentViewer, safe_next
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

LIST = "/admin/transactions"
FIELDS = ("tenant", "status", "source", "from", "to", "phone")


def _limit(text: str) -> int:
    try:
        return max(1, min(int(text), MAX_LIMIT))
    except ValueError:
        return DEFAULT_LIMIT


def _url(params: dict[str, str], cursor: str | None = None) -> str:
    return page_url(LIST, params, cursor=cursor)


@router.get(LIST, response_class=HTMLResponse)
async def transaction_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    q = request.query_params
    form = {name: q.get(name, "").strip() for name in FIELDS}
    limit = _limit(q.get("limit", ""))
    cursor = q.get("cursor") or None
    errors: dict[str, str] = {}
    status = choice(PaymentStatus, form["status"], "status", errors, "Choose a status from the list.")
    source = choice(PaymentSource, form["source"], "source", errors, "Choose a source from the list.")
    day_from = parse_day(form["from"], "from", errors)
    day_to = parse_day(form["to"], "to", errors)
    phone: PhoneMatch | None = None
    if form["phone"]:
        try:
            phone = phone_match(form["phone"])
        except InvalidInput as exc:
            errors["phone"] = exc.message
    found = await admin.search_transactions(
        admin_actor(viewer),
        tenant=form["tenant"],
        day_from=day_from,
        day_to=day_to,
        status=status,
        source=source,
        phone=phone,
        cursor=cursor,
        limit=limit,
        list_rows=not errors,
    )
    errors.update(found.errors)
    page, tenant_name = found.page, found.tenant_name
    base = {k: v for k, v in form.items() if v}
    if limit != DEFAULT_LIMIT:
        base["limit"] = str(limit)
    return render(
        request,
        "admin/transactions.html",
        {
            "form": form,
            "errors": errors,
            "page": page,
            "statuses": list(PaymentStatus),
            "sources": list(PaymentSource),
            "tenant_name": tenant_name,
            "phone": phone,
            "filtered": bool(base.keys() - {"limit"}),
            "first_url": _url(base),
            "older_url": _url(base, page.older) if page and page.older else None,
            "newer_url": _url(base, page.newer) if page and page.newer else None,
            "back_param": urlencode({"back": _url(base, cursor)}),
            "limit": limit,
        },
        viewer=viewer,
        status=422 if errors else 200,
    )


@router.get(LIST + "/{payment_id}", response_class=HTMLResponse)
async def payment_detail(request: Request, payment_id: str, viewer: CurrentViewer) -> HTMLResponse:
    actor = admin_actor(viewer)
    try:
        pid = uuid.UUID(payment_id)
    except ValueError:
        actor.require(Permission.platform_admin)  # a business user is refused, not told "no such"
        raise NotFound("No such payment.") from None
    detail = await admin.payment_detail(actor, pid)
    back = safe_next(request.query_params.get("back"), LIST)
    if not back.startswith(LIST):
        back = LIST
    context = {"d": detail, "p": detail.payment, "back": back}
    return render(request, "admin/payment.html", context, viewer=viewer)
