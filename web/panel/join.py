"""/join/{code}: a staff member opens the link an owner emailed, chooses a password and is signed in.

Public, like /login, and protected the same way: a double-submit CSRF cookie (`lp_csrf`) and the
Origin check. The code is used once (core.auth.staff.join redeems it); an unknown, expired or used
code gets one page saying what to do. Posts and failed look-ups count per IP: past JOIN_LIMIT in
JOIN_WINDOW the page answers 429.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from core import ratelimit
from core.auth.staff import Invitation, invitation, join
from core.db import Scope
from core.errors import InvalidInput
from core.runtime import unit_of_work
from web.panel.auth_routes import begin_session, session_redirect
from web.panel.forms import check_new_password
from web.panel.security import check_login_csrf, client_ip, login_csrf_page
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

JOIN_LIMIT = 20
JOIN_WINDOW = 15 * 60
# A join code names no business until it is looked up, and the email chosen must be free across all.
BY_CODE = Scope.platform("staff join link: its invitation")


def _ip(request: Request) -> str:
    return client_ip(request) or "unknown"


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
    ctx = {"code": code, "inv": inv, "email": inv.email or email, "errors": errors or {}}
    return login_csrf_page(request, "app/join.html", ctx, status=status)


@router.get("/join/{code}", response_class=HTMLResponse)
async def join_form(request: Request, code: str) -> HTMLResponse:
    async with unit_of_work(readonly=True, scope=BY_CODE) as session:
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
    check_login_csrf(request, csrf_token, "This form has expired: open the link from the email again.")
    if await _too_many(request):
        return _slow_down(request)
    async with unit_of_work(readonly=True, scope=BY_CODE) as session:
        inv = await invitation(session, code=code)
    if inv is None:
        return _gone(request)
    errors: dict[str, str] = {}
    if not inv.email and not email.strip():
        errors["email"] = "Enter your email address."
    check_new_password(password, confirm_password, errors, missing="Choose a password.")
    if errors:
        return _form(request, code, inv, email=email, errors=errors, status=422)
    try:
        async with unit_of_work(scope=BY_CODE) as session:
            user = await join(session, code=code, password=password, email=email)
            token = await begin_session(session, request, user, ip=_ip(request))
    except InvalidInput as exc:
        if exc.field == "code":  # used in between: another tab, or someone else
            return _gone(request)
        return _form(request, code, inv, email=email, errors={exc.field: exc.message}, status=422)
    return session_redirect(request, token, "/app")
