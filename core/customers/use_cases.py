"""The customer book, as every entry point reads it: one book per mode, the one `book_mode` picks (an
API key its own mode's; a person the business's current mode's)."""

from __future__ import annotations

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.customers.schemas import CustomerPage, CustomerQuery
from core.customers.service import customers
from core.payments.use_cases import book_mode


@use_case(Permission.customers_read, query=True)
async def search_customers(actor: Actor, *, query: CustomerQuery) -> CustomerPage:
    async with unit_of_work(actor, readonly=True) as uow:
        return await customers.search(
            uow.session,
            tenant_id=actor.require_tenant(),
            mode=await book_mode(uow.session, actor),
            query=query,
        )
