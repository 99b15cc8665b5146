"""Settings → Activity (/app/settings/activity): the business's activity log, newest first: who did what
(its people, its API keys, AI agents' tool calls through the MCP server), filtered by key, by action
and to agents' tool calls. The owner's, as GET /api/activity (core.audit.use_cases decides and words
each row; this page parses the filters and renders)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.access.permissions import Permission
from core.audit import use_cases
from core.errors import InvalidInput
from web.panel.app_settings import settings_page
from web.panel.forms import int_cursor, page_url, parse_uuid
from web.panel.security import CurrentViewer, business

router = APIRouter(include_in_schema=False)

PATH = "/app/settings/activity"
PAGE = 50
# Where an action came from (core.access.actor.Via), in the words of the page.
VIA_NAMES = {
    "api": "API",
    "panel": "Panel",
    "telegram": "Telegram",
    "ussd": "USSD",
    "cli": "Command line",
    "mcp": "AI agent (MCP)",
    "job": "Automatic",
}


def _form(request: Request) -> dict[str, str]:
    qp = request.query_params
    return {
        "key": qp.get("key", "").strip()[:200],
        "action": qp.get("action", "").strip()[:200],
        # a checkbox: present when ticked, whatever its value
        "tools": "1" if qp.get("tools") else "",
    }


@router.get(PATH, response_class=HTMLResponse)
async def activity_page(request: Request, viewer: CurrentViewer, before: str = "") -> HTMLResponse:
    business(viewer, Permission.audit_read)
    actor = viewer.actor
    form = _form(request)
    errors: dict[str, str] = {}
    key_id = parse_uuid(form["key"], "key", errors, "Choose a key from the list.")
    cursor = int_cursor(before.strip()[:40], errors)
    ctx: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "keys": await use_cases.activity_keys(actor),
        "via_names": VIA_NAMES,
        "items": [],
        "filtered": any(form.values()),
        "next_url": None,
        "first_url": None,
    }
    if not errors:
        try:
            page = await use_cases.business_activity(
                actor,
                key_id=key_id,
                action=form["action"],
                tool_calls_only=bool(form["tools"]),
                before=cursor,
                limit=PAGE,
            )
        except InvalidInput as exc:  # an action longer than any there is
            errors[exc.field or "action"] = exc.message
        else:
            ctx["items"] = page.items
            if page.older is not None:
                ctx["next_url"] = page_url(PATH, form, before=page.older)
            if cursor is not None:
                ctx["first_url"] = page_url(PATH, form)
    return settings_page(request, viewer, "app/settings_activity.html", ctx, status=422 if errors else 200)
