from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from core.auth.models import Role
from core.exports.books import transaction_list
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.push import request_stk_push
from core.payments.schemas import PaymentOut, PaymentPage, StkPushIn
from core.payments.service import TransactionFilter, payments
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from web.deps import CurrentPrincipal, ReadSession
from web.exports import audited_xlsx

router = APIRouter(tags=["payments"])


@router.post("/stk-push", status_code=201)
async def stk_push(
    body: StkPushIn,
    who: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> PaymentOut:
    """Send an M-Pesa prompt to the customer's phone. The result arrives by callback: poll
    GET /api/transactions/{id} or watch the dashboard. Repeat with the same Idempotency-Key to retry
    safely: the first payment is returned instead of a second prompt."""
    return await request_stk_push(
        tenant_id=who.require_tenant(),
        phone=body.phone,
        amount=body.amount,
        source=PaymentSource.api,
        name=body.name,
        reference=body.reference,
        description=body.description,
        initiated_by=who.user_id,
        idempotency_key=idempotency_key,
    )


def _filters(
    who: CurrentPrincipal,
    status: PaymentStatus | None,
    source: PaymentSource | None,
    phone: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> TransactionFilter:
    # A cashier sees only the payments they asked for.
    mine = who.user_id if who.role is Role.cashier else None
    return TransactionFilter(
        status=status,
        source=source,
        phone=phone,
        created_from=created_from,
        created_to=created_to,
        initiated_by=mine,
    )


@router.get("/transactions")
async def list_transactions(
    who: CurrentPrincipal,
    session: ReadSession,
    status: PaymentStatus | None = None,
    source: PaymentSource | None = None,
    phone: Annotated[str | None, Query(max_length=20, description="phone fragment")] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PaymentPage:
    return await payments.list_page(
        session,
        tenant_id=who.require_tenant(),
        filters=_filters(who, status, source, phone, created_from, created_to),
        cursor=cursor,
        limit=limit,
    )


@router.get("/transactions/export-excel", response_class=StreamingResponse)
async def export_transactions(
    who: CurrentPrincipal,
    status: PaymentStatus | None = None,
    source: PaymentSource | None = None,
    phone: Annotated[str | None, Query(max_length=20)] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> StreamingResponse:
    who.require_role(Role.owner, Role.manager)
    tenant_id = who.require_tenant()
    filters = _filters(who, status, source, phone, created_from, created_to)
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, tenant_id)
        path, count = await transaction_list(
            session, tenant_id=tenant_id, filters=filters, directory=runtime().settings.EXPORT_DIR
        )
    return await audited_xlsx(
        path,
        rows=count,
        name=f"transactions-{tenant.slug}",
        action="export.transactions",
        tenant_id=tenant_id,
        user_id=who.user_id,
    )


@router.get("/transactions/{payment_id}")
async def get_transaction(payment_id: uuid.UUID, who: CurrentPrincipal, session: ReadSession) -> PaymentOut:
    payment = await payments.get(
        session,
        tenant_id=who.require_tenant(),
        payment_id=payment_id,
        initiated_by=who.user_id if who.role is Role.cashier else None,
    )
    return PaymentOut.model_validate(payment)
