"""Issuing vouchers. A voucher is issued in the caller's transaction with its provisioning job, so
the job exists exactly when the voucher does (see core.hotspot.provision)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.db import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.hotspot.codes import new_code, normalize_code
from core.hotspot.models import Plan, Router, Voucher, VoucherOrder, VoucherStatus
from core.jobs.registry import enqueue
from core.pagination import decode_cursor, encode_cursor
from core.tenants.models import Tenant

MAX_BATCH = 500


@dataclass(frozen=True)
class Terms:
    """What a voucher is sold with: a plan's terms at one moment (changing the plan later never
    changes a voucher, or an order already being paid for)."""

    plan_id: uuid.UUID | None
    name: str
    price: int
    validity_minutes: int
    data_mb: int | None
    rate_limit: str | None
    devices: int

    @classmethod
    def of(cls, plan: Plan) -> Terms:
        return cls(
            plan.id, plan.name, plan.price, plan.validity_minutes, plan.data_mb, plan.rate_limit, plan.devices
        )

    @classmethod
    def of_order(cls, order: VoucherOrder) -> Terms:
        return cls(
            order.plan_id,
            order.plan_name,
            order.price,
            order.validity_minutes,
            order.data_mb,
            order.rate_limit,
            order.devices,
        )

    def on_order(self, order: VoucherOrder) -> None:
        order.plan_id, order.plan_name, order.price = self.plan_id, self.name, self.price
        order.validity_minutes, order.data_mb = self.validity_minutes, self.data_mb
        order.rate_limit, order.devices = self.rate_limit, self.devices


def _from_plan(tenant: Tenant, router: Router, plan: Plan | Terms, code: str) -> Voucher:
    if router.tenant_id != tenant.id:
        raise NotFound("No such plan or router.")
    if isinstance(plan, Plan):
        if plan.tenant_id != tenant.id:
            raise NotFound("No such plan or router.")
        if plan.router_id is not None and plan.router_id != router.id:
            raise InvalidInput(
                "plan_id", f"The plan {plan.name!r} is not sold on the router {router.name!r}."
            )
        plan = Terms.of(plan)
    return Voucher(
        tenant_id=tenant.id,
        router_id=router.id,
        plan_id=plan.plan_id,
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
        plan: Plan | Terms,
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
        codes: set[str] = set()
        while len(codes) < count:
            drawn = {new_code(tenant.voucher_length) for _ in range(count - len(codes))} - codes
            # Only the drawn codes are looked up, not every code the provider ever had.
            taken = set(
                await session.scalars(
                    select(Voucher.code).where(Voucher.tenant_id == tenant.id, Voucher.code.in_(drawn))
                )
            )
            codes |= drawn - taken
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

    async def revoke(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        code: str,
        by: uuid.UUID | None,
        audit: bool = True,
    ) -> Voucher:
        """Stop a voucher now: it is taken off its router (user and session) by a job. Revoking one
        that has already ended changes nothing. `audit=False` is for the use case
        (core.hotspot.use_cases.revoke_voucher), which writes the `voucher.revoked` row itself."""
        from core.hotspot.provision import remove_voucher

        voucher = await self.by_code(session, tenant_id=tenant_id, code=code)
        if voucher.status in (VoucherStatus.expired, VoucherStatus.revoked):
            return voucher
        voucher.status, voucher.revoked_at = VoucherStatus.revoked, utcnow()
        await enqueue(session, remove_voucher, voucher_id=str(voucher.id))
        if audit:
            await record(
                session, action="voucher.revoked", tenant_id=tenant_id, user_id=by, target=voucher.code
            )
        return voucher

    async def resend(self, session: AsyncSession, *, tenant_id: uuid.UUID, code: str) -> Voucher:
        """Support: write a voucher to its router again (a buyer whose login fails)."""
        from core.hotspot.provision import provision_voucher

        voucher = await self.by_code(session, tenant_id=tenant_id, code=code)
        if voucher.status in (VoucherStatus.expired, VoucherStatus.revoked):
            raise Conflict(f"This voucher is {voucher.status.value}; it cannot be sent to the router again.")
        await enqueue(session, provision_voucher, voucher_id=str(voucher.id), resend=True)
        return voucher

    async def batch(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, batch_id: uuid.UUID
    ) -> list[Voucher]:
        """The cards of one printed batch, in code order; another provider's batch is 404."""
        rows = list(
            await session.scalars(
                select(Voucher)
                .where(Voucher.tenant_id == tenant_id, Voucher.batch_id == batch_id)
                .order_by(Voucher.code)
            )
        )
        if not rows:
            raise NotFound("No such voucher batch.")
        return rows

    async def get(self, session: AsyncSession, *, tenant_id: uuid.UUID, voucher_id: uuid.UUID) -> Voucher:
        voucher = await session.get(Voucher, voucher_id)
        if voucher is None or voucher.tenant_id != tenant_id:
            raise NotFound("No such voucher.")
        return voucher

    async def list_page(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        status: VoucherStatus | None = None,
        plan_id: uuid.UUID | None = None,
        code: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Voucher], str | None]:
        """Newest first, keyset-paginated on (issued_at, id); `code` matches any part of a code.
        Returns the page and the cursor of the next one (None on the last page)."""
        conds = [Voucher.tenant_id == tenant_id]
        if status is not None:
            conds.append(Voucher.status == status)
        if plan_id is not None:
            conds.append(Voucher.plan_id == plan_id)
        if code:
            # Codes are letters and digits only: anything else cannot match (and LIKE needs no escaping).
            wanted = "".join(ch for ch in normalize_code(code) if ch.isascii() and ch.isalnum())
            conds.append(Voucher.code.contains(wanted) if wanted else Voucher.id.is_(None))
        if cursor:
            at, vid = _decode_cursor(cursor)
            conds.append(or_(Voucher.issued_at < at, and_(Voucher.issued_at == at, Voucher.id < vid)))
        rows = list(
            await session.scalars(
                select(Voucher)
                .where(*conds)
                .order_by(Voucher.issued_at.desc(), Voucher.id.desc())
                .limit(limit + 1)
            )
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, _encode_cursor(rows[-1]) if more and rows else None

    async def resend_sms(self, session: AsyncSession, *, tenant_id: uuid.UUID, code: str) -> Voucher:
        """Support: text a sold voucher's code to its buyer again (the same SMS as at the sale). Only
        for a voucher the router has (a code it does not know would log nobody in)."""
        from core.hotspot.provision import voucher_sms
        from core.notify.service import notify

        voucher = await self.by_code(session, tenant_id=tenant_id, code=code)
        if voucher.payment_id is None or not voucher.phone:
            raise Conflict("This voucher was printed, not sold by M-Pesa: there is no buyer's phone to text.")
        if not self.usable(voucher):
            issued = voucher.status is VoucherStatus.issued
            state = "not on the router yet" if issued else voucher.status.value
            raise Conflict(f"This voucher is {state}; its code is not texted again.")
        tenant = await session.get(Tenant, tenant_id)
        await notify.sms(
            session,
            tenant=tenant,
            to=voucher.phone,
            kind="hotspot.voucher",
            body=voucher_sms(voucher, tenant),
            payment_id=voucher.payment_id,
        )
        return voucher

    def usable(self, voucher: Voucher) -> bool:
        """Only a voucher the router acknowledged is ever shown as usable."""
        return voucher.status in (VoucherStatus.provisioned, VoucherStatus.active)


def _encode_cursor(v: Voucher) -> str:
    return encode_cursor(v.issued_at, v.id)


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, vid, _ = decode_cursor(
        cursor, message="This page link is broken or was cut short. Start again from the first page."
    )
    return at, vid


vouchers = VoucherService()
