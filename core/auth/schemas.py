from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.auth.models import ApiKeyMode, Role


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved once per request from a JWT or an API key; the front end turns it
    into the `Actor` core asks its questions of (web.deps.actor_of)."""

    user_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    role: Role
    api_key_id: uuid.UUID | None = None


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    mode: ApiKeyMode
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once: store it now, it cannot be shown again")
