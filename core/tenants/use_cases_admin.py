"""What the platform's operator does, from the admin panel and the CLI alike: the landing page (today
at a glance and what needs attention); find, look over, suspend and reactivate businesses; commission
rates; and the operator's own tools (find a tenant, list them all, SMS sender ids, key rotation)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import UnitOfWork, unit_of_work, use_case
from core.audit.reports import FAILED_CALLBACK_OUTCOMES, UNDELIVERED
from core.auth.auditing import Auditor
from core.billing.commission import commissions, percent_to_bps
from core.billing.reports import commissions_total
from core.db import utcnow
from core.errors import InvalidInput
from core.hotspot.models import Router, RouterStatus
from core.jobs.models import JobOutbox
from core.notify.models import Notification
from core.notify.sms import validate_sender_id
from core.payments.models import CUSTOMER_SOURCES, CallbackInbox, Payment, PaymentStatus
from core.runtime import runtime
from core.tenants.admin import TenantDetail, TenantPage, tenant_admin
from core.tenants.models import Tenant, TenantKind, TenantStatus
from core.tenants.service import tenants

EAT = ZoneInfo("Africa/Nairobi")


@dataclass(frozen=True)
class PlatformOverview:
    tenants: dict[TenantStatus, int]  # businesses and providers by status
    today: dict[str, int | None]  # payments, collected, success_rate (%), commission_cents since EAT midnight
    attention: dict[str, int]  # failed_jobs, callbacks and messages in the last 24 h, routers_down


@use_case(Permission.platform_admin, query=True)
async def platform_overview(actor: Actor, *, now: datetime | None = None) -> PlatformOverview:
    now = now or utcnow()
    midnight = datetime.combine(now.astimezone(EAT).date(), time.min, tzinfo=EAT)
    day_ago = now - timedelta(hours=24)
    async with unit_of_work(actor, readonly=True) as uow:
        session = uow.session
        by_status = dict(
            (
                await session.execute(
                    select(Tenant.status, func.count())
                    .where(Tenant.kind != TenantKind.platform)
                    .group_by(Tenant.status)
                )
            ).all()
        )
        paid = Payment.status == PaymentStatus.success
        count, succeeded, collected = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((paid, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((paid, Payment.amount), else_=0)), 0),
                ).where(Payment.created_at >= midnight, Payment.source.in_(CUSTOMER_SOURCES))
            )
        ).one()

        async def counted(stmt):  # type: ignore[no-untyped-def]
            return int(await session.scalar(stmt) or 0)

        return PlatformOverview(
            tenants=by_status,
            today={
                "payments": count,
                "collected": collected,
                "success_rate": round(100 * succeeded / count) if count else None,
                "commission_cents": await commissions_total(session, since=midnight),
            },
            attention={
                "failed_jobs": await counted(
                    select(func.count()).select_from(JobOutbox).where(JobOutbox.failed_at.is_not(None))
                ),
                "callbacks": await counted(
                    select(func.count())
                    .select_from(CallbackInbox)
                    .where(
                        CallbackInbox.received_at >= day_ago,
                        CallbackInbox.outcome.in_(FAILED_CALLBACK_OUTCOMES),
                    )
                ),
                "messages": await counted(
                    select(func.count())
                    .select_from(Notification)
                    .where(Notification.created_at >= day_ago, Notification.status.in_(UNDELIVERED))
                ),
                "routers_down": await counted(
                    select(func.count()).select_from(Router).where(Router.status == RouterStatus.down)
                ),
            },
        )


# -- businesses and hotspot providers: find, look over, suspend, reactivate, commission -------------
@use_case(Permission.platform_admin, query=True)
async def search_tenants(
    actor: Actor,
    *,
    q: str = "",
    status: TenantStatus | None = None,
    kind: TenantKind | None = None,
    page: int = 1,
) -> TenantPage:
    """Businesses and providers (never the platform's own tenant), newest first, 50 a page, with
    their wallet balance and the platform's default commission rate."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await tenant_admin.search(
            uow.session, q=q, status=status, kind=kind, page=page, settings=runtime().settings
        )


@use_case(Permission.platform_admin, query=True)
async def tenant_detail(actor: Actor, tenant_id: uuid.UUID) -> TenantDetail:
    """One business as an admin looks it over: channel (secrets masked), rate, wallet, invoices,
    routers, staff and its recent failed payments. The platform's own tenant is 404."""
    rt = runtime()
    async with unit_of_work(actor, readonly=True) as uow:
        return await tenant_admin.detail(
            uow.session, tenant_id=tenant_id, box=rt.secrets, settings=rt.settings
        )


@use_case(Permission.platform_admin, audit="tenant.suspend")
async def suspend_tenant(actor: Actor, tenant_id: uuid.UUID, *, reason: str) -> Tenant:
    """No more pushes from any channel, with a reason of 5 to 300 characters; the owner is told by
    Telegram (or SMS) and email after commit."""
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        return await tenant_admin.suspend(
            uow.session,
            tenant_id=tenant_id,
            reason=reason,
            by=actor.audit_user_id,
            audit=_named(uow, "tenant.suspend"),
        )


@use_case(Permission.platform_admin, audit="tenant.reactivate")
async def reactivate_tenant(actor: Actor, tenant_id: uuid.UUID, *, reason: str) -> Tenant:
    """Back to active (onboarding when its channel was never verified); the owner is told."""
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        return await tenant_admin.reactivate(
            uow.session,
            tenant_id=tenant_id,
            reason=reason,
            by=actor.audit_user_id,
            audit=_named(uow, "tenant.reactivate"),
        )


@use_case(Permission.platform_admin, audit="commission.set")
async def set_commission_rate(actor: Actor, tenant_id: uuid.UUID, *, percent: str) -> Tenant:
    """A business's own commission rate ("1.5", two decimals at most), or back to the platform default
    (empty). Payments already created keep their rate. The admin panel and the CLI both call this."""
    if percent.strip():
        percent_to_bps(percent)  # a bad rate is refused before the business is looked up
    async with unit_of_work(actor.acting_for(tenant_id)) as uow:
        return await tenant_admin.set_commission(
            uow.session,
            tenant_id=tenant_id,
            percent=percent,
            by=actor.audit_user_id,
            audit=_named(uow, "commission.set"),
        )


@use_case(Permission.platform_admin, audit="commission.default_set")
async def set_default_commission(actor: Actor, *, percent: str) -> int:
    """The platform's default commission rate, in basis points once saved."""
    async with unit_of_work(actor) as uow:
        return await commissions.set_default_rate(
            uow.session, percent=percent, by=actor.audit_user_id, audit=_named(uow, "commission.default_set")
        )


# -- the operator's tools (the CLI) -----------------------------------------------------------------
@use_case(Permission.platform_admin, query=True)
async def find_tenant(actor: Actor, ref: str) -> Tenant:
    """A tenant by its owner's (or a staff member's) email, slug or id; none is 404."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await tenant_admin.find(uow.session, ref)


@use_case(Permission.platform_admin, query=True)
async def list_tenants(actor: Actor) -> list[Tenant]:
    """Every tenant, oldest first."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await tenant_admin.every(uow.session)


@use_case(Permission.platform_admin, audit="settings.sms_sender_id")
async def set_sms_sender_id(actor: Actor, *, sender_id: str) -> str | None:
    """The SMS sender id of the business the actor acts for. Only the platform assigns these: a sender
    id belongs to the Africa's Talking account. An empty one goes back to the platform's."""
    try:
        value = validate_sender_id(sender_id)
    except ValueError as exc:
        raise InvalidInput("sender_id", str(exc)) from None
    async with unit_of_work(actor) as uow:
        row = await tenants.get(uow.session, actor.require_tenant())
        row.sms_sender_id = value
        await uow.audit("settings.sms_sender_id", sender_id=value)
        return value


@use_case(Permission.platform_admin, audit="secrets.rotated")
async def rotate_secrets(actor: Actor) -> dict[str, int]:
    """Re-encrypt every stored secret (every encrypted column of every model) under the first key of
    ENCRYPTION_KEYS; how many values of each kind: {"channel secret": 3, "router password": 2}."""
    async with unit_of_work(actor) as uow:
        counts = await tenants.rotate_secrets(uow.session, box=runtime().secrets)
        await uow.audit("secrets.rotated", counts=counts)
        return counts


def _named(uow: UnitOfWork, expected: str) -> Auditor:
    """`uow.audit` for a service that writes exactly `expected` (asserted, so a renamed action in the
    service cannot slip past the use case's declaration)."""

    async def write(action: str, *, target: str | None = None, **detail: Any) -> object:
        assert action == expected, (action, expected)
        return await uow.audit(action, target=target, **detail)

    return write
