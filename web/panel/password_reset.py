"""The panel sign-in's "Forgot your password?": /login/reset asks for an email and, when it belongs to
an active account, emails a link; /login/reset/{token} sets a new password (core.auth.password_reset).

Public, like /login, and protected the same way: the double-submit CSRF cookie (`lp_csrf`) and the
Origin check. Asking always answers the same page, so it never tells which addresses have accounts.
After a reset the person signs in again at /login (never automatically: 2FA accounts still need their
emailed code); the browser that used the link is a known device of the account from then on (the link
proved the inbox), so nobody's wrong passwords from its network stop it signing in.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth.models import User
from core.auth.password_reset import (
    PER_EMAIL,
    RESET_TTL,
    ResetLinkInvalid,
    request_reset,
    reset_password,
    user_for_token,
)
from core.db import Scope
from core.errors import InvalidInput
from core.runtime import runtime, unit_of_work
from web.panel.auth_routes import known_device, remember_device
from web.panel.forms import check_new_password
from web.panel.security import COOKIE, check_login_csrf, client_ip, login_csrf_page
from web.panel.templating import render

log = logging.getLogger("lipapush.panel")
router = APIRouter(include_in_schema=False)

DONE_URL = "/login?done=password-reset"
# Before the reset, the business is not known: an email is unique across businesses, and a link names
# only its account (any business's, or a platform admin's).
BY_EMAIL = Scope.platform("password reset asked by email")
BY_LINK = Scope.platform("password reset link: its account")


def _check_csrf(request: Request, sent: str) -> None:
    check_login_csrf(request, sent, "This form has expired: reload the page and try again.")


def _ask_page(
    request: Request, *, email: str = "", errors: dict[str, str] | None = None, status: int = 200
) -> HTMLResponse:
    minutes = int(RESET_TTL.total_seconds() // 60)
    sent = request.query_params.get("sent") == "1" and not errors
    return login_csrf_page(
        request,
        "reset_request.html",
        {"email": email, "errors": errors or {}, "sent": sent, "minutes": minutes, "per_email": PER_EMAIL},
        status=status,
    )


def _invalid(request: Request) -> HTMLResponse:
    return render(request, "reset_invalid.html", {}, status=404)


def _form(
    request: Request, token: str, user: User, *, errors: dict[str, str] | None = None, status: int = 200
) -> HTMLResponse:
    return login_csrf_page(
        request,
        "reset_form.html",
        {"token": token, "email": user.email, "errors": errors or {}},
        status=status,
    )


@router.get("/login/reset", response_class=HTMLResponse)
async def ask_form(request: Request) -> HTMLResponse:
    return _ask_page(request)


@router.post("/login/reset", response_model=None)
async def ask(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _check_csrf(request, csrf_token)
    if not email.strip():
        return _ask_page(request, errors={"email": "Enter the email you sign in with."}, status=422)
    settings = runtime().settings
    try:
        async with unit_of_work(scope=BY_EMAIL) as session:
            outcome = await request_reset(
                session,
                email=email,
                ip=client_ip(request),
                secret=settings.SECRET_KEY,
                base_url=settings.base_url,
                device=known_device(request),
            )
    except InvalidInput as exc:
        return _ask_page(request, email=email, errors={"email": exc.message}, status=422)
    log.info("password reset requested: %s", outcome.value)
    # The same answer whatever happened: the page never tells which addresses have an account.
    return RedirectResponse("/login/reset?sent=1", status_code=303)


@router.get("/login/reset/{token}", response_class=HTMLResponse)
async def reset_form(request: Request, token: str) -> HTMLResponse:
    async with unit_of_work(readonly=True, scope=BY_LINK) as session:
        user = await user_for_token(session, token=token, secret=runtime().settings.SECRET_KEY)
    if user is None:
        return _invalid(request)
    return _form(request, token, user)


@router.post("/login/reset/{token}", response_model=None)
async def reset(
    request: Request,
    token: str,
    password: Annotated[str, Form(max_length=200)] = "",
    confirm_password: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _check_csrf(request, csrf_token)
    secret = runtime().settings.SECRET_KEY
    async with unit_of_work(readonly=True, scope=BY_LINK) as session:
        user = await user_for_token(session, token=token, secret=secret)
    if user is None:
        return _invalid(request)
    errors: dict[str, str] = {}
    check_new_password(password, confirm_password, errors, missing="Choose a new password.")
    if errors:
        return _form(request, token, user, errors=errors, status=422)
    # The link's account is known now: the reset is written in its business's scope.
    scope = Scope.tenant(user.tenant_id) if user.tenant_id is not None else BY_LINK
    try:
        async with unit_of_work(scope=scope) as session:
            changed = await reset_password(session, token=token, password=password, secret=secret)
    except ResetLinkInvalid:  # used a moment ago, in another tab
        return _invalid(request)
    except InvalidInput as exc:
        return _form(request, token, user, errors={exc.field: exc.message}, status=422)
    response = RedirectResponse(DONE_URL, status_code=303)
    response.delete_cookie(COOKIE, path="/")  # whatever session this browser had has ended
    remember_device(response, request, changed)
    return response
