"""Who is looking at a panel page, and the rules every page obeys.

- The session cookie (`lp_session`) is HttpOnly, SameSite=Lax, Secure when the request came over HTTPS
  (directly or through a proxy that says so), and new at every sign-in.
- Every POST carries the session's CSRF token (a hidden `csrf_token` field, or `X-CSRF-Token` for
  scripts), compared in constant time; a request whose Origin names another site is refused too.
  The sign-in form, before there is a session, uses a double-submit cookie (`lp_csrf`).
- A platform admin viewing as a business sees the business view read-only; writing needs an explicit
  request with a reason, and every request made while impersonating is audit-logged.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse

from core.access.actor import Actor, Via
from core.access.permissions import Permission
from core.auth import panel_sessions
from core.auth.models import Role
from core.context import current_request
from core.db import Scope
from core.errors import LipapushError, PermissionDenied
from core.runtime import unit_of_work
from core.tenants.models import Tenant, TenantKind
from web.panel.templating import render

COOKIE = "lp_session"
LOGIN_CSRF_COOKIE = "lp_csrf"
CHALLENGE_COOKIE = "lp_challenge"
BUSINESS_ROLES = (Role.owner, Role.manager, Role.cashier)
# A session cookie names no business: whose session it is, is what its lookup finds out.
SESSION_LOOKUP = Scope.platform("panel session cookie: its account")


class LoginRequired(LipapushError):
    """Rendered as a redirect to the sign-in page (see web.panel.errors)."""

    code = "login_required"
    status = 401


class CsrfFailed(LipapushError):
    code = "csrf_failed"
    status = 403


def is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=is_https(request),
        samesite="lax",
        path="/",
    )


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site: an open redirect would let a phishing link borrow our sign-in page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@dataclass
class Viewer:
    """The signed-in user on this request, and whom they act for."""

    user_id: uuid.UUID
    email: str
    role: Role
    own_tenant_id: uuid.UUID | None
    token: str
    csrf: str
    as_tenant_id: uuid.UUID | None = None
    as_tenant_name: str | None = None
    as_write: bool = False
    as_reason: str | None = None
    tenant_name: str | None = None
    tenant_kind: TenantKind | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.platform_admin

    @property
    def impersonating(self) -> bool:
        return self.as_tenant_id is not None

    @property
    def tenant_id(self) -> uuid.UUID | None:
        """The business whose view this is: the admin's impersonated one, or the user's own."""
        return self.as_tenant_id if self.impersonating else self.own_tenant_id

    @property
    def business_role(self) -> Role | None:
        """An impersonating admin sees what the owner sees."""
        if self.impersonating:
            return Role.owner
        return self.role if self.role in BUSINESS_ROLES else None

    @property
    def hotspot(self) -> bool:
        return self.tenant_kind is TenantKind.hotspot

    @property
    def own_account(self) -> Scope:
        """The scope for work on the signed-in user's own account: their business's, or the platform's
        for a platform admin, whose account belongs to no business."""
        if self.own_tenant_id is not None:
            return Scope.tenant(self.own_tenant_id)
        return Scope.platform("a platform admin's own account")

    @property
    def actor(self) -> Actor:
        """The same actor the API, the bot and USSD build for this user: core decides what it may do."""
        if self.impersonating:
            assert self.as_tenant_id is not None
            return Actor.impersonating(
                admin_id=self.user_id,
                tenant_id=self.as_tenant_id,
                writes=self.as_write,
                tenant_name=self.tenant_name,
            )
        return Actor.for_user(
            user_id=self.user_id,
            tenant_id=self.own_tenant_id,
            role=self.role,
            via=Via.panel,
            tenant_name=self.tenant_name,
        )


async def _viewer(request: Request) -> Viewer:
    token = request.cookies.get(COOKIE, "")
    async with unit_of_work(scope=SESSION_LOOKUP) as session:
        found = await panel_sessions.load(session, token)
        if found is None:
            raise LoginRequired("Sign in to continue.")
        row, user = found
        if panel_sessions.needs_touch(row):
            await panel_sessions.touch(session, token)
        viewer = Viewer(
            user_id=user.id,
            email=user.email,
            role=user.role,
            own_tenant_id=user.tenant_id,
            token=token,
            csrf=row.csrf_token,
        )
        if user.role is Role.platform_admin and panel_sessions.impersonating(row):
            viewer.as_tenant_id, viewer.as_write, viewer.as_reason = (
                row.as_tenant_id,
                row.as_write,
                row.as_reason,
            )
            await panel_sessions.record_impersonated_request(
                session, row=row, user_id=user.id, method=request.method, path=request.url.path
            )
        if viewer.tenant_id is not None:
            tenant = await session.get(Tenant, viewer.tenant_id)
            if tenant is not None:
                viewer.tenant_name, viewer.tenant_kind = tenant.name, tenant.kind
                if viewer.impersonating:
                    viewer.as_tenant_name = tenant.name
    request.state.viewer = viewer
    return viewer


async def _checked(request: Request, viewer: Annotated[Viewer, Depends(_viewer)]) -> Viewer:
    """The viewer, with this request's CSRF token checked when it changes anything."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        check_origin(request)
        sent = request.headers.get("x-csrf-token") or ""
        if not sent:
            form = await request.form()
            sent = str(form.get("csrf_token") or "")
        # As bytes: compare_digest refuses (TypeError) a str with anything but ASCII in it.
        if not sent or not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
            raise CsrfFailed(
                "This form has expired or did not come from lipapush: reload the page and try again."
            )
    return viewer


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise CsrfFailed("This request came from another site and was refused.")


CurrentViewer = Annotated[Viewer, Depends(_checked)]


def admin_only(viewer: Viewer) -> Viewer:
    if not viewer.is_admin:
        raise PermissionDenied("This page is for platform administrators.")
    return viewer


def business(viewer: Viewer, *wanted: Permission) -> uuid.UUID:
    """The business this page is for. With `wanted`, core is asked first (the same answer the API,
    the bot and USSD give), so a page refuses before it reads a form; the use case checks again."""
    tenant_id = viewer.tenant_id
    if tenant_id is None or viewer.business_role is None:
        raise PermissionDenied(
            "This page is for a business account. Platform admins: open a business and choose "
            "“View as this business”."
        )
    actor = viewer.actor
    for permission in wanted:
        actor.require(permission)
    return tenant_id


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='/')}"


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def check_login_csrf(request: Request, sent: str, message: str) -> None:
    """The public forms (sign-in, join, password reset): the double-submit cookie and the Origin check;
    `message` is the page's own words for an expired form."""
    check_origin(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfFailed(message)


def login_csrf_page(
    request: Request, template: str, ctx: Mapping[str, object], *, status: int = 200
) -> HTMLResponse:
    """A public form page: its `csrf` field and the `lp_csrf` cookie hold the same token (the browser's
    own when it has one)."""
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    response = render(request, template, {**ctx, "csrf": csrf}, status=status)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_id() -> str | None:
    info = current_request()
    return info.request_id if info else None
