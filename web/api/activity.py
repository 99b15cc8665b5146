"""/api/activity: the business's activity log (audit trail), filterable by API key; core/audit/use_cases.py
decides who may and what each row says."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from core.audit import use_cases
from core.audit.schemas import ActivityPage
from web.deps import CurrentActor

router = APIRouter(tags=["activity"])


@router.get("/activity")
async def list_activity(
    actor: CurrentActor,
    key_id: Annotated[
        uuid.UUID | None,
        Query(description="Only what was done with this API key (GET /api/api-keys), revoked ones too"),
    ] = None,
    action: Annotated[
        str, Query(max_length=64, description="Only actions starting with this, e.g. apikey. or export.")
    ] = "",
    tool_calls_only: Annotated[
        bool, Query(description="Only AI agents' tool calls through the MCP server (mcp.tool_call)")
    ] = False,
    before: Annotated[
        int | None,
        Query(ge=1, le=2**63 - 1, description="The `older` of the page before: rows older than it"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ActivityPage:
    """Who did what in this business and when, newest first: its people (by email), its API keys
    ("API key <prefix> (<name>)") and AI agents' tool calls made with a key through the MCP server,
    each with a one-line summary. Another business's key id answers 404. The owner; an API key needs
    business:read."""
    return await use_cases.business_activity(
        actor, key_id=key_id, action=action, tool_calls_only=tool_calls_only, before=before, limit=limit
    )
