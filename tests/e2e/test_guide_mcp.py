"""The AI-agent guide (docs/guides/use-lipapush-from-an-ai-agent.md) against the real `lipapush serve`:

- its program (code/python/mcp_session.py), run the way the guide says with a test key, lists the
  tools, requests a payment, waits for it to succeed, finds the customer and prints an export link that
  downloads an .xlsx without credentials; the calls count in the key's usage as `MCP /mcp/<tool>`;
- the host configuration entries it shows (one-line JSON) work as written: the HTTP one connects with
  its URL and header, the stdio one starts `lipapush mcp` with only its own environment and collects a
  payment whose callback the web process receives;
- its tool table is the catalogue's (core.agents.catalogue): every tool, with the scope it needs.

Python only: the official MCP SDK the program uses is Python's; the protocol is the same from any
client, and the guide's other steps are configuration, not code."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import httpx2
from markdown_it import MarkdownIt
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from openpyxl import load_workbook

from core.access.permissions import PERMISSION_SCOPE
from core.agents.catalogue import TOOLS
from core.config import Settings
from tests.e2e.conftest import (
    LIPAPUSH,
    XLSX_MEDIA_TYPE,
    NewBusiness,
    Serve,
    bearer,
    msisdn,
    unique_phone,
    wait_for,
)
from tests.e2e.test_guides import run
from tests.support.guides import GUIDES
from web.guides import read_sample, render_markdown

GUIDE = GUIDES / "use-lipapush-from-an-ai-agent.md"
PLACEHOLDER_KEY = "lp_test_…"
PLACEHOLDER_HOST = "https://your-host"

# What a key made without choosing scopes may call (every scope but money out's, and no hotspot tool
# for a business that is not a hotspot provider).
DEFAULT_KEY_TOOLS = [
    "customer_summary",
    "export_customers",
    "export_transactions",
    "get_dashboard",
    "get_payment",
    "get_wallet",
    "list_payments",
    "request_payment",
    "search_customers",
    "wait_for_payment",
]


def printed(stdout: str, label: str) -> str:
    """The rest of the line the program printed as `<label>: …`."""
    found = [line.partition(": ")[2] for line in stdout.splitlines() if line.startswith(f"{label}: ")]
    assert len(found) == 1, (label, stdout)
    return found[0]


def _tokens(path: Path) -> list[Any]:
    return MarkdownIt("commonmark").enable("table").parse(path.read_text(encoding="utf-8"))


def host_entries() -> dict[str, dict[str, Any]]:
    """The guide's `mcpServers` entries (inline code that is a whole JSON document), by transport."""
    entries: dict[str, dict[str, Any]] = {}
    for token in _tokens(GUIDE):
        for child in token.children or []:
            if child.type == "code_inline" and child.content.startswith('{"mcpServers"'):
                entry = json.loads(child.content)["mcpServers"]["lipapush"]
                entries["http" if "url" in entry else "stdio"] = entry
    assert set(entries) == {"http", "stdio"}, entries
    return entries


def tool_table() -> dict[str, tuple[str, str]]:
    """The guide's tool table: tool → (scope, what it does)."""
    rows: dict[str, tuple[str, str]] = {}
    cells: list[str] = []
    in_body = False
    for token in _tokens(GUIDE):
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "tbody_close":
            in_body = False
        elif token.type == "tr_open":
            cells = []
        elif token.type == "inline" and in_body:
            cells.append(token.content)
        elif token.type == "tr_close" and in_body:
            tool, scope, what = cells
            rows[tool.strip("`")] = (scope.strip("`"), what)
    return rows


def test_the_tool_table_is_the_catalogue() -> None:
    table = tool_table()
    assert list(table) == list(TOOLS)
    for name, rule in TOOLS.items():
        scope, what = table[name]
        assert scope == PERMISSION_SCOPE[rule.permission].value, name
        assert ("hotspot providers only" in what) == (rule.kinds is not None), name
        assert ("two steps" in what) == rule.money, name


def test_the_guide_renders_and_shows_python_only() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    page = render_markdown(GUIDES, text)  # raises GuideError for an include that names nothing
    fences = [t.content.split() for t in _tokens(GUIDE) if t.type == "fence" and t.info.strip() == "include"]
    assert fences and all(len(lines) == 1 and lines[0].startswith("code/python/") for lines in fences)
    for [line] in fences:
        assert html.escape(read_sample(GUIDES, line).code) in page, line
    assert "http://" not in text and "https://" not in text.replace(PLACEHOLDER_HOST, "")


async def test_the_session_program_collects_a_payment_and_its_export_link_downloads(
    serve: Serve, new_business: NewBusiness, http: httpx.AsyncClient
) -> None:
    biz = await new_business(name="Guide Agent")
    phone = unique_phone("0111")
    result = await run(
        "python",
        "mcp_session",
        LIPAPUSH_URL=serve.url,
        LIPAPUSH_API_KEY=biz.key,
        CUSTOMER_PHONE=phone,
        ORDER_ID="guide-mcp-1",
    )
    assert result.returncode == 0, result
    assert f"connected to {serve.url}/mcp" in result.stdout.splitlines(), result
    assert printed(result.stdout, "tools").split(", ") == DEFAULT_KEY_TOOLS, result

    requested = re.fullmatch(
        r"(?P<id>[0-9a-f-]{36}) is pending \(prompt sent, not paid yet\)",
        printed(result.stdout, "payment requested"),
    )
    assert requested, result
    final = re.fullmatch(
        r"(?P<status>\w+) \(receipt (?P<receipt>\w+)\)", printed(result.stdout, "final status")
    )
    assert final and final["status"] == "success", result
    assert printed(result.stdout, "customer") == (
        f"Wanjiku {msisdn(phone)}, paid KES 150 in 1 payment(s), test book"
    )
    assert printed(result.stdout, "export").startswith("1 row(s), "), result

    link = re.fullmatch(
        r"(?P<url>\S+) \(no credentials needed, until \S+\)", printed(result.stdout, "export link")
    )
    assert link and link["url"].startswith(f"{serve.url}/dl/"), result
    download = await http.get(link["url"])  # no Authorization: the signed link is the permission
    assert download.status_code == 200
    assert download.headers["content-type"].startswith(XLSX_MEDIA_TYPE)
    sheet = load_workbook(io.BytesIO(download.content), read_only=True).active
    assert sheet is not None
    cells = {str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None}
    assert final["receipt"] in cells

    # The REST API sees the same payment.
    r = await http.get(f"/api/transactions/{requested['id']}", headers=bearer(biz.key))
    assert (r.status_code, r.json()["status"], r.json()["receipt"]) == (200, "success", final["receipt"])

    # Each tool call counted in the key's usage as `MCP /mcp/<tool>`; request_payment as a push.
    async def counted() -> dict[str, Any] | None:
        usage = await http.get("/api/usage", headers=bearer(biz.key))
        assert usage.status_code == 200, usage.text
        day: dict[str, Any] = usage.json()["last_24h"]
        routes = {e["route"] for e in day["endpoints"] if e["method"] == "MCP"}
        return day if "/mcp/export_transactions" in routes else None

    day = await wait_for(counted, what="the MCP tool calls in GET /api/usage")
    calls = {e["route"]: e["requests"] for e in day["endpoints"] if e["method"] == "MCP"}
    assert calls["/mcp/request_payment"] == 1 and calls["/mcp/customer_summary"] == 1
    assert calls["/mcp/export_transactions"] == 1 and calls["/mcp/wait_for_payment"] >= 1
    assert day["totals"]["pushes"] == 1


async def test_the_http_host_entry_connects_as_written(serve: Serve, new_business: NewBusiness) -> None:
    biz = await new_business(name="Guide Agent HTTP")
    entry = host_entries()["http"]
    assert set(entry) == {"url", "headers"}
    url = entry["url"].replace(PLACEHOLDER_HOST, serve.url)
    headers = {name: value.replace(PLACEHOLDER_KEY, biz.key) for name, value in entry["headers"].items()}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(90.0)) as http,
        Client(streamable_http_client(url, http_client=http)) as agent,
    ):
        assert sorted(t.name for t in (await agent.list_tools()).tools) == DEFAULT_KEY_TOOLS


async def test_the_stdio_host_entry_collects_a_payment_with_only_its_own_environment(
    serve: Serve, new_business: NewBusiness
) -> None:
    biz = await new_business(name="Guide Agent stdio")
    entry = host_entries()["stdio"]
    assert (entry["command"], entry["args"]) == ("lipapush", ["mcp"])
    # Every variable it names is a setting (or the key); each gets this deployment's value, as the guide
    # says: the web process's own. A setting the web process leaves at its default is left out too.
    named = set(entry["env"])
    assert "LIPAPUSH_API_KEY" in named and named - {"LIPAPUSH_API_KEY"} <= set(Settings.model_fields)
    env = {name: serve.cli_env[name] for name in named if name in serve.cli_env}
    env["LIPAPUSH_API_KEY"] = biz.key
    # The host adds only what the SDK inherits (PATH, HOME, …): nothing of this test's environment.
    params = StdioServerParameters(command=LIPAPUSH[0], args=[*LIPAPUSH[1:], *entry["args"]], env=env)
    phone = unique_phone("0111")
    async with Client(params) as agent:
        assert sorted(t.name for t in (await agent.list_tools()).tools) == DEFAULT_KEY_TOOLS
        pending = await agent.call_tool(
            "request_payment", {"phone": phone, "amount": 20, "idempotency_key": "guide-stdio-1"}
        )
        assert not pending.is_error, pending.content
        payment_id = (pending.structured_content or {})["id"]
        # The simulator's callback reaches the web process (serve), and the stdio server reads the result.
        done = await agent.call_tool("wait_for_payment", {"payment_id": payment_id, "timeout_seconds": 45})
        assert (done.structured_content or {}).get("status") == "success", done.content
