from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from core.auth import twofactor
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import ApiKeyMode, Role
from core.auth.pins import new_pin_hash, remove_ussd
from core.auth.service import auth
from core.auth.tokens import mint_access_token
from core.auth.use_cases import invite_staff
from core.auth.ussd_access import confirm_phone, request_ussd_access
from core.errors import InvalidInput
from core.phones import Msisdn, normalize_msisdn
from core.runtime import runtime, unit_of_work
from core.tenants.onboarding import signup as signup_business
from core.tenants.service import tenants
from web.deps import CurrentActor, CurrentPrincipal, ReadSession

router = APIRouter(tags=["auth"])


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    business_name: str = Field(min_length=2, max_length=120)
    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=128)
    phone: str = Field(max_length=20, description="Owner's M-Pesa phone; receives the KES 1 test push")


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    password: str = Field(max_length=128)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    tenant_id: uuid.UUID | None
    role: Role


def _token(user_id: uuid.UUID, tenant_id: uuid.UUID | None, role: Role, version: int) -> TokenOut:
    s = runtime().settings
    token = mint_access_token(
        secret=s.SECRET_KEY,
        user_id=user_id,
        tenant_id=tenant_id,
        role=role,
        token_version=version,
        minutes=s.ACCESS_TOKEN_MINUTES,
    )
    return TokenOut(
        access_token=token, expires_in=s.ACCESS_TOKEN_MINUTES * 60, tenant_id=tenant_id, role=role
    )


@router.post("/signup", status_code=201)
async def signup(body: SignupIn) -> TokenOut:
    """Create a business and its owner account. Next: POST /api/settings with the M-Pesa channel."""
    async with unit_of_work() as session:
        tenant, user = await signup_business(
            session,
            business_name=body.business_name,
            email=body.email,
            password=body.password,
            phone=body.phone,
        )
        return _token(user.id, tenant.id, user.role, user.token_version)


class ChallengeOut(BaseModel):
    two_factor_required: bool = True
    challenge_id: uuid.UUID = Field(description="send it with the emailed code to POST /api/2fa/verify")
    sent_to: str = Field(description="the (masked) address the code went to")
    expires_at: datetime


@router.post("/login")
async def login(body: LoginIn) -> TokenOut | ChallengeOut:
    """A login token, or, for an account with 2FA (every platform admin), a challenge: a six-digit
    code is emailed and `POST /api/2fa/verify` completes the login."""
    async with unit_of_work() as session:
        attempt = await auth.attempt_login(session, email=body.email, password=body.password)
        if attempt.user is not None and twofactor.required(attempt.user):
            c = await twofactor.start(session, user=attempt.user, secret=runtime().settings.SECRET_KEY)
            return ChallengeOut(challenge_id=c.id, sent_to=c.sent_to, expires_at=c.expires_at)
    user = attempt.unwrap()
    return _token(user.id, user.tenant_id, user.role, user.token_version)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: uuid.UUID
    code: str = Field(max_length=12, description="the six digits from the email")


@router.post("/2fa/verify")
async def verify_2fa(body: VerifyIn) -> TokenOut:
    """Second step of a login with 2FA. A code works once; five wrong guesses end the challenge."""
    async with unit_of_work() as session:
        attempt = await twofactor.verify(
            session, challenge_id=body.challenge_id, code=body.code, secret=runtime().settings.SECRET_KEY
        )
    user = attempt.unwrap()
    return _token(user.id, user.tenant_id, user.role, user.token_version)


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="default", min_length=1, max_length=80)
    mode: ApiKeyMode = ApiKeyMode.live


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


@router.post("/api-keys", status_code=201)
async def create_api_key(body: ApiKeyIn, who: CurrentPrincipal) -> ApiKeyCreated:
    who.require_role(Role.owner)
    async with unit_of_work() as session:
        row, key = await auth.create_api_key(
            session, tenant_id=who.require_tenant(), created_by=who.user_id, name=body.name, mode=body.mode
        )
        return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get("/api-keys")
async def list_api_keys(who: CurrentPrincipal, session: ReadSession) -> list[ApiKeyOut]:
    who.require_role(Role.owner, Role.manager)
    rows = await auth.list_api_keys(session, tenant_id=who.require_tenant())
    return [ApiKeyOut.model_validate(r) for r in rows]


@router.delete("/api-keys/{key_id}")
async def revoke_api_key(key_id: uuid.UUID, who: CurrentPrincipal) -> ApiKeyOut:
    who.require_role(Role.owner)
    async with unit_of_work() as session:
        row = await auth.revoke_api_key(
            session, tenant_id=who.require_tenant(), key_id=key_id, by=who.user_id
        )
        return ApiKeyOut.model_validate(row)


class MeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    email: str
    role: Role
    tenant_id: uuid.UUID | None
    phone: str | None
    ussd_phone: str | None = Field(description="the phone that opens your USSD merchant menu")
    last_login_at: datetime | None


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=128)
    new_password: str = Field(min_length=8, max_length=128)


def _require_user(who: CurrentPrincipal) -> uuid.UUID:
    from core.errors import PermissionDenied

    if who.user_id is None or who.api_key_id is not None:
        raise PermissionDenied("This needs a login token, not an API key: POST /api/login first.")
    return who.user_id


@router.get("/me")
async def me(who: CurrentPrincipal, session: ReadSession) -> MeOut:
    user = await auth.get_user(session, _require_user(who))
    return MeOut.model_validate(user)


@router.post("/me/password", status_code=204)
async def change_password(body: PasswordIn, who: CurrentPrincipal) -> None:
    """Change your password. Every login token issued before stops working (log out everywhere)."""
    user_id = _require_user(who)
    async with unit_of_work() as session:
        user = await auth.get_user(session, user_id)
        await auth.change_password(session, user=user, old=body.current_password, new=body.new_password)


class CodeOut(BaseModel):
    code: str
    start_command: str = Field(description="Send this to the bot, or open t.me/<bot>?start=<code>")
    expires_at: datetime


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role = Field(description="cashier or manager")


@router.post("/telegram/link-code", status_code=201)
async def telegram_link_code(who: CurrentPrincipal) -> CodeOut:
    """A one-time code (30 minutes) that links a Telegram chat to your account: `/start <code>`."""
    user_id = _require_user(who)
    async with unit_of_work() as session:
        code, expires = await issue_code(
            session,
            purpose=CodePurpose.telegram_link,
            tenant_id=who.require_tenant(),
            user_id=user_id,
            by=user_id,
        )
    return CodeOut(code=code, start_command=f"/start {code}", expires_at=expires)


@router.post("/staff/invite", status_code=201)
async def staff_invite(body: InviteIn, actor: CurrentActor) -> CodeOut:
    """Invite a cashier or manager: they send `/start <code>` to the bot within 30 minutes."""
    invite = await invite_staff(actor, role=body.role)
    return CodeOut(code=invite.code, start_command=invite.start_command, expires_at=invite.expires_at)


class UssdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(max_length=8, description="4 digits; not 1111 or 1234")
    phone: str | None = Field(
        default=None, max_length=20, description="07…/01…/+254…; default: your business phone (owners)"
    )


class UssdOut(BaseModel):
    ussd_phone: str
    confirmed: bool = Field(
        description="false: a 6-digit code went to the phone by SMS; POST it to /me/ussd/confirm"
    )
    ussd_code: str = Field(description="dial this, then enter the PIN")
    expires_at: datetime | None = Field(default=None, description="when the SMS code expires")


class UssdConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=12, description="the 6-digit code sent by SMS")


@router.put("/me/ussd")
async def set_ussd(body: UssdIn, who: CurrentPrincipal, response: Response) -> UssdOut:
    """Register a phone and 4-digit PIN for the USSD merchant menu (replaces any earlier one and
    clears a lockout). One phone opens one account. The business phone that approved the KES 1
    channel check is registered at once (200); any other phone is sent a 6-digit code by SMS (202)
    that must come back through `POST /api/me/ussd/confirm` within 10 minutes."""
    user_id = _require_user(who)
    pin_hash = await new_pin_hash(body.pin)
    rt = runtime()
    async with unit_of_work() as session:
        user = await auth.get_user(session, user_id)
        if body.phone:
            phone = normalize_msisdn(body.phone)
        elif user.role is Role.owner and user.tenant_id is not None:
            phone = Msisdn((await tenants.get(session, user.tenant_id)).phone)
        else:
            raise InvalidInput("phone", "Give the phone to register (07XXXXXXXX).")
        reg = await request_ussd_access(
            session, user=user, phone=phone, pin_hash=pin_hash, secret=rt.settings.SECRET_KEY
        )
    if not reg.confirmed:
        response.status_code = 202
    return UssdOut(
        ussd_phone=reg.phone,
        confirmed=reg.confirmed,
        ussd_code=rt.settings.USSD_CODE,
        expires_at=reg.expires_at,
    )


@router.post("/me/ussd/confirm")
async def confirm_ussd(body: UssdConfirmIn, who: CurrentPrincipal) -> UssdOut:
    """Send back the code texted to the phone: the phone and PIN are then registered."""
    user_id = _require_user(who)
    rt = runtime()
    async with unit_of_work() as session:
        user = await auth.get_user(session, user_id)
        result = await confirm_phone(session, user=user, code=body.code, secret=rt.settings.SECRET_KEY)
    if result.phone is None:
        raise InvalidInput("code", result.error or "That code is not right.")
    return UssdOut(ussd_phone=result.phone, confirmed=True, ussd_code=rt.settings.USSD_CODE)


@router.delete("/me/ussd", status_code=204)
async def remove_ussd_access(who: CurrentPrincipal) -> None:
    """Stop this account's USSD menu (a lost phone)."""
    user_id = _require_user(who)
    async with unit_of_work() as session:
        await remove_ussd(session, user=await auth.get_user(session, user_id))
