"""An AI agent's session, without the AI: the calls an agent makes to lipapush's MCP server, made by
hand with the official MCP Python SDK over Streamable HTTP. Run it to see what an agent sees.

    pip install "mcp>=2.3,<2.4"
    LIPAPUSH_URL=http://127.0.0.1:8000 LIPAPUSH_API_KEY=lp_test_... CUSTOMER_PHONE=0722000111 \
        python mcp_session.py

Prints one line per step. Exit status: 0 paid, 1 not paid (or still pending after the wait), 2 a tool
call was refused.
"""

import asyncio
import os
import sys
import uuid
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

LIPAPUSH_URL = os.environ.get("LIPAPUSH_URL", "http://127.0.0.1:8000").rstrip("/")
LIPAPUSH_API_KEY = os.environ["LIPAPUSH_API_KEY"]  # a test key (lp_test_...): the simulator only
CUSTOMER_PHONE = os.environ.get("CUSTOMER_PHONE", "0722000111")
AMOUNT = int(os.environ.get("AMOUNT", "150"))  # whole shillings


class Refused(Exception):
    """A tool answered with an error: its text says what was wrong and ends with (error: <code>)."""


async def call(agent: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    # region call
    result = await agent.call_tool(tool, arguments)
    if result.is_error:
        raise Refused(f"{tool}: " + " ".join(getattr(c, "text", "") for c in result.content))
    # Every lipapush tool answers with structured JSON (and the same as text, for older hosts).
    return dict(result.structured_content or {})
    # endregion


async def main() -> int:
    # region connect
    # The API key is a static bearer token sent with every request: there is no OAuth step.
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {LIPAPUSH_API_KEY}"},
        timeout=httpx2.Timeout(90.0),  # wait_for_payment may hold a request for up to 55 s
    )
    async with http, Client(streamable_http_client(f"{LIPAPUSH_URL}/mcp", http_client=http)) as agent:
        tools = sorted(t.name for t in (await agent.list_tools()).tools)
        print(f"connected to {LIPAPUSH_URL}/mcp")
        print(f"tools: {', '.join(tools)}")
        # endregion
        try:
            return await session(agent)
        except Refused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 2


async def session(agent: Client) -> int:
    # region pay
    # One idempotency_key per order: if the call is lost and sent again with the same key, lipapush
    # returns the first payment instead of prompting the customer a second time.
    order_id = os.environ.get("ORDER_ID") or uuid.uuid4().hex[:12]
    payment = await call(
        agent,
        "request_payment",
        {
            "phone": CUSTOMER_PHONE,
            "amount": AMOUNT,
            "name": "Wanjiku",
            "reference": order_id[:12],
            "idempotency_key": f"order-{order_id}",
        },
    )
    print(f"payment requested: {payment['id']} is {payment['status']} (prompt sent, not paid yet)")

    # Each wait holds the call up to 55 s; still pending afterwards means: wait again.
    for _ in range(3):
        payment = await call(agent, "wait_for_payment", {"payment_id": payment["id"], "timeout_seconds": 45})
        if payment["status"] != "pending":
            break
    print(f"final status: {payment['status']} (receipt {payment['receipt'] or 'none'})")
    # endregion

    # region books
    found = await call(agent, "customer_summary", {"phone": CUSTOMER_PHONE})
    customer = found["customer"]
    print(
        f"customer: {customer['name']} {customer['phone']}, paid KES {customer['paid_total']} "
        f"in {customer['paid_count']} payment(s), {found['mode']} book"
    )

    link = await call(agent, "export_transactions", {"phone": customer["phone"]})
    print(f"export: {link['rows']} row(s), {link['filename']}")
    print(f"export link: {link['url']} (no credentials needed, until {link['expires_at']})")
    # endregion
    return 0 if payment["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
