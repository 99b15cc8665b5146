"""Bulk payouts in the business view (/app/payouts/batches): upload a list (.xlsx or .csv), read its
preview (rows to pay, total, refused rows with their row numbers and reasons, duplicates flagged),
approve it through a confirmation that names the total, and watch it pay: a progress bar that updates
itself while the batch runs (panel.js's data-poll), Pause / Resume / Cancel as its state allows, why it
paused, its rows, and the result as .xlsx.

Every rule is core's (core.payout_batches.use_cases): who may, the file check, the limits, the pace,
that a resumed batch never pays a row twice. The pages parse, call and render."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from core.access.permissions import Permission
from core.errors import InvalidInput, LipapushError, NotFound, PermissionDenied
from core.payout_batches import use_cases
from core.payout_batches.schemas import BatchOut
from core.payouts.models import BatchStatus, PayoutStatus
from core.payouts.schemas import PayoutFilter
from core.payouts.use_cases import list_payouts
from core.tenants.initiator_schemas import PayoutChannelOut
from web.exports import xlsx_response
from web.panel.forms import choice, page_url, parse_uuid
from web.panel.money_out import (
    BAD_CHANNEL,
    BATCH_LABELS,
    COMMAND_LABELS,
    COMMANDS,
    STATUS_LABELS,
    channel_label,
    channel_names,
    duplicate_rows,
    may_pay_out,
    payout_channels,
    refused_rows,
    require_paying,
)
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

ROWS_PAGE = 50
TEMPLATE_CSV = "phone,amount,name,reference\r\n0712345678,1500,Wanjiru Kamau,March wages\r\n"
DONE = {
    "approved": "Approved: the rows are going to M-Pesa, ten at a time.",
    "paused": "Paused: no new row is sent. Rows already with M-Pesa still finish.",
    "resumed": "Resumed: the rows left are going to M-Pesa again.",
    "cancelled": "Cancelled: the rows that had not been sent never will be.",
    "discarded": "Preview thrown away: nothing was paid.",
}
# core's field names as the upload form calls them; any other refusal is said above the form
UPLOAD_FIELDS = {"file": "file", "channel_id": "channel"}
BAR_WIDTH = 1000  # SVG units; the bar stretches to its box


# -- the list and the upload ------------------------------------------------------------------------
async def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    business(viewer, Permission.payouts_read)
    channels = await payout_channels(viewer)
    return render(
        request,
        "app/batches.html",
        {
            "batches": await use_cases.list_batches(viewer.actor, limit=50),
            "labels": BATCH_LABELS,
            "channels": [(str(c.id), channel_label(c)) for c in channels],
            "channel_names": channel_names(channels),
            "commands": [(value, label) for value, _, label in COMMANDS],
            "can_pay": await may_pay_out(viewer),
            "owner": viewer.actor.shows(Permission.channel_manage),
            "errors": errors or {},
            "values": values or {"command": "business"},
            "done": DONE.get(request.query_params.get("done", "")),
        },
        viewer=viewer,
        status=status,
    )


@router.get("/app/payouts/batches", response_class=HTMLResponse)
async def batches(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _list_page(request, viewer)


@router.get("/app/payouts/batches/template.csv", response_model=None)
async def template_csv(viewer: CurrentViewer) -> Response:
    """A file to start from: the header the check reads, and one example row."""
    business(viewer, Permission.payouts_read)
    return Response(
        TEMPLATE_CSV,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="payouts-template.csv"'},
    )


def _choose_channel(raw: str, channels: list[PayoutChannelOut], errors: dict[str, str]) -> uuid.UUID | None:
    """With several payout channels one must be chosen; with one, it is the one."""
    channel_id = parse_uuid(raw, "channel", errors, BAD_CHANNEL)
    if channel_id is None and len(channels) == 1:
        channel_id = channels[0].id
    if channels and channel_id not in {c.id for c in channels}:
        errors.setdefault("channel", BAD_CHANNEL)
    return channel_id


@router.post("/app/payouts/batches", response_model=None)
async def upload(
    request: Request,
    viewer: CurrentViewer,
    file: Annotated[UploadFile | None, File()] = None,
    command: Annotated[str, Form(max_length=40)] = "business",
    channel: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The file checked into a draft: its preview. Nothing is paid until the preview is approved."""
    business(viewer)
    await require_paying(viewer)  # before the file is read: a read-only admin hears why
    values = {"command": command, "channel": channel}
    errors: dict[str, str] = {}
    commands = {value: cmd for value, cmd, _ in COMMANDS}
    if command not in commands:
        errors["command"] = "Choose what kind of payment this is."
    channel_id = _choose_channel(channel, await payout_channels(viewer), errors)
    data = await file.read() if file is not None else b""
    if file is None or not file.filename or not data:
        errors["file"] = "Choose the file to upload: an Excel (.xlsx) or CSV (.csv) list."
    if errors:
        return await _list_page(request, viewer, errors=errors, values=values, status=422)
    assert file is not None
    try:
        batch = await use_cases.upload_batch(
            viewer.actor,
            filename=file.filename or "payouts",
            data=data,
            command=commands[command],
            channel_id=channel_id,
        )
    except (PermissionDenied, NotFound):
        raise  # the error page, as for every other form
    except LipapushError as exc:  # the file cannot be read, the channel cannot pay out yet…
        field = UPLOAD_FIELDS.get(exc.field, "upload") if isinstance(exc, InvalidInput) else "upload"
        return await _list_page(
            request, viewer, errors={field: exc.message}, values=values, status=exc.status
        )
    return RedirectResponse(f"/app/payouts/batches/{batch.id}", status_code=303)


# -- one batch --------------------------------------------------------------------------------------
def progress_view(b: BatchOut) -> dict[str, Any] | None:
    """The bar's segments (SVG x and width, as attributes: the CSP allows no inline styles) and the
    counts under it, once approved."""
    p = b.progress
    if p is None:
        return None
    total = p.queued + p.pending + p.paid + p.failed + p.timeout
    done = p.paid + p.failed + p.timeout
    segments = []
    x = 0
    for name, count in (("paid", p.paid), ("failed", p.failed + p.timeout), ("pending", p.pending)):
        width = round(BAR_WIDTH * count / total) if total else 0
        if width:
            segments.append({"name": name, "x": x, "width": width})
            x += width
    return {
        "p": p,
        "total": total,
        "done": done,
        "waiting": p.queued + p.pending,
        "percent": round(100 * done / total) if total else 100,
        "segments": segments,
        "bar_width": BAR_WIDTH,
    }


async def _state_ctx(viewer: Viewer, b: BatchOut, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    chosen_rows = b.rows_valid - b.duplicates
    return {
        "b": b,
        "label": BATCH_LABELS[b.status],
        "command_label": COMMAND_LABELS[b.command],
        "channel_name": names.get(b.channel_id, "the payout channel"),
        "progress": progress_view(b),
        "refused": refused_rows(b),
        "duplicates": duplicate_rows(b),
        "rows_without_duplicates": chosen_rows,
        "can_pay": await may_pay_out(viewer),
        # Keep following while anything can still move: a running batch, or rows with M-Pesa.
        "live": b.status is BatchStatus.running or (b.progress is not None and b.progress.pending > 0),
    }


async def _batch_page(
    request: Request,
    viewer: Viewer,
    batch_id: uuid.UUID,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The batch; once approved, its rows (`status` and `cursor` from the URL: a filter and a page)."""
    business(viewer, Permission.payouts_read)
    b = await use_cases.get_batch(viewer.actor, batch_id)
    names = channel_names(await payout_channels(viewer))
    qp = request.query_params
    row_errors: dict[str, str] = {}
    row_status = choice(
        PayoutStatus, qp.get("status", "")[:20], "status", row_errors, "Choose from the list."
    )
    cursor = qp.get("cursor", "")[:300]
    ctx = await _state_ctx(viewer, b, names)
    ctx.update(
        error=error,
        done=DONE.get(qp.get("done", "")),
        rows=[],
        next_url=None,
        first_url=None,
        statuses=STATUS_LABELS,
        statuses_by_value={s.value: label for s, label in STATUS_LABELS.items()},
        row_statuses=[(s.value, label) for s, label in STATUS_LABELS.items()],
        row_status=row_status.value if row_status else "",
        row_errors=row_errors,
    )
    if b.status is not BatchStatus.draft and not row_errors:
        filters = PayoutFilter(batch_id=b.id, status=row_status)
        try:
            page = await list_payouts(viewer.actor, filters=filters, cursor=cursor or None, limit=ROWS_PAGE)
        except InvalidInput as exc:  # a cursor that was tampered with
            row_errors["status"] = exc.message
        else:
            ctx["rows"] = page.items
            here = f"/app/payouts/batches/{b.id}"
            kept = {"status": ctx["row_status"]}
            if page.next_cursor:
                ctx["next_url"] = page_url(here, kept, cursor=page.next_cursor) + "#rows"
            if cursor:
                ctx["first_url"] = page_url(here, kept) + "#rows"
    if row_errors and status == 200:
        status = 422
    return render(request, "app/batch.html", ctx, viewer=viewer, status=status)


@router.get("/app/payouts/batches/{batch_id:uuid}", response_class=HTMLResponse)
async def batch(request: Request, batch_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    return await _batch_page(request, viewer, batch_id)


@router.get("/app/payouts/batches/{batch_id:uuid}/progress", response_class=HTMLResponse)
async def batch_progress(request: Request, batch_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    """The fragment data-poll swaps in: it keeps polling while the batch can still move."""
    business(viewer, Permission.payouts_read)
    b = await use_cases.get_batch(viewer.actor, batch_id)
    ctx = await _state_ctx(viewer, b, channel_names(await payout_channels(viewer)))
    # The rows under the bar were read when the page loaded: once the batch stops, offer them fresh.
    ctx["polled"] = True
    return render(request, "app/batch_state.html", ctx, viewer=viewer)


@router.get("/app/payouts/batches/{batch_id:uuid}/result.xlsx", response_class=StreamingResponse)
async def result(batch_id: uuid.UUID, viewer: CurrentViewer) -> StreamingResponse:
    """The same file and audit row (export.payout_batch) as GET /api/payout-batches/{id}/result.xlsx."""
    business(viewer, Permission.payouts_read)
    return xlsx_response(await use_cases.batch_result(viewer.actor, batch_id))


async def _act(
    request: Request, viewer: Viewer, batch_id: uuid.UUID, done: str, call: Any, **kwargs: Any
) -> Response:
    business(viewer)
    await require_paying(viewer)
    try:
        after: BatchOut = await call(viewer.actor, batch_id, **kwargs)
    except (PermissionDenied, NotFound):
        raise  # the error page, as for every other form
    except LipapushError as exc:  # over the daily limit, already paused by itself, a stale page…
        return await _batch_page(request, viewer, batch_id, error=exc.message, status=exc.status)
    if done == "cancelled" and after.approved_at is None:
        done = "discarded"  # a preview thrown away: nothing was ever sent
    return RedirectResponse(f"/app/payouts/batches/{batch_id}?done={done}", status_code=303)


@router.post("/app/payouts/batches/{batch_id:uuid}/approve", response_model=None)
async def approve(
    request: Request,
    batch_id: uuid.UUID,
    viewer: CurrentViewer,
    include_duplicates: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """The confirmation was the dialog naming the total; this pays."""
    return await _act(
        request,
        viewer,
        batch_id,
        "approved",
        use_cases.approve_batch,
        include_duplicates=bool(include_duplicates),
    )


@router.post("/app/payouts/batches/{batch_id:uuid}/pause", response_model=None)
async def pause(request: Request, batch_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    return await _act(request, viewer, batch_id, "paused", use_cases.pause_batch)


@router.post("/app/payouts/batches/{batch_id:uuid}/resume", response_model=None)
async def resume(request: Request, batch_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    return await _act(request, viewer, batch_id, "resumed", use_cases.resume_batch)


@router.post("/app/payouts/batches/{batch_id:uuid}/cancel", response_model=None)
async def cancel(request: Request, batch_id: uuid.UUID, viewer: CurrentViewer) -> Response:
    """A preview thrown away, or a paused batch ended for good."""
    return await _act(request, viewer, batch_id, "cancelled", use_cases.cancel_batch)
