"""The error table rendered as panel pages: the same codes and messages as the API, in HTML."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from core.errors import LipapushError
from web.panel.security import LoginRequired, login_url, request_id
from web.panel.templating import render

PREFIXES = ("/admin", "/app", "/login", "/logout", "/join")
TITLES = {401: "Sign in needed", 403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Slow down"}


def is_panel(request: Request) -> bool:
    return request.url.path == "/" or request.url.path.startswith(PREFIXES)


def panel_error(request: Request, exc: LipapushError) -> Response:
    if isinstance(exc, LoginRequired):
        return RedirectResponse(login_url(request), status_code=303)
    viewer = getattr(request.state, "viewer", None)
    return render(
        request,
        "error.html",
        {
            "title": TITLES.get(exc.status, "Something is wrong"),
            "message": exc.message,
            "request_id": request_id(),
            "back": request.headers.get("referer") if request.method == "POST" else None,
        },
        viewer=viewer,
        status=exc.status,
    )


def panel_validation_error(request: Request, detail: str) -> Response:
    viewer = getattr(request.state, "viewer", None)
    status = 404 if "path" in detail else 422
    return render(
        request,
        "error.html",
        {"title": TITLES.get(status, "Check the form"), "message": detail, "request_id": request_id()},
        viewer=viewer,
        status=status,
    )
