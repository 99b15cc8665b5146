from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from core.access.permissions import ApiScope
from core.auth import twofactor
from core.auth import use_cases as people
from core.auth.models import ApiKeyMode, Role
from core.auth.schemas import ApiKeyCreated, ApiKeyOut, ApiKeyRolled
from core.auth.service import DEFAULT_ROLL_OVERLAP, MAX_ROLL_OVERLAP, auth
from core.auth.tokens import mint_access_token
from core.auth.use_cases import UssdAccess
from core.db import Scope
from core.phones import PHONE_SCHEMA
from core.runtime import runtime, unit_of_work
from core.tenants.onboarding import signup as signup_business
from web.deps import CurrentActor

router = APIRouter(tags=["auth"])

# Before anyone is signed in, the business is not known yet: an email is unique across businesses, and
# the account it names (or a sign-in code's) may be any business's, or a platform admin's.
SIGNUP = Scope.platform("API sign-up: a new business and its owner")
SIGN_IN = Scope.platform("API sign-in by email")
SIGN_IN_CODE = Scope.platform("API sign-in code: its account")


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    business_name: str = Field(min_length=2, max_length=120)
    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=128)
    phone: str = Field(
        max_length=20,
        description="Owner's M-Pesa phone; receives the KES 1 test push",
        json_schema_extra=PHONE_SCHEMA,
    )


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
    async with unit_of_work(scope=SIGNUP) as session:
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
async def login(body: LoginIn, request: Request) -> TokenOut | ChallengeOut:
    """A login token, or, for an account with 2FA (every platform admin), a challenge: a six-digit
    code is emailed and `POST /api/2fa/verify` completes the login.

    Wrong passwords count per email and network (10 in 15 minutes) and per network (50): past either,
    that network gets 429 with Retry-After, whether or not the email has an account, while the account
    still signs in from anywhere else."""
    async with unit_of_work(scope=SIGN_IN) as session:
        attempt = await auth.attempt_login(
            session,
            email=body.email,
            password=body.password,
            network=request.client.host if request.client else None,
        )
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
    async with unit_of_work(scope=SIGN_IN_CODE) as session:
        attempt = await twofactor.verify(
            session, challenge_id=body.challenge_id, code=body.code, secret=runtime().settings.SECRET_KEY
        )
    user = attempt.unwrap()
    return _token(user.id, user.tenant_id, user.role, user.token_version)


# Checked in core (one message, listing the valid scopes, for every front end); the enum documents them.
ScopeName = Annotated[str, Field(max_length=40, json_schema_extra={"enum": [s.value for s in ApiScope]})]


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="default", min_length=1, max_length=80)
    mode: ApiKeyMode | None = Field(
        default=None,
        description="test or live; leave out for the app's mode (its channel's: test on the simulator or "
        "the sandbox, live on a verified production channel). Another mode is refused (409) with what to do.",
    )
    app_id: uuid.UUID | None = Field(
        default=None,
        description="The app the key acts for (GET /api/apps); leave out for the default app (with an API "
        "key: the key's own app, the only one it may make keys in)",
    )
    scopes: list[ScopeName] | None = Field(
        default=None,
        max_length=len(ApiScope),
        description="What the key may do; leave out for every scope. A write scope includes its read.",
    )


class ApiKeyRollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_seconds: int = Field(
        default=int(DEFAULT_ROLL_OVERLAP.total_seconds()),
        ge=0,
        le=int(MAX_ROLL_OVERLAP.total_seconds()),
        description="How long the old key keeps working (default 24 hours, at most 7 days); 0 revokes it now",
    )


@router.post("/api-keys", status_code=201)
async def create_api_key(body: ApiKeyIn, actor: CurrentActor) -> ApiKeyCreated:
    """A key, shown once in this answer. Unknown scopes are refused (422) with the valid ones. Test keys
    (lp_test_) push only through a simulator or sandbox channel and see only test payments; live keys
    (lp_live_) only through a verified production channel."""
    return await people.create_api_key(
        actor, name=body.name, mode=body.mode, scopes=body.scopes, app_id=body.app_id
    )


@router.post("/api-keys/{key_id}/roll", status_code=201)
async def roll_api_key(
    key_id: uuid.UUID, actor: CurrentActor, body: ApiKeyRollIn | None = None
) -> ApiKeyRolled:
    """Replace a key with a new one (same name, mode and scopes), shown once in this answer. The old key
    keeps working for `overlap_seconds`, then answers 401; 0 revokes it at once (a leaked key)."""
    overlap = body.overlap_seconds if body is not None else int(DEFAULT_ROLL_OVERLAP.total_seconds())
    return await people.roll_api_key(actor, key_id, overlap_seconds=overlap)


@router.get("/api-keys")
async def list_api_keys(actor: CurrentActor) -> list[ApiKeyOut]:
    return await people.list_api_keys(actor)


@router.delete("/api-keys/{key_id}")
async def revoke_api_key(key_id: uuid.UUID, actor: CurrentActor) -> ApiKeyOut:
    return await people.revoke_api_key(actor, key_id)


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


@router.get("/me")
async def me(actor: CurrentActor) -> MeOut:
    return MeOut.model_validate((await people.my_account(actor)).user)


@router.post("/me/password", status_code=204)
async def change_password(body: PasswordIn, actor: CurrentActor) -> None:
    """Change your password. Every login token issued before stops working (log out everywhere).
    Five tries with a wrong current password per quarter hour."""
    await people.change_password(actor, current=body.current_password, new=body.new_password)


class CodeOut(BaseModel):
    code: str
    start_command: str = Field(description="Send this to the bot, or open t.me/<bot>?start=<code>")
    expires_at: datetime


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role = Field(description="cashier or manager", json_schema_extra={"enum": ["cashier", "manager"]})


@router.post("/telegram/link-code", status_code=201)
async def telegram_link_code(actor: CurrentActor) -> CodeOut:
    """A one-time code (30 minutes) that links a Telegram chat to your account: `/start <code>`."""
    made = await people.telegram_link_code(actor)
    return CodeOut(code=made.code, start_command=made.start_command, expires_at=made.expires_at)


@router.post("/staff/invite", status_code=201)
async def staff_invite(body: InviteIn, actor: CurrentActor) -> CodeOut:
    """Invite a cashier or manager: they send `/start <code>` to the bot within 30 minutes."""
    invite = await people.invite_staff(actor, role=body.role)
    return CodeOut(code=invite.code, start_command=invite.start_command, expires_at=invite.expires_at)


class UssdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(
        max_length=8,
        description="4 digits; not 1111 or 1234",
        # validate_new_pin's rule: four digits, not all one digit, not a run up or down.
        json_schema_extra={"pattern": r"^(?!(\d)\1{3})(?!0123|1234|2345|3456|4567|5678|6789)"
                           r"(?!9876|8765|7654|6543|5432|4321|3210)\d{4}$"},
    )
    phone: str | None = Field(
        default=None,
        max_length=20,
        description="07…/01…/+254…; default: your business phone (owners)",
        json_schema_extra=PHONE_SCHEMA,
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


def _ussd_out(access: UssdAccess) -> UssdOut:
    return UssdOut(
        ussd_phone=access.phone,
        confirmed=access.confirmed,
        ussd_code=access.ussd_code,
        expires_at=access.expires_at,
    )


@router.put("/me/ussd")
async def set_ussd(body: UssdIn, actor: CurrentActor, response: Response) -> UssdOut:
    """Register a phone and 4-digit PIN for the USSD merchant menu (replaces any earlier one and
    clears a lockout). One phone opens one account. The business phone that approved the KES 1
    channel check is registered at once (200); any other phone is sent a 6-digit code by SMS (202)
    that must come back through `POST /api/me/ussd/confirm` within 10 minutes."""
    access = await people.set_ussd_access(actor, pin=body.pin, phone=body.phone)
    if not access.confirmed:
        response.status_code = 202
    return _ussd_out(access)


@router.post("/me/ussd/confirm")
async def confirm_ussd(body: UssdConfirmIn, actor: CurrentActor) -> UssdOut:
    """Send back the code texted to the phone: the phone and PIN are then registered."""
    return _ussd_out(await people.confirm_ussd_phone(actor, code=body.code))


@router.delete("/me/ussd", status_code=204)
async def remove_ussd_access(actor: CurrentActor) -> None:
    """Stop this account's USSD menu (a lost phone)."""
    await people.remove_ussd_access(actor)
