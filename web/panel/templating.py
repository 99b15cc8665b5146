"""Jinja2 for the panel: one environment, autoescaped, with the house formats (KES 1,250; Nairobi time)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.money import format_cents, format_kes

if TYPE_CHECKING:
    from web.panel.security import Viewer

EAT = ZoneInfo("Africa/Nairobi")
TEMPLATES = Path(__file__).parent / "templates"


def _eat(at: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    return at.astimezone(EAT).strftime(fmt) if at else "–"


def _last_day(end: datetime | None, fmt: str = "%d %b %Y") -> str:
    """The last day of a period whose end is exclusive (an invoice for March ends at 1 April 00:00)."""
    return _eat(end - timedelta(seconds=1), fmt) if end else "–"


def _cents(cents: int | None) -> str:
    """KES 1,250 for whole shillings, KES 2.75 otherwise: how money reads on the panel."""
    if cents is None:
        return "–"
    return format_cents(cents).removesuffix(".00")


def _phone(msisdn: str | None) -> str:
    # 254712345678 -> 0712 345 678: how Kenyans write numbers
    if not msisdn or len(msisdn) != 12:
        return msisdn or "–"
    local = "0" + msisdn[3:]
    return f"{local[:4]} {local[4:7]} {local[7:]}"


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(kes=format_kes, cents=_cents, eat=_eat, last_day=_last_day, phone=_phone)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    viewer: Viewer | None = None,
    status: int = 200,
) -> HTMLResponse:
    ctx = {"request": request, "viewer": viewer, "path": request.url.path, **(context or {})}
    html = env.get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status)
    # Panel pages hold money and personal data: never cached, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return response
