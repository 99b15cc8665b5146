"""What a hotspot provider's people can do with vouchers from any entry point: issue a printed batch,
view, print and export it, list and find vouchers, revoke one, write it to its router again, text it
to its buyer again. Routers are in use_cases_routers, plans in use_cases_plans, the WiFi overview and
the subscription in use_cases_provider, and what an anonymous buyer does (captive portal, USSD) in
use_cases_portal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import InvalidInput
from core.exports.use_cases import BuiltExport
from core.hotspot.models import Plan, Router, Voucher, VoucherStatus
from core.hotspot.plans import plans
from core.hotspot.routers import routers
from core.hotspot.sheets import batch_xlsx, sheet
from core.hotspot.vouchers import vouchers
from core.runtime import runtime
from core.tenants.models import Tenant
from core.tenants.service import tenants

NOT_A_PROVIDER = (
    "WiFi is for hotspot providers. This business collects M-Pesa payments only; ask lipapush support "
    "to set it up as a hotspot provider."
)
PAPERS = ("a4", "58mm")


async def provider_of(session: AsyncSession, actor: Actor) -> Tenant:
    """The actor's business. The REST API has always let any business run hotspot routers, so the
    kind is not checked here; the panel and the bot hide their WiFi screens from non-providers."""
    return await tenants.get(session, actor.require_tenant())


async def _voucher(
    session: AsyncSession, tenant_id: uuid.UUID, *, code: str | None, voucher_id: uuid.UUID | None
) -> Voucher:
    """A voucher by its code (API, bot) or its id (panel); another provider's is 404."""
    if voucher_id is not None:
        return await vouchers.get(session, tenant_id=tenant_id, voucher_id=voucher_id)
    return await vouchers.by_code(session, tenant_id=tenant_id, code=code or "")


async def _router_name(session: AsyncSession, router_id: uuid.UUID, default: str) -> str:
    r = await session.get(Router, router_id)
    return r.name if r is not None else default


# -- printed batches --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedBatch:
    batch_id: uuid.UUID
    vouchers: list[Voucher]
    provider: str
    router_name: str
    plan_name: str
    price: int


@use_case(Permission.vouchers_issue, audit="vouchers.batch")
async def issue_voucher_batch(
    actor: Actor, *, router_id: uuid.UUID, plan_id: uuid.UUID, count: int
) -> IssuedBatch:
    """Vouchers for printed cards, under one batch id. Each is `issued` until its router acknowledges
    it (`provisioned`); a plan sold on another router only is refused (InvalidInput on plan_id)."""
    async with unit_of_work(actor) as uow:
        tenant = await provider_of(uow.session, actor)
        r = await routers.get(uow.session, tenant_id=tenant.id, router_id=router_id)
        plan = await plans.get(uow.session, tenant_id=tenant.id, plan_id=plan_id)
        batch, made = await vouchers.issue_batch(uow.session, tenant=tenant, router=r, plan=plan, count=count)
        await uow.audit("vouchers.batch", target=str(batch), count=len(made))
        return IssuedBatch(batch, made, tenant.name, r.name, plan.name, plan.price)


@dataclass(frozen=True)
class BatchView:
    vouchers: list[Voucher]
    router_name: str


@use_case(Permission.vouchers_read, query=True)
async def view_voucher_batch(actor: Actor, batch_id: uuid.UUID) -> BatchView:
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        rows = await vouchers.batch(uow.session, tenant_id=tenant.id, batch_id=batch_id)
        r = await routers.get(uow.session, tenant_id=tenant.id, router_id=rows[0].router_id)
        return BatchView(rows, r.name)


@use_case(Permission.vouchers_read, query=True)
async def print_voucher_batch(actor: Actor, batch_id: uuid.UUID, *, paper: str = "a4") -> tuple[str, int]:
    """A batch's printable sheet (HTML with its own print CSS) and its number of cards."""
    if paper not in PAPERS:
        raise InvalidInput("paper", "Print on a4 or 58mm paper.")
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        rows = await vouchers.batch(uow.session, tenant_id=tenant.id, batch_id=batch_id)
        return sheet(provider=tenant.name, vouchers=rows, paper=paper), len(rows)


@use_case(Permission.vouchers_read, audit="export.vouchers")
async def export_voucher_batch(actor: Actor, batch_id: uuid.UUID) -> BuiltExport:
    async with unit_of_work(actor, readonly=True) as uow:
        tenant = await provider_of(uow.session, actor)
        rows = await vouchers.batch(uow.session, tenant_id=tenant.id, batch_id=batch_id)
        for v in rows:
            uow.session.expunge(v)
    path, count = await batch_xlsx(rows, directory=runtime().settings.EXPORT_DIR)
    async with unit_of_work(actor) as uow:
        await uow.audit("export.vouchers", target=str(batch_id), rows=count)
    return BuiltExport(path, count, "vouchers")


# -- the list, one voucher --------------------------------------------------------------------------


@dataclass(frozen=True)
class VoucherPage:
    vouchers: list[Voucher]
    next_cursor: str | None
    plans: list[Plan]
    routers: list[Router]
    cursor_error: str | None = None


@use_case(Permission.vouchers_read, query=True)
async def voucher_page(
    actor: Actor,
    *,
    status: VoucherStatus | None = None,
    plan_id: uuid.UUID | None = None,
    code: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    search: bool = True,
) -> VoucherPage:
    """Newest first, keyset pages, with the provider's plans and routers (for filters and the issue
    form). `search=False` (the filters were wrong) lists no vouchers; a broken cursor is reported in
    `cursor_error` rather than raised, so the page still shows its forms."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = actor.require_tenant()
        mine = await plans.list(uow.session, tenant_id=tenant_id)
        boxes = await routers.list(uow.session, tenant_id=tenant_id)
        if not search:
            return VoucherPage([], None, mine, boxes)
        try:
            rows, next_cursor = await vouchers.list_page(
                uow.session,
                tenant_id=tenant_id,
                status=status,
                plan_id=plan_id,
                code=code,
                cursor=cursor,
                limit=limit,
            )
        except InvalidInput as exc:
            return VoucherPage([], None, mine, boxes, cursor_error=exc.message)
        return VoucherPage(rows, next_cursor, mine, boxes)


@dataclass(frozen=True)
class FoundVoucher:
    voucher: Voucher
    router_name: str


@use_case(Permission.vouchers_read, query=True)
async def find_voucher(actor: Actor, code: str) -> FoundVoucher:
    """A voucher by its code (as printed or texted, any case), with its router's name."""
    async with unit_of_work(actor, readonly=True) as uow:
        v = await vouchers.by_code(uow.session, tenant_id=actor.require_tenant(), code=code)
        return FoundVoucher(v, await _router_name(uow.session, v.router_id, "?"))


# -- revoke, resend, text again ---------------------------------------------------------------------


@dataclass(frozen=True)
class RevokedVoucher:
    voucher: Voucher
    router_name: str
    already: bool  # it had ended (expired or revoked) before: nothing changed


@use_case(Permission.vouchers_issue, audit="voucher.revoked")
async def revoke_voucher(
    actor: Actor, *, code: str | None = None, voucher_id: uuid.UUID | None = None
) -> RevokedVoucher:
    """Stop a voucher now: it is taken off its router (user and session). One that has already
    ended is left as it is (and no row is written)."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        v = await _voucher(uow.session, tenant_id, code=code, voucher_id=voucher_id)
        if v.status in (VoucherStatus.expired, VoucherStatus.revoked):
            return RevokedVoucher(v, await _router_name(uow.session, v.router_id, "its router"), True)
        found = v.code
    async with unit_of_work(actor) as uow:
        v = await vouchers.revoke(
            uow.session, tenant_id=tenant_id, code=found, by=actor.audit_user_id, audit=False
        )
        await uow.audit("voucher.revoked", target=v.code)
        return RevokedVoucher(v, await _router_name(uow.session, v.router_id, "its router"), False)


@use_case(Permission.vouchers_issue, audit="voucher.resent")
async def resend_voucher(
    actor: Actor, *, code: str | None = None, voucher_id: uuid.UUID | None = None
) -> Voucher:
    """Support: write a voucher to its router again (a buyer whose login fails); an ended one is 409."""
    async with unit_of_work(actor) as uow:
        tenant_id = actor.require_tenant()
        v = await _voucher(uow.session, tenant_id, code=code, voucher_id=voucher_id)
        v = await vouchers.resend(uow.session, tenant_id=tenant_id, code=v.code)
        await uow.audit("voucher.resent", target=v.code)
        return v


@use_case(Permission.vouchers_issue, audit="voucher.sms_resent")
async def text_voucher_again(
    actor: Actor, *, code: str | None = None, voucher_id: uuid.UUID | None = None
) -> Voucher:
    """Support: text a sold voucher's code to its buyer again (409 for a printed card, or one its
    router does not have)."""
    async with unit_of_work(actor) as uow:
        tenant_id = actor.require_tenant()
        v = await _voucher(uow.session, tenant_id, code=code, voucher_id=voucher_id)
        v = await vouchers.resend_sms(uow.session, tenant_id=tenant_id, code=v.code)
        await uow.audit("voucher.sms_resent", target=v.code, phone=v.phone)
        return v
