"""The standard exports: the customer book, the transaction list and an invoice's lines."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.invoices import invoices
from core.customers.schemas import CustomerQuery
from core.customers.service import customers
from core.exports.xlsx import BATCH_ROWS, Column, build_xlsx
from core.payments.service import TransactionFilter, payments
from core.tenants.models import Mode

CUSTOMER_COLUMNS = [
    Column("Name", "text", 28),
    Column("Phone", "text", 15),
    Column("Total transactions", "int", 12),
    Column("Paid transactions", "int", 12),
    Column("Total amount processed (KES)", "money", 18),
    Column("First transaction (EAT)", "datetime", 20),
    Column("Last transaction (EAT)", "datetime", 20),
]

TRANSACTION_COLUMNS = [
    Column("Date (EAT)", "datetime", 20),
    Column("Phone", "text", 15),
    Column("Customer", "text", 24),
    Column("Amount (KES)", "money", 12),
    Column("Status", "text", 11),
    Column("M-Pesa receipt", "text", 14),
    Column("Reference", "text", 14),
    Column("Source", "text", 10),
    Column("Result", "text", 40),
    Column("Completed (EAT)", "datetime", 20),
]


async def customer_book(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    mode: Mode,
    query: CustomerQuery,
    directory: str | None = None,
) -> tuple[Path, int]:
    """One book of the business (test or live: core.payments.use_cases.book_mode picks which)."""
    return await build_xlsx(
        sheet_title="Customers",
        columns=CUSTOMER_COLUMNS,
        batches=customers.export_batches(
            session, tenant_id=tenant_id, mode=mode, query=query, batch=BATCH_ROWS
        ),
        directory=directory,
    )


async def _transaction_batches(
    session: AsyncSession, tenant_id: uuid.UUID, filters: TransactionFilter, batch: int = BATCH_ROWS
) -> AsyncGenerator[Sequence[Sequence[object]], None]:
    # Core rows on the session's connection (its transaction and scope): the ORM's result handling
    # adds nothing to plain columns but time. The rows go to the writer as they come: the statuses
    # and sources are StrEnums, which text cells write as their values. `async with` closes the
    # (server-side) cursor when the export stops early.
    connection = await session.connection()
    stmt = payments.export_statement(tenant_id, filters).execution_options(yield_per=batch)
    async with connection.stream(stmt) as result:
        async for part in result.partitions(batch):
            yield part


async def transaction_list(
    session: AsyncSession, *, tenant_id: uuid.UUID, filters: TransactionFilter, directory: str | None = None
) -> tuple[Path, int]:
    return await build_xlsx(
        sheet_title="Transactions",
        columns=TRANSACTION_COLUMNS,
        batches=_transaction_batches(session, tenant_id, filters),
        directory=directory,
    )


INVOICE_COLUMNS = [
    Column("Date (EAT)", "datetime", 20),
    Column("Phone", "text", 15),
    Column("Payment (KES)", "money", 14),
    Column("M-Pesa receipt", "text", 14),
    Column("Rate (bps)", "int", 10),
    Column("Commission (KES)", "money", 16),
]


async def invoice_lines(
    session: AsyncSession, *, tenant_id: uuid.UUID, invoice_id: uuid.UUID, directory: str | None = None
) -> tuple[Path, int, str]:
    """An invoice's payments and their commission; another business's invoice is 404."""
    invoice = await invoices.get(session, tenant_id=tenant_id, invoice_id=invoice_id)
    rows = await invoices.lines(session, invoice_id=invoice.id)

    async def batches() -> AsyncIterator[Sequence[Sequence[object]]]:
        yield [(r[0], r[1], r[2], r[3], r[4], Decimal(r[5]) / 100) for r in rows]

    path, count = await build_xlsx(
        sheet_title=invoice.number, columns=INVOICE_COLUMNS, batches=batches(), directory=directory
    )
    return path, count, invoice.number
