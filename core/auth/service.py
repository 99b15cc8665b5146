from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.access.permissions import DEFAULT_SCOPES, ApiScope, sorted_scopes
from core.apps.service import apps
from core.audit.models import AuditLog
from core.audit.service import record
from core.auth import login_limits
from core.auth.auditing import Auditor, recorder
from core.auth.login_limits import KnownDevice, SignInLimited
from core.auth.models import ApiKey, ApiKeyMode, Role, User
from core.auth.passwords import dummy_hash, hash_password, validate_password, verify_password
from core.auth.schemas import Principal
from core.auth.tokens import AccessClaims, hash_api_key, new_api_key
from core.context import current_request
from core.db import platform_scope, utcnow
from core.errors import AuthenticationFailed, Conflict, EmailTaken, InvalidInput, NotFound
from core.tenants import modes

# Writing last_used_at on every request would turn every read into a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Rolling a key: how long the old key keeps working by default, and at most (a leaked key is rolled
# with no overlap, which revokes it at once).
DEFAULT_ROLL_OVERLAP = timedelta(hours=24)
MAX_ROLL_OVERLAP = timedelta(days=7)


WRONG = "Wrong email or password."


@dataclass(frozen=True)
class LoginAttempt:
    user: User | None
    error: str | None
    # Set when the attempt was refused unchecked: too many wrong passwords (core.auth.login_limits).
    retry_after: int | None = None

    def unwrap(self) -> User:
        if self.user is None:
            if self.retry_after is not None:
                raise SignInLimited(self.error or WRONG, retry_after=self.retry_after)
            raise AuthenticationFailed(self.error or WRONG)
        return self.user


def normalize_email(email: str, *, field: str = "email") -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(field, f"'{email[:60]}' is not a valid email address: {exc}") from None


class AuthService:
    async def get_user_by_email(self, session: AsyncSession, email: str) -> User | None:
        # An address is unique across businesses: whose it is, is asked of all of them.
        async with platform_scope(session, "account lookup by email"):
            return await session.scalar(select(User).where(func.lower(User.email) == email.lower()))

    async def get_user(self, session: AsyncSession, user_id: uuid.UUID) -> User:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def create_user(
        self,
        session: AsyncSession,
        *,
        email: str,
        role: Role,
        tenant_id: uuid.UUID | None,
        password: str | None = None,
        password_hash: str | None = None,
        phone: str | None = None,
    ) -> User:
        """`password_hash` is for a front end that hashed the password as soon as it read it."""
        email = normalize_email(email)
        if password_hash is None:
            if password is None:
                raise InvalidInput("password", "A password is required.")
            password_hash = hash_password(validate_password(password))
        if await self.get_user_by_email(session, email):
            raise EmailTaken(f"An account with {email} already exists: log in instead.")
        user = User(email=email, password_hash=password_hash, role=role, tenant_id=tenant_id, phone=phone)
        session.add(user)
        await session.flush()
        return user

    async def attempt_login(
        self,
        session: AsyncSession,
        *,
        email: str,
        password: str,
        network: str | None = None,
        device: KnownDevice | None = None,
    ) -> LoginAttempt:
        """Check a password from `network` (the client address), or from a `device` that signed in
        before. Wrong passwords count per account and network and per network, or per known device
        (core.auth.login_limits); an unknown email takes the same path and gets the same answers. A
        failure is *returned*, not raised, so the caller commits its audit row before reporting it."""
        user = await self.get_user_by_email(session, email.strip())
        gate = await login_limits.open_gate(email=email, user=user, network=network, device=device)
        if isinstance(gate, login_limits.Refusal):
            return LoginAttempt(None, gate.message, retry_after=gate.retry_after)
        if user is None or user.disabled_at is not None:
            # Unknown, or removed by the owner: the same answer, in the same time, as a wrong password.
            verify_password(password, dummy_hash())
            if user is not None:
                await record(session, action="auth.login_refused", tenant_id=user.tenant_id, user_id=user.id)
            return LoginAttempt(None, WRONG)
        ok, new_hash = verify_password(password, user.password_hash)
        if not ok:
            await record(session, action="auth.login_failed", tenant_id=user.tenant_id, user_id=user.id)
            if gate.reached:  # once per window, not once per refused try
                await record(session, action="auth.login_limited", tenant_id=user.tenant_id, user_id=user.id)
            return LoginAttempt(None, WRONG)
        await gate.succeeded()
        if new_hash:
            user.password_hash = new_hash
        user.last_login_at = utcnow()
        await record(session, action="auth.login", tenant_id=user.tenant_id, user_id=user.id)
        return LoginAttempt(user, None)

    async def change_password(
        self, session: AsyncSession, *, user: User, old: str, new: str, audit: Auditor | None = None
    ) -> None:
        ok, _ = verify_password(old, user.password_hash)
        if not ok:
            raise AuthenticationFailed("The current password is wrong.")
        validate_password(new, field="new_password")
        user.password_hash = hash_password(new)
        user.token_version += 1
        write = audit or recorder(session, tenant_id=user.tenant_id, user_id=user.id)
        await write("auth.password_changed")

    async def principal_from_claims(self, session: AsyncSession, claims: AccessClaims) -> Principal:
        user = await session.get(User, claims.user_id)
        if user is None or user.token_version != claims.token_version or user.disabled_at is not None:
            raise AuthenticationFailed("This session is no longer valid: log in again.")
        return Principal(user_id=user.id, tenant_id=user.tenant_id, role=user.role)

    # -- API keys ------------------------------------------------------------------------------
    async def create_api_key(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        created_by: uuid.UUID | None,
        name: str = "default",
        mode: ApiKeyMode | None = None,
        scopes: Iterable[ApiScope] | None = None,
        audit: Auditor | None = None,
        app_id: uuid.UUID | None = None,
    ) -> tuple[ApiKey, str]:
        """A key of an app (`app_id` None: the business's default app). `scopes` None is every scope but
        money out's (DEFAULT_SCOPES): a key made without choosing works as keys always did and pays
        nothing out.

        An app uses one channel and its mode is the channel's, so `mode` None is the app's mode (a
        business on the simulator or the sandbox gets an lp_test_ key). A test key reaches only a
        simulator or sandbox channel and a live key only a verified production one: asking for a live
        key on a test app or an unverified production channel is refused (LiveModeNotReady), and a test
        key on a production app too (ModeMismatch), each with what to do instead. With one channel
        per business today, a business on production cannot hold test keys until it can add a sandbox
        channel next to it."""
        name = name.strip()
        if not 1 <= len(name) <= 80:
            raise InvalidInput("name", "Key name must be 1 to 80 characters.")
        chosen = sorted_scopes(DEFAULT_SCOPES if scopes is None else scopes)
        if not chosen:
            raise InvalidInput("scopes", "Choose at least one scope.")
        app = (
            await apps.default_app(session, tenant_id=tenant_id)
            if app_id is None
            else await apps.get(session, tenant_id=tenant_id, app_id=app_id)
        )
        channel = await apps.channel_of(session, app)
        if mode is None:
            mode = await apps.mode_of(session, app)
        modes.ensure_key_mode(channel, mode)
        key, prefix, digest = new_api_key(mode)
        row = ApiKey(
            tenant_id=tenant_id,
            app_id=app.id,
            created_by_id=created_by,
            name=name,
            mode=mode,
            prefix=prefix,
            key_hash=digest,
            scopes=chosen,
        )
        session.add(row)
        await session.flush()
        write = audit or recorder(session, tenant_id=tenant_id, user_id=created_by)
        await write(
            "apikey.created",
            target=str(row.id),
            prefix=prefix,
            name=name,
            mode=mode.value,
            scopes=chosen,
            app_id=str(app.id),
        )
        return row, key

    async def roll_api_key(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        key_id: uuid.UUID,
        by: uuid.UUID | None,
        overlap: timedelta = DEFAULT_ROLL_OVERLAP,
        audit: Auditor | None = None,
    ) -> tuple[ApiKey, ApiKey, str]:
        """Replace a key with a new one of the same app, name, mode and scopes (the mode rule of
        `create_api_key` holds: a key whose app changed mode since cannot be rolled, only replaced by a
        key of the new mode); the old key keeps working for
        `overlap` so the systems using it can move over, and none at all (revoked now) for a leaked key.
        Returns (old, new, the new key's secret)."""
        if not timedelta(0) <= overlap <= MAX_ROLL_OVERLAP:
            raise InvalidInput(
                "overlap_seconds",
                "The overlap is from 0 (stop the old key now) to 7 days (604800 seconds).",
            )
        old = await session.scalar(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id).with_for_update()
        )
        if old is None:
            raise NotFound("No such API key.")
        now = utcnow()
        if old.revoked_at is not None:
            raise Conflict("This key was revoked and cannot be rolled: create a new key instead.")
        if old.expires_at is not None:
            ends = "expired" if old.expires_at <= now else "stops working"
            raise Conflict(
                f"This key was already rolled and {ends} at {old.expires_at:%Y-%m-%d %H:%M} UTC: roll the "
                "key that replaced it, or revoke this one to stop it now."
            )
        new, secret = await self.create_api_key(
            session,
            tenant_id=tenant_id,
            created_by=by,
            name=old.name,
            mode=old.mode,
            app_id=old.app_id,
            # a scope retired since the old key was made is not carried over
            scopes=[ApiScope(s) for s in old.scopes if s in {a.value for a in ApiScope}],
            audit=audit,
        )
        old.expires_at = now + overlap
        old.rolled_to_id = new.id
        if not overlap:
            old.revoked_at = now
        write = audit or recorder(session, tenant_id=tenant_id, user_id=by)
        await write(
            "apikey.rolled",
            target=str(old.id),
            prefix=old.prefix,
            new_key_id=str(new.id),
            new_prefix=new.prefix,
            overlap_seconds=int(overlap.total_seconds()),
        )
        return old, new, secret

    async def revoke_api_key(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        key_id: uuid.UUID,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
    ) -> ApiKey:
        """Revoke a key of this tenant (another tenant's is "not found"); revoking it again changes
        nothing and writes no row."""
        row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))
        if row is None:
            raise NotFound("No such API key.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            write = audit or recorder(session, tenant_id=tenant_id, user_id=by)
            await write("apikey.revoked", target=str(row.id), prefix=row.prefix)
        return row

    async def list_api_keys(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, mode: ApiKeyMode | None = None
    ) -> list[ApiKey]:
        """Newest first; `mode`: that mode's keys only (what an API key is shown)."""
        stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
        if mode is not None:
            stmt = stmt.where(ApiKey.mode == mode)
        rows = await session.scalars(stmt.order_by(ApiKey.created_at.desc()))
        return list(rows)

    async def principal_from_api_key(self, session: AsyncSession, key: str) -> Principal:
        row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
        if row is None or row.revoked_at is not None:
            raise AuthenticationFailed("This API key is not valid or was revoked: create a new one.")
        now = utcnow()
        if row.expires_at is not None and row.expires_at <= now:
            raise AuthenticationFailed(
                f"This API key was rolled and expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: use the key "
                "that replaced it (see GET /api/api-keys), or create a new one."
            )
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            req = current_request()
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == row.id)
                .values(last_used_at=now, last_used_network=req.ip if req else None)
            )
        return Principal(
            user_id=row.created_by_id,
            tenant_id=row.tenant_id,
            role=Role.owner,
            api_key_id=row.id,
            scopes=frozenset(row.scopes),
            app_id=row.app_id,
            mode=row.mode,
        )

    # -- the signed-in user's own account and the tenant's staff (web panel settings) ---------------
    async def set_two_factor(
        self,
        session: AsyncSession,
        *,
        user: User,
        enabled: bool,
        password: str | None = None,
        audit: Auditor | None = None,
    ) -> bool:
        """Turn emailed sign-in codes on or off for a business user. Turning them on sends nothing (the
        next sign-in asks for a code); turning them off needs the current password. Platform admins
        always sign in with a code, so theirs cannot be changed. Returns whether anything changed (nothing
        is written when it was already so)."""
        if user.role is Role.platform_admin:
            raise InvalidInput("two_factor", "Platform administrators always sign in with an emailed code.")
        if not enabled:
            ok, _ = verify_password(password or "", user.password_hash)
            if not ok:
                raise AuthenticationFailed("The current password is wrong.")
        if user.two_factor_enabled == enabled:
            return False
        user.two_factor_enabled = enabled
        write = audit or recorder(session, tenant_id=user.tenant_id, user_id=user.id)
        await write("auth.2fa_enabled" if enabled else "auth.2fa_disabled")
        return True

    async def list_staff(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> list[StaffMember]:
        """Everyone who signs in for this tenant, owner first, then managers and cashiers. Staff who
        joined from an invite have a placeholder email; their Telegram name is in the audit log."""
        users = list(
            await session.scalars(select(User).where(User.tenant_id == tenant_id).order_by(User.created_at))
        )
        joined = await session.execute(
            select(AuditLog.user_id, AuditLog.detail).where(
                AuditLog.tenant_id == tenant_id, AuditLog.action == "staff.joined"
            )
        )
        names = {uid: str(d.get("name") or "") for uid, d in joined if isinstance(d, dict)}
        order = {Role.owner: 0, Role.manager: 1, Role.cashier: 2}
        return [
            StaffMember(
                user=u,
                name=names.get(u.id) or None,
                email=None if u.email.endswith(".invalid") else u.email,
            )
            for u in sorted(users, key=lambda u: order.get(u.role, 3))
        ]


@dataclass(frozen=True)
class StaffMember:
    user: User
    name: str | None  # the Telegram name given when they joined from an invite
    email: str | None  # None for a Telegram-only account (placeholder address)


auth = AuthService()
