from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from core.hotspot.models import PlanKind, RouterStatus, VoucherStatus
from core.money import amount_schema, parse_shillings

_HOST = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$"
)
_RATE = re.compile(r"^\d+(\.\d+)?[kKmMgG]?/\d+(\.\d+)?[kKmMgG]?$")
_SAFE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


# A plan's price is what its buyer is pushed for: the same limit as every other push.
PriceField = Annotated[
    int, BeforeValidator(lambda v: parse_shillings(v, field="price")), Field(json_schema_extra=amount_schema)
]


class RouterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=60)
    host: str = Field(
        description="IP address or DNS name the platform reaches the RouterOS API on",
        json_schema_extra={"pattern": _HOST.pattern},
    )
    port: int = Field(default=8728, ge=1, le=65535, description="8728 plain, 8729 api-ssl")
    username: str = Field(
        description="a RouterOS user in a group limited to api,read,write",
        json_schema_extra={"pattern": _SAFE.pattern},
    )
    password: str = Field(min_length=1, max_length=128)
    tls: bool = False
    hotspot_server: str = Field(
        default="hotspot1",
        description="the /ip hotspot server name",
        json_schema_extra={"pattern": _SAFE.pattern},
    )

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        v = v.strip()
        try:
            ipaddress.ip_address(v)
            return v
        except ValueError:
            pass
        if not _HOST.match(v):
            raise ValueError(
                "Give the router's IP address or host name, like 10.0.0.1 or router.example.co.ke."
            )
        return v.lower()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v or not v.isprintable():
            raise ValueError("Give the router a name of printable characters, like 'Stall 42'.")
        return v

    @field_validator("username", "hotspot_server")
    @classmethod
    def _safe(cls, v: str) -> str:
        if not _SAFE.match(v):
            raise ValueError("Use 1 to 64 letters, digits, dots, dashes or underscores.")
        return v

    @field_validator("password")
    @classmethod
    def _password(cls, v: str) -> str:
        if not v.isascii() or not v.isprintable():
            raise ValueError("RouterOS API passwords must be printable ASCII.")
        return v


class RouterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    host: str
    port: int
    username: str
    tls: bool
    hotspot_server: str
    status: RouterStatus
    identity: str | None
    version: str | None
    uptime: str | None
    last_seen_at: datetime | None
    last_error: str | None


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=40, description='what buyers see, e.g. "1 hour"')
    kind: PlanKind = PlanKind.time
    price: PriceField = Field(description="whole shillings, 1 to STK_MAX_AMOUNT (250 000)")
    validity_minutes: int = Field(ge=5, le=366 * 24 * 60, description="wall-clock validity from first login")
    data_mb: int | None = Field(
        default=None, ge=1, le=10_000_000, description="data plans: the allowance in MB"
    )
    rate_limit: str | None = Field(default=None, description='upload/download, e.g. "2M/5M"')
    devices: int = Field(default=1, ge=1, le=20)
    router_id: uuid.UUID | None = Field(default=None, description="sell on one router only")
    active: bool = True
    sort_order: int = 0

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not _RATE.match(v.strip()):
            raise ValueError('Write upload/download like "2M/5M" or "512k/1M".')
        return v.strip()

    @model_validator(mode="after")
    def _data_needs_allowance(self) -> PlanIn:
        if self.kind is PlanKind.data and self.data_mb is None:
            raise ValueError("A data plan needs data_mb (the allowance in MB).")
        return self


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    kind: PlanKind
    price: int
    validity_minutes: int
    data_mb: int | None
    rate_limit: str | None
    devices: int
    router_id: uuid.UUID | None
    active: bool


class VoucherOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    status: VoucherStatus
    plan_name: str
    price: int
    validity_minutes: int
    data_mb: int | None
    router_id: uuid.UUID
    phone: str | None
    issued_at: datetime
    provisioned_at: datetime | None
    activated_at: datetime | None
    expires_at: datetime | None
    last_error: str | None
