"""/join/{code}: a staff member opens the link an owner emailed, chooses a password and is signed in.

Public, like /login, and protected the same way: a double-submit CSRF cookie (`lp_csrf`) and the
Origin check. The code is used once (core.auth.staff.join redeems it); an unknown, expired or used
code gets one page saying what to do. Posts and failed look-ups count per IP: past JOIN_LIMIT in
JOIN_WINDOW the page answers 429.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core import ratelimit
from core.auth import panel_sessions
from core.auth.staff import Invitation, invitation, join
from core.errors import InvalidInput
from core.runtime import unit_of_work
from web.panel.security import (
    CHALLENGE_COOKIE,
    COOKIE,
    LOGIN_CSRF_COOKIE,
    CsrfFailed,
    check_origin,
    new_login_csrf,
    set_cookie,
)
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

JOIN_LIMIT = 20
JOIN_WINDOW = 15 * 60


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _too_many(request: Request) -> bool:
    return await ratelimit.hit(f"join:{_ip(request)}", JOIN_WINDOW) > JOIN_LIMIT


def _slow_down(request: Request) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {
            "title": "Slow down",
            "message": "Too many tries from this network. Wait 15 minutes, then open the link again.",
        },
        status=429,
    )


def _gone(request: Request) -> HTMLResponse:
    return render(request, "app/join_invalid.html", {}, status=404)


def _form(
    request: Request,
    code: str,
    inv: Invitation,
    *,
    email: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    response = render(
        request,
        "app/join.html",
        {"code": code, "inv": inv, "email": inv.email or email, "errors": errors or {}, "csrf": csrf},
        status=status,
    )
    set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


@router.get("/join/{code}", response_class=HTMLResponse)
async def join_form(request: Request, code: str) -> HTMLResponse:
    async with unit_of_work(readonly=True) as session:
        inv = await invitation(session, code=code)
    if inv is None:
        return _slow_down(request) if await _too_many(request) else _gone(request)
    return _form(request, code, inv)


@router.post("/join/{code}", response_model=None)
async def join_submit(
    request: Request,
    code: str,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    confirm_password: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    check_origin(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf_token or not hmac.compare_digest(cookie, csrf_token):
        raise CsrfFailed("This form has expired: open the link from the email again.")
    if await _too_many(request):
        return _slow_down(request)
    async with unit_of_work(readonly=True) as session:
        inv = await invitation(session, code=code)
    if inv is None:
        return _gone(request)
    errors: dict[str, str] = {}
    if not inv.email and not email.strip():
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Choose a password."
    elif password != confirm_password:
        errors["confirm_password"] = "The two passwords are not the same."
    if errors:
        return _form(request, code, inv, email=email, errors=errors, status=422)
    old = request.cookies.get(COOKIE)
    try:
        async with unit_of_work() as session:
            user = await join(session, code=code, password=password, email=email)
            if old:
                await panel_sessions.end(session, old)
            started = await panel_sessions.start(
                session, user=user, ip=_ip(request), user_agent=request.headers.get("user-agent")
            )
    except InvalidInput as exc:
        if exc.field == "code":  # used in between: another tab, or someone else
            return _gone(request)
        return _form(request, code, inv, email=email, errors={exc.field: exc.message}, status=422)
    response = RedirectResponse("/app", status_code=303)
    set_cookie(response, request, COOKIE, started.token, max_age=int(panel_sessions.ABSOLUTE.total_seconds()))
    response.delete_cookie(CHALLENGE_COOKIE, path="/")
    return response
