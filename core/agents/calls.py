"""What every tool call leaves behind: an audit row (`mcp.tool_call`) and a row in the API request log.

The audit row names the tool, its arguments (core.agents.redact), the outcome, the error code when it
failed, how long it took and over which transport; `target` is the object it touched when it names one.
It is written in a transaction of its own after the call, so a refused or failed call is recorded too
(a use case that refused rolled its own transaction back).

The request-log row (core.usage) makes MCP calls count like API calls: method `MCP`, route
`/mcp/<tool>`, the HTTP status the same error would have had on the REST API. A call of
`request_payment` answered without error counts as a push (core.usage.service.is_push).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.access.actor import Actor
from core.agents.redact import redact
from core.audit.service import record
from core.auth.tokens import hash_api_key
from core.db import Scope
from core.runtime import unit_of_work
from core.usage.networks import network_of
from core.usage.recorder import Caller, RequestFacts, UsageRecorder

log = logging.getLogger(__name__)

MCP_METHOD = "MCP"
KEY_PREFIX_LENGTH = 12
Transport = Literal["http", "stdio"]


def route_of(tool: str) -> str:
    return f"/mcp/{tool[:60]}"


@dataclass(frozen=True, slots=True)
class ToolCall:
    tool: str
    arguments: dict[str, Any]
    status: int  # 200, or the HTTP status of the error on the REST API (500 for the unexpected)
    error: str | None  # the error's code
    latency_ms: int
    transport: Transport
    at: datetime
    target: str | None = None

    @property
    def outcome(self) -> str:
        return "ok" if self.error is None else "error"


async def audit_call(actor: Actor, call: ToolCall) -> None:
    """The audit row, in its own transaction; a failure to write it is logged, never the caller's."""
    detail: dict[str, Any] = {
        **actor.audit_detail(),
        "tool": call.tool,
        "arguments": redact(call.arguments),
        "outcome": call.outcome,
        "latency_ms": call.latency_ms,
        "transport": call.transport,
    }
    if call.error is not None:
        detail["error"] = call.error
    try:
        async with unit_of_work(scope=Scope.tenant(actor.require_tenant())) as session:
            await record(
                session,
                action="mcp.tool_call",
                tenant_id=actor.tenant_id,
                user_id=actor.audit_user_id,
                target=call.target,
                detail=detail,
            )
    except Exception:
        log.exception("the audit row of MCP tool call %s could not be written", call.tool)


def usage_facts(key: str, call: ToolCall, *, request_id: str | None, ip: str | None) -> RequestFacts:
    return RequestFacts(
        caller=Caller(key_hash=hash_api_key(key), key_prefix=key[:KEY_PREFIX_LENGTH]),
        method=MCP_METHOD,
        route=route_of(call.tool),
        status_code=call.status,
        latency_ms=call.latency_ms,
        request_id=request_id,
        network=network_of(ip),
        at=call.at,
    )


async def record_call(
    actor: Actor,
    key: str,
    call: ToolCall,
    *,
    recorder: UsageRecorder | None,
    request_id: str | None,
    ip: str | None,
) -> None:
    await audit_call(actor, call)
    if recorder is not None:
        recorder.record(usage_facts(key, call, request_id=request_id, ip=ip))
