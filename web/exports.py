"""Serving a built .xlsx: audit the export, then stream the file (deleted once sent)."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.responses import StreamingResponse

from core.audit.service import record
from core.exports.xlsx import XLSX_MEDIA_TYPE, export_filename, iter_file
from core.runtime import unit_of_work


async def audited_xlsx(
    path: Path, *, rows: int, name: str, action: str, tenant_id: uuid.UUID, user_id: uuid.UUID | None
) -> StreamingResponse:
    async with unit_of_work() as session:
        await record(session, action=action, tenant_id=tenant_id, user_id=user_id, detail={"rows": rows})
    return StreamingResponse(
        iter_file(path),
        media_type=XLSX_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{export_filename(name)}"',
            "X-Row-Count": str(rows),
        },
    )
