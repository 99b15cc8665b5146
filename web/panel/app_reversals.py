"""Reversing a received payment from the panel: the transaction's page offers it to the owner (a
reason, then a confirmation dialog), the reversal's page takes the code sent to the owner and shows
how M-Pesa answered. The rules are core's (core.reversals.use_cases)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.errors import LipapushError
from core.payments.use_cases import get_payment
from core.reversals import use_cases
from web.panel.app_money import transaction_page
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)


async def _page(
    request: Request,
    viewer: Viewer,
    reversal_id: uuid.UUID,
    *,
    error: str | None = None,
    sent_to: str = "",
    status: int = 200,
) -> HTMLResponse:
    r = await use_cases.get_reversal(viewer.actor, reversal_id)
    payment = await get_payment(viewer.actor, r.payment_id)
    return render(
        request,
        "app/reversal.html",
        {"r": r, "p": payment, "error": error, "sent_to": sent_to},
        viewer=viewer,
        status=status,
    )


@router.post("/app/transactions/{payment_id}/reverse", response_model=None)
async def start(
    request: Request,
    payment_id: uuid.UUID,
    viewer: CurrentViewer,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    business(viewer, Permission.reversals_request)
    try:
        started = await use_cases.start_reversal(viewer.actor, payment_id, reason=reason)
    except LipapushError as exc:  # said on the transaction's page, above the form, with the reason kept
        return await transaction_page(
            request, viewer, payment_id, reverse_error=exc.message, reason=reason, status=exc.status
        )
    sent_to = " and ".join(started.code_sent_to) or "nowhere"
    return await _page(request, viewer, started.reversal.id, sent_to=sent_to, status=201)


@router.get("/app/reversals/{reversal_id}", response_class=HTMLResponse)
async def show(request: Request, reversal_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    business(viewer, Permission.payouts_read)
    return await _page(request, viewer, reversal_id)


@router.post("/app/reversals/{reversal_id}/confirm", response_model=None)
async def confirm(
    request: Request,
    reversal_id: uuid.UUID,
    viewer: CurrentViewer,
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    business(viewer, Permission.reversals_request)
    try:
        await use_cases.confirm_reversal(viewer.actor, reversal_id, code=code)
    except LipapushError as exc:
        return await _page(request, viewer, reversal_id, error=exc.message, status=exc.status)
    return RedirectResponse(f"/app/reversals/{reversal_id}", status_code=303)
