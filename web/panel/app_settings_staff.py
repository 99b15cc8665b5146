"""Settings → Staff (owner): invitation codes for the bot, invitations by email, web access for
Telegram-only staff, removal (core.auth.use_cases), and who may pay out besides the owner
(core.auth.use_cases_payout_grant)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.auth import use_cases as people
from core.auth.models import Role
from core.auth.staff import is_placeholder
from core.auth.use_cases_payout_grant import set_payout_grant
from core.errors import InvalidInput
from web.panel.app_settings import settings_page
from web.panel.security import CurrentViewer, Viewer

router = APIRouter(include_in_schema=False)

# Said after the payout grant changed (the other sections' words are app_settings.DONE).
GRANT_DONE = {
    "grant_on": "Allowed to pay out: from their next request they can send payouts and bulk payouts "
    "within the business's limits. Reversals stay yours.",
    "grant_off": "No longer allowed to pay out: from their next request, paying out is refused.",
}


# -- staff ------------------------------------------------------------------------------------------
async def _staff_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    invite: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    everyone = await people.list_staff(viewer.actor)
    staff = [m for m in everyone if m.user.disabled_at is None]
    done = GRANT_DONE.get(request.query_params.get("done", ""))
    return settings_page(
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
            "can_grant": viewer.actor.shows(Permission.staff_manage),
            **({"done": done} if done else {}),
        },
        status=status,
    )


@router.get("/app/settings/staff", response_class=HTMLResponse)
async def staff(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _staff_page(request, viewer)


@router.post("/app/settings/staff/invite", response_model=None)
async def invite(
    request: Request, viewer: CurrentViewer, role: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """The same code as POST /api/staff/invite: the person sends `/start <code>` to the bot."""
    try:
        made = await people.invite_staff(viewer.actor, role=role)
    except InvalidInput as exc:
        return await _staff_page(request, viewer, errors={"role": exc.message}, status=422)
    invite = {"code": made.code, "role": role, "expires_at": made.expires_at}
    return await _staff_page(request, viewer, invite=invite, status=201)


@router.post("/app/settings/staff/invite-email", response_model=None)
async def invite_email(
    request: Request,
    viewer: CurrentViewer,
    role: Annotated[str, Form(max_length=20)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    """A join link by email (/join/{code}); the same code also works as the bot's `/start <code>`."""
    values = {"invite_email": email, "invite_email_role": role}
    if not email.strip():
        errors = {"invite_email": "Enter the email address of the person you are inviting."}
        return await _staff_page(request, viewer, errors=errors, values=values, status=422)
    try:
        await people.invite_staff(viewer.actor, role=role, email=email)
    except InvalidInput as exc:
        field = "invite_email_role" if exc.field == "role" else "invite_email"
        return await _staff_page(request, viewer, errors={field: exc.message}, values=values, status=422)
    return RedirectResponse("/app/settings/staff?done=invited", status_code=303)


@router.post("/app/settings/staff/{user_id}/web-access", response_model=None)
async def web_access(
    request: Request,
    user_id: uuid.UUID,
    viewer: CurrentViewer,
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    """A staff member who joined from Telegram gets a link to set an email and password."""
    viewer.actor.require(Permission.staff_manage)  # before the form's own errors
    key = f"web_email_{user_id}"
    if not email.strip():
        errors = {key: "Enter their email address."}
        return await _staff_page(request, viewer, errors=errors, values={key: email}, status=422)
    try:
        await people.give_member_web_access(viewer.actor, user_id=user_id, email=email)
    except InvalidInput as exc:
        return await _staff_page(request, viewer, errors={key: exc.message}, values={key: email}, status=422)
    return RedirectResponse("/app/settings/staff?done=web_access", status_code=303)


@router.post("/app/settings/staff/{user_id}/remove")
async def remove(user_id: uuid.UUID, viewer: CurrentViewer) -> RedirectResponse:
    """Not the owner; another business's user is 404."""
    await people.remove_member(viewer.actor, user_id)
    return RedirectResponse("/app/settings/staff?done=removed", status_code=303)


@router.post("/app/settings/staff/{user_id}/payout-grant")
async def payout_grant(
    user_id: uuid.UUID, viewer: CurrentViewer, allowed: Annotated[str, Form(max_length=5)] = ""
) -> RedirectResponse:
    """The same use case as PATCH /api/staff/{user_id}/payout-grant: a manager or cashier of this
    business (anyone else is 404); allowing it went through a confirmation dialog."""
    on = allowed == "1"
    await set_payout_grant(viewer.actor, user_id, allowed=on)
    return RedirectResponse(
        f"/app/settings/staff?done={'grant_on' if on else 'grant_off'}#member-{user_id}", status_code=303
    )
