"""An MCP client of the official SDK, connected to the test server's /mcp with an API key."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import select

from core.audit.models import AuditLog
from core.runtime import unit_of_work

Mode = Literal["auto", "legacy"]
# auto: the SDK's default, the stateless 2026-07-28 protocol; legacy: the 2025-11-25 handshake.
MODES: tuple[Mode, ...] = ("auto", "legacy")


@contextlib.asynccontextmanager
async def mcp_client(url: str, key: str | None, *, mode: Mode = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(90.0)) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def call(client: Client, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tool's structured result; fails the test with the tool's own words when it errs."""
    result = await client.call_tool(name, arguments or {})
    assert not result.is_error, f"{name} failed: {text_of(result)}"
    assert result.structured_content is not None
    return dict(result.structured_content)


async def refused(client: Client, name: str, arguments: dict[str, Any] | None = None) -> str:
    """The error text of a call expected to fail."""
    result = await client.call_tool(name, arguments or {})
    assert result.is_error, f"{name} succeeded: {json.dumps(result.structured_content)[:300]}"
    return text_of(result)


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def tool_calls(tenant_id: Any) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.tenant_id == tenant_id, AuditLog.action == "mcp.tool_call")
            .order_by(AuditLog.id)
        )
        return list(rows)
