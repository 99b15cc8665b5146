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

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.access.permissions import Permission
from core.auth.use_cases import my_account
from core.tenants import use_cases
from core.tenants.models import ChannelKind, Environment
from core.tenants.schemas import ChannelIn
from web.panel.security import CurrentViewer, Viewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

# Each section is listed for whoever core lets see it (None: everyone, their own account).
SECTIONS = (
    ("/app/settings/channel", "M-Pesa channel", Permission.channel_read),
    ("/app/settings/keys", "API keys", Permission.api_keys_read),
    ("/app/settings/webhooks", "Webhooks", Permission.webhooks_manage),
    ("/app/settings/apps", "Apps", Permission.api_keys_read),
    ("/app/settings/staff", "Staff", Permission.staff_list),
    ("/app/settings/account", "Your account", None),
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
    actor = viewer.actor
    return [(href, label) for href, label, perm in SECTIONS if perm is None or actor.can(perm)]


def settings_page(
    request: Request, viewer: Viewer, template: str, ctx: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    base = {"sections": _sections(viewer), "done": DONE.get(request.query_params.get("done", ""))}
    return render(request, template, {**base, **ctx}, viewer=viewer, status=status)


# -- overview ---------------------------------------------------------------------------------------
@router.get("/app/settings", response_class=HTMLResponse)
async def overview(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    business(viewer)
    actor = viewer.actor
    manages = actor.can(Permission.channel_read)
    settings = await use_cases.view_settings(actor) if manages else None
    # an admin viewing as the business has no account of its own here
    account = None if viewer.impersonating else await my_account(actor)
    return settings_page(
        request,
        viewer,
        "app/settings.html",
        {
            "channel": settings.channel if settings else None,
            "two_factor": account.user.two_factor_enabled if account else None,
            "manages": manages,
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


async def _channel_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    settings = await use_cases.view_settings(viewer.actor)
    view = settings.channel
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
    return settings_page(
        request,
        viewer,
        "app/settings_channel.html",
        {
            "channel": view,
            "v": settings.verification,
            "errors": errors or {},
            "values": values,
            "environments": [e.value for e in Environment],
            "kinds": [k.value for k in ChannelKind if k.collects],
            "is_owner": viewer.actor.shows(Permission.channel_manage),
            "saved": done if done in ("sent", "not_sent") else None,
            "phone": settings.business.phone,
        },
        status=status,
    )


@router.get("/app/settings/channel", response_class=HTMLResponse)
async def channel(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _channel_page(request, viewer)


@router.get("/app/settings/channel/verification", response_class=HTMLResponse)
async def verification_status(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    """The fragment data-poll swaps in: it keeps polling while the KES 1 test is waiting."""
    v = await use_cases.channel_verification(viewer.actor)
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
    viewer.actor.require(Permission.channel_manage)  # before the form's own errors
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
        return await _channel_page(request, viewer, errors=channel_errors(exc), values=raw, status=422)
    saved = await use_cases.save_channel(viewer.actor, data)
    done = "sent" if saved.error is None else "not_sent"
    return RedirectResponse(f"/app/settings/channel?done={done}", status_code=303)
