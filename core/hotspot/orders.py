"""Buying WiFi: a plan, paid by M-Pesa through the provider's own channel, becomes a voucher.

The order is written in the same transaction as the pending payment. When the payment succeeds,
`payment_finalised` (called by payments.finalize, in its transaction) issues the voucher once (the
voucher's payment_id is unique) and queues its provisioning; the buyer's SMS goes out when the
router has acknowledged it (core.hotspot.provision). A payment for less than the plan's price, or a
flagged one, issues nothing.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import ratelimit
from core.billing.subscriptions import is_lapsed
from core.db import Scope
from core.errors import InvalidInput, NotFound, TenantNotActive, TooManyRequests
from core.hotspot.models import Plan, Router, VoucherOrder
from core.hotspot.vouchers import Terms, vouchers
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.payments.push import request_stk_push
from core.payments.schemas import PaymentOut
from core.runtime import unit_of_work
from core.tenants.models import Tenant

log = logging.getLogger(__name__)

PER_PHONE = (3, 300)  # pushes per window of seconds
PER_CLIENT = (10, 300)  # per buyer's device: its hotspot address, as the portal sends it
# Per address this server saw the request come from. A portal behind the hotspot's NAT shows the router's
# public address, shared by every buyer on that WiFi, hence ten devices' worth; unlike the portal's word,
# it cannot be made up.
PER_NETWORK = (10 * PER_CLIENT[0], 300)


async def buy(
    *,
    tenant_id: uuid.UUID,
    router_id: uuid.UUID,
    plan_id: uuid.UUID,
    phone: str,
    source: PaymentSource,
    mac: str | None = None,
    client_ip: str | None = None,
    peer_ip: str | None = None,
    defer: bool = False,
) -> PaymentOut:
    """Check the plan is on sale at this router, then push its price to `phone` (normalised).

    `client_ip` is the buyer's device (the hotspot address the portal reports), `peer_ip` the address
    the request reached this server from; each has its own limit. Every request counts against all
    three, whichever of them refuses it."""
    by_phone = await ratelimit.hit(f"wifi:phone:{phone}", PER_PHONE[1])
    by_device = await ratelimit.hit(f"wifi:ip:{client_ip}", PER_CLIENT[1]) if client_ip else 0
    by_network = await ratelimit.hit(f"wifi:peer:{peer_ip}", PER_NETWORK[1]) if peer_ip else 0
    if by_phone > PER_PHONE[0]:
        raise TooManyRequests("Too many payment requests for this phone. Wait 5 minutes and try again.")
    if by_device > PER_CLIENT[0]:
        raise TooManyRequests("Too many payment requests from this device. Wait 5 minutes and try again.")
    if by_network > PER_NETWORK[0]:
        raise TooManyRequests(
            "Too many payment requests from this WiFi network. Wait 5 minutes and try again."
        )
    async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
        plan = await session.get(Plan, plan_id)
        router = await session.get(Router, router_id)
        if router is None or router.tenant_id != tenant_id:
            raise NotFound("This WiFi is not registered with lipapush.")
        if plan is None or plan.tenant_id != tenant_id or not plan.active:
            raise NotFound("That plan is not on sale. Pick another.")
        if plan.router_id is not None and plan.router_id != router_id:
            raise InvalidInput("plan_id", "That plan is not sold on this WiFi. Pick another.")
        tenant = await session.get(Tenant, tenant_id)
        if tenant is not None and is_lapsed(tenant):
            # New sales stop; vouchers already sold keep working until they expire.
            raise TenantNotActive(
                "Buying WiFi here is unavailable right now. Vouchers already bought still work."
            )
        terms = Terms.of(plan)
        price, name = plan.price, plan.name

    async def record(session: AsyncSession, payment: Payment) -> None:
        order = VoucherOrder(
            tenant_id=tenant_id,
            payment_id=payment.id,
            router_id=router_id,
            phone=phone,
            mac=mac,
            client_ip=client_ip,
        )
        terms.on_order(order)
        session.add(order)

    return await request_stk_push(
        tenant_id=tenant_id,
        phone=phone,
        amount=price,
        source=source,
        reference="WIFI",
        description=f"WiFi {name}"[:13],
        defer=defer,
        on_created=record,
    )


async def payment_finalised(session: AsyncSession, *, payment: Payment, tenant: Tenant) -> None:
    order = await session.scalar(select(VoucherOrder).where(VoucherOrder.payment_id == payment.id))
    if order is None or order.voucher_id is not None or payment.status is not PaymentStatus.success:
        return
    router = await session.get(Router, order.router_id)
    if router is None:
        log.error("paid WiFi order %s has no router left; no voucher issued", order.id)
        return
    if payment.flag or (payment.paid_amount is not None and payment.paid_amount < payment.amount):
        log.warning("WiFi order %s: payment %s flagged; no voucher issued", order.id, payment.id)
        return
    # The terms the buyer was shown and paid for, even if the plan changed or went meanwhile.
    voucher = await vouchers.issue(
        session,
        tenant=tenant,
        router=router,
        plan=Terms.of_order(order),
        phone=order.phone,
        payment_id=payment.id,
    )
    order.voucher_id = voucher.id
