from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.notify.texts import validate_receipt_template
from core.payments.schemas import PaymentOut
from core.tenants import use_cases
from core.tenants.schemas import ChannelIn, ChannelOut, TenantOut
from core.tenants.use_cases import BusinessSettings
from web.deps import CurrentActor

router = APIRouter(tags=["settings"])


class SettingsOut(BaseModel):
    business: TenantOut
    channel: ChannelOut | None
    verification: PaymentOut | None = None
    verification_error: str | None = None


def _out(
    s: BusinessSettings, verification: PaymentOut | None = None, error: str | None = None
) -> SettingsOut:
    return SettingsOut(
        business=s.business, channel=s.channel, verification=verification, verification_error=error
    )


@router.get("/settings")
async def get_settings(actor: CurrentActor) -> SettingsOut:
    """The business and its M-Pesa channel, the secrets masked (owner and manager)."""
    return _out(await use_cases.view_settings(actor))


@router.post("/settings")
async def save_settings(body: ChannelIn, actor: CurrentActor) -> SettingsOut:
    """Save the M-Pesa channel (secrets are encrypted and never shown again), then send the KES 1
    test push to the owner's phone. Its success verifies the channel and activates the business;
    `channel.verification_error` says why when it fails."""
    saved = await use_cases.save_channel(actor, body)
    return _out(saved.settings, saved.verification, saved.error)


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
async def save_sms_settings(body: SmsSettingsIn, actor: CurrentActor) -> TenantOut:
    """Customer receipt SMS. (The sender id your SMS come from is assigned by the platform, which
    registers it with Africa's Talking: `lipapush tenant sender-id`.)"""
    return await use_cases.change_sms_settings(
        actor, receipts=body.receipts, receipt_template=body.receipt_template
    )
