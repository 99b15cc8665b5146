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

from core.access.actor import Actor, Via
from core.errors import NotFound
from core.hotspot import use_cases_portal as portal_cases
from core.hotspot.models import Voucher, VoucherStatus
from core.hotspot.provision import validity_text
from core.hotspot.vouchers import vouchers
from core.payments.models import PaymentSource, PaymentStatus
from core.phones import PHONE_SCHEMA, normalize_msisdn

router = APIRouter(tags=["captive portal"])


class InitiateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    router_id: uuid.UUID
    plan_id: uuid.UUID
    phone: str = Field(
        max_length=20,
        description="the M-Pesa phone that pays: 07…, 01…, +254…",
        json_schema_extra=PHONE_SCHEMA,
    )
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


def _buyer(provider_id: uuid.UUID | None = None) -> Actor:
    """The buyer is anonymous: the platform acts for the provider (core.hotspot.use_cases_portal)."""
    actor = Actor.system(via=Via.api)
    return actor.acting_for(provider_id) if provider_id is not None else actor


@router.post("/api/captive/{provider_id}/initiate-mpesa", status_code=201)
async def initiate_mpesa(provider_id: uuid.UUID, body: InitiateIn, request: Request) -> InitiateOut:
    """Buy a plan: an M-Pesa prompt for its price goes to `phone`, paid into the provider's own Till
    or Paybill. Follow it with `GET status_url`; the voucher appears there once the router has it."""
    phone = normalize_msisdn(body.phone)
    # As this server saw it: behind a hotspot's NAT, the router's public address.
    peer_ip = request.client.host if request.client else None
    p = await portal_cases.buy_wifi(
        _buyer(provider_id),
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
async def purchase_status(payment_id: uuid.UUID) -> PurchaseStatus:
    """The waiting page polls this. The payment id is the buyer's proof of purchase: it is only known
    to the page that started it."""
    bought = await portal_cases.purchase(_buyer(), payment_id)
    payment, voucher = bought.payment, bought.voucher
    if payment.status is PaymentStatus.pending:
        return PurchaseStatus(payment_status=payment.status, message="Waiting for your M-Pesa PIN…")
    if payment.status is not PaymentStatus.success:
        return PurchaseStatus(
            payment_status=payment.status, message=payment.result_desc or "The payment did not go through."
        )
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
async def ticket_status(code: str, provider_id: Annotated[uuid.UUID | None, Query()] = None) -> VoucherView:
    """A voucher by its code (give `provider_id` when several providers could share it)."""
    return _view(await portal_cases.voucher_by_code(_buyer(provider_id), code))


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt: str | None = Field(default=None, max_length=20, description="the M-Pesa receipt code")
    phone: str | None = Field(
        default=None, max_length=20, description="the phone that paid", json_schema_extra=PHONE_SCHEMA
    )


class RecoverOut(BaseModel):
    message: str
    vouchers: list[VoucherView] = []


@router.post("/api/captive/{provider_id}/recover")
async def recover(provider_id: uuid.UUID, body: RecoverIn) -> RecoverOut:
    """ "Already paid?": the M-Pesa receipt shows the voucher here; a phone number gets its latest
    vouchers re-sent by SMS to that phone (never shown to whoever typed the number)."""
    if body.receipt:
        rows = await portal_cases.vouchers_by_receipt(_buyer(provider_id), body.receipt)
        return RecoverOut(message="Here is your voucher.", vouchers=[_view(v) for v in rows])
    if body.phone:
        await portal_cases.text_vouchers_to_phone(_buyer(provider_id), normalize_msisdn(body.phone))
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
    mac: str = "",
    ip: str = "",
    login: str = "",
    dst: str = "",
) -> HTMLResponse:
    seen = await portal_cases.portal_view(_buyer(), provider=provider, router_id=router_id)
    if seen.state is portal_cases.PortalState.unknown:
        return HTMLResponse(
            _page("WiFi", "<p>This WiFi is not registered with lipapush.</p>"), status_code=404
        )
    if seen.state is portal_cases.PortalState.closed:
        return HTMLResponse(
            _page(
                seen.provider_name,
                "<p>Buying WiFi here is unavailable right now. Vouchers already bought still work.</p>",
            ),
            status_code=503,
        )
    config = {
        "provider": str(seen.provider_id),
        "router": str(seen.router_id),
        "mac": mac[:17],
        "ip": ip[:45],
        "login": _safe_login_url(login),
        "dst": dst[:500],
    }
    options = "".join(
        f'<label class=plan><input type=radio name=plan value="{p.id}"{" checked" if i == 0 else ""}>'
        f"<b>{html.escape(p.name)}</b> <span>KES {p.price:,}</span></label>"
        for i, p in enumerate(seen.plans)
    )
    body = PORTAL_HTML.replace("{{options}}", options or "<p>No plans on sale right now.</p>")
    # Script content is raw text, not HTML: escape the characters that could end the element instead.
    raw = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = body.replace("{{config}}", raw)
    return HTMLResponse(_page(seen.provider_name, body))


def _page(title: str, body: str) -> str:
    heading = title if "wifi" in title.lower() else f"{title} WiFi"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(heading)}</title></head>"
        f"<body><main><h1>{html.escape(heading)}</h1>{body}</main></body></html>"
    )


PORTAL_HTML = (Path(__file__).parent / "portal.html").read_text(encoding="utf-8")
