from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, str_enum, utcnow
from core.tenants.models import Mode


class Role(StrEnum):
    platform_admin = "platform_admin"
    owner = "owner"
    manager = "manager"
    cashier = "cashier"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Null only for platform admins, who belong to no tenant.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    phone: Mapped[str | None] = mapped_column(String(12))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    two_factor_enabled: Mapped[bool] = mapped_column(default=False)
    # The phone that opens the merchant USSD menu: one user per phone, so a dial identifies the user.
    ussd_phone: Mapped[str | None] = mapped_column(String(12), unique=True)
    ussd_pin_hash: Mapped[str | None] = mapped_column(String(255))
    ussd_pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    ussd_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Money out (payouts, reversals) is the owner's; a manager or cashier may pay out only once the
    # owner grants it (core.payouts). Never a reversal: that stays the owner's alone.
    may_pay_out: Mapped[bool] = mapped_column(default=False)
    # Unused: wrong passwords are counted per network now (core.auth.login_limits), never as a lock on
    # the account. Kept until a migration drops them (the column is NOT NULL without a server default).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on password change: tokens minted before it stop working ("log out everywhere").
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the owner removes a staff member: the account can no longer sign in anywhere, and
    # stays so the payments it started keep saying who started them.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"


# A key's mode is the mode of the objects it may reach (core.tenants.models.Mode).
ApiKeyMode = Mode


class ApiKey(Base):
    """Stored as a SHA-256 digest: the key has 256 bits of entropy, so a slow hash adds nothing and
    a digest allows an indexed lookup on every request."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # The app the key acts for (its channel, mode and webhooks). Null only for keys of a business that
    # has no app yet; the first app made adopts them.
    app_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(80))
    mode: Mapped[ApiKeyMode] = mapped_column(str_enum(ApiKeyMode, "api_key_mode"))
    prefix: Mapped[str] = mapped_column(String(24))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The client address of that use (the audit log's notion of a network), written with last_used_at.
    last_used_network: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # core.access.permissions.ApiScope values. The scope is the key's, not its owner's, so a key can
    # later belong to an app rather than straight to the business.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Set when the key is rolled: it keeps working until then, so systems can move to the new key.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rolled_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))


class PhoneVerification(Base):
    """A USSD phone waiting for its owner to prove it: the code went to that phone by SMS. The PIN
    chosen with it waits here, hashed, and is only set once the code comes back."""

    __tablename__ = "phone_verifications"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(12))
    pin_hash: Mapped[str] = mapped_column(String(255))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
