"""The one answer to "who is doing this?", built once per request, update, USSD hop, command or job.

Front ends never compare roles: they build an `Actor` and the use case asks it `require(permission)`.
The same user therefore gets the same answer in the API, the bot, USSD and the panel (a test walks
every role through every front end to keep it so).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from core.access.permissions import (
    API_KEY_PERMISSIONS,
    PERMISSION_SCOPE,
    ROLE_PERMISSIONS,
    WRITES,
    ApiScope,
    Permission,
    roles_with,
    scope_permissions,
)
from core.auth.models import Role
from core.errors import PermissionDenied
from core.tenants.models import Mode


class ActorKind(StrEnum):
    user = "user"  # a business's owner, manager or cashier
    api_key = "api_key"
    platform_admin = "platform_admin"
    impersonation = "impersonation"  # a platform admin viewing as a business
    system = "system"  # jobs, the scheduler, callbacks, bootstrap commands
    mcp = "mcp"  # an AI agent through the MCP server, with an API key's rights


class Via(StrEnum):
    """The entry point, for audit rows and messages."""

    api = "api"
    panel = "panel"
    telegram = "telegram"
    ussd = "ussd"
    cli = "cli"
    mcp = "mcp"
    job = "job"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    via: Via
    tenant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    role: Role | None = None
    api_key_id: uuid.UUID | None = None
    # The platform admin behind an impersonation: audit rows name them, not the business's owner.
    admin_id: uuid.UUID | None = None
    writes: bool = True
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    tenant_name: str | None = None
    # API keys: the app the key belongs to and its mode (test keys see and make only test objects).
    # None for people, who see both modes and choose one where it matters.
    app_id: uuid.UUID | None = None
    mode: Mode | None = None

    # -- constructors, one per kind of caller ----------------------------------------------------
    @classmethod
    def for_user(
        cls,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID | None,
        role: Role,
        via: Via,
        tenant_name: str | None = None,
    ) -> Actor:
        if role is Role.platform_admin:
            return cls(
                ActorKind.platform_admin,
                via,
                user_id=user_id,
                role=role,
                permissions=ROLE_PERMISSIONS[role],
            )
        return cls(
            ActorKind.user,
            via,
            tenant_id=tenant_id,
            user_id=user_id,
            role=role,
            permissions=ROLE_PERMISSIONS[role],
            tenant_name=tenant_name,
        )

    @classmethod
    def for_api_key(
        cls,
        *,
        api_key_id: uuid.UUID,
        tenant_id: uuid.UUID,
        scopes: Iterable[ApiScope],
        via: Via = Via.api,
        created_by: uuid.UUID | None = None,
        app_id: uuid.UUID | None = None,
        mode: Mode | None = None,
    ) -> Actor:
        """A key holds what its scopes grant, never more than an API key may (no person's account)."""
        return cls(
            ActorKind.mcp if via is Via.mcp else ActorKind.api_key,
            via,
            tenant_id=tenant_id,
            # Pushes made with a key say who minted it, as they did before actors existed.
            user_id=created_by,
            role=Role.owner,
            api_key_id=api_key_id,
            permissions=scope_permissions(scopes) & API_KEY_PERMISSIONS,
            app_id=app_id,
            mode=mode,
        )

    @classmethod
    def impersonating(
        cls,
        *,
        admin_id: uuid.UUID,
        tenant_id: uuid.UUID,
        writes: bool,
        via: Via = Via.panel,
        tenant_name: str | None = None,
    ) -> Actor:
        """An admin viewing as a business sees what its owner sees; writing needs `writes`."""
        perms = ROLE_PERMISSIONS[Role.owner]
        return cls(
            ActorKind.impersonation,
            via,
            tenant_id=tenant_id,
            user_id=admin_id,
            role=Role.owner,
            admin_id=admin_id,
            writes=writes,
            permissions=perms if writes else perms - WRITES,
            tenant_name=tenant_name,
        )

    @classmethod
    def system(cls, *, tenant_id: uuid.UUID | None = None, via: Via = Via.job) -> Actor:
        """Jobs, callbacks and bootstrap commands: trusted code acting on the platform's behalf."""
        return cls(
            ActorKind.system,
            via,
            tenant_id=tenant_id,
            permissions=frozenset(Permission),
        )

    def for_business(self, tenant_id: uuid.UUID) -> Actor:
        """This actor, acting for the business a URL names: a platform admin may act for any business
        (as an admin acting for it, audited as the admin), anyone else only for their own."""
        if self.kind is ActorKind.platform_admin:
            assert self.user_id is not None
            return Actor.impersonating(admin_id=self.user_id, tenant_id=tenant_id, writes=True, via=self.via)
        if self.tenant_id != tenant_id:
            raise PermissionDenied("You can only manage your own business: this id is another business's.")
        return self

    def acting_for(self, tenant_id: uuid.UUID) -> Actor:
        """A system or admin actor narrowed to one business (admin tools, CLI)."""
        return replace(self, tenant_id=tenant_id)

    # -- questions a use case asks --------------------------------------------------------------
    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def shows(self, permission: Permission) -> bool:
        """Whether a screen shows the control for `permission`. As `can`, except that an admin
        viewing read-only sees the owner's page (its forms refuse with the read-only message)."""
        if self.kind is ActorKind.impersonation:
            return permission in ROLE_PERMISSIONS[Role.owner]
        return self.can(permission)

    def require(self, permission: Permission) -> None:
        if permission in self.permissions:
            return
        if self.kind is ActorKind.impersonation and permission in WRITES:
            raise PermissionDenied(
                "You are viewing this business read-only. To change anything, ask for write access "
                "(with a reason) in the banner at the top."
            )
        if permission is Permission.platform_admin:
            raise PermissionDenied("This is for platform administrators (role platform_admin).")
        if self.kind is ActorKind.platform_admin:
            raise PermissionDenied(
                "This acts for a business. Platform admins: open the business and choose "
                "“View as this business”, or use a business account."
            )
        allowed = " or ".join(r.value for r in roles_with(permission)) or "nobody"
        if self.api_key_id is not None and (scope := PERMISSION_SCOPE.get(permission)) is not None:
            raise PermissionDenied(
                f"This API key lacks the {scope.value} scope. Create a key with it in the panel "
                f"(Settings → API keys), with `lipapush apikey create --scope {scope.value}`, or with "
                f'POST /api/api-keys {{"scopes": ["{scope.value}", …]}}, and use that key.'
            )
        if self.api_key_id is not None:
            raise PermissionDenied(f"This API key cannot do this: it is for the {allowed} of the business.")
        raise PermissionDenied(f"This is for the {allowed} of {self.tenant_name or 'the business'}.")

    def require_tenant(self) -> uuid.UUID:
        if self.tenant_id is None:
            raise PermissionDenied("This acts for a business: use a business account or API key.")
        return self.tenant_id

    @property
    def own_payments_only(self) -> uuid.UUID | None:
        """The user whose payments alone this actor may see (a cashier), or None for all of them."""
        return self.user_id if self.role is Role.cashier and self.kind is ActorKind.user else None

    @property
    def audit_user_id(self) -> uuid.UUID | None:
        return self.admin_id or self.user_id

    def audit_detail(self) -> dict[str, object]:
        """What every audit row says about who did it, beyond its user id."""
        # "via" is the audit log's existing word for where an action came from; a use case may say
        # something more precise (an invitation sent "via": "email").
        detail: dict[str, object] = {"via": self.via.value}
        if self.kind is ActorKind.impersonation:
            detail["impersonating"] = True
        if self.api_key_id is not None:
            detail["api_key_id"] = str(self.api_key_id)
        return detail
