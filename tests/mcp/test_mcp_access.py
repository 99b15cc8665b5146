"""Who gets in and what they may call: the transport's refusals (no key, another site's page, a key
revoked while its session is open), tools listed and refused by a key's scopes, bad arguments refused
with their reason and nothing written, and the two resources an agent reads to learn the rules."""

from __future__ import annotations

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import TextResourceContents

from core.access.permissions import ApiScope
from core.confirmations.models import Confirmation
from core.payments.models import Payment
from core.reversals.models import Reversal
from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.mcp.helpers import (
    a_phone,
    agent_session,
    audit_actions,
    count,
    key_id,
    login,
    paid_payment,
    refusal,
)
from tests.mcp.support import MODES, Mode, call, mcp_client, tool_calls, tool_names
from tests.support.factories import make_api_key, make_tenant

LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


class TestTransport:
    async def test_no_key_is_401_with_the_error_body_and_a_bearer_challenge(
        self, client: httpx.AsyncClient
    ) -> None:
        for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer nonsense"}):
            r = await client.post("/mcp", json=LIST_TOOLS, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.headers["www-authenticate"] == 'Bearer realm="lipapush", error="invalid_token"'
            body = r.json()
            assert body["error"] == "authentication_failed"
            assert body["detail"].startswith("Send 'Authorization: Bearer <API key>'")

    async def test_an_unknown_key_is_401(self, client: httpx.AsyncClient) -> None:
        r = await client.post(
            "/mcp", json=LIST_TOOLS, headers={"Authorization": "Bearer lp_test_" + "x" * 43}
        )
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "authentication_failed"
        assert "www-authenticate" in r.headers

    async def test_a_page_of_another_site_is_refused_by_its_origin(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        evil = await client.post(
            "/mcp",
            json=LIST_TOOLS,
            headers={"Authorization": f"Bearer {key}", "Origin": "https://evil.example"},
        )
        assert evil.status_code == 403, evil.text
        assert evil.json() == {
            "error": "permission_denied",
            "detail": "Requests from pages of https://evil.example may not use this MCP server.",
        }
        # The server's own origin (its PUBLIC_BASE_URL) passes on to the MCP server itself.
        own = await client.post(
            "/mcp",
            json=LIST_TOOLS,
            headers={
                "Authorization": f"Bearer {key}",
                "Origin": server.url,
                "Accept": "application/json, text/event-stream",
            },
        )
        assert own.status_code != 403, own.text
        assert await tool_calls(tenant.id) == []

    @pytest.mark.parametrize("mode", MODES)
    async def test_a_key_revoked_while_its_session_is_open_is_refused_on_the_next_call(
        self, server: LiveServer, client: httpx.AsyncClient, mode: Mode
    ) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        async with agent_session(server.url, key, mode=mode) as agent:
            listed = await call(agent.client, "list_payments", {})
            assert listed["items"] == []
            r = await client.delete(
                f"/api/api-keys/{await key_id(key)}", headers=await login(client, owner.email)
            )
            assert r.status_code == 200, r.text
            assert r.json()["revoked_at"] is not None
            answered = len(agent.statuses)
            with pytest.raises(MCPError):
                await agent.client.call_tool("request_payment", {"phone": a_phone(), "amount": 10})
            # The transport refused the very request; no MCP answer came back.
            assert agent.statuses[answered:] == [401]
        assert await count(Payment, Payment.tenant_id == tenant.id) == 0
        assert [r.detail["tool"] for r in await tool_calls(tenant.id)] == ["list_payments"]


class TestScopes:
    async def test_payouts_read_lists_the_reading_money_tools_only_and_refuses_the_others_by_name(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant()
        collector = await make_api_key(tenant=tenant)
        reader = await make_api_key(tenant=tenant, scopes=[ApiScope.payments_read, ApiScope.payouts_read])
        async with mcp_client(server.url, collector) as agent:
            payment = await paid_payment(agent)
        async with mcp_client(server.url, reader) as agent:
            assert await tool_names(agent) == {
                "get_payment",
                "wait_for_payment",
                "list_payments",
                "get_payout",
                "get_account_balance",
            }
            balance = await call(agent, "get_account_balance")
            assert balance is not None
            payout = await refusal(
                agent, "request_payout", {"phone": a_phone(), "amount": 100, "reference": "Wages"}
            )
            reverse = await refusal(
                agent, "reverse_payment", {"payment_id": payment["id"], "reason": "Paid twice by mistake"}
            )
            unknown = await refusal(agent, "drain_the_till", {})
        for name, refused in (("request_payout", payout), ("reverse_payment", reverse)):
            assert refused.code == "permission_denied"
            assert refused.text == (
                f"This API key cannot call {name}: it needs the payouts:write scope. Create a key with it "
                "(panel: Settings → API keys) and connect with that key. (error: permission_denied)"
            )
        assert unknown.text == (
            "There is no tool 'drain_the_till': list the tools to see the ones this key may use. "
            "(error: permission_denied)"
        )
        assert await count(Confirmation, Confirmation.tenant_id == tenant.id) == 0
        assert await count(Reversal, Reversal.tenant_id == tenant.id) == 0
        rows = await tool_calls(tenant.id)
        assert [(r.detail["tool"], r.detail.get("error")) for r in rows[-4:]] == [
            ("get_account_balance", None),
            ("request_payout", "permission_denied"),
            ("reverse_payment", "permission_denied"),
            ("drain_the_till", "permission_denied"),
        ]

    async def test_a_key_with_every_read_scope_lists_no_tool_that_changes_anything(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant()
        reads = [s for s in ApiScope if s.value.endswith(":read")]
        key = await make_api_key(tenant=tenant, scopes=reads)
        async with mcp_client(server.url, key) as agent:
            tools = (await agent.list_tools()).tools
        names = {t.name for t in tools}
        assert {"get_payment", "get_payout", "get_wallet", "search_customers"} <= names
        assert not names & {"request_payment", "request_payout", "reverse_payment", "issue_vouchers"}
        for tool in tools:
            assert tool.annotations is not None and tool.annotations.read_only_hint, tool.name


class TestBadArguments:
    @pytest.mark.parametrize(
        ("arguments", "expected"),
        [
            ({"amount": 0}, "amount: Amount must be at least KES 1."),
            (
                {"amount": 1.5},
                "amount: M-Pesa only takes whole shillings: send an amount without cents, like 150.",
            ),
            ({"amount": "ten"}, "amount: Amount must be a whole number of shillings, like 150."),
            ({"amount": 250_001}, "amount: Amount must be at most KES 250,000"),
            ({"phone": "12"}, "phone: '12' is not a Kenyan mobile number."),
            (
                {"reference": "x" * 13},
                "reference: reference must be at most 12 characters (an M-Pesa limit).",
            ),
        ],
    )
    async def test_a_bad_payment_request_says_what_was_wrong_and_writes_nothing(
        self, server: LiveServer, arguments: dict[str, object], expected: str
    ) -> None:
        tenant, _ = await make_tenant(environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        async with mcp_client(server.url, key) as agent:
            refused = await refusal(agent, "request_payment", {"phone": a_phone(), "amount": 10, **arguments})
        assert refused.code == "invalid_input"
        assert expected in refused.text, refused.text
        assert "Invalid arguments: " in refused.text and "errors.pydantic.dev" not in refused.text
        assert await count(Payment, Payment.tenant_id == tenant.id) == 0
        [row] = await tool_calls(tenant.id)
        assert (row.detail["tool"], row.detail["outcome"], row.detail["error"]) == (
            "request_payment",
            "error",
            "invalid_input",
        )

    async def test_text_no_database_can_store_is_refused_by_its_field_and_the_call_still_audited(
        self, server: LiveServer
    ) -> None:
        """A NUL reached the customer book through the agent (the REST API refuses it in its body
        check, which /mcp's JSON-RPC envelope never passes) and, on Postgres, failed the call and its
        audit row as internal errors."""
        tenant, _ = await make_tenant(environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        async with mcp_client(server.url, key) as agent:
            name = await refusal(
                agent, "request_payment", {"phone": a_phone(), "amount": 10, "name": "Wa\x00njiru"}
            )
            query = await refusal(agent, "search_customers", {"q": "\x00"})
            tool = await refusal(agent, "request\x00payment", {"phone": a_phone(), "amount": 10})
        assert name.text == (
            "Field 'name' contains a NUL character (\\u0000), which cannot be stored: remove it and try "
            "again. (error: invalid_input)"
        )
        assert query.text.startswith("Field 'q' contains a NUL character") and query.code == "invalid_input"
        assert tool.text == (
            "There is no tool 'request\\x00payment': list the tools to see the ones this key may use. "
            "(error: permission_denied)"
        )
        assert await count(Payment, Payment.tenant_id == tenant.id) == 0
        rows = await tool_calls(tenant.id)
        assert [(r.detail["tool"], r.detail["error"]) for r in rows] == [
            ("request_payment", "invalid_input"),
            ("search_customers", "invalid_input"),
            ("request\ufffdpayment", "permission_denied"),
        ]
        # what the audit row keeps of the arguments is storable: the NUL is shown as U+FFFD
        assert (rows[0].detail["arguments"]["name"], rows[1].detail["arguments"]["q"]) == (
            "Wa\ufffdnjiru",
            "\ufffd",
        )

    async def test_a_bad_payout_request_writes_no_confirmation(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant, scopes=[ApiScope.payouts_write])
        async with mcp_client(server.url, key) as agent:
            zero = await refusal(agent, "request_payout", {"phone": a_phone(), "amount": 0})
            small = await refusal(agent, "request_payout", {"phone": a_phone(), "amount": 5})
            cents = await refusal(agent, "request_payout", {"phone": a_phone(), "amount": 1.5})
            phone = await refusal(agent, "request_payout", {"phone": "12", "amount": 100})
            nothing = await refusal(agent, "request_payout", {})
            token = await refusal(agent, "request_payout", {"confirmation_token": "not-a-token"})
        assert {r.code for r in (zero, small, cents, phone, nothing, token)} == {"invalid_input"}
        assert "Invalid arguments: amount: Amount must be at least KES 1." in zero.text
        assert "Invalid arguments: amount: A payout is at least KES 10 (M-Pesa's B2C minimum)." in small.text
        assert cents.text == (
            "Invalid arguments: amount: M-Pesa only takes whole shillings: send an amount without cents, "
            "like 150. (error: invalid_input)"
        )
        assert "Invalid arguments: phone: '12' is not a Kenyan mobile number." in phone.text
        assert "Give phone and amount to prepare a payout" in nothing.text
        assert "This is not a confirmation token (they start with cf_)" in token.text
        assert await count(Confirmation, Confirmation.tenant_id == tenant.id) == 0
        assert not [a for a in await audit_actions(tenant.id) if a.startswith("payout.")]
        assert [r.detail["error"] for r in await tool_calls(tenant.id)] == ["invalid_input"] * 6


class TestResources:
    async def test_the_error_table_and_the_magic_numbers_are_listed_and_read(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant(environment=Environment.simulator)
        key = await make_api_key(tenant=tenant, scopes=[ApiScope.payments_read])
        async with mcp_client(server.url, key) as agent:
            listed = {str(r.uri): r for r in (await agent.list_resources()).resources}
            assert set(listed) == {"lipapush://errors", "lipapush://guides/test-mode-magic-numbers"}
            assert {r.mime_type for r in listed.values()} == {"text/markdown"}
            errors = (await agent.read_resource("lipapush://errors")).contents
            magic = (await agent.read_resource("lipapush://guides/test-mode-magic-numbers")).contents
        [table] = errors
        [guide] = magic
        assert isinstance(table, TextResourceContents) and isinstance(guide, TextResourceContents)
        assert table.text.startswith("# lipapush errors")
        for code in (
            "not_found",
            "permission_denied",
            "invalid_input",
            "confirmation_used",
            "confirmation_expired",
        ):
            assert f"| `{code}` |" in table.text, code
        assert "| `not_found` | 404 |" in table.text
        assert guide.text.startswith("#") and "1032" in guide.text and "0111" in guide.text
