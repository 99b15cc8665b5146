"""Tool errors an agent can act on: the same codes and words as the REST API's error bodies.

A tool raises our domain errors as it would for the API; `agent_tool` turns them into the SDK's
ToolError (the only exception whose message reaches the agent: anything else becomes a bare "Error
executing tool"), after noting the code and HTTP status for the audit and usage rows."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata, func_metadata
from pydantic import ValidationError

from core.errors import LipapushError
from web.mcp.context import current_call

P = ParamSpec("P")
R = TypeVar("R")

# Every agent tool by name, so arguments the SDK refused before the tool ran can be explained in our
# words (explain_arguments).
TOOL_FUNCTIONS: dict[str, Callable[..., Awaitable[Any]]] = {}


def explain(exc: LipapushError) -> str:
    text = f"{exc.message} (error: {exc.code})"
    retry = exc.fields.get("retry_after")
    if isinstance(retry, int):
        text += f" Retry after {retry} seconds."
    return text


def explain_invalid(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "Invalid arguments: " + "; ".join(parts) + " (error: invalid_input)"


@functools.cache
def _arguments_of(name: str) -> FuncMetadata | None:
    fn = TOOL_FUNCTIONS.get(name)
    if fn is None:
        return None
    # As the SDK builds it: the Context a tool may take is injected, never an argument.
    context = find_context_parameter(fn)
    return func_metadata(fn, skip_names=[context] if context else [])


def explain_arguments(name: str, arguments: dict[str, Any]) -> str | None:
    """Why the SDK refused these arguments of tool `name` before it ran, in explain_invalid's form.

    The SDK answers such a call with pydantic's own dump ("1 validation error for …Arguments",
    input values, a documentation link) and no error code; validating again with the same model
    (the SDK's func_metadata, as it built it for the tool) gives the errors to say it our way. None
    when they validate after all: the caller keeps the SDK's text."""
    try:
        meta = _arguments_of(name)
        if meta is not None:
            meta.validate_arguments(arguments)
    except ValidationError as exc:
        return explain_invalid(exc)
    except Exception:  # the SDK's own text stands; this is a courtesy, never a new failure
        return None
    return None


def agent_tool(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        state = current_call()
        try:
            return await fn(*args, **kwargs)
        except LipapushError as exc:
            state.error, state.status = exc.code, exc.status
            state.notes["text"] = explain(exc)
            raise ToolError(state.notes["text"]) from exc
        except ValidationError as exc:
            state.error, state.status = "invalid_input", 422
            state.notes["text"] = explain_invalid(exc)
            raise ToolError(state.notes["text"]) from exc
        except Exception:
            # The SDK logs it and tells the agent only that the tool failed, as a 500 would.
            state.error, state.status = "internal_error", 500
            raise

    TOOL_FUNCTIONS[fn.__name__] = run
    return run


def note_target(value: Any) -> None:
    """The object a call touched, for its audit row."""
    if value is not None:
        current_call().target = str(value)
