"""Platform admin: global exports. Starting one queues a background job; the page follows its progress
(a fragment polled by panel.js) and offers the file for download while it is kept."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.errors import InvalidInput
from core.exports import global_exports
from core.exports import use_cases_admin as admin
from core.exports.xlsx import XLSX_MEDIA_TYPE
from core.payments.models import PaymentStatus
from web.panel.admin_access import admin_actor
from web.panel.security import CurrentViewer
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
    rows = await admin.recent_global_exports(admin_actor(viewer))
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
    form = {"kind": kind, "status": status, "date_from": date_from, "date_to": date_to}
    try:
        req = global_exports.ExportRequest(
            kind=kind,
            status=status or None,
            date_from=date_from or None,
            date_to=date_to or None,
        )
        export_id = (await admin.start_global_export(admin_actor(viewer), req)).id
    except ValidationError as exc:
        return await _page(request, viewer, errors=field_errors(exc), form=form)
    except InvalidInput as exc:
        return await _page(request, viewer, errors={exc.field: exc.message}, form=form)
    return RedirectResponse(f"/admin/exports?started={export_id}#export-{export_id}", status_code=303)


@router.get("/admin/exports/{export_id}/progress", response_class=HTMLResponse)
async def progress(request: Request, export_id: uuid.UUID, viewer: CurrentViewer) -> HTMLResponse:
    row = await admin.global_export(admin_actor(viewer), export_id)
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
    found = await admin.download_global_export(admin_actor(viewer), export_id)
    return FileResponse(
        found.path,
        media_type=XLSX_MEDIA_TYPE,
        filename=found.file_name,
        headers={"Cache-Control": "no-store"},
    )
