from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from core.customers.schemas import CustomerPage, CustomerQuery
from core.customers.use_cases import search_customers
from core.exports.use_cases import export_customers as export_customers_uc
from web.deps import CurrentActor
from web.exports import xlsx_response

router = APIRouter(tags=["customers"])

# A query-parameter model, not Depends(): FastAPI validates it as the request's input, so a rule across
# fields (seen_from after seen_to) answers 422 instead of escaping as a server error.
Query_ = Annotated[CustomerQuery, Query()]


@router.get("/customers")
async def list_customers(actor: CurrentActor, query: Query_) -> CustomerPage:
    """The customer book: search by name or phone fragment (`q`), sort by any column (`sort`,
    `desc`), filter by paid total, last-seen range and whether they ever paid.

    `channel_id` (one of the business's channels, GET /api/channels) shows only the customers asked to
    pay through it at least once. It is one book per business: their figures stay the whole book's,
    every channel counted; the channel only picks whom to show. Another business's channel is 404."""
    return await search_customers(actor, query=query)


@router.get("/customers/export-excel", response_class=StreamingResponse)
async def export_customers(actor: CurrentActor, query: Query_) -> StreamingResponse:
    """The customer book as .xlsx, with the same filters as the list, `channel_id` too (pagination
    ignored)."""
    return xlsx_response(await export_customers_uc(actor, query=query))
