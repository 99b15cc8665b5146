"""The customer book, as every entry point reads it: one book per mode, the one `book_mode` picks (an
API key its own mode's; a person the business's current mode's).

A business with several channels (a till per branch) still keeps one book: `query.channel_id` shows
only the customers asked to pay through one of them, each with their whole book's figures."""

from __future__ import annotations

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.customers.schemas import CustomerPage, CustomerQuery
from core.customers.service import customers
from core.payments.use_cases import book_mode, check_channel


@use_case(Permission.customers_read, query=True)
async def search_customers(actor: Actor, *, query: CustomerQuery) -> CustomerPage:
    """A page of the book; `query.channel_id` must be one of the business's channels (404 otherwise)."""
    async with unit_of_work(actor, readonly=True) as uow:
        await check_channel(uow.session, actor, query.channel_id)
        return await customers.search(
            uow.session,
            tenant_id=actor.require_tenant(),
            mode=await book_mode(uow.session, actor),
            query=query,
        )
