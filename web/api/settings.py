from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.audit.service import record
from core.auth.models import Role
from core.errors import ChannelNotConfigured, LipapushError
from core.notify.texts import validate_receipt_template
from core.payments.push import send_verification_push
from core.payments.schemas import PaymentOut
from core.runtime import runtime, unit_of_work
from core.tenants.schemas import ChannelIn, ChannelOut, TenantOut
from core.tenants.service import tenants
from web.deps import CurrentPrincipal, ReadSession

router = APIRouter(tags=["settings"])


class SettingsOut(BaseModel):
    business: TenantOut
    channel: ChannelOut | None
    verification: PaymentOut | None = None
    verification_error: str | None = None


@router.get("/settings")
async def get_settings(who: CurrentPrincipal, session: ReadSession) -> SettingsOut:
    rt = runtime()
    tenant = await tenants.get(session, who.require_tenant())
    channel = await tenants.get_channel(session, tenant.id)
    return SettingsOut(
        business=TenantOut.model_validate(tenant),
        channel=tenants.channel_out(channel, box=rt.secrets, settings=rt.settings) if channel else None,
    )


@router.post("/settings")
async def save_settings(body: ChannelIn, who: CurrentPrincipal) -> SettingsOut:
    """Save the M-Pesa channel (secrets are encrypted and never shown again), then send the KES 1
    test push to the owner's phone. Its success verifies the channel and activates the business;
    `channel.verification_error` says why when it fails."""
    who.require_role(Role.owner)
    rt = runtime()
    tenant_id = who.require_tenant()
    async with unit_of_work() as session:
        tenant = await tenants.get(session, tenant_id)
        await tenants.save_channel(session, tenant=tenant, data=body, box=rt.secrets, by=who.user_id)
    verification: PaymentOut | None = None
    error: str | None = None
    try:
        verification = await send_verification_push(tenant_id=tenant_id, by=who.user_id)
    except LipapushError as exc:
        error = exc.message
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, tenant_id)
        channel = await tenants.get_channel(session, tenant_id)
        if channel is None:
            raise ChannelNotConfigured("The channel was not saved.")
        return SettingsOut(
            business=TenantOut.model_validate(tenant),
            channel=tenants.channel_out(channel, box=rt.secrets, settings=rt.settings),
            verification=verification,
            verification_error=error,
        )


class SmsSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipts: bool = Field(description="SMS a receipt to each paying customer")
    receipt_template: str | None = Field(
        default=None,
        max_length=320,
        description="uses {business}, {amount}, {receipt}, {date}; empty: the default text",
    )

    @field_validator("receipt_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return validate_receipt_template(v) if v and v.strip() else None


@router.put("/settings/sms")
async def save_sms_settings(body: SmsSettingsIn, who: CurrentPrincipal) -> TenantOut:
    """Customer receipt SMS. (The sender id your SMS come from is assigned by the platform, which
    registers it with Africa's Talking: `lipapush tenant sender-id`.)"""
    who.require_role(Role.owner, Role.manager)
    async with unit_of_work() as session:
        tenant = await tenants.get(session, who.require_tenant())
        tenant.sms_receipts = body.receipts
        tenant.sms_receipt_template = body.receipt_template
        await record(
            session,
            action="settings.sms",
            tenant_id=tenant.id,
            user_id=who.user_id,
            detail=body.model_dump(),
        )
        return TenantOut.model_validate(tenant)
