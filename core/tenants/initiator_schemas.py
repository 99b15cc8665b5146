"""A channel's Daraja initiator and the B2C payout channel at the edges: what is typed in (the password
once, never shown again) and what is shown back (the name, when it was set, whether it is proven)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from core.tenants.models import ChannelKind, Environment, Mode, MpesaChannel

_SHORT_CODE = re.compile(r"^\d{5,7}$")

VerificationState = Literal["unset", "pending", "verified", "failed"]


def _name(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 64:
        raise ValueError("The initiator name is 1 to 64 characters: the API operator's username.")
    return value


def _password(value: SecretStr) -> SecretStr:
    secret = value.get_secret_value()
    if not 1 <= len(secret) <= 64 or not secret.isprintable():
        raise ValueError("The initiator password is 1 to 64 printable characters.")
    return value


class InitiatorIn(BaseModel):
    """The API operator ("initiator") of the channel's short code, from the M-Pesa organisation
    portal. The password is encrypted at once and never shown again."""

    model_config = ConfigDict(extra="forbid")

    initiator_name: str = Field(max_length=200, description="The API operator's username")
    initiator_password: SecretStr = Field(max_length=200, description="Its password; never shown again")

    _check_name = field_validator("initiator_name")(_name)
    _check_password = field_validator("initiator_password")(_password)


class InitiatorOut(BaseModel):
    channel_id: uuid.UUID
    channel_name: str
    initiator_name: str | None
    initiator_set_at: datetime | None = Field(description="When the initiator was last set")
    initiator_verified_at: datetime | None = Field(description="When a balance check proved it")
    initiator_error: str | None = Field(description="Why the last check failed")
    verification: VerificationState = Field(
        description="unset; pending (its balance check has not answered yet); verified; failed"
    )
    lookup_id: uuid.UUID | None = Field(
        default=None, description="The balance check sent to prove it (GET /api/lookups/{id})"
    )


class PayoutChannelIn(BaseModel):
    """A bulk-payment (B2C) short code: its Daraja app and its initiator. A simulator channel may leave
    the app's keys out (test values are filled in)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, description="1 to 60 characters, unique in the business")
    environment: Environment
    short_code: str = Field(description="The B2C (bulk payment) short code, 5 to 7 digits")
    consumer_key: SecretStr | None = Field(default=None, max_length=200)
    consumer_secret: SecretStr | None = Field(default=None, max_length=200)
    initiator_name: str = Field(max_length=200, description="The API operator's username")
    initiator_password: SecretStr = Field(max_length=200, description="Its password; never shown again")

    _check_name = field_validator("initiator_name")(_name)
    _check_password = field_validator("initiator_password")(_password)

    @field_validator("short_code")
    @classmethod
    def _digits(cls, v: str) -> str:
        if not _SHORT_CODE.match(v):
            raise ValueError("must be 5 to 7 digits")
        return v

    @model_validator(mode="after")
    def _complete(self) -> PayoutChannelIn:
        if self.environment is not Environment.simulator:
            missing = [n for n in ("consumer_key", "consumer_secret") if not getattr(self, n)]
            if missing:
                raise ValueError(f"{', '.join(missing)} required for a {self.environment.value} channel")
        return self


class PayoutChannelOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: ChannelKind = Field(description="b2c for a payout channel; a till or paybill with an initiator too")
    environment: Environment
    mode: Mode = Field(description="test (simulator, sandbox) or live (production)")
    short_code: str
    consumer_key: str | None = Field(description="masked")
    initiator: InitiatorOut
    created_at: datetime


def verification_state(channel: MpesaChannel) -> VerificationState:
    if not channel.initiator_name:
        return "unset"
    if channel.initiator_verified_at is not None:
        return "verified"
    return "failed" if channel.initiator_error else "pending"


def initiator_out(channel: MpesaChannel, lookup_id: uuid.UUID | None = None) -> InitiatorOut:
    return InitiatorOut(
        channel_id=channel.id,
        channel_name=channel.name,
        initiator_name=channel.initiator_name,
        initiator_set_at=channel.initiator_set_at,
        initiator_verified_at=channel.initiator_verified_at,
        initiator_error=channel.initiator_error,
        verification=verification_state(channel),
        lookup_id=lookup_id,
    )
