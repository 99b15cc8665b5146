from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.access.permissions import sorted_scopes
from core.auth.models import ApiKeyMode, Role


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved once per request from a JWT or an API key; the front end turns it
    into the `Actor` core asks its questions of (web.deps.actor_of)."""

    user_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    role: Role
    api_key_id: uuid.UUID | None = None
    # An API key's scopes (core.access.permissions.ApiScope values); empty for a login token.
    scopes: frozenset[str] = frozenset()
    # An API key's app and mode: what it reaches (its app's channel) and which objects it sees.
    app_id: uuid.UUID | None = None
    mode: ApiKeyMode | None = None


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    mode: ApiKeyMode
    prefix: str
    scopes: list[str] = Field(description="What the key may do, e.g. payments:write, payments:read")
    created_at: datetime
    last_used_at: datetime | None = Field(description="To the minute")
    last_used_network: str | None = Field(description="The client address of that use")
    revoked_at: datetime | None
    expires_at: datetime | None = Field(
        description="Set when the key was rolled: it stops working then (already past: it has)"
    )
    rolled_to_id: uuid.UUID | None = Field(description="The key that replaced this one when it was rolled")

    @field_validator("scopes", mode="after")
    @classmethod
    def _in_order(cls, scopes: list[str]) -> list[str]:
        return sorted_scopes(scopes)


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once: store it now, it cannot be shown again")


class ApiKeyRolled(ApiKeyCreated):
    replaces: ApiKeyOut = Field(description="The rolled key: it works until its expires_at")
