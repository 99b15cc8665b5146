from __future__ import annotations

import re
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from core.tenants.models import ChannelKind, Environment, Mode, TenantStatus

_SHORT_CODE = re.compile(r"^\d{5,7}$")


class ChannelIn(BaseModel):
    """A tenant's Daraja app and Till/Paybill. For a `simulator` channel every field but `kind` is
    optional: test values are filled in."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    environment: Environment
    kind: ChannelKind = ChannelKind.paybill
    business_short_code: str | None = Field(
        default=None, description="Paybill number, or for a Till the Head Office/Store number"
    )
    till_number: str | None = Field(default=None, description="Till number (Buy Goods) - Till channels only")
    consumer_key: SecretStr | None = Field(default=None, max_length=200)
    consumer_secret: SecretStr | None = Field(default=None, max_length=200)
    passkey: SecretStr | None = Field(default=None, max_length=200)

    @field_validator("business_short_code", "till_number")
    @classmethod
    def _digits(cls, v: str | None) -> str | None:
        if v is not None and not _SHORT_CODE.match(v):
            raise ValueError("must be 5 to 7 digits")
        return v

    @field_validator("kind")
    @classmethod
    def _collects(cls, v: ChannelKind) -> ChannelKind:
        # A B2C shortcode is proven by a balance query with its initiator, not a KES 1 push: it has its
        # own form (core.payouts), never this one.
        if not v.collects:
            raise ValueError("must be paybill or till: a B2C (payout) shortcode is added as a payout channel")
        return v

    @model_validator(mode="after")
    def _complete(self) -> ChannelIn:
        if (
            self.kind is ChannelKind.till
            and self.environment is not Environment.simulator
            and not self.till_number
        ):
            raise ValueError(
                "till_number is required for a Till channel (business_short_code is the Store/HO number)"
            )
        if self.kind is ChannelKind.paybill and self.till_number:
            raise ValueError(
                "till_number is only for Till channels; a Paybill uses business_short_code alone"
            )
        if self.environment is not Environment.simulator:
            missing = [
                name
                for name in ("business_short_code", "consumer_key", "consumer_secret", "passkey")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} required for a {self.environment.value} channel")
        return self


class ChannelOut(BaseModel):
    id: uuid.UUID
    name: str
    primary: bool = Field(description="the channel the bot, USSD and the panel push through")
    mode: Mode = Field(description="test (simulator, sandbox) or live (production): its apps' keys' mode")
    environment: Environment
    kind: ChannelKind
    business_short_code: str
    till_number: str | None
    consumer_key: str | None = Field(description="masked")
    consumer_secret: str | None = Field(description="masked")
    passkey: str | None = Field(description="masked")
    callback_url: str
    verified: bool
    verified_at: datetime | None
    verification_error: str | None
    verification_payment_id: uuid.UUID | None


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    slug: str
    status: TenantStatus
    status_reason: str | None
    email: str
    phone: str
    business_number: str | None = Field(default=None, description="what payers enter in the USSD menu")
    sms_sender_id: str | None = None
    sms_receipts: bool = False
    sms_receipt_template: str | None = None
