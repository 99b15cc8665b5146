"""The business view's Settings (/app/settings): the M-Pesa channel (secrets masked, re-verified on
save), API keys, staff, and the signed-in user's own account (2FA, password, sessions).

Roles as in the API and the bot:
- the channel: owner and manager see it (GET /api/settings lets any user of the business read it; the
  bot shows Settings to the owner), only the owner changes it (POST /api/settings);
- API keys: owner and manager see the list (GET /api/api-keys), the owner creates and revokes them;
- staff: the owner (POST /api/staff/invite; the bot's 👥 Staff): invitation codes for the bot, invitations
  by email (/join/{code}, web/panel/join.py), web access for Telegram-only staff, removal (core.auth.staff);
- your account: everyone, for their own user. An admin viewing as a business has no account here.
The low-balance alert level is on the wallet page (/app/wallet), not repeated here.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth import panel_sessions
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import ApiKeyMode, Role
from core.auth.service import auth
from core.auth.staff import give_web_access, invite_by_email, is_placeholder, remove_staff
from core.db import utcnow
from core.errors import AuthenticationFailed, InvalidInput, LipapushError, NotFound, PermissionDenied
from core.payments.models import PaymentStatus
from core.payments.push import send_verification_push
from core.payments.service import payments
from core.ratelimit import hit
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment
from core.tenants.schemas import ChannelIn, ChannelOut
from core.tenants.service import tenants
from web.panel.forms import check_new_password
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

MANAGERS = (Role.owner, Role.manager)
SECTIONS = (
    ("/app/settings/channel", "M-Pesa channel", MANAGERS),
    ("/app/settings/keys", "API keys", MANAGERS),
    ("/app/settings/staff", "Staff", (Role.owner,)),
    ("/app/settings/account", "Your account", (Role.owner, Role.manager, Role.cashier)),
)
CHANNEL_FIELDS = (
    "environment",
    "kind",
    "business_short_code",
    "till_number",
    "consumer_key",
    "consumer_secret",
    "passkey",
)
SECRET_FIELDS = ("consumer_key", "consumer_secret", "passkey")
FIELD_NAMES = {
    "business_short_code": "the short code",
    "till_number": "the till number",
    "consumer_key": "the consumer key",
    "consumer_secret": "the consumer secret",
    "passkey": "the passkey",
}
DONE = {
    "revoked": "API key revoked: requests made with it are refused from now on.",
    "2fa_on": "Two-step sign-in is on: from your next sign-in we email you a 6-digit code.",
    "2fa_off": "Two-step sign-in is off: you sign in with your password alone.",
    "password": "Password changed. Your other sessions and API login tokens were signed out; "
    "this one stays signed in.",
    "others": "Signed out everywhere else. This browser stays signed in.",
    "invited": "Invitation emailed. The link works once, for 7 days; the code in it also works in the "
    "Telegram bot.",
    "web_access": "Web access link emailed. Once they choose a password they sign in here with that "
    "email; their Telegram stays linked.",
    "removed": "Staff member removed: they are signed out everywhere and can no longer sign in.",
}


def _sections(viewer: Viewer) -> list[tuple[str, str]]:
    role = viewer.business_role
    return [(href, label) for href, label, roles in SECTIONS if role in roles]


def _page(
    request: Request, viewer: Viewer, template: str, ctx: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    base = {"sections": _sections(viewer), "done": DONE.get(request.query_params.get("done", ""))}
    return render(request, template, {**base, **ctx}, viewer=viewer, status=status)


# -- overview ---------------------------------------------------------------------------------------
@router.get("/app/settings", response_class=HTMLResponse)
async def overview(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer)
    rt = runtime()
    channel: ChannelOut | None = None
    async with unit_of_work(readonly=True) as session:
        if viewer.business_role in MANAGERS:
            row = await tenants.get_channel(session, tenant_id)
            channel = tenants.channel_out(row, box=rt.secrets, settings=rt.settings) if row else None
        user = None if viewer.impersonating else await auth.get_user(session, viewer.user_id)
    return _page(
        request,
        viewer,
        "app/settings.html",
        {
            "channel": channel,
            "two_factor": user.two_factor_enabled if user else None,
            "manages": viewer.business_role in MANAGERS,
        },
    )


# -- M-Pesa channel ---------------------------------------------------------------------------------
def channel_errors(exc: ValidationError) -> dict[str, str]:
    """ChannelIn's complaints, each next to the field it is about."""
    errors: dict[str, str] = {}
    for e in exc.errors():
        msg = str(e["msg"]).removeprefix("Value error, ")
        loc = [str(p) for p in e.get("loc", ())]
        if loc and loc[0] in CHANNEL_FIELDS:
            field = loc[0]
            if e["type"] == "enum":
                msg = "Choose one from the list."
            elif e["type"] == "missing":
                msg = "Choose one."
            elif field in ("business_short_code", "till_number"):
                msg = f"{FIELD_NAMES[field].capitalize()} {msg}."
            errors.setdefault(field, msg)
            continue
        # a rule over several fields (model validator): name the fields it is about
        head, sep, tail = msg.partition(" required for a ")
        if sep and all(name in FIELD_NAMES for name in head.split(", ")):
            for name in head.split(", "):
                errors.setdefault(name, f"Required for a {tail.split()[0]} channel.")
            continue
        found = sorted((msg.find(f), f) for f in CHANNEL_FIELDS if f in msg)
        field = found[0][1] if found else "environment"
        for raw, words in FIELD_NAMES.items():
            msg = msg.replace(raw, words)
        errors.setdefault(field, msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else "."))
    return errors


async def _verification(session: AsyncSession, tenant_id: uuid.UUID, view: ChannelOut) -> dict[str, Any]:
    """Where the channel's KES 1 test stands: verified, waiting for the owner, failed, or not tried."""
    payment = None
    if view.verification_payment_id is not None:
        try:
            payment = await payments.get(
                session, tenant_id=tenant_id, payment_id=view.verification_payment_id
            )
        except NotFound:
            payment = None
    if view.verified:
        state = "verified"
    elif payment is not None and (
        payment.status is PaymentStatus.pending
        or (payment.status is PaymentStatus.success and not view.verification_error)
    ):
        state = "pending"
    elif view.verification_error or payment is not None:
        state = "failed"
    else:
        state = "unverified"
    reason = view.verification_error
    if state == "failed" and not reason and payment is not None:
        reason = payment.result_desc or payment.status.value
    return {
        "state": state,
        "reason": reason,
        "verified_at": view.verified_at,
        "phone": payment.phone if payment is not None else None,
    }


async def _channel_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    rt = runtime()
    async with unit_of_work(readonly=True) as session:
        tenant = await tenants.get(session, tenant_id)
        row = await tenants.get_channel(session, tenant_id)
        view = tenants.channel_out(row, box=rt.secrets, settings=rt.settings) if row else None
        verification = await _verification(session, tenant_id, view) if view else None
        phone = tenant.phone
    if values is None:
        values = {
            "environment": view.environment.value if view else Environment.simulator.value,
            "kind": view.kind.value if view else ChannelKind.paybill.value,
            "business_short_code": view.business_short_code if view else "",
            "till_number": (view.till_number or "") if view else "",
        }
    # Secrets are never written back into the form, not even after an error.
    values = {k: v for k, v in values.items() if k not in SECRET_FIELDS}
    done = request.query_params.get("done", "")
    return _page(
        request,
        viewer,
        "app/settings_channel.html",
        {
            "channel": view,
            "v": verification,
            "errors": errors or {},
            "values": values,
            "environments": [e.value for e in Environment],
            "kinds": [k.value for k in ChannelKind],
            "is_owner": viewer.business_role is Role.owner,
            "saved": done if done in ("sent", "not_sent") else None,
            "phone": phone,
        },
        status=status,
    )


@router.get("/app/settings/channel", response_class=HTMLResponse)
async def channel(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer, *MANAGERS)
    return await _channel_page(request, viewer, tenant_id)


@router.get("/app/settings/channel/verification", response_class=HTMLResponse)
async def verification_status(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    """The fragment data-poll swaps in: it keeps polling while the KES 1 test is waiting."""
    tenant_id = business(viewer, *MANAGERS)
    rt = runtime()
    async with unit_of_work(readonly=True) as session:
        row = await tenants.get_channel(session, tenant_id)
        if row is None:
            raise NotFound("This business has no M-Pesa channel yet.")
        view = tenants.channel_out(row, box=rt.secrets, settings=rt.settings)
        v = await _verification(session, tenant_id, view)
    return render(request, "app/settings_verification.html", {"v": v}, viewer=viewer)


@router.post("/app/settings/channel", response_model=None)
async def save_channel(
    request: Request,
    viewer: CurrentViewer,
    environment: Annotated[str, Form(max_length=40)] = "",
    kind: Annotated[str, Form(max_length=40)] = "",
    business_short_code: Annotated[str, Form(max_length=40)] = "",
    till_number: Annotated[str, Form(max_length=40)] = "",
    consumer_key: Annotated[str, Form(max_length=400)] = "",
    consumer_secret: Annotated[str, Form(max_length=400)] = "",
    passkey: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """The same model, service and test push as POST /api/settings. As there, every save replaces the
    credentials: a blank secret is not "keep the old one" (the API has no such rule), so a sandbox or
    production channel needs all three again; a simulator channel gets test values."""
    tenant_id = business(viewer, Role.owner, write=True)
    raw = {
        "environment": environment,
        "kind": kind,
        "business_short_code": business_short_code,
        "till_number": till_number,
        "consumer_key": consumer_key,
        "consumer_secret": consumer_secret,
        "passkey": passkey,
    }
    try:
        data = ChannelIn.model_validate({k: v.strip() for k, v in raw.items() if v.strip()})
    except ValidationError as exc:
        return await _channel_page(
            request, viewer, tenant_id, errors=channel_errors(exc), values=raw, status=422
        )
    rt = runtime()
    async with unit_of_work() as session:
        tenant = await tenants.get(session, tenant_id)
        await tenants.save_channel(session, tenant=tenant, data=data, box=rt.secrets, by=viewer.user_id)
    try:
        await send_verification_push(tenant_id=tenant_id, by=viewer.user_id)
        done = "sent"
    except LipapushError:  # Daraja refused (the reason is kept on the channel) or was unreachable
        done = "not_sent"
    return RedirectResponse(f"/app/settings/channel?done={done}", status_code=303)


# -- API keys ---------------------------------------------------------------------------------------
async def _keys_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    created: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with unit_of_work(readonly=True) as session:
        keys = await auth.list_api_keys(session, tenant_id=tenant_id)
    return _page(
        request,
        viewer,
        "app/settings_keys.html",
        {
            "keys": keys,
            "errors": errors or {},
            "values": values or {"name": "", "mode": ApiKeyMode.live.value},
            "modes": [m.value for m in ApiKeyMode],
            "is_owner": viewer.business_role is Role.owner,
            "created": created,
        },
        status=status,
    )


@router.get("/app/settings/keys", response_class=HTMLResponse)
async def keys(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer, *MANAGERS)
    return await _keys_page(request, viewer, tenant_id)


@router.post("/app/settings/keys", response_model=None)
async def create_key(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form(max_length=200)] = "",
    mode: Annotated[str, Form(max_length=20)] = "live",
) -> Response:
    """The key is on this response only (never stored in clear, never shown again)."""
    tenant_id = business(viewer, Role.owner, write=True)
    values = {"name": name, "mode": mode}
    try:
        key_mode = ApiKeyMode(mode)
    except ValueError:
        return await _keys_page(
            request, viewer, tenant_id, errors={"mode": "Choose live or test."}, values=values, status=422
        )
    try:
        async with unit_of_work() as session:
            row, key = await auth.create_api_key(
                session, tenant_id=tenant_id, created_by=viewer.user_id, name=name, mode=key_mode
            )
            created = {"key": key, "name": row.name, "prefix": row.prefix, "mode": row.mode.value}
    except InvalidInput as exc:
        return await _keys_page(
            request, viewer, tenant_id, errors={exc.field: exc.message}, values=values, status=422
        )
    return await _keys_page(request, viewer, tenant_id, created=created, status=201)


@router.post("/app/settings/keys/{key_id}/revoke")
async def revoke_key(key_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    tenant_id = business(viewer, Role.owner, write=True)
    async with unit_of_work() as session:
        await auth.revoke_api_key(session, tenant_id=tenant_id, key_id=key_id, by=viewer.user_id)
    return RedirectResponse("/app/settings/keys?done=revoked", status_code=303)


# -- staff ------------------------------------------------------------------------------------------
async def _staff_page(
    request: Request,
    viewer: Viewer,
    tenant_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    invite: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with unit_of_work(readonly=True) as session:
        everyone = await auth.list_staff(session, tenant_id=tenant_id)
    staff = [m for m in everyone if m.user.disabled_at is None]
    return _page(
        request,
        viewer,
        "app/settings_staff.html",
        {
            "staff": staff,
            "removed": [m for m in everyone if m.user.disabled_at is not None],
            "manageable": [m for m in staff if m.user.role is not Role.owner],
            "telegram_only": {str(m.user.id) for m in staff if is_placeholder(m.user.email)},
            "errors": errors or {},
            "values": values or {},
            "invite": invite,
        },
        status=status,
    )


@router.get("/app/settings/staff", response_class=HTMLResponse)
async def staff(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    tenant_id = business(viewer, Role.owner)
    return await _staff_page(request, viewer, tenant_id)


@router.post("/app/settings/staff/invite", response_model=None)
async def invite(
    request: Request, viewer: CurrentViewer, role: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """The same code as POST /api/staff/invite: the person sends `/start <code>` to the bot."""
    tenant_id = business(viewer, Role.owner, write=True)
    if role not in (Role.cashier.value, Role.manager.value):
        return await _staff_page(
            request, viewer, tenant_id, errors={"role": "Invite a cashier or a manager."}, status=422
        )
    async with unit_of_work() as session:
        code, expires = await issue_code(
            session, purpose=CodePurpose.staff_invite, tenant_id=tenant_id, role=Role(role), by=viewer.user_id
        )
        await record(
            session,
            action="staff.invited",
            tenant_id=tenant_id,
            user_id=viewer.user_id,
            detail={"role": role, "via": "panel"},
        )
    invite = {"code": code, "role": role, "expires_at": expires}
    return await _staff_page(request, viewer, tenant_id, invite=invite, status=201)


@router.post("/app/settings/staff/invite-email", response_model=None)
async def invite_email(
    request: Request,
    viewer: CurrentViewer,
    role: Annotated[str, Form(max_length=20)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    """A join link by email (/join/{code}); the same code also works as the bot's `/start <code>`."""
    tenant_id = business(viewer, Role.owner, write=True)
    values = {"invite_email": email, "invite_email_role": role}
    if role not in (Role.cashier.value, Role.manager.value):
        errors = {"invite_email_role": "Invite a cashier or a manager."}
        return await _staff_page(request, viewer, tenant_id, errors=errors, values=values, status=422)
    if not email.strip():
        errors = {"invite_email": "Enter the email address of the person you are inviting."}
        return await _staff_page(request, viewer, tenant_id, errors=errors, values=values, status=422)
    try:
        async with unit_of_work() as session:
            await invite_by_email(
                session,
                tenant_id=tenant_id,
                role=Role(role),
                email=email,
                by=viewer.user_id,
                base_url=runtime().settings.base_url,
            )
    except InvalidInput as exc:
        field = "invite_email_role" if exc.field == "role" else "invite_email"
        return await _staff_page(
            request, viewer, tenant_id, errors={field: exc.message}, values=values, status=422
        )
    return RedirectResponse("/app/settings/staff?done=invited", status_code=303)


@router.post("/app/settings/staff/{user_id}/web-access", response_model=None)
async def web_access(
    request: Request,
    user_id: uuid.UUID,
    viewer: CurrentViewer,
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    """A staff member who joined from Telegram gets a link to set an email and password."""
    tenant_id = business(viewer, Role.owner, write=True)
    key = f"web_email_{user_id}"
    if not email.strip():
        errors = {key: "Enter their email address."}
        return await _staff_page(request, viewer, tenant_id, errors=errors, values={key: email}, status=422)
    try:
        async with unit_of_work() as session:
            await give_web_access(
                session,
                tenant_id=tenant_id,
                user_id=user_id,
                email=email,
                by=viewer.user_id,
                base_url=runtime().settings.base_url,
            )
    except InvalidInput as exc:
        return await _staff_page(
            request, viewer, tenant_id, errors={key: exc.message}, values={key: email}, status=422
        )
    return RedirectResponse("/app/settings/staff?done=web_access", status_code=303)


@router.post("/app/settings/staff/{user_id}/remove")
async def remove(user_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Not the owner; another business's user is 404."""
    tenant_id = business(viewer, Role.owner, write=True)
    async with unit_of_work() as session:
        await remove_staff(session, tenant_id=tenant_id, user_id=user_id, by=viewer.user_id)
    return RedirectResponse("/app/settings/staff?done=removed", status_code=303)


# -- your account: two-step sign-in, password, sessions ---------------------------------------------
def _own_account(viewer: Viewer, *, write: bool) -> uuid.UUID:
    """The signed-in business user (any role). An admin viewing as a business has no account here."""
    business(viewer, write=write)
    if viewer.impersonating:
        raise PermissionDenied(
            "These settings belong to each signed-in user of the business; you are viewing as the "
            "business, not signed in as one of its users."
        )
    return viewer.user_id


async def _account_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    business(viewer)
    user = sessions = None
    current = None
    if not viewer.impersonating:
        async with unit_of_work(readonly=True) as session:
            user = await auth.get_user(session, viewer.user_id)
            now = utcnow()
            sessions = [
                s
                for s in await panel_sessions.for_user(session, viewer.user_id)
                if s.token_version == user.token_version
                and now - s.last_seen_at <= panel_sessions.IDLE
                and now - s.created_at <= panel_sessions.ABSOLUTE
            ]
            row = await panel_sessions.row_for(session, viewer.token)
            current = row.token_hash if row else None
    return _page(
        request,
        viewer,
        "app/settings_account.html",
        {"user": user, "sessions": sessions or [], "current": current, "errors": errors or {}},
        status=status,
    )


@router.get("/app/settings/account", response_class=HTMLResponse)
async def account(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _account_page(request, viewer)


PASSWORD_TRIES = 5
PASSWORD_WINDOW = 15 * 60
TOO_MANY_TRIES = "Too many tries with the current password. Wait 15 minutes, then try again."


async def _too_many_password_tries(user_id: uuid.UUID) -> bool:
    """A signed-in session must not become a way to guess the account's password: the forms that ask
    for it allow a few tries per quarter hour, like the sign-in lockout."""
    return await hit(f"panel-password:{user_id}", PASSWORD_WINDOW) > PASSWORD_TRIES


@router.post("/app/settings/account/2fa", response_model=None)
async def two_factor(
    request: Request,
    viewer: CurrentViewer,
    enabled: Annotated[str, Form(max_length=10)] = "",
    password: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    user_id = _own_account(viewer, write=True)
    if enabled not in ("on", "off"):
        return await _account_page(request, viewer, errors={"two_factor": "Choose on or off."}, status=422)
    if enabled == "off" and not password:
        return await _account_page(
            request, viewer, errors={"tf_password": "Enter your current password."}, status=422
        )
    if enabled == "off" and await _too_many_password_tries(user_id):
        return await _account_page(request, viewer, errors={"tf_password": TOO_MANY_TRIES}, status=429)
    try:
        async with unit_of_work() as session:
            user = await auth.get_user(session, user_id)
            await auth.set_two_factor(session, user=user, enabled=enabled == "on", password=password)
    except AuthenticationFailed as exc:
        return await _account_page(request, viewer, errors={"tf_password": exc.message}, status=422)
    return RedirectResponse(f"/app/settings/account?done=2fa_{enabled}", status_code=303)


@router.post("/app/settings/account/password", response_model=None)
async def change_password(
    request: Request,
    viewer: CurrentViewer,
    current_password: Annotated[str, Form(max_length=200)] = "",
    new_password: Annotated[str, Form(max_length=200)] = "",
    confirm_password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """auth.change_password (as POST /api/me/password), then every other session of this user ends
    and this one stays signed in."""
    user_id = _own_account(viewer, write=True)
    errors: dict[str, str] = {}
    if not current_password:
        errors["current_password"] = "Enter your current password."
    check_new_password(
        new_password,
        confirm_password,
        errors,
        missing="Choose a new password.",
        field="new_password",
        mismatch="The two new passwords are not the same.",
    )
    if errors:
        return await _account_page(request, viewer, errors=errors, status=422)
    if await _too_many_password_tries(user_id):
        return await _account_page(request, viewer, errors={"current_password": TOO_MANY_TRIES}, status=429)
    try:
        async with unit_of_work() as session:
            user = await auth.get_user(session, user_id)
            await auth.change_password(session, user=user, old=current_password, new=new_password)
            await panel_sessions.end_others(session, user=user, keep=viewer.token)
    except AuthenticationFailed as exc:
        return await _account_page(request, viewer, errors={"current_password": exc.message}, status=422)
    except InvalidInput as exc:
        return await _account_page(request, viewer, errors={"new_password": exc.message}, status=422)
    return RedirectResponse("/app/settings/account?done=password", status_code=303)


@router.post("/app/settings/account/sessions/end-others")
async def end_other_sessions(viewer: CurrentViewer) -> RedirectResponse:
    """Sign out everywhere else: other browsers and API login tokens end, this browser stays."""
    user_id = _own_account(viewer, write=True)
    async with unit_of_work() as session:
        user = await auth.get_user(session, user_id)
        ended = await panel_sessions.end_others(session, user=user, keep=viewer.token)
        await record(
            session,
            action="auth.logout_others",
            tenant_id=user.tenant_id,
            user_id=user.id,
            detail={"panel_sessions": ended},
        )
    return RedirectResponse("/app/settings/account?done=others", status_code=303)
