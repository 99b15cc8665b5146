"""What a platform administrator reads about payments: every payment across businesses (filters,
keyset pages) and one payment with its callbacks, jobs and ledger transfers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import InvalidInput
from core.payments.models import PaymentSource, PaymentStatus
from core.payments.search import (
    DEFAULT_LIMIT,
    PaymentDetail,
    PhoneMatch,
    TransactionPage,
    TransactionSearch,
    resolve_tenant,
    transactions,
)


@dataclass(frozen=True)
class TransactionResults:
    page: TransactionPage | None  # None when a filter could not be understood
    tenant_name: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # by form field


@use_case(Permission.platform_admin, query=True)
async def search_transactions(
    actor: Actor,
    *,
    tenant: str = "",
    day_from: date | None = None,
    day_to: date | None = None,
    status: PaymentStatus | None = None,
    source: PaymentSource | None = None,
    phone: PhoneMatch | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    list_rows: bool = True,
) -> TransactionResults:
    """Payments across every business, newest first. `tenant` is a slug or id as an admin types it;
    what cannot be understood comes back by field and lists nothing (nor does `list_rows=False`, when
    the caller already found a filter it could not parse). A broken cursor is 422."""
    errors: dict[str, str] = {}
    tenant_id: uuid.UUID | None = None
    tenant_name: str | None = None
    async with unit_of_work(actor, readonly=True) as uow:
        if tenant.strip():
            try:
                found = await resolve_tenant(uow.session, tenant)
                tenant_id, tenant_name = found.id, found.name
            except InvalidInput as exc:
                errors["tenant"] = exc.message
        search: TransactionSearch | None = None
        try:
            search = TransactionSearch.for_days(
                day_from=day_from,
                day_to=day_to,
                tenant_id=tenant_id,
                status=status,
                source=source,
                phone=phone,
            )
        except InvalidInput as exc:
            errors[exc.field] = exc.message
        page = None
        if list_rows and not errors and search is not None:
            page = await transactions.search(uow.session, search, cursor=cursor, limit=limit)
        return TransactionResults(page, tenant_name, errors)


@use_case(Permission.platform_admin, query=True)
async def payment_detail(actor: Actor, payment_id: uuid.UUID) -> PaymentDetail:
    """One payment of any business with its callbacks, jobs and ledger transfers; unknown is 404."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await transactions.detail(uow.session, payment_id)
