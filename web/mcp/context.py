"""Who is calling and what the current tool call has found out, carried from the transport to the
middleware and the tool by context variables (each MCP message runs in its caller's context)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Literal

from core.access.actor import Actor
from core.auth.schemas import Principal

Transport = Literal["http", "stdio"]


@dataclass(frozen=True, slots=True)
class Caller:
    key: str  # the API key as presented: hashed for the usage log, never stored or logged
    transport: Transport
    principal: Principal | None = None  # HTTP: checked by the transport for this very request
    ip: str | None = None
    request_id: str | None = None


@dataclass(slots=True)
class CallState:
    """Filled in by the tool as it runs, read by the middleware when it records the call."""

    actor: Actor
    error: str | None = None
    status: int = 200
    target: str | None = None
    notes: dict[str, str] = field(default_factory=dict)


caller_var: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "lipapush_mcp_caller", default=None
)
call_var: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("lipapush_mcp_call", default=None)


def current_call() -> CallState:
    state = call_var.get()
    if state is None:  # a tool run outside the middleware (a programming error, never a caller's)
        raise RuntimeError("an MCP tool ran without its call state")
    return state


def current_actor() -> Actor:
    return current_call().actor
