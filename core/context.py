"""Per-request facts (request id, client address) that logs and audit rows carry, set by each entry point."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    request_id: str
    ip: str | None = None


_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "lipapush_request", default=None
)


def current_request() -> RequestInfo | None:
    return _current.get()


def set_request(info: RequestInfo | None) -> contextvars.Token[RequestInfo | None]:
    return _current.set(info)


def reset_request(token: contextvars.Token[RequestInfo | None]) -> None:
    _current.reset(token)
