"""Signing in and out of the panel: password, then an emailed code when 2FA applies.

A browser that signs in becomes a known device of that account (`lp_device`, a signed cookie kept for
LOGIN_KNOWN_DEVICE_DAYS): its wrong passwords count on their own, so nobody else's can stop it
(core.auth.login_limits)."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import login_limits, panel_sessions, twofactor
from core.auth.models import User
from core.auth.service import auth
from core.db import Scope
from core.runtime import runtime, unit_of_work
from web.panel.security import (
    CHALLENGE_COOKIE,
    COOKIE,
    CurrentViewer,
    check_login_csrf,
    client_ip,
    login_csrf_page,
    safe_next,
    set_cookie,
)
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

# Before anyone is signed in, the business is not known yet: an email is unique across businesses, and
# the account it names (or a sign-in code's) may be any business's, or a platform admin's.
SIGN_IN = Scope.platform("panel sign-in by email")
SIGN_IN_CODE = Scope.platform("panel sign-in code: its account")


DEVICE_COOKIE = "lp_device"


def known_device(request: Request) -> login_limits.KnownDevice | None:
    return login_limits.read_device(
        request.cookies.get(DEVICE_COOKIE), secret=runtime().settings.SECRET_KEY
    )


def remember_device(response: Response, request: Request, user: User) -> None:
    """Mark this browser as a known device of `user` (the one who just proved they are)."""
    s = runtime().settings
    token = login_limits.device_token(
        user, secret=s.SECRET_KEY, days=s.LOGIN_KNOWN_DEVICE_DAYS, keep=known_device(request)
    )
    set_cookie(response, request, DEVICE_COOKIE, token, max_age=s.LOGIN_KNOWN_DEVICE_DAYS * 86400)


def home_for(user: User) -> str:
    return "/admin" if user.role.value == "platform_admin" else "/app"


def _login_page(
    request: Request,
    *,
    next_: str,
    email: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
    retry_after: int | None = None,
) -> HTMLResponse:
    ctx = {"next": next_, "email": email, "errors": errors or {}}
    response = login_csrf_page(request, "login.html", ctx, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _check_login_csrf(request: Request, sent: str) -> None:
    check_login_csrf(request, sent, "This sign-in form has expired: reload the page and try again.")


async def begin_session(session: AsyncSession, request: Request, user: User, *, ip: str | None) -> str:
    """A brand-new panel session for `user`, ending the one this browser had (any cookie from before
    sign-in is never reused: no fixation); its token."""
    old = request.cookies.get(COOKIE)
    if old:
        await panel_sessions.end(session, old)
    started = await panel_sessions.start(
        session, user=user, ip=ip, user_agent=request.headers.get("user-agent")
    )
    return started.token


def session_redirect(request: Request, token: str, target: str) -> RedirectResponse:
    """Signed in: the session cookie set, the 2FA challenge cookie gone, on to `target`."""
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, COOKIE, token, max_age=int(panel_sessions.ABSOLUTE.total_seconds()))
    response.delete_cookie(CHALLENGE_COOKIE, path="/")
    return response


async def _signed_in(request: Request, user: User, next_: str) -> Response:
    async with unit_of_work(scope=Scope.none()) as session:  # panel sessions: no business's rows
        token = await begin_session(session, request, user, ip=client_ip(request))
    response = session_redirect(request, token, safe_next(next_, home_for(user)))
    remember_device(response, request, user)
    return response


@router.get("/")
async def root(request: Request) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str = "") -> HTMLResponse:
    return _login_page(request, next_=next)


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=128)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    _check_login_csrf(request, csrf_token)
    errors: dict[str, str] = {}
    if not email.strip():
        errors["email"] = "Enter the email you signed up with."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _login_page(request, next_=next, email=email, errors=errors, status=422)
    async with unit_of_work(scope=SIGN_IN) as session:
        attempt = await auth.attempt_login(
            session,
            email=email,
            password=password,
            network=client_ip(request),
            device=known_device(request),
        )
        challenge = None
        if attempt.user is not None and twofactor.required(attempt.user):
            challenge = await twofactor.start(
                session, user=attempt.user, secret=runtime().settings.SECRET_KEY
            )
    if attempt.user is None:
        return _login_page(
            request,
            next_=next,
            email=email,
            errors={"password": attempt.error or "Wrong email or password."},
            status=401 if attempt.retry_after is None else 429,
            retry_after=attempt.retry_after,
        )
    if challenge is None:
        return await _signed_in(request, attempt.user, next)
    response = RedirectResponse(
        f"/login/code?next={quote(next, safe='/')}" if next else "/login/code", status_code=303
    )
    set_cookie(response, request, CHALLENGE_COOKIE, f"{challenge.id}|{challenge.sent_to}", max_age=600)
    return response


def _challenge(request: Request) -> tuple[uuid.UUID, str] | None:
    raw = request.cookies.get(CHALLENGE_COOKIE, "")
    cid, _, sent_to = raw.partition("|")
    try:
        return uuid.UUID(cid), sent_to
    except ValueError:
        return None


@router.get("/login/code")
async def code_form(request: Request, next: str = "") -> Response:
    found = _challenge(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    return login_csrf_page(request, "login_code.html", {"sent_to": found[1], "next": next, "errors": {}})


@router.post("/login/code")
async def code(
    request: Request,
    code: Annotated[str, Form(max_length=20)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    _check_login_csrf(request, csrf_token)
    found = _challenge(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    async with unit_of_work(scope=SIGN_IN_CODE) as session:
        attempt = await twofactor.verify(
            session, challenge_id=found[0], code=code, secret=runtime().settings.SECRET_KEY
        )
    if attempt.user is None:
        return render(
            request,
            "login_code.html",
            {"sent_to": found[1], "next": next, "errors": {"code": attempt.error}, "csrf": csrf_token},
            status=401,
        )
    return await _signed_in(request, attempt.user, next)


@router.post("/logout")
async def logout(request: Request, viewer: CurrentViewer) -> RedirectResponse:
    async with unit_of_work(scope=Scope.none()) as session:  # panel sessions: no business's rows
        await panel_sessions.end(session, viewer.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/logout-everywhere")
async def logout_everywhere(request: Request, viewer: CurrentViewer) -> RedirectResponse:
    """Every panel session and every API login token of this user end now."""
    async with unit_of_work(scope=viewer.own_account) as session:
        user = await auth.get_user(session, viewer.user_id)
        await panel_sessions.end_all(session, user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
