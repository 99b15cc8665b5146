"""Settings → Activity in the panel: the business's activity log as GET /api/activity gives it (real
actions made with two keys and by the owner, MCP tool-call rows as the MCP server writes them), with its
key, action and "agent tool calls only" filters and its pages; the owner's alone. And the platform
admin's audit page, filtered by an API key's prefix or id."""

from __future__ import annotations

import re
from contextlib import aclosing

import httpx

from core.auth.models import Role
from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import admin_client, business_client, rows_of, text_of
from tests.web.test_activity_api import key_row, shop, tool_call

PATH = "/app/settings/activity"


def activity(page: str) -> list[list[str]]:
    """Each row's action, who, from, what and target (the time left out)."""
    return [[r[1], r[2], r[4], r[3], r[5]] for r in rows_of(page, "activity")]


async def test_the_owner_reads_the_log_by_key(server: LiveServer, client: httpx.AsyncClient) -> None:
    s = await shop(client, "Panel Activity")
    who_a, who_b = f"API key {s.key_a.prefix} (default)", f"API key {s.key_b.prefix} (default)"
    failed = [
        "mcp.tool_call",
        who_a,
        "AI agent (MCP)",
        "failed get_payment(payment_id=p-404, api_key=***) → error: not_found",
        "–",
    ]
    listed = ["mcp.tool_call", who_b, "AI agent (MCP)", "list_payments(limit=5) → ok", "–"]
    paid = [
        "mcp.tool_call",
        who_a,
        "AI agent (MCP)",
        "request_payment(phone=2547•••123, amount=10) → ok",
        "p-1",
    ]
    made = [
        "apikey.created",
        who_a,
        "API",
        f'prefix={s.made_by_a_prefix}, name=made-by-a, mode=test, scopes=["payments:read"], '
        f"app_id={s.key_a.app_id}",
        s.made_by_a,
    ]
    panel = await business_client(server.url, s.owner)
    async with aclosing(panel):
        settings = await panel.get("/app/settings")
        assert f'<a href="{PATH}">Activity</a>' in settings.text

        page = await panel.get(PATH)
        assert page.status_code == 200, page.text
        assert f'<a href="{PATH}" aria-current="page">Activity</a>' in page.text
        rows = activity(page.text)
        signed_in = ["auth.login", s.owner.email, "–", "–", "–"]
        assert rows[:4] == [signed_in, failed, listed, paid]  # the panel sign-in is the newest
        assert [r[:2] for r in rows[4:]] == [
            ["apikey.created", s.owner.email],
            ["apikey.revoked", who_b],
            ["apikey.created", who_a],
            ["apikey.created", "lipapush"],  # make_api_key, with no one behind it
            ["apikey.created", "lipapush"],
            ["auth.login", s.owner.email],  # the API sign-in
            ["channel.verified", "lipapush"],
            ["channel.credentials_changed", s.owner.email],
            ["tenant.created", s.owner.email],
        ]
        assert rows[6] == made
        assert 'id="older"' not in page.text
        # the filter offers every key, the revoked one too, by name and prefix
        options = re.findall(
            r'<option value="([^"]*)"[^>]*>([^<]*)</option>', text_between(page.text, "f-key")
        )
        assert options[0] == ("", "Everyone")
        assert ("" + s.made_by_a, f"made-by-a ({s.made_by_a_prefix}…, revoked)") in options
        assert (str(s.key_a.id), f"default ({s.key_a.prefix}…)") in options
        assert len(options) == 5  # everyone, the two keys, the one A made, the owner's
        # a key's actions link to its own filter
        assert f'<a href="{PATH}?key={s.key_a.id}">{who_a}</a>' in page.text

        by_key = await panel.get(PATH, params={"key": str(s.key_a.id)})
        assert by_key.status_code == 200
        assert activity(by_key.text) == [failed, paid, made]
        assert f'<option value="{s.key_a.id}" selected>' in by_key.text

        tools = await panel.get(PATH, params={"tools": "1"})
        assert activity(tools.text) == [failed, listed, paid]
        assert 'id="f-tools" name="tools" value="1" checked>' in tools.text
        tools_b = await panel.get(PATH, params={"tools": "1", "key": str(s.key_b.id)})
        assert activity(tools_b.text) == [listed]

        revoked = await panel.get(PATH, params={"action": "apikey.rev"})
        assert [r[:2] for r in activity(revoked.text)] == [["apikey.revoked", who_b]]
        nothing = await panel.get(PATH, params={"action": "payout.", "key": str(s.key_b.id)})
        assert nothing.status_code == 200
        assert text_of(nothing.text, "no-activity") == "Nothing matches these filters. Show everything"


def text_between(page: str, select_id: str) -> str:
    match = re.search(rf'<select id="{select_id}".*?</select>', page, re.S)
    assert match, f"no select #{select_id}"
    return match.group(0)


async def test_older_pages(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Busy Agent", environment=Environment.simulator)
    key = await key_row(tenant, await make_api_key(tenant=tenant))
    for i in range(55):
        await tool_call(tenant, key, "get_payment", {"payment_id": f"p{i}"})
    panel = await business_client(server.url, owner)
    async with aclosing(panel):
        first = await panel.get(PATH, params={"tools": "1", "key": str(key.id)})
        assert [r[3] for r in activity(first.text)] == [
            f"get_payment(payment_id=p{i}) → ok" for i in range(54, 4, -1)
        ]
        older = re.search(r'<a id="older" href="([^"]+)">Older →</a>', first.text)
        assert older, "no link to the older page"
        link = older.group(1).replace("&amp;", "&")
        assert link.startswith(f"{PATH}?key={key.id}&tools=1&before=")
        second = await panel.get(link)
        assert [r[3] for r in activity(second.text)] == [
            f"get_payment(payment_id=p{i}) → ok" for i in range(4, -1, -1)
        ]
        assert 'id="older"' not in second.text
        assert f'<a id="newest" href="{PATH}?key={key.id}&amp;tools=1">← Newest</a>' in second.text

        damaged = await panel.get(PATH, params={"before": "x1"})
        assert damaged.status_code == 422
        assert text_of(damaged.text, "before-error") == (
            "This page link is damaged: go back to the first page. Start from the newest"
        )


async def test_the_owner_only_and_their_own_keys(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Guarded Panel", environment=Environment.simulator)
    other, _ = await make_tenant(name="Other Panel", environment=Environment.simulator)
    theirs = await key_row(other, await make_api_key(tenant=other))
    manager = await make_user(tenant=tenant, role=Role.manager)
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    for user in (manager, cashier):
        c = await business_client(server.url, user)
        async with aclosing(c):
            r = await c.get(PATH)
            assert r.status_code == 403, user.role
            assert '<p class="error-text">This is for the owner of Guarded Panel.</p>' in r.text
            if user is manager:  # a manager has a Settings page, without this link
                settings = await c.get("/app/settings")
                assert settings.status_code == 200
                assert f'<a href="{PATH}"' not in settings.text
    c = await business_client(server.url, owner)
    async with aclosing(c):
        r = await c.get(PATH, params={"key": str(theirs.id)})
        assert r.status_code == 404
        assert (
            '<p class="error-text">No such API key. List this business&#39;s keys with GET /api/api-keys '
            "(revoked ones too).</p>" in r.text
        )
        r = await c.get(PATH, params={"key": "lp_test_ab12"})
        assert r.status_code == 422
        assert text_of(r.text, "key-error") == "Choose a key from the list."
        r = await c.get(PATH, params={"action": "x" * 65})
        assert r.status_code == 422
        assert (
            text_of(r.text, "action-error")
            == "An action is at most 64 characters: type its start, e.g. apikey."
        )


def audit_rows(page: str) -> list[tuple[str, str, str]]:
    """Action, who and API key of each row of the admin's audit log."""
    out = []
    for tr in re.findall(r'<tr id="a\d+">(.*?)</tr>', page, re.S):
        cells = [
            " ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td>(.*?)</td>", tr, re.S)
        ]
        out.append((cells[1], cells[2], cells[3]))
    return out


async def test_the_admin_filters_the_audit_by_key(server: LiveServer, client: httpx.AsyncClient) -> None:
    s = await shop(client, "Admin Filter Duka")
    a, b = f"{s.key_a.prefix}…", f"{s.key_b.prefix}…"
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        by_prefix = await admin.get("/admin/audit", params={"key": s.key_a.prefix})
        assert by_prefix.status_code == 200, by_prefix.text
        assert audit_rows(by_prefix.text) == [
            ("mcp.tool_call", "–", a),
            ("mcp.tool_call", "–", a),
            ("apikey.created", "–", a),
        ]
        assert f'id="f-key" name="key" value="{s.key_a.prefix}"' in by_prefix.text

        # as lists show it (with its …), or by id, or narrowed to the business: the same rows
        for params in (
            {"key": b},
            {"key": str(s.key_b.id)},
            {"key": s.key_b.prefix, "tenant": s.tenant.slug},
        ):
            r = await admin.get("/admin/audit", params=params)
            assert r.status_code == 200
            assert audit_rows(r.text) == [("mcp.tool_call", "–", b), ("apikey.revoked", "–", b)], params
        tools = await admin.get("/admin/audit", params={"key": s.key_a.prefix, "action": "mcp."})
        assert [r[0] for r in audit_rows(tools.text)] == ["mcp.tool_call"] * 2

        # unfiltered, each row done with a key shows its prefix; the owner's own show none
        everything = await admin.get("/admin/audit", params={"tenant": s.tenant.slug, "category": "keys"})
        assert audit_rows(everything.text) == [
            ("apikey.created", s.owner.email, "–"),
            ("apikey.revoked", "–", b),
            ("apikey.created", "–", a),
            ("apikey.created", "–", "–"),
            ("apikey.created", "–", "–"),
        ]

        unknown = await admin.get("/admin/audit", params={"key": "lp_test_zz!!"})
        assert unknown.status_code == 422
        assert text_of(unknown.text, "e-key") == (
            "No API key has the id or prefix “lp_test_zz!!”. Paste a key id, or a prefix as lists show it "
            "(lp_live_ or lp_test_ and 4 more characters)."
        )
        other, _ = await make_tenant(name="Not That One", environment=Environment.simulator)
        elsewhere = await admin.get("/admin/audit", params={"key": s.key_a.prefix, "tenant": other.slug})
        assert elsewhere.status_code == 422
        assert text_of(elsewhere.text, "e-key").startswith(
            f"No API key in this business has the id or prefix “{s.key_a.prefix}”."
        )
