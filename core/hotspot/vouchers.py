"""Issuing vouchers. A voucher is issued in the caller's transaction with its provisioning job, so
the job exists exactly when the voucher does (see core.hotspot.provision)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from core.hotspot.codes import new_code, normalize_code
from core.hotspot.models import Plan, Router, Voucher, VoucherStatus
from core.jobs.registry import enqueue
from core.tenants.models import Tenant

MAX_BATCH = 500


def _from_plan(tenant: Tenant, router: Router, plan: Plan, code: str) -> Voucher:
    if plan.tenant_id != tenant.id or router.tenant_id != tenant.id:
        raise NotFound("No such plan or router.")
    if plan.router_id is not None and plan.router_id != router.id:
        raise InvalidInput("plan_id", f"The plan {plan.name!r} is not sold on the router {router.name!r}.")
    return Voucher(
        tenant_id=tenant.id,
        router_id=router.id,
        plan_id=plan.id,
        code=code,
        plan_name=plan.name,
        price=plan.price,
        validity_minutes=plan.validity_minutes,
        data_mb=plan.data_mb,
        rate_limit=plan.rate_limit,
        devices=plan.devices,
    )


class VoucherService:
    async def issue(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        router: Router,
        plan: Plan,
        phone: str | None = None,
        payment_id: uuid.UUID | None = None,
    ) -> Voucher:
        """One voucher, and its provisioning job, in the caller's transaction."""
        from core.hotspot.provision import provision_voucher

        for _ in range(5):
            voucher = _from_plan(tenant, router, plan, new_code(tenant.voucher_length))
            voucher.phone, voucher.payment_id = phone, payment_id
            try:
                async with session.begin_nested():  # a code collision is drawn again, not an error
                    session.add(voucher)
            except IntegrityError:
                if payment_id is not None and await self.for_payment(session, payment_id) is not None:
                    raise  # not a code collision: this payment already has its voucher
                continue
            await enqueue(session, provision_voucher, voucher_id=str(voucher.id))
            return voucher
        raise RuntimeError("could not draw a free voucher code in 5 tries; raise the provider's code length")

    async def issue_batch(
        self, session: AsyncSession, *, tenant: Tenant, router: Router, plan: Plan, count: int
    ) -> tuple[uuid.UUID, list[Voucher]]:
        """Printed cards: `count` vouchers under one batch id, each provisioned like a sold one."""
        from core.hotspot.provision import provision_voucher

        if not 1 <= count <= MAX_BATCH:
            raise InvalidInput("count", f"Generate 1 to {MAX_BATCH} vouchers at a time.")
        taken = set(await session.scalars(select(Voucher.code).where(Voucher.tenant_id == tenant.id)))
        codes: set[str] = set()
        while len(codes) < count:
            code = new_code(tenant.voucher_length)
            if code not in taken:
                codes.add(code)
        batch = uuid.uuid4()
        vouchers = [_from_plan(tenant, router, plan, code) for code in sorted(codes)]
        for v in vouchers:
            v.batch_id = batch
        session.add_all(vouchers)
        await session.flush()
        for v in vouchers:
            await enqueue(session, provision_voucher, voucher_id=str(v.id))
        return batch, vouchers

    async def for_payment(self, session: AsyncSession, payment_id: uuid.UUID) -> Voucher | None:
        return await session.scalar(select(Voucher).where(Voucher.payment_id == payment_id))

    async def by_code(self, session: AsyncSession, *, tenant_id: uuid.UUID, code: str) -> Voucher:
        voucher = await session.scalar(
            select(Voucher).where(Voucher.tenant_id == tenant_id, Voucher.code == normalize_code(code))
        )
        if voucher is None:
            raise NotFound("No voucher has that code. Check it and try again.")
        return voucher

    def usable(self, voucher: Voucher) -> bool:
        """Only a voucher the router acknowledged is ever shown as usable."""
        return voucher.status in (VoucherStatus.provisioned, VoucherStatus.active)


vouchers = VoucherService()
