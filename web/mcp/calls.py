"""The middleware every MCP message passes: who is calling (checked again on every message, so a
revoked key's open session is refused on its next call), which tools it may list and call
(core.agents.catalogue), and the record each tool call leaves (core.agents.calls)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ListToolsResult, TextContent

from core.access.actor import Actor, Via
from core.agents import catalogue
from core.agents.calls import ToolCall, record_call
from core.auth.schemas import Principal
from core.auth.service import auth
from core.db import Scope, utcnow
from core.errors import AuthenticationFailed, InvalidInput, LipapushError
from core.runtime import unit_of_work
from core.tenants.models import TenantKind
from core.tenants.service import tenants
from core.text import first_unstorable, shown, strings_in
from core.usage.recorder import UsageRecorder
from web.deps import API_KEY_LOOKUP, actor_of
from web.mcp.context import Caller, CallState, call_var, caller_var
from web.mcp.errors import explain, explain_arguments

# JSON-RPC's implementation-defined server error range: a refused key on a message that is not a
# tool call (a tool call's refusal is a tool error the agent reads).
UNAUTHORIZED = -32001


@dataclass(frozen=True, slots=True)
class Identity:
    actor: Actor
    kind: TenantKind


async def identify(caller: Caller) -> Identity:
    """The key's actor, read from the database now (HTTP: by the transport, for this request)."""
    principal: Principal | None = caller.principal
    if principal is None:
        async with unit_of_work(scope=API_KEY_LOOKUP) as session:
            principal = await auth.principal_from_api_key(session, caller.key)
    if principal.api_key_id is None or principal.tenant_id is None:
        raise AuthenticationFailed(
            "The MCP server takes an API key (lp_test_… or lp_live_…), not a login token."
        )
    async with unit_of_work(readonly=True, scope=Scope.tenant(principal.tenant_id)) as session:
        kind = (await tenants.get(session, principal.tenant_id)).kind
    return Identity(actor=actor_of(principal, via=Via.mcp), kind=kind)


def unstorable_argument(arguments: dict[str, Any]) -> InvalidInput | None:
    """Text no database can store, refused by the field that carries it in the REST API's words
    (web.limits checks /api bodies; a JSON-RPC envelope never reaches that check)."""
    bad = first_unstorable(strings_in(arguments))
    return None if bad is None else InvalidInput(*bad)


def _refused(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _is_error(result: HandlerResult) -> bool:
    if isinstance(result, CallToolResult):
        return bool(result.is_error)
    if isinstance(result, dict):
        return bool(result.get("isError") or result.get("is_error"))
    return False


class AgentCalls:
    """`stdio`: the caller of every message of a stdio server (one key for the process's life)."""

    def __init__(self, *, recorder: UsageRecorder | None, stdio: Caller | None = None) -> None:
        self.recorder = recorder
        self.stdio = stdio

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        caller = caller_var.get() or self.stdio
        if caller is None:
            raise MCPError(UNAUTHORIZED, "Send 'Authorization: Bearer <API key>' with every request.")
        if ctx.request_id is None:  # a notification: nothing to answer, nothing to record
            return await call_next(ctx)
        if ctx.method == "tools/call":
            return await self._tool_call(ctx, call_next, caller)
        try:
            who = await identify(caller)
        except LipapushError as exc:
            raise MCPError(UNAUTHORIZED, explain(exc)) from exc
        result = await call_next(ctx)
        if ctx.method == "tools/list":
            allowed = catalogue.visible(who.actor, who.kind)
            if isinstance(result, ListToolsResult):
                result = result.model_copy(update={"tools": [t for t in result.tools if t.name in allowed]})
            elif isinstance(result, dict) and isinstance(result.get("tools"), list):
                # The SDK hands the result on already serialised (its wire names).
                result = {**result, "tools": [t for t in result["tools"] if t.get("name") in allowed]}
        return result

    async def _tool_call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, caller: Caller
    ) -> HandlerResult:
        params = dict(ctx.params or {})
        name = str(params.get("name") or "")[:80]
        raw = params.get("arguments")
        arguments: dict[str, Any] = raw if isinstance(raw, dict) else {}
        started, at = time.perf_counter(), utcnow()
        try:
            who = await identify(caller)
        except LipapushError as exc:
            # Nobody we can name: nothing to audit (the transport's usage log counts refused keys).
            return _refused(explain(exc))
        state = CallState(actor=who.actor)
        refusal: LipapushError | None = (
            catalogue.refusal(who.actor, name, who.kind)
            if name not in catalogue.visible(who.actor, who.kind)
            else unstorable_argument(arguments)
        )
        if refusal is not None:
            state.error, state.status = refusal.code, refusal.status
            result: HandlerResult = _refused(explain(refusal))
        else:
            token = call_var.set(state)
            try:
                result = await call_next(ctx)
            finally:
                call_var.reset(token)
            if _is_error(result) and (text := state.notes.get("text")) is not None:
                # The SDK puts "Error executing tool <name>: " before a tool's own message; the agent
                # gets the same words as from a refusal here (and as the REST API's detail).
                result = _refused(text)
            elif _is_error(result) and state.error is None:
                # Failed in the SDK, outside the tool: arguments not matching the tool's schema (its
                # text is pydantic's dump: the agent gets the fields and reasons, as from the tools),
                # else a result it could not convert (a crash, as a 500 would be).
                text = explain_arguments(name, arguments)
                if text is None:
                    state.error, state.status = "internal_error", 500
                else:
                    state.error, state.status = "invalid_input", 422
                    result = _refused(text)
        call = ToolCall(
            tool=shown(name) or "(none)",
            arguments=arguments,
            status=state.status,
            error=state.error,
            latency_ms=int((time.perf_counter() - started) * 1000),
            transport=caller.transport,
            at=at,
            target=state.target,
        )
        await record_call(
            who.actor, caller.key, call, recorder=self.recorder, request_id=caller.request_id, ip=caller.ip
        )
        return result
