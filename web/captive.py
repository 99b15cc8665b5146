"""The captive portal's API (endpoint names fixed: router templates and integrators rely on them)
and the portal page itself (`GET /portal/{provider}/{router}`)."""

from __future__ import annotations

import html
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select

from core.billing.subscriptions import is_lapsed
from core.errors import NotFound
from core.hotspot.codes import normalize_code
from core.hotspot.models import Plan, Router, Voucher, VoucherOrder, VoucherStatus
from core.hotspot.orders import buy
from core.hotspot.plans import plans
from core.hotspot.provision import validity_text, voucher_sms
from core.hotspot.vouchers import vouchers
from core.notify.service import notify
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.phones import normalize_msisdn
from core.runtime import unit_of_work
from core.tenants.models import Tenant, TenantStatus
from web.deps import ReadSession

router = APIRouter(tags=["captive portal"])


class InitiateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    router_id: uuid.UUID
    plan_id: uuid.UUID
    phone: str = Field(max_length=20, description="the M-Pesa phone that pays: 07…, 01…, +254…")
    mac: str | None = Field(default=None, max_length=17, pattern=r"^[0-9A-Fa-f:\-]{11,17}$")
    ip: str | None = Field(default=None, max_length=45)


class InitiateOut(BaseModel):
    payment_id: uuid.UUID
    status: PaymentStatus
    amount: int
    message: str
    status_url: str


class VoucherView(BaseModel):
    code: str
    status: VoucherStatus
    usable: bool = Field(description="true only once the router acknowledged the voucher")
    plan_name: str
    validity: str
    expires_at: datetime | None


class PurchaseStatus(BaseModel):
    payment_status: PaymentStatus
    message: str
    voucher: VoucherView | None = None


def _view(v: Voucher) -> VoucherView:
    return VoucherView(
        code=v.code,
        status=v.status,
        usable=vouchers.usable(v),
        plan_name=v.plan_name,
        validity=validity_text(v.validity_minutes),
        expires_at=v.expires_at,
    )


async def _provider(session: ReadSession, provider_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, provider_id)
    if tenant is None:
        raise NotFound("No such WiFi provider.")
    return tenant


@router.post("/api/captive/{provider_id}/initiate-mpesa", status_code=201)
async def initiate_mpesa(provider_id: uuid.UUID, body: InitiateIn, request: Request) -> InitiateOut:
    """Buy a plan: an M-Pesa prompt for its price goes to `phone`, paid into the provider's own Till
    or Paybill. Follow it with `GET status_url`; the voucher appears there once the router has it."""
    phone = normalize_msisdn(body.phone)
    # As this server saw it: behind a hotspot's NAT, the router's public address.
    peer_ip = request.client.host if request.client else None
    p = await buy(
        tenant_id=provider_id,
        router_id=body.router_id,
        plan_id=body.plan_id,
        phone=phone,
        source=PaymentSource.portal,
        mac=body.mac,
        client_ip=body.ip or peer_ip,
        peer_ip=peer_ip,
    )
    return InitiateOut(
        payment_id=p.id,
        status=p.status,
        amount=p.amount,
        message=f"Check your phone: enter your M-Pesa PIN to pay KES {p.amount:,}.",
        status_url=f"/api/captive/payments/{p.id}",
    )


@router.get("/api/captive/payments/{payment_id}")
async def purchase_status(payment_id: uuid.UUID, session: ReadSession) -> PurchaseStatus:
    """The waiting page polls this. The payment id is the buyer's proof of purchase: it is only known
    to the page that started it."""
    payment = await session.get(Payment, payment_id)
    order = await session.scalar(select(VoucherOrder).where(VoucherOrder.payment_id == payment_id))
    if payment is None or order is None:
        raise NotFound("No such purchase.")
    if payment.status is PaymentStatus.pending:
        return PurchaseStatus(payment_status=payment.status, message="Waiting for your M-Pesa PIN…")
    if payment.status is not PaymentStatus.success:
        return PurchaseStatus(
            payment_status=payment.status, message=payment.result_desc or "The payment did not go through."
        )
    voucher = await session.get(Voucher, order.voucher_id) if order.voucher_id else None
    if voucher is None or not vouchers.usable(voucher):
        return PurchaseStatus(
            payment_status=payment.status,
            message="Paid. Your voucher is on its way to the WiFi router; it will also come by SMS. "
            "Do not pay again.",
        )
    return PurchaseStatus(
        payment_status=payment.status, message="Paid. You are being connected…", voucher=_view(voucher)
    )


@router.get("/api/tickets/{code}/status")
async def ticket_status(
    code: str, session: ReadSession, provider_id: Annotated[uuid.UUID | None, Query()] = None
) -> VoucherView:
    """A voucher by its code (give `provider_id` when several providers could share it)."""
    stmt = select(Voucher).where(Voucher.code == normalize_code(code)[:16])
    if provider_id is not None:
        stmt = stmt.where(Voucher.tenant_id == provider_id)
    found = list(await session.scalars(stmt.limit(2)))
    if not found:
        raise NotFound("No voucher has that code. Check it and try again.")
    if len(found) > 1:
        raise NotFound("Several WiFi providers use that code: open it from your WiFi's page.")
    return _view(found[0])


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt: str | None = Field(default=None, max_length=20, description="the M-Pesa receipt code")
    phone: str | None = Field(default=None, max_length=20, description="the phone that paid")


class RecoverOut(BaseModel):
    message: str
    vouchers: list[VoucherView] = []


@router.post("/api/captive/{provider_id}/recover")
async def recover(provider_id: uuid.UUID, body: RecoverIn) -> RecoverOut:
    """ "Already paid?": the M-Pesa receipt shows the voucher here; a phone number gets its latest
    vouchers re-sent by SMS to that phone (never shown to whoever typed the number)."""
    async with unit_of_work() as session:
        tenant = await _provider(session, provider_id)
        if body.receipt:
            rows = list(
                await session.scalars(
                    select(Voucher)
                    .join(Payment, Payment.id == Voucher.payment_id)
                    .where(Voucher.tenant_id == tenant.id, Payment.receipt == body.receipt.strip().upper())
                )
            )
            if not rows:
                raise NotFound(
                    "No WiFi purchase has that M-Pesa receipt here. Check the code in your M-Pesa SMS."
                )
            return RecoverOut(message="Here is your voucher.", vouchers=[_view(v) for v in rows])
        if body.phone:
            phone = normalize_msisdn(body.phone)
            rows = list(
                await session.scalars(
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
                    session, tenant=tenant, to=phone, kind="hotspot.voucher", body=voucher_sms(v, tenant)
                )
            # The same answer either way: whether a number bought WiFi here is not for strangers to learn.
            return RecoverOut(message="If that phone bought WiFi here, its vouchers are on their way by SMS.")
    raise NotFound("Give the M-Pesa receipt code or the phone that paid.")


# -- the portal page ---------------------------------------------------------------------------------


def _safe_login_url(url: str | None) -> str:
    """The router's `link-login-only`: only an http(s) URL may become a form action."""
    if (
        url
        and url.startswith(("http://", "https://"))
        and len(url) < 500
        and not any(c in url for c in "\"'<> ")
    ):
        return url
    return ""


@router.get("/portal/{provider}/{router_id}", response_class=HTMLResponse, include_in_schema=False)
async def portal(
    provider: str,
    router_id: uuid.UUID,
    session: ReadSession,
    mac: str = "",
    ip: str = "",
    login: str = "",
    dst: str = "",
) -> HTMLResponse:
    tenant = await session.scalar(
        select(Tenant).where(or_(Tenant.slug == provider, Tenant.business_number == provider))
    )
    r = await session.get(Router, router_id)
    if tenant is None or r is None or r.tenant_id != tenant.id:
        return HTMLResponse(
            _page("WiFi", "<p>This WiFi is not registered with lipapush.</p>"), status_code=404
        )
    if tenant.status is not TenantStatus.active or tenant.billing_hold or is_lapsed(tenant):
        return HTMLResponse(
            _page(
                tenant.name,
                "<p>Buying WiFi here is unavailable right now. Vouchers already bought still work.</p>",
            ),
            status_code=503,
        )
    on_sale: list[Plan] = await plans.list(session, tenant_id=tenant.id, router_id=r.id, active_only=True)
    config = {
        "provider": str(tenant.id),
        "router": str(r.id),
        "mac": mac[:17],
        "ip": ip[:45],
        "login": _safe_login_url(login),
        "dst": dst[:500],
    }
    options = "".join(
        f'<label class=plan><input type=radio name=plan value="{p.id}"{" checked" if i == 0 else ""}>'
        f"<b>{html.escape(p.name)}</b> <span>KES {p.price:,}</span></label>"
        for i, p in enumerate(on_sale)
    )
    body = PORTAL_HTML.replace("{{options}}", options or "<p>No plans on sale right now.</p>")
    # Script content is raw text, not HTML: escape the characters that could end the element instead.
    raw = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = body.replace("{{config}}", raw)
    return HTMLResponse(_page(tenant.name, body))


def _page(title: str, body: str) -> str:
    heading = title if "wifi" in title.lower() else f"{title} WiFi"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(heading)}</title></head>"
        f"<body><main><h1>{html.escape(heading)}</h1>{body}</main></body></html>"
    )


PORTAL_HTML = (Path(__file__).parent / "portal.html").read_text(encoding="utf-8")
