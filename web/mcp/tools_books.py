"""Reading the business: the customer book, exports as download links, the dashboard, the wallet and
the M-Pesa account balance. Each calls the REST API's use case as the key's actor."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from mcp.server import MCPServer
from pydantic import Field

from core.billing import use_cases as billing
from core.billing.schemas import WalletOut
from core.customers.schemas import CustomerPage, CustomerQuery, CustomerSort
from core.customers.summary import CustomerSummary
from core.customers.use_cases import customer_summary as customer_summary_uc
from core.customers.use_cases import search_customers as search_customers_uc
from core.exports import use_cases as exports
from core.exports.downloads import DownloadLink, publish
from core.lookups import use_cases as lookups
from core.lookups.schemas import BalancesOut
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.service import TransactionFilter
from core.payments.use_cases import business_dashboard
from core.phones import normalize_msisdn
from web.api.dashboard import DashboardOut, render
from web.mcp.annotations import READS, WRITES
from web.mcp.context import current_actor
from web.mcp.errors import agent_tool

# An agent fetches the file at once; a link that outlives the conversation is only a leak.
LINK_TTL = timedelta(minutes=15)

Query = Annotated[str | None, Field(description="A part of the name or of the phone number", max_length=100)]
HasPaid = Annotated[bool | None, Field(description="true: customers who paid at least once; false: never")]


def _query(
    q: str | None,
    has_paid: bool | None,
    min_paid: int | None,
    max_paid: int | None,
    channel_id: uuid.UUID | None,
    sort: CustomerSort = CustomerSort.last_seen_at,
    desc: bool = True,
    page: int = 1,
    per_page: int = 20,
) -> CustomerQuery:
    return CustomerQuery.model_validate(
        {
            "q": q,
            "has_paid": has_paid,
            "min_paid": min_paid,
            "max_paid": max_paid,
            "channel_id": channel_id,
            "sort": sort,
            "desc": desc,
            "page": page,
            "per_page": per_page,
        }
    )


@agent_tool
async def search_customers(
    q: Query = None,
    has_paid: HasPaid = None,
    min_paid: Annotated[int | None, Field(ge=0, description="Paid in total at least (KES)")] = None,
    max_paid: Annotated[int | None, Field(ge=0, description="Paid in total at most (KES)")] = None,
    channel_id: Annotated[
        uuid.UUID | None, Field(description="Only customers asked through this channel")
    ] = None,
    sort: CustomerSort = CustomerSort.last_seen_at,
    desc: bool = True,
    page: Annotated[int, Field(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Field(ge=1, le=100)] = 20,
) -> CustomerPage:
    """Search the business's customer book (everyone it asked to pay, with what they were asked and
    paid in total). `total` is how many match."""
    query = _query(q, has_paid, min_paid, max_paid, channel_id, sort, desc, page, per_page)
    return await search_customers_uc(current_actor(), query=query)


@agent_tool
async def customer_summary(
    phone: Annotated[str, Field(description="The customer's phone: 07…, 01…, +254… or 254…", max_length=20)],
) -> CustomerSummary:
    """One customer by phone: their totals and their latest payment requests."""
    return await customer_summary_uc(current_actor(), phone=normalize_msisdn(phone))


@agent_tool
async def export_customers(
    q: Query = None,
    has_paid: HasPaid = None,
    min_paid: Annotated[int | None, Field(ge=0)] = None,
    max_paid: Annotated[int | None, Field(ge=0)] = None,
    channel_id: uuid.UUID | None = None,
) -> DownloadLink:
    """The customer book (with search_customers' filters) as an Excel file behind a signed link that
    works for 15 minutes without credentials. Give the link to your person; do not fetch it into the
    conversation."""
    query = _query(q, has_paid, min_paid, max_paid, channel_id)
    return await publish(await exports.export_customers(current_actor(), query=query), ttl=LINK_TTL)


@agent_tool
async def export_transactions(
    status: PaymentStatus | None = None,
    source: PaymentSource | None = None,
    phone: Annotated[str | None, Field(description="A part of the phone number", max_length=20)] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    channel_id: uuid.UUID | None = None,
) -> DownloadLink:
    """The business's payments (list_payments' filters) as an Excel file behind a signed link that
    works for 15 minutes without credentials."""
    filters = TransactionFilter(
        status=status,
        source=source,
        phone=phone,
        created_from=created_from,
        created_to=created_to,
        channel_id=channel_id,
    )
    return await publish(await exports.export_transactions(current_actor(), filters=filters), ttl=LINK_TTL)


@agent_tool
async def get_dashboard(
    channel_id: Annotated[uuid.UUID | None, Field(description="One channel's figures only")] = None,
) -> DashboardOut:
    """The business's figures (GET /api/dashboard): totals, success rate, commission, wallet balance
    and recent customers, in the key's mode. Amounts ending in _cents are cents; others whole KES."""
    return render(await business_dashboard(current_actor(), channel_id=channel_id))


@agent_tool
async def get_wallet() -> WalletOut:
    """The platform wallet that pays lipapush's commission: balance, what is held for payments in
    flight, billing mode and rate (amounts in cents)."""
    return await billing.view_wallet(current_actor())


@agent_tool
async def get_account_balance() -> BalancesOut:
    """The business's own M-Pesa account balances (utility, working, charges) per channel with an
    initiator, as M-Pesa last gave them and when."""
    return await lookups.balances(current_actor())


def register(server: MCPServer) -> None:
    server.add_tool(search_customers, annotations=READS)
    server.add_tool(customer_summary, annotations=READS)
    server.add_tool(export_customers, annotations=WRITES)
    server.add_tool(export_transactions, annotations=WRITES)
    server.add_tool(get_dashboard, annotations=READS)
    server.add_tool(get_wallet, annotations=READS)
    server.add_tool(get_account_balance, annotations=READS)
