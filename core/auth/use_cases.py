"""People of a business and each person's own account, from the API, the panel and the bot, written
once: inviting staff, listing and removing them, web access for Telegram-only staff; API keys; and the
signed-in user's password, two-step sign-in, sessions, Telegram link code and USSD access.

A person's own account is theirs alone: an API key acts for a business, not a person, and an admin
viewing as a business is not signed in as one of its users (`account_manage`, `_me`)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor, ActorKind
from core.access.permissions import ApiScope, Permission, parse_scopes, scope_permissions, sorted_scopes
from core.access.use_case import unit_of_work, use_case
from core.apps.service import NO_SUCH_APP, apps
from core.auth import panel_sessions
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import ApiKey, ApiKeyMode, Role, User
from core.auth.panel_sessions import PanelSession
from core.auth.pins import hash_pin_async, new_pin_hash, remove_ussd, validate_new_pin
from core.auth.schemas import ApiKeyCreated, ApiKeyOut, ApiKeyRolled
from core.auth.service import DEFAULT_ROLL_OVERLAP, MAX_ROLL_OVERLAP, StaffMember, auth
from core.auth.staff import STAFF_ROLES, give_web_access, invite_by_email, remove_staff
from core.auth.ussd_access import confirm_phone, request_ussd_access
from core.db import utcnow
from core.errors import InvalidInput, LipapushError, NotFound, PermissionDenied
from core.phones import Msisdn, normalize_msisdn
from core.ratelimit import hit
from core.runtime import runtime
from core.tenants.models import Mode
from core.tenants.service import tenants

R = TypeVar("R")


class _Unchanged(Exception):
    """Raised inside a write unit of work when there is nothing to change: the transaction rolls back
    (nothing was written, so there is nothing to audit) and the use case returns `value`."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


@dataclass(frozen=True)
class StaffInvite:
    code: str
    role: Role
    expires_at: datetime
    email: str | None = None

    @property
    def start_command(self) -> str:
        return f"/start {self.code}"


def staff_role(value: Role | str) -> Role:
    """Only a cashier or a manager is invited: an owner is made with the business."""
    try:
        role = Role(value)
    except ValueError:
        role = None
    if role not in STAFF_ROLES:
        raise InvalidInput("role", "Invite a cashier or a manager.")
    assert role is not None
    return role


@use_case(Permission.staff_manage, audit="staff.invited")
async def invite_staff(actor: Actor, *, role: Role | str, email: str | None = None) -> StaffInvite:
    """A code the person sends to the bot as `/start <code>` (30 minutes); with `email`, a join link
    by email as well (7 days), whose address is kept on the audit row."""
    tenant_id = actor.require_tenant()
    wanted = staff_role(role)
    async with unit_of_work(actor) as uow:
        if email is None:
            code, expires = await issue_code(
                uow.session,
                purpose=CodePurpose.staff_invite,
                tenant_id=tenant_id,
                role=wanted,
                by=actor.user_id,
            )
            await uow.audit("staff.invited", role=wanted.value)
            return StaffInvite(code, wanted, expires)
        code, expires, target, sent_to = await invite_by_email(
            uow.session,
            tenant_id=tenant_id,
            role=wanted,
            email=email,
            by=actor.audit_user_id,  # type: ignore[arg-type]
            base_url=runtime().settings.base_url,
        )
        await uow.audit("staff.invited", target=target, role=wanted.value, via="email", email=sent_to)
        return StaffInvite(code, wanted, expires, sent_to)


# -- staff ------------------------------------------------------------------------------------------
@use_case(Permission.staff_list, query=True)
async def list_staff(actor: Actor) -> list[StaffMember]:
    """Everyone who signs in for this business, removed people too (`user.disabled_at`): owner first,
    then managers and cashiers."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await auth.list_staff(uow.session, tenant_id=actor.require_tenant())


@use_case(Permission.staff_manage, audit="staff.removed")
async def remove_member(actor: Actor, user_id: uuid.UUID) -> User:
    """A cashier or manager who left: no sign-in anywhere from now on (core.auth.staff.remove_staff).
    Not the owner; another business's user is "not found"; removing someone again changes nothing."""
    tenant_id = actor.require_tenant()
    by = actor.audit_user_id
    assert by is not None
    try:
        async with unit_of_work(actor) as uow:
            user = await uow.session.get(User, user_id)
            if user is not None and user.tenant_id == tenant_id and user.disabled_at is not None:
                raise _Unchanged(user)
            return await remove_staff(
                uow.session, tenant_id=tenant_id, user_id=user_id, by=by, audit=uow.audit
            )
    except _Unchanged as done:
        return done.value  # type: ignore[return-value]


@use_case(Permission.staff_manage, audit="staff.invited")
async def give_member_web_access(actor: Actor, *, user_id: uuid.UUID, email: str) -> StaffInvite:
    """A staff member who joined from Telegram gets a link by email to set an email and password
    (7 days); the address is kept on the `staff.invited` row."""
    tenant_id = actor.require_tenant()
    by = actor.audit_user_id
    assert by is not None
    async with unit_of_work(actor) as uow:
        code, expires = await give_web_access(
            uow.session,
            tenant_id=tenant_id,
            user_id=user_id,
            email=email,
            by=by,
            base_url=runtime().settings.base_url,
            audit=uow.audit,
        )
        user = await auth.get_user(uow.session, user_id)
        return StaffInvite(code, user.role, expires, email)


# -- API keys ---------------------------------------------------------------------------------------
# What an API key may do to keys (a person's login may do all of it):
# - its own mode's only: a test key lists, creates, rolls and revokes test keys; a key made in a test
#   phase (every scope, keys:write included) must not mint or hold live keys once the business is live;
# - in its own app only: a key creates keys in its app (`app_id` None is its app, another is "not
#   found" like an unknown one) and rolls or revokes its app's keys, else an app's key could make a key
#   in another app and read that app's secrets. It lists every app's keys of its mode, as it lists
#   every app (core.apps.use_cases).
def _key_mode_only(actor: Actor, mode: Mode, doing: str) -> None:
    """`doing` keys of `mode` ("create", "roll or revoke"): an API key only does it to keys of its own
    mode, and is told who can do the rest."""
    own = actor.mode
    if own is None or mode is own:
        return
    prefix = "lp_test_" if own is Mode.test else "lp_live_"
    raise PermissionDenied(
        f"This is a {own.value} key ({prefix}…), and a {own.value} key manages {own.value} keys only: "
        f"{doing} {mode.value} keys signed in as the owner (panel: Settings → API keys; CLI: "
        f"`lipapush apikey`) or with a {mode.value} key."
    )


async def _key_app_only(actor: Actor, session: AsyncSession, key: ApiKey) -> None:
    """Rolling or revoking `key` with an API key: only a key of the same app."""
    if actor.api_key_id is None:
        return
    tenant_id = actor.require_tenant()
    own = await apps.key_app_id(session, tenant_id=tenant_id, app_id=actor.app_id)
    theirs = await apps.key_app_id(session, tenant_id=tenant_id, app_id=key.app_id)
    if own != theirs:
        raise PermissionDenied(
            "This key belongs to another app, and an API key manages the keys of its own app only: roll "
            "or revoke it signed in as the owner (panel: Settings → API keys; CLI: `lipapush apikey`) or "
            "with a key of its app."
        )


@use_case(Permission.api_keys_read, query=True)
async def list_api_keys(actor: Actor) -> list[ApiKeyOut]:
    """Newest first; never the key itself. An API key sees its own mode's keys only (of every app)."""
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await auth.list_api_keys(uow.session, tenant_id=actor.require_tenant(), mode=actor.mode)
        return [ApiKeyOut.model_validate(r) for r in rows]


def _may_grant(actor: Actor, scopes: Iterable[ApiScope]) -> None:
    """A key that manages keys cannot make one that may do more than itself."""
    beyond = [s.value for s in scopes if not scope_permissions([s]) <= actor.permissions]
    if beyond:
        raise PermissionDenied(
            f"This API key cannot give a key scopes it lacks itself ({', '.join(sorted_scopes(beyond))}): "
            "create that key in the panel (Settings → API keys) or with a key that has them."
        )


@use_case(Permission.api_keys_manage, audit="apikey.created")
async def create_api_key(
    actor: Actor,
    *,
    name: str = "default",
    mode: ApiKeyMode | str | None = None,
    scopes: Iterable[str] | None = None,
    app_id: uuid.UUID | None = None,
) -> ApiKeyCreated:
    """A key for one of this business's apps (None: its default app), in this answer only: stored
    hashed, never shown again. `scopes` None is every scope but money out's (what a key could always
    do); unknown scopes are refused with the valid ones. `mode` None is the app's mode (its
    channel's: test on the simulator or the sandbox, live on production); a mode the app's channel
    cannot serve is refused with what to do (core.tenants.modes).

    With an API key: only in its own app (`app_id` None is the key's app; another app is "not found"),
    and only a key of its own mode (a test key made before the business went live cannot make a live
    key, even with `mode` left out)."""
    try:
        key_mode = ApiKeyMode(mode) if mode not in (None, "") else None
    except ValueError:
        raise InvalidInput("mode", "Choose live or test (or leave it out for the app's mode).") from None
    chosen = parse_scopes(scopes)
    _may_grant(actor, chosen)
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        if actor.api_key_id is not None:
            own = await apps.key_app_id(uow.session, tenant_id=tenant_id, app_id=actor.app_id)
            if app_id is not None and app_id != own:
                raise NotFound(NO_SUCH_APP)  # as unknown as a made-up id: a key stays in its app
            app = (
                await apps.get(uow.session, tenant_id=tenant_id, app_id=own)
                if own is not None
                else await apps.default_app(uow.session, tenant_id=tenant_id)
            )
            app_id = app.id
            if actor.mode is not None:
                key_mode = key_mode or await apps.mode_of(uow.session, app)
                _key_mode_only(actor, key_mode, "create")
        row, key = await auth.create_api_key(
            uow.session,
            tenant_id=tenant_id,
            created_by=actor.audit_user_id,
            name=name,
            mode=key_mode,
            scopes=chosen,
            audit=uow.audit,
            app_id=app_id,
        )
        return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@use_case(Permission.api_keys_manage, audit="apikey.rolled")
async def roll_api_key(
    actor: Actor, key_id: uuid.UUID, *, overlap_seconds: int = int(DEFAULT_ROLL_OVERLAP.total_seconds())
) -> ApiKeyRolled:
    """A new key with the same name, mode and scopes, shown once; the old one keeps working for the
    overlap (default 24 hours, at most 7 days) so systems can move over, and 0 stops it at once (a
    leaked key). With an API key: only a key of its own mode and app."""
    if not 0 <= overlap_seconds <= MAX_ROLL_OVERLAP.total_seconds():
        raise InvalidInput(
            "overlap_seconds", "The overlap is from 0 (stop the old key now) to 7 days (604800 seconds)."
        )
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        known = await uow.session.get(ApiKey, key_id)
        if known is not None and known.tenant_id == tenant_id:
            _key_mode_only(actor, known.mode, "roll or revoke")
            await _key_app_only(actor, uow.session, known)
            _may_grant(actor, parse_scopes([s for s in known.scopes if s in {a.value for a in ApiScope}]))
        old, new, key = await auth.roll_api_key(
            uow.session,
            tenant_id=tenant_id,
            key_id=key_id,
            by=actor.audit_user_id,
            overlap=timedelta(seconds=overlap_seconds),
            audit=uow.audit,
        )
        return ApiKeyRolled(
            **ApiKeyOut.model_validate(new).model_dump(),
            key=key,
            replaces=ApiKeyOut.model_validate(old),
        )


@use_case(Permission.api_keys_manage, audit="apikey.revoked")
async def revoke_api_key(actor: Actor, key_id: uuid.UUID) -> ApiKeyOut:
    """Requests with the key are refused from now on. Another business's key is "not found"; revoking
    a key again changes nothing. With an API key: only a key of its own mode and app."""
    tenant_id = actor.require_tenant()
    try:
        async with unit_of_work(actor) as uow:
            known = await uow.session.get(ApiKey, key_id)
            if known is not None and known.tenant_id == tenant_id:
                _key_mode_only(actor, known.mode, "roll or revoke")
                await _key_app_only(actor, uow.session, known)
                if known.revoked_at is not None:
                    raise _Unchanged(ApiKeyOut.model_validate(known))
            row = await auth.revoke_api_key(
                uow.session, tenant_id=tenant_id, key_id=key_id, by=actor.audit_user_id, audit=uow.audit
            )
            return ApiKeyOut.model_validate(row)
    except _Unchanged as done:
        return done.value  # type: ignore[return-value]


# -- your own account -------------------------------------------------------------------------------
LOGIN_NEEDED = "This needs a login token, not an API key: POST /api/login first."
NOT_A_USER = (
    "These settings belong to each signed-in user of the business; you are viewing as the business, "
    "not signed in as one of its users."
)
PASSWORD_TRIES = 5
PASSWORD_WINDOW = 15 * 60
TOO_MANY_TRIES = "Too many tries with the current password. Wait 15 minutes, then try again."


class TooManyTries(LipapushError):
    code = "too_many_tries"
    status = 429


def own_account(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Around a use case on the caller's own account: an API key is told, before anything else, that
    this needs a person's login (it acts for a business, and holds no `account_manage`)."""

    @functools.wraps(fn)
    async def run(actor: Actor, /, *args: Any, **kwargs: Any) -> R:
        if actor.api_key_id is not None:
            raise PermissionDenied(LOGIN_NEEDED)
        return await fn(actor, *args, **kwargs)

    return run


def _me(actor: Actor) -> uuid.UUID:
    """The signed-in person this account is; an admin viewing as a business is not one."""
    if actor.kind not in (ActorKind.user, ActorKind.platform_admin) or actor.user_id is None:
        raise PermissionDenied(NOT_A_USER)
    return actor.user_id


async def _password_try(user_id: uuid.UUID) -> None:
    """A signed-in session must not become a way to guess the account's password: what asks for it
    allows a few tries per quarter hour, like the sign-in limits."""
    if await hit(f"current-password:{user_id}", PASSWORD_WINDOW) > PASSWORD_TRIES:
        raise TooManyTries(TOO_MANY_TRIES)


@dataclass(frozen=True)
class Account:
    user: User
    sessions: list[PanelSession]  # signed-in browsers still valid, newest first
    current: str | None  # the token hash of the browser asking (`panel_token`)


@own_account
@use_case(Permission.account_manage, query=True)
async def my_account(actor: Actor, *, panel_token: str | None = None) -> Account:
    user_id = _me(actor)
    async with unit_of_work(actor, readonly=True) as uow:
        user = await auth.get_user(uow.session, user_id)
        if panel_token is None:
            return Account(user, [], None)
        now = utcnow()
        sessions = [
            s
            for s in await panel_sessions.for_user(uow.session, user_id)
            if s.token_version == user.token_version
            and now - s.last_seen_at <= panel_sessions.IDLE
            and now - s.created_at <= panel_sessions.ABSOLUTE
        ]
        row = await panel_sessions.row_for(uow.session, panel_token)
        return Account(user, sessions, row.token_hash if row else None)


@own_account
@use_case(Permission.account_manage, audit="auth.password_changed")
async def change_password(
    actor: Actor, *, current: str, new: str, keep_panel_session: str | None = None
) -> None:
    """Every login token issued before stops working; with `keep_panel_session` (this browser's
    cookie) every other panel session ends too and this one stays signed in."""
    user_id = _me(actor)
    await _password_try(user_id)
    async with unit_of_work(actor) as uow:
        user = await auth.get_user(uow.session, user_id)
        await auth.change_password(uow.session, user=user, old=current, new=new, audit=uow.audit)
        if keep_panel_session is not None:
            await panel_sessions.end_others(uow.session, user=user, keep=keep_panel_session)


@own_account
@use_case(Permission.account_manage, audit="auth.2fa_enabled")
async def enable_two_factor(actor: Actor) -> bool:
    """From the next sign-in a 6-digit code is emailed. False: it was on already."""
    user_id = _me(actor)
    try:
        async with unit_of_work(actor) as uow:
            user = await auth.get_user(uow.session, user_id)
            if not await auth.set_two_factor(uow.session, user=user, enabled=True, audit=uow.audit):
                raise _Unchanged(False)
            return True
    except _Unchanged:
        return False


@own_account
@use_case(Permission.account_manage, audit="auth.2fa_disabled")
async def disable_two_factor(actor: Actor, *, password: str) -> bool:
    """Needs the current password (a few tries per quarter hour). False: it was off already."""
    user_id = _me(actor)
    await _password_try(user_id)
    try:
        async with unit_of_work(actor) as uow:
            user = await auth.get_user(uow.session, user_id)
            changed = await auth.set_two_factor(
                uow.session, user=user, enabled=False, password=password, audit=uow.audit
            )
            if not changed:
                raise _Unchanged(False)
            return True
    except _Unchanged:
        return False


@own_account
@use_case(Permission.account_manage, audit="auth.logout_others")
async def end_other_sessions(actor: Actor, *, keep_panel_session: str) -> int:
    """Sign out everywhere else: other browsers and API login tokens end, this browser stays. Returns
    how many panel sessions ended."""
    user_id = _me(actor)
    async with unit_of_work(actor) as uow:
        user = await auth.get_user(uow.session, user_id)
        ended = await panel_sessions.end_others(uow.session, user=user, keep=keep_panel_session)
        await uow.audit("auth.logout_others", panel_sessions=ended)
        return ended


@dataclass(frozen=True)
class LinkCode:
    code: str
    expires_at: datetime

    @property
    def start_command(self) -> str:
        return f"/start {self.code}"


@own_account
@use_case(
    Permission.account_manage, recorded_by="the one-time code row (purpose telegram_link, user, created_by)"
)
async def telegram_link_code(actor: Actor) -> LinkCode:
    """A one-time code (30 minutes) that links a Telegram chat to this account: `/start <code>`."""
    user_id = _me(actor)
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor) as uow:
        code, expires = await issue_code(
            uow.session, purpose=CodePurpose.telegram_link, tenant_id=tenant_id, user_id=user_id, by=user_id
        )
    return LinkCode(code, expires)


# -- USSD access ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UssdAccess:
    phone: Msisdn
    confirmed: bool  # False: a 6-digit code went to the phone by SMS (confirm_ussd_phone)
    ussd_code: str  # what to dial
    business_number: str | None  # what payers enter after the USSD code
    expires_at: datetime | None = None  # when the SMS code expires


@own_account
@use_case(Permission.account_manage, query=True)
async def ussd_phone_offer(actor: Actor) -> Msisdn | None:
    """The phone to offer for the USSD menu: the one registered, else the user's, else (for the owner)
    the business phone; None: ask which."""
    user_id = _me(actor)
    async with unit_of_work(actor, readonly=True) as uow:
        user = await auth.get_user(uow.session, user_id)
        phone = user.ussd_phone or user.phone
        if phone is None and user.role is Role.owner and user.tenant_id is not None:
            phone = (await tenants.get(uow.session, user.tenant_id)).phone
        return Msisdn(phone) if phone else None


async def _business_number(actor: Actor) -> str | None:
    if actor.tenant_id is None:
        return None
    async with unit_of_work(actor, readonly=True) as uow:
        return (await tenants.get(uow.session, actor.tenant_id)).business_number


@own_account
@use_case(
    Permission.account_manage,
    recorded_by="the ussd.pin_set audit row when the phone is registered at once; the phone_verification "
    "row while its SMS code is waiting",
)
async def set_ussd_access(actor: Actor, *, pin: str, phone: str | None = None) -> UssdAccess:
    """Register a phone and 4-digit PIN for the USSD merchant menu (replaces any earlier one, clears a
    lockout). The business phone that approved the KES 1 check is registered at once; any other phone
    is sent a 6-digit code by SMS, which must come back through `confirm_ussd_phone`. Without `phone`:
    the business phone, for the owner."""
    user_id = _me(actor)
    pin_hash = await new_pin_hash(pin)  # before the write transaction: SQLite would hold its lock
    wanted = normalize_msisdn(phone) if phone else None
    rt = runtime()
    async with unit_of_work(actor) as uow:
        user = await auth.get_user(uow.session, user_id)
        if wanted is None:
            if user.role is not Role.owner or user.tenant_id is None:
                raise InvalidInput("phone", "Give the phone to register (07XXXXXXXX).")
            wanted = Msisdn((await tenants.get(uow.session, user.tenant_id)).phone)
        reg = await request_ussd_access(
            uow.session,
            user=user,
            phone=wanted,
            pin_hash=pin_hash,
            secret=rt.settings.SECRET_KEY,
            audit=uow.audit,
        )
    return UssdAccess(
        reg.phone, reg.confirmed, rt.settings.USSD_CODE, await _business_number(actor), reg.expires_at
    )


@own_account
@use_case(
    Permission.account_manage,
    recorded_by="the phone_verification row (each try counted); the ussd.pin_set audit row once confirmed",
)
async def confirm_ussd_phone(actor: Actor, *, code: str) -> UssdAccess:
    """The code texted to the phone: the phone and PIN are then registered. A wrong code is counted
    (5 tries) before it is refused."""
    user_id = _me(actor)
    rt = runtime()
    async with unit_of_work(actor) as uow:
        user = await auth.get_user(uow.session, user_id)
        result = await confirm_phone(
            uow.session, user=user, code=code, secret=rt.settings.SECRET_KEY, audit=uow.audit
        )
    if result.phone is None:
        raise InvalidInput("code", result.error or "That code is not right.")
    return UssdAccess(result.phone, True, rt.settings.USSD_CODE, await _business_number(actor))


@own_account
@use_case(Permission.account_manage, audit="ussd.removed")
async def remove_ussd_access(actor: Actor) -> None:
    """Stop this account's USSD menu (a lost phone)."""
    user_id = _me(actor)
    async with unit_of_work(actor) as uow:
        await remove_ussd(uow.session, user=await auth.get_user(uow.session, user_id), audit=uow.audit)


@use_case(Permission.account_manage, audit="ussd.pin_changed")
async def change_ussd_pin(actor: Actor, pin: str) -> None:
    """A new USSD PIN for the signed-in user (already typed twice and validated by `validate_new_pin`)."""
    digest = await hash_pin_async(validate_new_pin(pin))
    async with unit_of_work(actor) as uow:
        row = await uow.session.get(User, actor.user_id, with_for_update=True)
        if row is None or row.tenant_id != actor.tenant_id:
            raise NotFound("This account no longer exists.")
        row.ussd_pin_hash = digest
        await uow.audit("ussd.pin_changed")
