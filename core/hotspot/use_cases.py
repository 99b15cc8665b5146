"""What a hotspot provider's people can do with vouchers from any entry point."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import InvalidInput
from core.exports.use_cases import BuiltExport
from core.hotspot.models import Voucher
from core.hotspot.routers import routers
from core.hotspot.sheets import batch_xlsx, sheet
from core.hotspot.vouchers import vouchers
from core.runtime import runtime
from core.tenants.models import Tenant
from core.tenants.service import tenants

NOT_A_PROVIDER = (
    "WiFi is for hotspot providers. This business collects M-Pesa payments only; ask lipapush support "
    "to set it up as a hotspot provider."
)
PAPERS = ("a4", "58mm")


async def provider_of(session: AsyncSession, actor: Actor) -> Tenant:
    """The actor's business. The REST API has always let any business run hotspot routers, so the
    kind is not checked here; the panel and the bot hide their WiFi screens from non-providers."""
    return await tenants.get(session, actor.require_tenant())


@dataclass(frozen=True)
class BatchView:
    vouchers: list[Voucher]
    router_name: str


@use_case(Permission.vouchers_read, query=True)
async def view_voucher_batch(actor: Actor, batch_id: uuid.UUID) -> BatchView:
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        rows = await vouchers.batch(uow.session, tenant_id=tenant.id, batch_id=batch_id)
        r = await routers.get(uow.session, tenant_id=tenant.id, router_id=rows[0].router_id)
        return BatchView(rows, r.name)


@use_case(Permission.vouchers_read, query=True)
async def print_voucher_batch(actor: Actor, batch_id: uuid.UUID, *, paper: str = "a4") -> tuple[str, int]:
    """A batch's printable sheet (HTML with its own print CSS) and its number of cards."""
    if paper not in PAPERS:
        raise InvalidInput("paper", "Print on a4 or 58mm paper.")
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        rows = await vouchers.batch(uow.session, tenant_id=tenant.id, batch_id=batch_id)
        return sheet(provider=tenant.name, vouchers=rows, paper=paper), len(rows)


@use_case(Permission.vouchers_read, audit="export.vouchers")
async def export_voucher_batch(actor: Actor, batch_id: uuid.UUID) -> BuiltExport:
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        rows = await vouchers.batch(uow.session, tenant_id=tenant.id, batch_id=batch_id)
        for v in rows:
            uow.session.expunge(v)
    path, count = await batch_xlsx(rows, directory=runtime().settings.EXPORT_DIR)
    async with unit_of_work(actor) as uow:
        await uow.audit("export.vouchers", target=str(batch_id), rows=count)
    return BuiltExport(path, count, "vouchers")
