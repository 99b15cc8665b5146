"""Serving a built .xlsx (the use case has already audited it): stream it, delete it once sent."""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from core.exports.use_cases import BuiltExport
from core.exports.xlsx import XLSX_MEDIA_TYPE, export_filename, iter_file


def xlsx_response(built: BuiltExport) -> StreamingResponse:
    return StreamingResponse(
        iter_file(built.path),
        media_type=XLSX_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{export_filename(built.name)}"',
            "X-Row-Count": str(built.rows),
        },
    )
