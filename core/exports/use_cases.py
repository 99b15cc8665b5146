"""Downloads a person asks for, from any entry point: built, audited, handed back as a file.

The file is built in a read-only transaction (one snapshot of the book), then the audit row is written:
an export that failed to build leaves no "exported" row behind.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.customers.schemas import CustomerQuery
from core.exports.books import customer_book, invoice_lines, transaction_list
from core.exports.jobs import email_customer_book
from core.jobs.registry import enqueue
from core.payments.service import TransactionFilter
from core.payments.use_cases import book_mode, check_channel, scoped_filter
from core.runtime import runtime
from core.tenants.service import tenants


@dataclass(frozen=True)
class BuiltExport:
    path: Path
    rows: int
    name: str  # the download's name without date or extension, e.g. customers-mama-mboga


@use_case(Permission.exports, audit="export.transactions")
async def export_transactions(actor: Actor, *, filters: TransactionFilter) -> BuiltExport:
    """The list's payments as .xlsx; `filters.channel_id` must be the business's channel (404)."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        await check_channel(uow.session, actor, filters.channel_id)
        path, count = await transaction_list(
            uow.session,
            tenant_id=tenant_id,
            filters=scoped_filter(actor, filters),
            directory=runtime().settings.EXPORT_DIR,
        )
    async with unit_of_work(actor) as uow:
        await uow.audit("export.transactions", rows=count)
    return BuiltExport(path, count, f"transactions-{tenant.slug}")


@use_case(Permission.exports, audit="export.customers")
async def export_customers(actor: Actor, *, query: CustomerQuery) -> BuiltExport:
    """The book as .xlsx with the list's filters; `query.channel_id` picks the customers of one of the
    business's channels (404 for any other), with their whole book's figures."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await tenants.get(uow.session, tenant_id)
        await check_channel(uow.session, actor, query.channel_id)
        path, count = await customer_book(
            uow.session,
            tenant_id=tenant_id,
            mode=await book_mode(uow.session, actor),
            query=query,
            directory=runtime().settings.EXPORT_DIR,
        )
    async with unit_of_work(actor) as uow:
        await uow.audit("export.customers", rows=count)
    return BuiltExport(path, count, f"customers-{tenant.slug}")


@use_case(Permission.invoices_read, audit="export.invoice")
async def export_invoice(actor: Actor, invoice_id: uuid.UUID) -> BuiltExport:
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        path, count, number = await invoice_lines(
            uow.session, tenant_id=tenant_id, invoice_id=invoice_id, directory=runtime().settings.EXPORT_DIR
        )
    async with unit_of_work(actor) as uow:
        await uow.audit("export.invoice", rows=count)
    return BuiltExport(path, count, number)


@use_case(
    Permission.exports,
    recorded_by="the export.customers audit row the job writes once the file is built and sent",
)
async def email_customer_book_to(actor: Actor, *, phone: str) -> None:
    """The customer book for someone on a feature phone: emailed to the business, with a download
    link by SMS to `phone` (core.exports.jobs.email_customer_book). The book of `book_mode`, decided
    now: the job builds the book the person asked for."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        await enqueue(
            uow.session,
            email_customer_book,
            tenant_id=str(tenant_id),
            user_id=str(actor.user_id) if actor.user_id else None,
            phone=phone,
            mode=(await book_mode(uow.session, actor)).value,
        )
