from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from core.auth.models import Role
from core.customers.schemas import CustomerPage, CustomerQuery
from core.customers.service import customers
from core.exports.books import customer_book
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from web.deps import CurrentPrincipal, ReadSession
from web.exports import audited_xlsx

router = APIRouter(tags=["customers"])

Query_ = Annotated[CustomerQuery, Depends()]


@router.get("/customers")
async def list_customers(who: CurrentPrincipal, session: ReadSession, query: Query_) -> CustomerPage:
    """The customer book: search by name or phone fragment (`q`), sort by any column (`sort`,
    `desc`), filter by paid total, last-seen range and whether they ever paid."""
    who.require_role(Role.owner, Role.manager)
    return await customers.search(session, tenant_id=who.require_tenant(), query=query)


@router.get("/customers/export-excel", response_class=StreamingResponse)
async def export_customers(who: CurrentPrincipal, query: Query_) -> StreamingResponse:
    """The customer book as .xlsx, with the same filters as the list (pagination ignored)."""
    who.require_role(Role.owner, Role.manager)
    tenant_id = who.require_tenant()
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, tenant_id)
        path, count = await customer_book(
            session, tenant_id=tenant_id, query=query, directory=runtime().settings.EXPORT_DIR
        )
    return await audited_xlsx(
        path,
        rows=count,
        name=f"customers-{tenant.slug}",
        action="export.customers",
        tenant_id=tenant_id,
        user_id=who.user_id,
    )
