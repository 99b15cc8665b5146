"""Settings → Your account: two-step sign-in, password (a few tries per quarter hour), sessions.
Each signed-in user's own (core.auth.use_cases); an admin viewing as a business has no account here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import use_cases as people
from core.errors import AuthenticationFailed, InvalidInput
from web.panel.app_settings import settings_page
from web.panel.forms import check_new_password
from web.panel.security import CurrentViewer, Viewer, business

router = APIRouter(include_in_schema=False)


def _status(exc: Exception) -> int:
    """A wrong current password is the form's error (422); too many tries, 429."""
    return 429 if isinstance(exc, people.TooManyTries) else 422


# -- your account: two-step sign-in, password, sessions ---------------------------------------------
async def _account_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    business(viewer)  # the business view's page; an admin viewing as the business sees no account
    account = (
        None if viewer.impersonating else await people.my_account(viewer.actor, panel_token=viewer.token)
    )
    return settings_page(
        request,
        viewer,
        "app/settings_account.html",
        {
            "user": account.user if account else None,
            "sessions": account.sessions if account else [],
            "current": account.current if account else None,
            "errors": errors or {},
        },
        status=status,
    )


@router.get("/app/settings/account", response_class=HTMLResponse)
async def account(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _account_page(request, viewer)


@router.post("/app/settings/account/2fa", response_model=None)
async def two_factor(
    request: Request,
    viewer: CurrentViewer,
    enabled: Annotated[str, Form(max_length=10)] = "",
    password: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    business(viewer)
    if enabled not in ("on", "off"):
        return await _account_page(request, viewer, errors={"two_factor": "Choose on or off."}, status=422)
    if enabled == "off" and not password:
        return await _account_page(
            request, viewer, errors={"tf_password": "Enter your current password."}, status=422
        )
    try:
        if enabled == "on":
            await people.enable_two_factor(viewer.actor)
        else:
            await people.disable_two_factor(viewer.actor, password=password)
    except (AuthenticationFailed, people.TooManyTries) as exc:
        return await _account_page(request, viewer, errors={"tf_password": exc.message}, status=_status(exc))
    return RedirectResponse(f"/app/settings/account?done=2fa_{enabled}", status_code=303)


@router.post("/app/settings/account/password", response_model=None)
async def change_password(
    request: Request,
    viewer: CurrentViewer,
    current_password: Annotated[str, Form(max_length=200)] = "",
    new_password: Annotated[str, Form(max_length=200)] = "",
    confirm_password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """As POST /api/me/password, and every other session of this user ends while this one stays
    signed in."""
    business(viewer)
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
    try:
        await people.change_password(
            viewer.actor, current=current_password, new=new_password, keep_panel_session=viewer.token
        )
    except (AuthenticationFailed, people.TooManyTries) as exc:
        return await _account_page(
            request, viewer, errors={"current_password": exc.message}, status=_status(exc)
        )
    except InvalidInput as exc:
        return await _account_page(request, viewer, errors={"new_password": exc.message}, status=422)
    return RedirectResponse("/app/settings/account?done=password", status_code=303)


@router.post("/app/settings/account/sessions/end-others")
async def end_other_sessions(viewer: CurrentViewer) -> RedirectResponse:
    """Sign out everywhere else: other browsers and API login tokens end, this browser stays."""
    business(viewer)
    await people.end_other_sessions(viewer.actor, keep_panel_session=viewer.token)
    return RedirectResponse("/app/settings/account?done=others", status_code=303)
