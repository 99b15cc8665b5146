"""WiFi vouchers (/app/wifi/vouchers): the list with filters and keyset pages, printed batches (the
batch page, the print sheet, the Excel file), revoke, text a sold code again, write it to its router
again."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from core.access.permissions import Permission
from core.errors import InvalidInput
from core.hotspot import use_cases as voucher_cases
from core.hotspot.models import VoucherStatus
from core.hotspot.provision import validity_text
from core.hotspot.vouchers import MAX_BATCH, vouchers
from web.exports import xlsx_response
from web.panel.app_wifi import done_message, provider
from web.panel.forms import choice, page_url, parse_uuid, parse_whole
from web.panel.security import CurrentViewer, Viewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

PAGE = 50


async def _vouchers_page(
    request: Request,
    viewer: Viewer,
    *,
    filters: dict[str, str],
    cursor: str = "",
    issue: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    errors = dict(errors or {})
    wanted_status = choice(
        VoucherStatus, filters["status"], "status", errors, "Choose a status from the list."
    )
    plan_id = parse_uuid(filters["plan"], "plan", errors, "Choose a plan from the list.")
    if len(filters["code"]) > 32:
        errors["code"] = "A voucher code is at most 12 letters and digits."
    seen = await voucher_cases.voucher_page(
        provider(viewer),
        status=wanted_status,
        plan_id=plan_id,
        code=filters["code"] or None,
        cursor=cursor or None,
        limit=PAGE,
        search=not any(k in errors for k in ("status", "plan", "code")),
    )
    if seen.cursor_error:
        errors["cursor"] = seen.cursor_error
    if any(k in errors for k in ("status", "plan", "code", "cursor")):
        status = 422
    boxes = seen.routers
    return render(
        request,
        "app/wifi_vouchers.html",
        {
            "vouchers": seen.vouchers,
            "router_names": {r.id: r.name for r in boxes},
            "plans": seen.plans,
            "routers": boxes,
            "filters": filters,
            "issue": issue
            or {
                "plan_id": "",
                "router_id": str(boxes[0].id) if len(boxes) == 1 else "",
                "count": "10",
            },
            "errors": errors,
            "statuses": [s.value for s in VoucherStatus],
            "max_batch": MAX_BATCH,
            "next_url": page_url("/app/wifi/vouchers", filters, cursor=seen.next_cursor)
            if seen.next_cursor
            else None,
            "first_url": page_url("/app/wifi/vouchers", filters) if cursor else None,
            "usable": vouchers.usable,
            "done": done_message(request),
            "section": "vouchers",
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/wifi/vouchers", response_class=HTMLResponse)
async def voucher_list(
    request: Request,
    viewer: CurrentViewer,
    status: Annotated[str, Query(max_length=20)] = "",
    plan: Annotated[str, Query(max_length=64)] = "",
    code: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str, Query(max_length=300)] = "",
) -> HTMLResponse:
    filters = {"status": status.strip(), "plan": plan.strip(), "code": code.strip()}
    return await _vouchers_page(request, viewer, filters=filters, cursor=cursor)


@router.post("/app/wifi/vouchers/batch", response_model=None)
async def voucher_batch(
    request: Request,
    viewer: CurrentViewer,
    plan_id: Annotated[str, Form(max_length=64)] = "",
    router_id: Annotated[str, Form(max_length=64)] = "",
    count: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Printed cards (POST /api/vouchers/batch and the bot's 🎟 Print vouchers)."""
    actor = provider(viewer, Permission.vouchers_issue)
    issue = {"plan_id": plan_id.strip(), "router_id": router_id.strip(), "count": count.strip()}
    errors: dict[str, str] = {}
    plan = parse_uuid(issue["plan_id"], "plan_id", errors, "Choose a plan from the list.")
    box = parse_uuid(issue["router_id"], "router_id", errors, "Choose a router from the list.")
    if plan is None and "plan_id" not in errors:
        errors["plan_id"] = "Choose the plan the cards are for."
    if box is None and "router_id" not in errors:
        errors["router_id"] = "Choose the router the cards work on."
    n = parse_whole(issue["count"])
    if n is None or not 1 <= n <= MAX_BATCH:
        errors["count"] = f"Issue 1 to {MAX_BATCH} vouchers at a time."
    empty = {"status": "", "plan": "", "code": ""}
    if errors:
        return await _vouchers_page(request, viewer, filters=empty, issue=issue, errors=errors, status=422)
    assert plan is not None and box is not None and n is not None
    try:
        issued = await voucher_cases.issue_voucher_batch(actor, router_id=box, plan_id=plan, count=n)
    except InvalidInput as exc:  # the plan is sold on another router only
        field = "plan_id" if exc.field == "plan_id" else "count"
        return await _vouchers_page(
            request, viewer, filters=empty, issue=issue, errors={field: exc.message}, status=422
        )
    return RedirectResponse(f"/app/wifi/vouchers/batches/{issued.batch_id}?done=issued", status_code=303)


@router.get("/app/wifi/vouchers/batches/{batch_id}", response_class=HTMLResponse)
async def batch_page(request: Request, batch_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    batch = await voucher_cases.view_voucher_batch(provider(viewer), batch_id)
    waiting = sum(1 for v in batch.vouchers if v.status is VoucherStatus.issued)
    return render(
        request,
        "app/wifi_batch.html",
        {
            "batch_id": batch_id,
            "vouchers": batch.vouchers,
            "router_name": batch.router_name,
            "waiting": waiting,
            "done": done_message(request),
            "validity": validity_text,
            "section": "vouchers",
        },
        viewer=viewer,
    )


@router.get("/app/wifi/vouchers/batches/{batch_id}/print", response_class=HTMLResponse)
async def batch_print(
    batch_id: uuid.UUID,
    viewer: CurrentViewer,
    paper: Annotated[str, Query(max_length=10)] = "a4",
) -> HTMLResponse:
    """The printable sheet, as GET /api/vouchers/batches/{id}/print serves it (its own inline CSS for
    the printer, so not a panel page)."""
    page, _ = await voucher_cases.print_voucher_batch(provider(viewer), batch_id, paper=paper)
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


@router.get("/app/wifi/vouchers/batches/{batch_id}/export.xlsx", response_class=StreamingResponse)
async def batch_export(batch_id: uuid.UUID, viewer: CurrentViewer) -> StreamingResponse:
    """The same file as GET /api/vouchers/batches/{id}/export-excel, from the same use case."""
    return xlsx_response(await voucher_cases.export_voucher_batch(provider(viewer), batch_id))


def _back_to(code: str, done: str) -> RedirectResponse:
    return RedirectResponse("/app/wifi/vouchers?" + urlencode({"code": code, "done": done}), status_code=303)


@router.post("/app/wifi/vouchers/{voucher_id}/revoke")
async def voucher_revoke(voucher_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    revoked = await voucher_cases.revoke_voucher(provider(viewer), voucher_id=voucher_id)
    return _back_to(revoked.voucher.code, "revoked")


@router.post("/app/wifi/vouchers/{voucher_id}/text")
async def voucher_text(voucher_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Text a sold voucher's code to its buyer again."""
    v = await voucher_cases.text_voucher_again(provider(viewer), voucher_id=voucher_id)
    return _back_to(v.code, "texted")


@router.post("/app/wifi/vouchers/{voucher_id}/resend")
async def voucher_resend(voucher_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Write a voucher to its router again (POST /api/tickets/{code}/activate): a buyer whose login fails."""
    v = await voucher_cases.resend_voucher(provider(viewer), voucher_id=voucher_id)
    return _back_to(v.code, "resent")
