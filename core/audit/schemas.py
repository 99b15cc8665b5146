"""What a business reads of its own activity log (core/audit/use_cases.py): the same page for the API
(GET /api/activity) and the panel (Settings → Activity)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.tenants.models import Mode


class ActivityKeyOut(BaseModel):
    """One of the business's API keys, as the activity filter lists them (revoked ones too: their past
    actions stay in the log)."""

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, e.g. lp_test_ab12")
    mode: Mode
    revoked: bool


class ActivityItem(BaseModel):
    id: int = Field(description="Increasing: pass the last one you saw as `before` for older rows")
    at: datetime = Field(description="When it happened (UTC)")
    action: str = Field(description="What was done, e.g. apikey.created, export.customers, mcp.tool_call")
    who: str = Field(
        description='The person\'s email, "API key <prefix> (<name>)" for what an API key (or an AI agent '
        'with one) did, "lipapush support" for the platform\'s staff, "lipapush" for automatic work'
    )
    api_key_id: uuid.UUID | None = Field(default=None, description="The API key it was done with")
    key_prefix: str | None = Field(default=None, description="That key's prefix, e.g. lp_test_ab12")
    via: str | None = Field(
        default=None, description="Where it came from: api, panel, telegram, ussd, cli, mcp, job"
    )
    target: str | None = Field(default=None, description="The id of what it was done to, when there is one")
    summary: str = Field(
        description="One readable line, e.g. request_payment(phone=2547•••123, amount=10) → ok"
    )
    # An AI agent's tool call through the MCP server (action mcp.tool_call); null on other rows.
    tool: str | None = Field(default=None, description="mcp.tool_call: the tool called")
    arguments: dict[str, Any] | None = Field(
        default=None, description='mcp.tool_call: its arguments, secrets shown as "***"'
    )
    outcome: str | None = Field(default=None, description="mcp.tool_call: ok or error")
    error: str | None = Field(default=None, description="mcp.tool_call: the error code, when it failed")
    latency_ms: int | None = Field(default=None, description="mcp.tool_call: how long it took")
    transport: str | None = Field(default=None, description="mcp.tool_call: http or stdio")


class ActivityPage(BaseModel):
    items: list[ActivityItem]
    older: int | None = Field(
        default=None, description="Pass as `before` for the next, older page; null on the last page"
    )
