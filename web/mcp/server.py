"""One MCP server (MCPServer from the official SDK) with lipapush's tools, resources and middleware.

A fresh server per app (tests make several apps in one process) and per stdio process."""

from __future__ import annotations

from mcp.server import MCPServer

from core.usage.recorder import UsageRecorder
from web.mcp import resources, tools_books, tools_hotspot, tools_money, tools_payments
from web.mcp.calls import AgentCalls
from web.mcp.context import Caller

INSTRUCTIONS = """\
lipapush collects M-Pesa payments into one Kenyan business's own Till or Paybill and pays money out of it.
You act for the business whose API key you were given, with that key's scopes: you see only the tools
it allows. A test key (lp_test_…) reaches the M-Pesa simulator only: no real money, no real phone.

- Amounts are whole Kenyan shillings (KES), except fields ending in _cents. Phones: 07…, 01…, +254… or 254….
- request_payment only SENDS a prompt: the customer has not paid until wait_for_payment or get_payment
  says `success`. Always send an idempotency_key and reuse it when you retry.
- Money out (request_payout, reverse_payment) takes two calls: the first returns a summary and a
  confirmation_token and does nothing; show the summary to your person and call again with the token only
  if they agree. A reversal also needs the 6-digit code sent to the business's owner.
- Errors say what was wrong and what to do, with a code: read lipapush://errors. Test phone numbers that end
  each way: lipapush://guides/test-mode-magic-numbers.
"""


def build_server(*, recorder: UsageRecorder | None, stdio: Caller | None = None) -> MCPServer:
    server: MCPServer = MCPServer(
        "lipapush",
        title="lipapush M-Pesa",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        log_level="WARNING",
        middleware=[AgentCalls(recorder=recorder, stdio=stdio)],
    )
    for module in (tools_payments, tools_books, tools_money, tools_hotspot):
        module.register(server)
    resources.register(server)
    return server
