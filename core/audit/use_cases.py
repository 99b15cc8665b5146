"""A business's own activity log, from the API and the panel, written once: who did what and when, by
person and by API key, AI agents' tool calls through the MCP server included.

Who may: the owner (`audit_read`), and an API key with business:read, which sees the whole business's
activity as the owner does. A platform admin reads every business's log on /admin/audit
(core/audit/use_cases_admin.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.audit import reports
from core.audit.schemas import ActivityItem, ActivityKeyOut, ActivityPage
from core.auth.models import ApiKey
from core.errors import InvalidInput, NotFound

MAX_PAGE = 200
MAX_ACTION = 64  # audit_log.action's length
NO_SUCH_KEY = "No such API key. List this business's keys with GET /api/api-keys (revoked ones too)."
SUPPORT = "lipapush support"
SYSTEM = "lipapush"
# Who did it and from where are columns of their own; the summary says what was done.
NOT_SUMMARISED = frozenset({"via", "api_key_id", "impersonating"})
SUMMARY_CHARS = 200
VALUE_CHARS = 40


@use_case(Permission.audit_read, query=True)
async def business_activity(
    actor: Actor,
    *,
    key_id: uuid.UUID | None = None,
    action: str = "",
    tool_calls_only: bool = False,
    before: int | None = None,
    limit: int = reports.PAGE,
) -> ActivityPage:
    """The business's audit rows, newest first, `limit` (1 to 200) a page, a keyset page on the id:
    pass `older` as `before` for the next. `key_id`: only what was done with that key (one of this
    business's, revoked or not); `action`: only actions starting with it (e.g. apikey.);
    `tool_calls_only`: only AI agents' tool calls through the MCP server (mcp.tool_call)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"A page holds 1 to {MAX_PAGE} rows.")
    action = action.strip()
    if len(action) > MAX_ACTION:
        raise InvalidInput(
            "action", f"An action is at most {MAX_ACTION} characters: type its start, e.g. apikey."
        )
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        if key_id is not None:
            key = await uow.session.get(ApiKey, key_id)
            if key is None or key.tenant_id != tenant_id:
                raise NotFound(NO_SUCH_KEY)  # another business's key is as unknown as a made-up id
        page = await reports.activity_page(
            uow.session,
            tenant_id=tenant_id,
            key_id=key_id,
            action=action,
            tool_calls_only=tool_calls_only,
            before=before,
            limit=limit,
        )
        return ActivityPage(items=[_item(r) for r in page.rows], older=page.older)


@use_case(Permission.audit_read, query=True)
async def activity_keys(actor: Actor) -> list[ActivityKeyOut]:
    """Every API key of the business, newest first, revoked ones too (their past actions stay in the
    log): what the activity log's key filter offers."""
    tenant_id = actor.require_tenant()
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await uow.session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at.desc())
        )
        return [
            ActivityKeyOut(
                id=k.id, name=k.name, prefix=k.prefix, mode=k.mode, revoked=k.revoked_at is not None
            )
            for k in rows
        ]


# -- one row, readable ------------------------------------------------------------------------------


def key_label(key: ApiKey | None) -> str:
    return f"API key {key.prefix} ({key.name})" if key is not None else "an API key no longer on record"


def _who(a: reports.ActivityRow, key_id: uuid.UUID | None) -> str:
    detail = a.row.detail or {}
    if key_id is not None:
        return key_label(a.key)
    if detail.get("impersonating") or (a.row.user_id is not None and a.email is None):
        # A platform admin (viewing as the business, or acting on it from the admin pages): their
        # account is the platform's, so the business reads who they are for, not their address.
        return SUPPORT
    return a.email or SYSTEM


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in values.items())


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def tool_call_summary(detail: dict[str, Any]) -> str:
    """`request_payment(phone=2547•••123, amount=10) → ok`, or `→ error: not_found`."""
    arguments = detail.get("arguments")
    call = f"{detail.get('tool') or '?'}({_pairs(arguments) if isinstance(arguments, dict) else ''})"
    outcome = str(detail.get("outcome") or "?")
    if outcome == "error" and detail.get("error"):
        outcome = f"error: {detail['error']}"
    return _clip(f"{call} → {outcome}")


def summary(action: str, detail: dict[str, Any]) -> str:
    """One line saying what was done: a tool call as the agent made it, any other row's details."""
    if action == reports.MCP_TOOL_CALL:
        return tool_call_summary(detail)
    return _clip(_pairs({k: v for k, v in detail.items() if k not in NOT_SUMMARISED}))


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _item(a: reports.ActivityRow) -> ActivityItem:
    row = a.row
    detail: dict[str, Any] = row.detail if isinstance(row.detail, dict) else {}
    key_id = reports.acting_key_id(row)
    item = ActivityItem(
        id=row.id,
        at=row.created_at,
        action=row.action,
        who=_who(a, key_id),
        api_key_id=key_id,
        key_prefix=a.key.prefix if a.key is not None else None,
        via=_str(detail.get("via")),
        target=row.target,
        summary=summary(row.action, detail),
    )
    if row.action == reports.MCP_TOOL_CALL:
        arguments = detail.get("arguments")
        item.tool = _str(detail.get("tool"))
        item.arguments = arguments if isinstance(arguments, dict) else None
        item.outcome = _str(detail.get("outcome"))
        item.error = _str(detail.get("error"))
        item.latency_ms = _int(detail.get("latency_ms"))
        item.transport = _str(detail.get("transport"))
    return item
