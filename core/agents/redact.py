"""What an audit row keeps of a tool call's arguments: enough to tell what was asked, never a secret.

Confirmation tokens, the owner's reversal code and anything named like a secret become "***"; phone
numbers are masked as every other audit row masks them; long text is cut; the whole is bounded, so a
caller cannot grow the audit log with one call. Text no database can store (a NUL, a lone surrogate)
is kept as U+FFFD: the call it came with was refused, and its audit row must still be written.
"""

from __future__ import annotations

from typing import Any

from core.phones import mask_msisdn
from core.text import shown

SECRET_NAMES = ("token", "code", "secret", "password", "pin", "key", "credential")
# An idempotency key is the caller's own label, not a secret: kept, as the payments table keeps it.
NOT_SECRET = frozenset({"idempotency_key", "voucher_code"})
PHONE_NAMES = frozenset({"phone", "msisdn"})
MAX_TEXT = 100
MAX_ITEMS = 20


def _is_secret(name: str) -> bool:
    name = name.lower()
    return name not in NOT_SECRET and any(part in name for part in SECRET_NAMES)


def _value(name: str, value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if _is_secret(name):
        return "***"
    if isinstance(value, str):
        value = shown(value)
        if name.lower() in PHONE_NAMES:
            return mask_msisdn(value) if value.isdigit() and len(value) >= 9 else value[:4] + "…"
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if depth >= 2:
        return "…"
    if isinstance(value, dict):
        return redact(value, depth=depth + 1)
    if isinstance(value, list | tuple):
        return [_value(name, v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    return shown(str(value))[:MAX_TEXT]


def redact(arguments: dict[str, Any] | None, *, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate((arguments or {}).items()):
        if i >= MAX_ITEMS:
            out["…"] = f"{len(arguments or {}) - MAX_ITEMS} more"
            break
        out[shown(str(name))[:40]] = _value(str(name), value, depth)
    return out
