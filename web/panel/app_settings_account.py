"""Settings → Your account: two-step sign-in, password (a few tries per quarter hour), sessions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.audit.service import record
from core.auth import panel_sessions
from core.auth.service import auth
from core.db import utcnow
from core.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from core.ratelimit import hit
from core.runtime import unit_of_work
from web.panel.app_settings import settings_page
from web.panel.forms import check_new_password
from web.panel.security import CurrentViewer, Viewer, business

router = APIRouter(include_in_schema=False)


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
    return settings_page(
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
