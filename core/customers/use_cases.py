"""The customer book, as every entry point reads it: one book per mode, the one `book_mode` picks (an
API key its own mode's; a person the business's current mode's).

A business with several channels (a till per branch) still keeps one book: `query.channel_id` shows
only the customers asked to pay through one of them, each with their whole book's figures."""

from __future__ import annotations

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.customers.schemas import CustomerOut, CustomerPage, CustomerQuery
from core.customers.service import customers
from core.customers.summary import RECENT, CustomerSummary
from core.errors import NotFound
from core.payments.schemas import PaymentOut
from core.payments.service import TransactionFilter, payments
from core.payments.use_cases import book_mode, check_channel, scoped_filter


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


@use_case(Permission.customers_read, query=True)
async def customer_summary(actor: Actor, *, phone: str) -> CustomerSummary:
    """The customer with this phone (already normalised) in the actor's book, with their latest
    payment requests when the actor may read payments; 404 when the book has no such customer."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        mode = await book_mode(uow.session, actor)
        found = await customers.get(uow.session, tenant_id=tenant_id, mode=mode, phone=phone)
        if found is None:
            raise NotFound(
                f"No customer with phone {phone} in the {mode.value} customer book: search by a name or a "
                "part of the number instead."
            )
        recent: list[PaymentOut] = []
        # The book is customers:read; their payments are payments:read (a key may hold one alone).
        if actor.can(Permission.payments_read):
            page = await payments.list_page(
                uow.session,
                tenant_id=tenant_id,
                filters=scoped_filter(actor, TransactionFilter(phone=phone, mode=mode)),
                limit=RECENT,
            )
            recent = [PaymentOut.model_validate(p) for p in page.items if p.phone == phone]
        return CustomerSummary(customer=CustomerOut.model_validate(found), mode=mode, recent_payments=recent)
