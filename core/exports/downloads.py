"""A built export handed over as a signed, short-lived link instead of its bytes (for an agent, whose
context should not carry a spreadsheet, and for an SMS). `/dl/<token>` serves it (web/callbacks.py)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from core.db import utcnow
from core.exports.links import downloads_dir, new_download, sign
from core.exports.use_cases import BuiltExport
from core.exports.xlsx import export_filename
from core.runtime import runtime


class DownloadLink(BaseModel):
    url: str = Field(description="GET it (no credentials needed) before expires_at for the .xlsx file")
    filename: str
    rows: int
    expires_at: datetime


async def publish(built: BuiltExport, *, ttl: timedelta) -> DownloadLink:
    """Move the file behind a fresh signed link valid for `ttl` (at most the platform's
    DOWNLOAD_LINK_MINUTES)."""
    s = runtime().settings
    seconds = int(min(ttl.total_seconds(), s.DOWNLOAD_LINK_MINUTES * 60))
    filename = export_filename(built.name)
    name, path = await asyncio.to_thread(new_download, downloads_dir(s.EXPORT_DIR), filename)
    await asyncio.to_thread(shutil.move, built.path, path)
    token = sign(s.SECRET_KEY, name, ttl_seconds=seconds)
    return DownloadLink(
        url=f"{s.base_url}/dl/{token}",
        filename=filename,
        rows=built.rows,
        expires_at=utcnow() + timedelta(seconds=seconds),
    )
