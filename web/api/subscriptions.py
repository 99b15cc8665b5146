"""Hotspot providers' subscriptions through the platform's Pesapal account."""

from __future__ import annotations

import html
import logging
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from core.billing.models import SubscriptionOrderStatus, SubscriptionPeriod
from core.billing.pesapal import PesapalError
from core.billing.subscriptions import refresh_order
from core.hotspot.use_cases_provider import start_subscription_order, subscription_plans
from core.hotspot.use_cases_provider import subscription_status as subscription_status_uc
from web.deps import CurrentActor

log = logging.getLogger(__name__)
router = APIRouter(tags=["subscriptions"])


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    period: SubscriptionPeriod
    price: int


@router.get("/subscription-plans")
async def list_subscription_plans(actor: CurrentActor) -> list[PlanOut]:
    return [PlanOut.model_validate(p) for p in await subscription_plans(actor)]


class CreateOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan_id: uuid.UUID


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    merchant_reference: str
    order_tracking_id: str | None
    redirect_url: str | None = Field(description="send the provider here to pay")
    amount: int
    period: SubscriptionPeriod
    status: SubscriptionOrderStatus
    period_end: datetime | None


@router.post("/providers/{provider_id}/pesapal/create-order", status_code=201)
async def create_order(provider_id: uuid.UUID, body: CreateOrderIn, actor: CurrentActor) -> OrderOut:
    """Start paying a subscription: open `redirect_url` (Pesapal's page: M-Pesa, Airtel or card)."""
    order = await start_subscription_order(actor.for_business(provider_id), body.plan_id)
    return OrderOut.model_validate(order)


class SubscriptionStatusOut(BaseModel):
    active: bool = Field(description="new WiFi sales are open: paid, or on the free trial")
    paid_until: datetime | None = Field(description="null while nothing is paid beyond the free trial")
    days_left: int | None
    trial: bool = Field(description="on the free trial now")
    trial_until: datetime | None = Field(description="when the free trial ends (or ended)")
    last_order: OrderOut | None


@router.get("/providers/{provider_id}/subscription-status")
async def subscription_status(provider_id: uuid.UUID, actor: CurrentActor) -> SubscriptionStatusOut:
    status = await subscription_status_uc(actor.for_business(provider_id))
    return SubscriptionStatusOut(
        active=status.state.active,
        paid_until=status.state.paid_until,
        days_left=status.state.days_left,
        trial=status.state.trial,
        trial_until=status.state.trial_until,
        last_order=OrderOut.model_validate(status.last_order) if status.last_order else None,
    )


@router.api_route("/payments/pesapal/webhook", methods=["GET", "POST"], include_in_schema=False)
async def pesapal_ipn(request: Request) -> JSONResponse:
    """Pesapal's IPN carries identifiers only; the status query decides (see core.billing.subscriptions)."""
    data: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        try:
            body = await request.json()
            data.update(body if isinstance(body, dict) else {})
        except ValueError:
            pass
    tid = str(data.get("OrderTrackingId", ""))[:64]
    ref = str(data.get("OrderMerchantReference", ""))[:64]
    kind = str(data.get("OrderNotificationType", "IPNCHANGE"))[:32]
    status = 200  # an unknown order is acknowledged too: retrying cannot help
    if tid:
        try:
            await refresh_order(tid)
        except PesapalError as exc:
            log.warning("pesapal status query for %s failed: %s", tid, exc.message)
            status = 500  # ask Pesapal to notify again later
    ack = {"orderNotificationType": kind, "orderTrackingId": tid, "orderMerchantReference": ref}
    return JSONResponse({**ack, "status": status})


@router.get("/payments/pesapal/callback", response_class=HTMLResponse, include_in_schema=False)
async def pesapal_return(request: Request) -> HTMLResponse:
    """Where Pesapal sends the provider's browser after paying."""
    tid = request.query_params.get("OrderTrackingId", "")[:64]
    order = None
    if tid:
        try:
            order = await refresh_order(tid)
        except PesapalError:
            order = None
    if order is None:
        text = "We could not find this payment. If you paid, it will show on your subscription shortly."
    elif order.status is SubscriptionOrderStatus.completed:
        until = order.period_end.strftime("%d %b %Y") if order.period_end else ""
        text = f"Thank you: your lipapush subscription is paid until {until}."
    elif order.status is SubscriptionOrderStatus.pending:
        text = "Your payment is being confirmed; your subscription will update in a moment."
    else:
        text = "The payment did not go through. You can try again from the bot or the dashboard."
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        "<title>lipapush</title></head><body style='font-family:sans-serif'>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
