"""Identifiers in Africa's Talking's shapes: ``ATXid_<32 hex>`` for messages, ``ATUid_<32 hex>`` for USSD."""

from __future__ import annotations

import secrets


def message_id() -> str:
    return f"ATXid_{secrets.token_hex(16)}"


def session_id() -> str:
    return f"ATUid_{secrets.token_hex(16)}"
