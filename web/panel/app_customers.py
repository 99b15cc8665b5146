"""The customer book (/app/customers): search, sort, a filter and pages through CustomerService.search,
and Export to Excel: the same file, filters and audit row as GET /api/customers/export-excel.

A business with more than one channel may show the customers of one (web/panel/channel_filter.py):
still one book, each customer with their whole figures.

Owner and manager only, as in the API and the bot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import ValidationError

from core.access.permissions import Permission
from core.customers.schemas import CustomerQuery, CustomerSort
from core.customers.use_cases import search_customers
from core.exports.use_cases import export_customers
from web.exports import xlsx_response
from web.panel.channel_filter import channel_options, parse_channel
from web.panel.forms import page_url
from web.panel.security import CurrentViewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 25
SORTS = {
    CustomerSort.last_seen_at.value: "Last transaction",
    CustomerSort.name.value: "Name",
    CustomerSort.paid_total.value: "Total paid",
    CustomerSort.paid_count.value: "Paid count",
}
PAID = {"": "Everyone", "yes": "Paid at least once", "no": "Never paid"}
FIELDS = ("q", "sort", "order", "paid", "channel")


def _form(request: Request) -> dict[str, str]:
    qp = request.query_params
    return {
        "q": qp.get("q", "").strip(),
        "sort": qp.get("sort", CustomerSort.last_seen_at.value),
        "order": qp.get("order", "desc"),
        "paid": qp.get("paid", ""),
        "channel": qp.get("channel", "").strip(),
    }


def customer_query(form: dict[str, str], page: int) -> tuple[CustomerQuery | None, dict[str, str]]:
    """The form as a CustomerQuery, or the message for each field that is wrong."""
    errors: dict[str, str] = {}
    if form["sort"] not in SORTS:
        errors["sort"] = "Choose how to sort from the list."
    if form["order"] not in ("asc", "desc"):
        errors["order"] = "Choose an order from the list."
    if form["paid"] not in PAID:
        errors["paid"] = "Choose a filter from the list."
    if len(form["q"]) > 100:
        errors["q"] = "Search for at most 100 characters."
    channel_id = parse_channel(form["channel"], errors)
    if channel_id is not None:
        form["channel"] = str(channel_id)  # as the select writes it, so it shows as chosen
    if errors:
        return None, errors
    try:
        query = CustomerQuery(
            q=form["q"] or None,
            sort=CustomerSort(form["sort"]),
            desc=form["order"] == "desc",
            has_paid={"yes": True, "no": False}.get(form["paid"]),
            channel_id=channel_id,
            page=page,
            per_page=PER_PAGE,
        )
    except ValidationError:
        return None, {"page": "That page does not exist."}
    return query, {}


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 100_000 else 0


@router.get("/app/customers", response_class=HTMLResponse)
async def customer_list(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    business(viewer, Permission.customers_read)
    form = _form(request)
    page = _page_number(request)
    query, errors = customer_query(form, page or 1)
    if not page:
        errors["page"] = "That page does not exist."
    kept = {k: v for k, v in form.items() if v and k in FIELDS}
    ctx: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "sorts": SORTS,
        "paid_filters": PAID,
        "channels": await channel_options(viewer, book_only=True),
        "items": [],
        "total": 0,
        "export_url": page_url("/app/customers/export.xlsx", kept),
    }
    if errors or query is None:
        return render(request, "app/customers.html", ctx, viewer=viewer, status=422)
    result = await search_customers(viewer.actor, query=query)
    ctx["items"], ctx["total"], ctx["capped"] = result.items, result.total, result.total_capped
    pages = max(1, -(-result.total // PER_PAGE))
    ctx["page"], ctx["pages"] = query.page, pages
    if query.page > 1:
        ctx["prev_url"] = page_url("/app/customers", kept, page=query.page - 1)
    # A capped count (a big book) is a lower bound: there is a page after this one.
    if query.page < pages or result.total_capped:
        ctx["next_url"] = page_url("/app/customers", kept, page=query.page + 1)
    return render(request, "app/customers.html", ctx, viewer=viewer)


@router.get("/app/customers/export.xlsx", response_class=StreamingResponse, response_model=None)
async def customer_export(request: Request, viewer: CurrentViewer) -> StreamingResponse | HTMLResponse:
    """The customer book as .xlsx with the page's filters (all pages), audited as export.customers."""
    form = _form(request)
    query, errors = customer_query(form, 1)
    if errors or query is None:
        ctx = {
            "form": form,
            "errors": errors,
            "sorts": SORTS,
            "paid_filters": PAID,
            "channels": await channel_options(viewer, book_only=True),
            "items": [],
            "total": 0,
        }
        return render(request, "app/customers.html", ctx, viewer=viewer, status=422)
    return xlsx_response(await export_customers(viewer.actor, query=query))
