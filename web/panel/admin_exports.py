"""Platform admin: global exports. Starting one queues a background job; the page follows its progress
(a fragment polled by panel.js) and offers the file for download while it is kept."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.audit.service import record
from core.errors import InvalidInput, NotFound
from core.exports import global_exports
from core.exports.models import ExportStatus
from core.exports.xlsx import XLSX_MEDIA_TYPE
from core.payments.models import PaymentStatus
from core.runtime import unit_of_work
from web.panel.security import CurrentViewer, admin_only
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

Field = Annotated[str, Form(max_length=40)]


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors keyed by the form field they belong to (a model-level InvalidInput names its own)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidInput):
            out.setdefault(cause.field, cause.message)
        else:
            name = str(err["loc"][0]) if err["loc"] else "kind"
            hint = "Enter a date as YYYY-MM-DD." if "date" in name else "Choose one of the options."
            out.setdefault(name, hint)
    return out


async def _page(
    request: Request, viewer: Any, *, errors: dict[str, str] | None = None, form: dict[str, str] | None = None
) -> HTMLResponse:
    async with unit_of_work(readonly=True) as session:
        rows = await global_exports.recent_exports(session)
    return render(
        request,
        "admin/exports.html",
        {
            "rows": rows,
            "errors": errors or {},
            "form": form or {"kind": "transactions"},
            "statuses": [s.value for s in PaymentStatus],
            "available": global_exports.available,
            "stale": global_exports.stale,
            "gave_up": global_exports.GAVE_UP,
            "keep_hours": global_exports.KEEP_HOURS,
            "started": request.query_params.get("started", ""),
        },
        viewer=viewer,
        status=422 if errors else 200,
    )


@router.get("/admin/exports", response_class=HTMLResponse)
async def exports_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    admin_only(viewer)
    return await _page(request, viewer)


@router.post("/admin/exports", response_model=None)
async def start_export(
    request: Request,
    viewer: CurrentViewer,
    kind: Field = "",
    status: Field = "",
    date_from: Field = "",
    date_to: Field = "",
) -> Response:
    admin_only(viewer)
    form = {"kind": kind, "status": status, "date_from": date_from, "date_to": date_to}
    try:
        req = global_exports.ExportRequest(
            kind=kind,
            status=status or None,
            date_from=date_from or None,
            date_to=date_to or None,
        )
        async with unit_of_work() as session:
            row = await global_exports.request_export(session, req=req, user_id=viewer.user_id)
            export_id = row.id
    except ValidationError as exc:
        return await _page(request, viewer, errors=field_errors(exc), form=form)
    except InvalidInput as exc:
        return await _page(request, viewer, errors={exc.field: exc.message}, form=form)
    return RedirectResponse(f"/admin/exports?started={export_id}#export-{export_id}", status_code=303)


@router.get("/admin/exports/{export_id}/progress", response_class=HTMLResponse)
async def progress(request: Request, export_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    admin_only(viewer)
    async with unit_of_work(readonly=True) as session:
        row = await global_exports.get_export(session, export_id)
    return render(
        request,
        "admin/_export_progress.html",
        {
            "row": row,
            "available": global_exports.available,
            "stale": global_exports.stale,
            "gave_up": global_exports.GAVE_UP,
        },
        viewer=viewer,
    )


@router.get("/admin/exports/{export_id}/download")
async def download(export_id: uuid.UUID, viewer: CurrentViewer) -> FileResponse:
    admin_only(viewer)
    async with unit_of_work() as session:
        row = await global_exports.get_export(session, export_id)
        path = global_exports.available(row)
        if path is None:
            if row.status is ExportStatus.done:
                raise NotFound(
                    f"This export was kept for {global_exports.KEEP_HOURS} hours and has been deleted. "
                    "Start a new one."
                )
            raise NotFound("This export is not finished yet. Wait for it on the Exports page.")
        await record(session, action="export.downloaded", user_id=viewer.user_id, target=str(row.id))
    return FileResponse(
        path,
        media_type=XLSX_MEDIA_TYPE,
        filename=row.file_name or path.name,
        headers={"Cache-Control": "no-store"},
    )
