"""The MCP server over Streamable HTTP, driven by the official SDK's client with a test key, in both
protocol generations: list the tools, request a payment, wait for it to succeed, find the customer,
get an export link that downloads an .xlsx; every call audited and counted in usage."""

from __future__ import annotations

import io
import random
import uuid

import httpx
import pytest
from openpyxl import load_workbook

from core.access.permissions import ApiScope
from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.mcp.support import MODES, Mode, call, mcp_client, tool_calls, tool_names
from tests.support.factories import make_api_key, make_tenant

DEFAULT_TOOLS = {
    "request_payment",
    "get_payment",
    "wait_for_payment",
    "list_payments",
    "search_customers",
    "customer_summary",
    "export_customers",
    "export_transactions",
    "get_dashboard",
    "get_wallet",
}


def a_phone(last4: str = "0111") -> str:
    return f"0722{random.randint(0, 99):02d}{last4}"


@pytest.mark.parametrize("mode", MODES)
async def test_an_agent_collects_a_payment_finds_the_customer_and_exports_the_book(
    server: LiveServer, client: httpx.AsyncClient, mode: Mode
) -> None:
    tenant, _ = await make_tenant(name="Duka la Agent", environment=Environment.simulator)
    key = await make_api_key(tenant=tenant)
    phone = a_phone()
    async with mcp_client(server.url, key, mode=mode) as agent:
        assert await tool_names(agent) == DEFAULT_TOOLS
        pending = await call(
            agent,
            "request_payment",
            {"phone": phone, "amount": 25, "name": "Wanjiru Agent", "idempotency_key": f"order-{mode}"},
        )
        assert (pending["status"], pending["amount"], pending["mode"]) == ("pending", 25, "test")
        again = await call(
            agent, "request_payment", {"phone": phone, "amount": 25, "idempotency_key": f"order-{mode}"}
        )
        assert again["id"] == pending["id"]  # the same payment: no second prompt

        paid = await call(agent, "wait_for_payment", {"payment_id": pending["id"], "timeout_seconds": 30})
        assert paid["status"] == "success" and paid["receipt"]

        found = await call(agent, "search_customers", {"q": phone[-6:]})
        assert found["total"] == 1 and found["mode"] == "test"
        assert (found["items"][0]["name"], found["items"][0]["paid_total"]) == ("Wanjiru Agent", 25)
        summary = await call(agent, "customer_summary", {"phone": phone})
        assert [p["id"] for p in summary["recent_payments"]] == [pending["id"]]

        link = await call(agent, "export_customers", {"q": "Wanjiru"})
        assert link["rows"] == 1 and link["url"].startswith(f"{server.url}/dl/")

    download = await client.get(link["url"])  # no credentials: the signed link is the permission
    assert download.status_code == 200
    assert download.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    sheet = load_workbook(io.BytesIO(download.content), read_only=True).active
    cells = [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert "Wanjiru Agent" in cells

    rows = await tool_calls(tenant.id)
    assert [r.detail["tool"] for r in rows] == [
        "request_payment",
        "request_payment",
        "wait_for_payment",
        "search_customers",
        "customer_summary",
        "export_customers",
    ]
    first = rows[0]
    assert first.detail["outcome"] == "ok" and first.detail["transport"] == "http"
    assert first.detail["arguments"]["phone"] != phone and first.detail["arguments"]["phone"].endswith("0111")
    assert first.target == pending["id"]

    await server.app.state.usage_recorder.flush()
    usage = await client.get("/api/usage", headers={"Authorization": f"Bearer {key}"})
    assert usage.status_code == 200, usage.text
    day = usage.json()["last_24h"]
    # The six tool calls (this GET is logged once it is answered); both request_payment calls answered.
    assert (day["totals"]["requests"], day["totals"]["pushes"]) == (6, 2)
    endpoints = {(e["method"], e["route"]): e["requests"] for e in day["endpoints"]}
    assert endpoints[("MCP", "/mcp/request_payment")] == 2


async def test_a_read_only_key_lists_no_writing_tool_and_is_refused_by_name(server: LiveServer) -> None:
    tenant, _ = await make_tenant(environment=Environment.simulator)
    key = await make_api_key(tenant=tenant, scopes=[ApiScope.payments_read, ApiScope.customers_read])
    async with mcp_client(server.url, key) as agent:
        assert await tool_names(agent) == {
            "get_payment",
            "wait_for_payment",
            "list_payments",
            "search_customers",
            "customer_summary",
        }
        result = await agent.call_tool("request_payment", {"phone": a_phone(), "amount": 10})
    assert result.is_error
    assert result.content[0].text == (  # type: ignore[union-attr]
        "This API key cannot call request_payment: it needs the payments:write scope. Create a key with "
        "it (panel: Settings → API keys) and connect with that key. (error: permission_denied)"
    )
    rows = await tool_calls(tenant.id)
    assert [(r.detail["tool"], r.detail["outcome"], r.detail["error"]) for r in rows] == [
        ("request_payment", "error", "permission_denied")
    ]


async def test_a_tool_error_is_the_rest_apis_words_and_code_nothing_before_them(server: LiveServer) -> None:
    tenant, _ = await make_tenant(environment=Environment.simulator)
    key = await make_api_key(tenant=tenant)
    async with mcp_client(server.url, key) as agent:
        result = await agent.call_tool("get_payment", {"payment_id": str(uuid.uuid4())})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.endswith("(error: not_found)") and not text.startswith("Error executing tool"), text


@pytest.mark.parametrize("mode", MODES)
async def test_a_wait_tells_its_progress_to_a_host_that_asks(server: LiveServer, mode: Mode) -> None:
    """A customer who has not answered: the wait reports "still pending" about every second to a
    host that sent a progress token, then returns the payment as it is at the end of the wait."""
    tenant, _ = await make_tenant(environment=Environment.simulator)
    key = await make_api_key(tenant=tenant)
    heard: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        heard.append((done, total, message))

    async with mcp_client(server.url, key, mode=mode) as agent:
        # 9999: the simulator never calls back; reconciliation settles it after RECONCILE_AFTER_SECONDS
        pending = await call(agent, "request_payment", {"phone": a_phone("9999"), "amount": 10})
        waited = await agent.call_tool(
            "wait_for_payment",
            {"payment_id": pending["id"], "timeout_seconds": 2},
            progress_callback=progress,
        )
        quiet = await agent.call_tool("wait_for_payment", {"payment_id": pending["id"], "timeout_seconds": 1})
    assert not waited.is_error and not quiet.is_error
    assert heard, "no progress while the payment was pending"
    done, total, message = heard[0]
    assert (done, total) == (1, 2)
    assert message == "Still pending after 1 s: the customer has not answered yet."
