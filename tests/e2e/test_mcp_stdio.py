"""The MCP server over stdio, as a desktop agent runs it: `lipapush mcp` started by the SDK's own stdio
client with LIPAPUSH_API_KEY in its environment, beside the real `lipapush serve` (which receives the
simulator's callbacks). A test key lists the tools, requests a payment, waits for it to succeed, finds
the customer and gets an export link that downloads an .xlsx; a bad key stops the command with its
reason on stderr."""

from __future__ import annotations

import asyncio
import io
import subprocess

import httpx
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from openpyxl import load_workbook

from tests.e2e.conftest import LIPAPUSH, NewBusiness, Serve, login, unique_phone


def stdio_server(serve: Serve, key: str) -> StdioServerParameters:
    env = {**serve.cli_env, "LIPAPUSH_API_KEY": key}
    return StdioServerParameters(
        command=LIPAPUSH[0], args=[*LIPAPUSH[1:], "mcp"], env=env, cwd=str(serve.workdir)
    )


async def test_an_agent_over_stdio_collects_a_payment_and_exports_the_book(
    serve: Serve, new_business: NewBusiness, http: httpx.AsyncClient
) -> None:
    biz = await new_business(name="Stdio Duka")
    phone = unique_phone("0111")
    async with Client(stdio_server(serve, biz.key)) as agent:
        names = {t.name for t in (await agent.list_tools()).tools}
        assert {"request_payment", "wait_for_payment", "search_customers", "export_customers"} <= names
        assert "request_payout" not in names  # a key made without choosing holds no money-out scope

        pending = await agent.call_tool(
            "request_payment",
            {"phone": phone, "amount": 40, "name": "Otieno Stdio", "idempotency_key": "s-1"},
        )
        assert not pending.is_error, pending.content
        payment = pending.structured_content or {}
        assert (payment["status"], payment["mode"]) == ("pending", "test")

        done = await agent.call_tool("wait_for_payment", {"payment_id": payment["id"], "timeout_seconds": 45})
        assert (done.structured_content or {}).get("status") == "success", done.content

        found = await agent.call_tool("search_customers", {"q": "Otieno Stdio"})
        items = (found.structured_content or {}).get("items", [])
        assert [(c["phone"], c["paid_total"]) for c in items] == [(payment["phone"], 40)]

        link = await agent.call_tool("export_transactions", {"status": "success"})
        url = (link.structured_content or {})["url"]

    download = await http.get(url)
    assert download.status_code == 200
    sheet = load_workbook(io.BytesIO(download.content), read_only=True).active
    cells = {str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None}
    assert payment["phone"] in cells or "Otieno Stdio" in cells

    # The REST API sees the same payment: one business, whichever entry point asked.
    r = await http.get(f"/api/transactions/{payment['id']}", headers={"Authorization": f"Bearer {biz.key}"})
    assert (r.status_code, r.json()["status"], r.json()["source"]) == (200, "success", "api")


async def test_a_revoked_or_mistyped_key_stops_the_command_with_its_reason(serve: Serve) -> None:
    env = {**serve.cli_env, "LIPAPUSH_API_KEY": "lp_test_" + "x" * 43}
    proc = await asyncio.to_thread(
        subprocess.run,
        [*LIPAPUSH, "mcp"],
        env=env,
        cwd=serve.workdir,
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == b""  # stdout is the protocol's alone
    assert "This API key is not valid or was revoked: create a new one." in proc.stderr.decode()


async def test_a_key_revoked_while_the_command_runs_is_refused_on_its_next_call(
    serve: Serve, new_business: NewBusiness, http: httpx.AsyncClient
) -> None:
    """The stdio server acts as one key for its whole life, checked again on every message: revoking
    it in the web process (here its owner, through the API) cuts the running agent off at once."""
    biz = await new_business(name="Stdio Revoked")
    owner = {"Authorization": f"Bearer {await login(http, biz.email, biz.password)}"}
    async with Client(stdio_server(serve, biz.key)) as agent:
        listed = await agent.call_tool("list_payments", {})
        assert not listed.is_error, listed.content

        keys = (await http.get("/api/api-keys", headers=owner)).json()
        [mine] = [k for k in keys if biz.key.startswith(k["prefix"])]
        r = await http.delete(f"/api/api-keys/{mine['id']}", headers=owner)
        assert r.status_code == 200, r.text

        phone = unique_phone("0111")
        refused = await agent.call_tool("request_payment", {"phone": phone, "amount": 10})
        assert refused.is_error
        assert refused.content[0].text == (  # type: ignore[union-attr]
            "This API key is not valid or was revoked: create a new one. (error: authentication_failed)"
        )
    r = await http.get("/api/transactions", params={"phone": phone[-9:]}, headers=owner)
    assert (r.status_code, r.json()["items"]) == (200, []), r.text
