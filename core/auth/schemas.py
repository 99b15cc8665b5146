from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.auth.models import ApiKeyMode, Role


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved once per request from a JWT or an API key."""

    user_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    role: Role
    api_key_id: uuid.UUID | None = None

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.platform_admin

    def require_tenant(self) -> uuid.UUID:
        from core.errors import PermissionDenied

        if self.tenant_id is None:
            raise PermissionDenied("This endpoint acts for a business: use a business account or API key.")
        return self.tenant_id

    def require_role(self, *roles: Role) -> None:
        from core.errors import PermissionDenied

        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise PermissionDenied(f"Your role ({self.role.value}) cannot do this; it needs: {allowed}.")


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
