"""A platform administrator's global exports: start one (a background job builds the file), follow
them, and download a finished one while it is kept (audited as `export.downloaded`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import NotFound, PermissionDenied
from core.exports import global_exports
from core.exports.models import ExportJob, ExportStatus


@use_case(
    Permission.platform_admin,
    recorded_by="the export job row (who asked, with which filters) and its export.global_<kind> audit row",
)
async def start_global_export(actor: Actor, req: global_exports.ExportRequest) -> ExportJob:
    """Queue an export of every business's transactions or customers; refused (on `kind`) while too
    many are already being built."""
    user_id = actor.audit_user_id
    if user_id is None:
        raise PermissionDenied("A global export is asked for by a signed-in platform administrator.")
    async with unit_of_work(actor) as uow:
        # The audit action names the kind ("export.global_transactions", "export.global_customers").
        return await global_exports.request_export(uow.session, req=req, user_id=user_id, audit=uow.audit)


@use_case(Permission.platform_admin, query=True)
async def recent_global_exports(actor: Actor) -> list[ExportJob]:
    """The latest global exports, newest first."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await global_exports.recent_exports(uow.session)


@use_case(Permission.platform_admin, query=True)
async def global_export(actor: Actor, export_id: uuid.UUID) -> ExportJob:
    """One global export and how far it got; unknown is 404."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await global_exports.get_export(uow.session, export_id)


@dataclass(frozen=True)
class ExportFile:
    path: Path
    file_name: str


@use_case(Permission.platform_admin, audit="export.downloaded")
async def download_global_export(actor: Actor, export_id: uuid.UUID) -> ExportFile:
    """The finished file while it is kept; 404 saying why when it is gone or not finished yet."""
    async with unit_of_work(actor) as uow:
        row = await global_exports.get_export(uow.session, export_id)
        path = global_exports.available(row)
        if path is None:
            if row.status is ExportStatus.done:
                raise NotFound(
                    f"This export was kept for {global_exports.KEEP_HOURS} hours and has been deleted. "
                    "Start a new one."
                )
            raise NotFound("This export is not finished yet. Wait for it on the Exports page.")
        await uow.audit("export.downloaded", target=str(row.id))
        return ExportFile(path, row.file_name or path.name)
