"""What a WiFi buyer can do, through the captive portal or USSD: see where to buy and what is on sale,
pay for a plan, follow the purchase, look a voucher up, get a paid voucher back.

The buyer is anonymous: the front end calls these with `Actor.system(via=…)`, narrowed with
`.acting_for(provider_id)` once the provider is known (the portal page finds it by its slug or business
number, a purchase by its payment id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.billing.subscriptions import is_lapsed
from core.errors import NotFound
from core.hotspot.codes import normalize_code
from core.hotspot.models import Plan, Router, Voucher, VoucherOrder, VoucherStatus
from core.hotspot.orders import buy
from core.hotspot.plans import plans
from core.hotspot.provision import voucher_sms
from core.hotspot.routers import routers
from core.notify.service import notify
from core.payments.models import Payment, PaymentSource
from core.payments.schemas import PaymentOut
from core.tenants.models import Tenant, TenantStatus


@use_case(Permission.hotspot_read, query=True)
async def routers_for_sale(actor: Actor) -> list[Router]:
    """Where the provider sells WiFi: its routers, by name."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await routers.list(uow.session, tenant_id=actor.require_tenant())


@use_case(Permission.hotspot_read, query=True)
async def plans_for_sale(actor: Actor, router_id: uuid.UUID) -> list[Plan]:
    """The active plans sold on a router (its own and the provider's all-router ones)."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await plans.list(
            uow.session, tenant_id=actor.require_tenant(), router_id=router_id, active_only=True
        )


@use_case(
    Permission.payments_request,
    recorded_by="the payment row (source portal or ussd) and its voucher order, written together",
)
async def buy_wifi(
    actor: Actor,
    *,
    router_id: uuid.UUID,
    plan_id: uuid.UUID,
    phone: str,
    source: PaymentSource,
    mac: str | None = None,
    client_ip: str | None = None,
    peer_ip: str | None = None,
    defer: bool = False,
) -> PaymentOut:
    """An M-Pesa prompt for the plan's price to `phone` (normalised), paid into the provider's own
    channel; the voucher is issued when the payment succeeds (core.hotspot.orders)."""
    return await buy(
        tenant_id=actor.require_tenant(),
        router_id=router_id,
        plan_id=plan_id,
        phone=phone,
        source=source,
        mac=mac,
        client_ip=client_ip,
        peer_ip=peer_ip,
        defer=defer,
    )


class PortalState(StrEnum):
    open = "open"
    unknown = "unknown"  # no such provider, or the router is not theirs
    closed = "closed"  # not active, on billing hold, or its subscription lapsed


@dataclass(frozen=True)
class PortalView:
    state: PortalState
    provider_id: uuid.UUID | None = None
    provider_name: str = "WiFi"
    router_id: uuid.UUID | None = None
    plans: tuple[Plan, ...] = ()


@use_case(Permission.hotspot_read, query=True)
async def portal_view(actor: Actor, *, provider: str, router_id: uuid.UUID) -> PortalView:
    """The portal page's provider (by its slug or business number) and the plans on sale at the router."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await uow.session.scalar(
            select(Tenant).where(or_(Tenant.slug == provider, Tenant.business_number == provider))
        )
        r = await uow.session.get(Router, router_id)
        if tenant is None or r is None or r.tenant_id != tenant.id:
            return PortalView(PortalState.unknown)
        if tenant.status is not TenantStatus.active or tenant.billing_hold or is_lapsed(tenant):
            return PortalView(PortalState.closed, tenant.id, tenant.name, r.id)
        on_sale = await plans.list(uow.session, tenant_id=tenant.id, router_id=r.id, active_only=True)
        return PortalView(PortalState.open, tenant.id, tenant.name, r.id, tuple(on_sale))


@dataclass(frozen=True)
class Purchase:
    payment: Payment
    voucher: Voucher | None


@use_case(Permission.hotspot_read, query=True)
async def purchase(actor: Actor, payment_id: uuid.UUID) -> Purchase:
    """A WiFi purchase by its payment id (the buyer's proof: only the page that started it knows it),
    with its voucher once issued."""
    async with unit_of_work(actor, readonly=True) as uow:
        payment = await uow.session.get(Payment, payment_id)
        order = await uow.session.scalar(select(VoucherOrder).where(VoucherOrder.payment_id == payment_id))
        if payment is None or order is None:
            raise NotFound("No such purchase.")
        voucher = await uow.session.get(Voucher, order.voucher_id) if order.voucher_id else None
        return Purchase(payment, voucher)


@use_case(Permission.hotspot_read, query=True)
async def voucher_by_code(actor: Actor, code: str) -> Voucher:
    """A voucher by its code, at the actor's provider, or at any provider when the actor names none
    (then a code two providers share is refused)."""
    async with unit_of_work(actor, readonly=True) as uow:
        stmt = select(Voucher).where(Voucher.code == normalize_code(code)[:16])
        if actor.tenant_id is not None:
            stmt = stmt.where(Voucher.tenant_id == actor.tenant_id)
        found = list(await uow.session.scalars(stmt.limit(2)))
    if not found:
        raise NotFound("No voucher has that code. Check it and try again.")
    if len(found) > 1:
        raise NotFound("Several WiFi providers use that code: open it from your WiFi's page.")
    return found[0]


async def _provider(session: AsyncSession, actor: Actor) -> Tenant:
    tenant = await session.get(Tenant, actor.require_tenant())
    if tenant is None:
        raise NotFound("No such WiFi provider.")
    return tenant


@use_case(Permission.hotspot_read, query=True)
async def vouchers_by_receipt(actor: Actor, receipt: str) -> list[Voucher]:
    """ "Already paid?": the vouchers the M-Pesa receipt paid for at this provider."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await _provider(uow.session, actor)
        rows = list(
            await uow.session.scalars(
                select(Voucher)
                .join(Payment, Payment.id == Voucher.payment_id)
                .where(Voucher.tenant_id == tenant.id, Payment.receipt == receipt.strip().upper())
            )
        )
    if not rows:
        raise NotFound("No WiFi purchase has that M-Pesa receipt here. Check the code in your M-Pesa SMS.")
    return rows


@use_case(Permission.hotspot_read, recorded_by="the SMS notification rows (kind hotspot.voucher)")
async def text_vouchers_to_phone(actor: Actor, phone: str) -> None:
    """ "Already paid?" by phone: the phone's latest usable vouchers here are texted to it again, never
    shown to whoever typed the number (the answer is the same whether it bought WiFi here or not)."""
    async with unit_of_work(actor) as uow:
        tenant = await _provider(uow.session, actor)
        rows = list(
            await uow.session.scalars(
                select(Voucher)
                .where(
                    Voucher.tenant_id == tenant.id,
                    Voucher.phone == phone,
                    Voucher.status.in_([VoucherStatus.provisioned, VoucherStatus.active]),
                )
                .order_by(Voucher.issued_at.desc())
                .limit(2)
            )
        )
        for v in rows:
            await notify.sms(
                uow.session, tenant=tenant, to=phone, kind="hotspot.voucher", body=voucher_sms(v, tenant)
            )
