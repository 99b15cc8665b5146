"""Honest tool annotations: what a host may assume before it lets an agent call a tool."""

from __future__ import annotations

from mcp_types import ToolAnnotations

READS = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
# A prompt on a customer's phone: reaches outside, and a repeat with the same idempotency key is the
# same payment.
PROMPTS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
# Writes of our own (vouchers, files behind a link).
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
MOVES_MONEY = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
)
