"""GET /api/activity over HTTP: the business's activity log lists what its people and its API keys did
(real actions made through the API, and MCP tool-call rows in the format the MCP server writes),
newest first; filtered by key, by action and to agents' tool calls; paged on the id; and who may read
it (the owner, a key with business:read) and whose keys may be named (404 for another business's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from core.access.permissions import ApiScope
from core.audit.service import record
from core.auth.models import ApiKey, Role, User
from core.runtime import unit_of_work
from core.tenants.models import Environment, Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_admin, make_api_key, make_tenant, make_user

NO_SUCH_KEY = "No such API key. List this business's keys with GET /api/api-keys (revoked ones too)."


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


async def key_row(tenant: Tenant, key: str) -> ApiKey:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == tenant.id, ApiKey.prefix == key[:12])
        )
    assert row is not None
    return row


async def tool_call(
    tenant: Tenant,
    key: ApiKey,
    tool: str,
    arguments: dict[str, Any],
    *,
    error: str | None = None,
    target: str | None = None,
) -> None:
    """An audit row exactly as the MCP server writes one for each tool an agent calls."""
    detail: dict[str, Any] = {
        "via": "mcp",
        "api_key_id": str(key.id),
        "tool": tool,
        "arguments": arguments,
        "outcome": "error" if error else "ok",
        "latency_ms": 12,
        "transport": "http",
    }
    if error:
        detail["error"] = error
    async with unit_of_work() as session:
        await record(
            session,
            action="mcp.tool_call",
            tenant_id=tenant.id,
            user_id=key.created_by_id,
            target=target,
            detail=detail,
        )


@dataclass
class Shop:
    tenant: Tenant
    owner: User
    as_owner: dict[str, str]  # the owner's login token, signed in before anything else was done
    key_a: ApiKey  # the agent's key: makes a key through the API, then calls two tools
    key_b: ApiKey  # revokes the key A made, calls one tool
    made_by_a: str  # the id of the key A made
    made_by_a_prefix: str
    made_by_owner: str  # the id of the key the owner made with a login token


async def shop(client: httpx.AsyncClient, name: str) -> Shop:
    """A business whose log holds real actions by two keys and its owner, then three tool calls."""
    tenant, owner = await make_tenant(name=name, environment=Environment.simulator)
    as_owner = await login(client, owner.email)
    a, b = await make_api_key(tenant=tenant), await make_api_key(tenant=tenant)
    key_a, key_b = await key_row(tenant, a), await key_row(tenant, b)
    r = await client.post(
        "/api/api-keys", json={"name": "made-by-a", "scopes": ["payments:read"]}, headers=bearer(a)
    )
    assert r.status_code == 201, r.text
    made_by_a, made_by_a_prefix = r.json()["id"], r.json()["prefix"]
    r = await client.delete(f"/api/api-keys/{made_by_a}", headers=bearer(b))
    assert r.status_code == 200, r.text
    r = await client.post("/api/api-keys", json={"name": "owner's"}, headers=as_owner)
    assert r.status_code == 201, r.text
    made_by_owner = r.json()["id"]
    await tool_call(tenant, key_a, "request_payment", {"phone": "2547•••123", "amount": 10}, target="p-1")
    await tool_call(tenant, key_b, "list_payments", {"limit": 5})
    await tool_call(
        tenant, key_a, "get_payment", {"payment_id": "p-404", "api_key": "***"}, error="not_found"
    )
    return Shop(tenant, owner, as_owner, key_a, key_b, made_by_a, made_by_a_prefix, made_by_owner)


def rows(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(i["action"], i["who"], i["via"], i["target"], i["summary"]) for i in body["items"]]


class TestTheLog:
    async def test_filter_by_key_shows_only_what_that_key_did(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        s = await shop(client, "Activity Duka")
        as_owner = s.as_owner
        who_a = f"API key {s.key_a.prefix} (default)"

        r = await client.get("/api/activity", params={"key_id": str(s.key_a.id)}, headers=as_owner)
        assert r.status_code == 200, r.text
        body = r.json()
        assert rows(body) == [
            (
                "mcp.tool_call",
                who_a,
                "mcp",
                None,
                "get_payment(payment_id=p-404, api_key=***) → error: not_found",
            ),
            ("mcp.tool_call", who_a, "mcp", "p-1", "request_payment(phone=2547•••123, amount=10) → ok"),
            (
                "apikey.created",
                who_a,
                "api",
                s.made_by_a,
                f"prefix={s.made_by_a_prefix}, name=made-by-a, mode=test, "
                f'scopes=["payments:read"], app_id={s.key_a.app_id}',
            ),
        ]
        assert body["older"] is None
        assert {(i["api_key_id"], i["key_prefix"]) for i in body["items"]} == {
            (str(s.key_a.id), s.key_a.prefix)
        }
        failed, ok = body["items"][0], body["items"][1]
        assert (failed["tool"], failed["outcome"], failed["error"]) == ("get_payment", "error", "not_found")
        assert failed["arguments"] == {"payment_id": "p-404", "api_key": "***"}
        assert (ok["tool"], ok["outcome"], ok["error"], ok["latency_ms"], ok["transport"]) == (
            "request_payment",
            "ok",
            None,
            12,
            "http",
        )
        assert body["items"][2]["tool"] is None and body["items"][2]["arguments"] is None

        r = await client.get("/api/activity", params={"key_id": str(s.key_b.id)}, headers=as_owner)
        who_b = f"API key {s.key_b.prefix} (default)"
        assert [(a, w, t) for a, w, _, t, _ in rows(r.json())] == [
            ("mcp.tool_call", who_b, None),
            ("apikey.revoked", who_b, s.made_by_a),
        ]
        assert r.json()["items"][0]["summary"] == "list_payments(limit=5) → ok"

        # everything: the owner's own actions are theirs, by email; the factory's are lipapush's own
        r = await client.get("/api/activity", headers=as_owner)
        everything = r.json()["items"]
        owner = s.owner.email
        assert [(i["action"], i["who"]) for i in everything] == [
            ("mcp.tool_call", who_a),
            ("mcp.tool_call", who_b),
            ("mcp.tool_call", who_a),
            ("apikey.created", owner),
            ("apikey.revoked", who_b),
            ("apikey.created", who_a),
            ("apikey.created", "lipapush"),  # make_api_key, with no one behind it
            ("apikey.created", "lipapush"),
            ("auth.login", owner),
            ("channel.verified", "lipapush"),
            ("channel.credentials_changed", owner),
            ("tenant.created", owner),
        ]
        assert everything[3]["target"] == s.made_by_owner and everything[3]["api_key_id"] is None
        assert everything[3]["via"] == "api"
        assert everything[4]["summary"] == f"prefix={s.made_by_a_prefix}"
        assert (
            everything[10]["summary"]
            == "channel=Main, environment=simulator, kind=paybill, short_code=174379"
        )
        assert everything[8]["summary"] == ""

    async def test_tool_calls_only_action_prefix_and_pages(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        s = await shop(client, "Agent Duka")
        as_owner = s.as_owner

        r = await client.get("/api/activity", params={"tool_calls_only": "true"}, headers=as_owner)
        assert r.status_code == 200
        assert [i["summary"] for i in r.json()["items"]] == [
            "get_payment(payment_id=p-404, api_key=***) → error: not_found",
            "list_payments(limit=5) → ok",
            "request_payment(phone=2547•••123, amount=10) → ok",
        ]
        r = await client.get(
            "/api/activity",
            params={"tool_calls_only": "true", "key_id": str(s.key_b.id)},
            headers=as_owner,
        )
        assert [i["summary"] for i in r.json()["items"]] == ["list_payments(limit=5) → ok"]

        r = await client.get(
            "/api/activity", params={"action": "apikey.", "key_id": str(s.key_a.id)}, headers=as_owner
        )
        assert [(i["action"], i["target"]) for i in r.json()["items"]] == [("apikey.created", s.made_by_a)]
        r = await client.get("/api/activity", params={"action": "apikey.re"}, headers=as_owner)
        assert [(i["action"], i["target"]) for i in r.json()["items"]] == [("apikey.revoked", s.made_by_a)]

        # a page of 2, then the rest from `older`
        first = (
            await client.get(
                "/api/activity", params={"tool_calls_only": "true", "limit": 2}, headers=as_owner
            )
        ).json()
        assert len(first["items"]) == 2 and first["older"] == first["items"][1]["id"]
        rest = (
            await client.get(
                "/api/activity",
                params={"tool_calls_only": "true", "limit": 2, "before": first["older"]},
                headers=as_owner,
            )
        ).json()
        assert [i["summary"] for i in rest["items"]] == ["request_payment(phone=2547•••123, amount=10) → ok"]
        assert rest["older"] is None

    async def test_another_business_key_is_not_found(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        s = await shop(client, "Own Duka")
        other, _ = await make_tenant(name="Other Duka", environment=Environment.simulator)
        theirs = await key_row(other, await make_api_key(tenant=other))
        await tool_call(other, theirs, "request_payment", {"phone": "2547•••999", "amount": 5})
        as_owner = s.as_owner
        for key_id in (theirs.id, uuid.uuid4()):
            r = await client.get("/api/activity", params={"key_id": str(key_id)}, headers=as_owner)
            assert r.status_code == 404
            assert r.json() == {"error": "not_found", "detail": NO_SUCH_KEY}
        # and nothing of the other business shows up among this one's
        r = await client.get("/api/activity", params={"tool_calls_only": "true"}, headers=as_owner)
        assert all("2547•••999" not in i["summary"] for i in r.json()["items"])
        assert len(r.json()["items"]) == 3


class TestWhoMay:
    async def test_the_owner_and_a_business_read_key_only(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        s = await shop(client, "Guarded Duka")
        manager = await make_user(tenant=s.tenant, role=Role.manager)
        cashier = await make_user(tenant=s.tenant, role=Role.cashier)
        for user in (manager, cashier):
            r = await client.get("/api/activity", headers=await login(client, user.email))
            assert r.status_code == 403
            assert r.json() == {
                "error": "permission_denied",
                "detail": "This is for the owner of the business.",
            }

        narrow = await make_api_key(tenant=s.tenant, scopes=[ApiScope.payments_read])
        r = await client.get("/api/activity", headers=bearer(narrow))
        assert r.status_code == 403
        assert r.json()["detail"].startswith("This API key lacks the business:read scope.")

        # a key with business:read reads the whole business's activity, as the owner does
        reader = await make_api_key(tenant=s.tenant, scopes=[ApiScope.business_read])
        r = await client.get("/api/activity", params={"key_id": str(s.key_b.id)}, headers=bearer(reader))
        assert r.status_code == 200
        assert [i["action"] for i in r.json()["items"]] == ["mcp.tool_call", "apikey.revoked"]

    async def test_bad_input_is_refused_by_field(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        _, owner = await make_tenant(name="Picky Duka", environment=Environment.simulator)
        as_owner = await login(client, owner.email)
        for params in ({"key_id": "lp_test_ab12"}, {"limit": "0"}, {"before": "0"}, {"action": "x" * 65}):
            r = await client.get("/api/activity", params=params, headers=as_owner)
            assert r.status_code == 422, params
            assert r.json()["error"] == "invalid_input"


async def test_the_platform_staff_are_named_lipapush_support(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    """A platform admin's account is the platform's: the business reads who they act for, not their
    address, whether they viewed as the business or acted on it from the admin pages."""
    tenant, owner = await make_tenant(name="Supported Duka", environment=Environment.simulator)
    as_owner = await login(client, owner.email)
    admin_email, _ = await make_admin()
    async with unit_of_work() as session:
        admin_id = await session.scalar(select(User.id).where(User.email == admin_email))
        await record(
            session,
            action="tenant.suspended",
            tenant_id=tenant.id,
            user_id=admin_id,
            detail={"reason": "unpaid invoice"},
        )
        await record(
            session,
            action="wallet.settings_changed",
            tenant_id=tenant.id,
            user_id=admin_id,
            detail={"via": "panel", "impersonating": True, "threshold": 500},
        )
    r = await client.get("/api/activity", params={"limit": 2}, headers=as_owner)
    assert r.status_code == 200
    assert [(i["action"], i["who"], i["via"], i["summary"]) for i in r.json()["items"]] == [
        ("wallet.settings_changed", "lipapush support", "panel", "threshold=500"),
        ("tenant.suspended", "lipapush support", None, "reason=unpaid invoice"),
    ]
    assert admin_email not in r.text
