"""Settings → Usage in the panel: the figures, per app, per key and per endpoint, count exactly the
requests a test made with a key (as GET /api/usage does); the log lists them with its filters; the
export holds the same rows; the owner and manager see it, a cashier and another business do not."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook

from core.auth.models import Role
from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import business_client, rows_of, text_of
from tests.web.test_usage_api import flush, key_row, known_requests


def log_rows(page: str) -> list[tuple[str, str, str]]:
    """(request, status, key) of each row of the request log."""
    return [(r[1], r[2], r[4]) for r in rows_of(page, "requests")]


async def test_the_page_counts_the_requests_made_with_a_key(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Panel Usage", environment=Environment.simulator)
    key = await make_api_key(tenant=tenant)
    row = await key_row(tenant, key[:12])
    panel = await business_client(server.url, owner)
    try:
        await known_requests(panel, key)
        await flush(server)

        settings = await panel.get("/app/settings")
        assert '<a href="/app/settings/usage">Usage</a>' in settings.text
        page = await panel.get("/app/settings/usage")
        assert page.status_code == 200, page.text
        assert '<a href="/app/settings/usage" aria-current="page">Usage</a>' in page.text
        # the panel's own pages are not API requests: only the key's 7 count
        assert rows_of(page.text, "totals") == [["7", "2", "5", "2"], ["7", "2", "5", "2"]]
        assert rows_of(page.text, "per-app") == [["7", "2", "2", "7", "2", "2"]]
        assert text_of(page.text, "per-app").endswith("Default app test 7 2 2 7 2 2")
        assert text_of(page.text, f"key-{row.id}") == f"{key[:12]}… default test 7 2 2 7 2 2"
        endpoints = rows_of(page.text, "per-endpoint")
        assert [r[:2] for r in endpoints] == [["3", "1"], ["3", "0"], ["1", "1"]]
        assert all(float(p50) <= float(p95) for _, _, p50, p95 in endpoints)  # timings vary, counts do not
        assert re.findall(r"<code>(\w+ /api/[^<]*)</code></th>", page.text) == [
            "POST /api/stk-push",
            "GET /api/transactions",
            "GET /api/transactions/{payment_id}",
        ]
        short = f"{key[:12]}…"
        assert log_rows(page.text) == [
            ("GET /api/transactions/{payment_id}", "404", short),
            *[("GET /api/transactions", "200", short)] * 3,
            ("POST /api/stk-push", "422", short),
            *[("POST /api/stk-push", "201", short)] * 2,
        ]

        # filtered: one app, one key, the failures only
        failures = await panel.get(
            "/app/settings/usage", params={"app": str(row.app_id), "key": str(row.id), "status": "4xx"}
        )
        assert failures.status_code == 200
        assert log_rows(failures.text) == [
            ("GET /api/transactions/{payment_id}", "404", short),
            ("POST /api/stk-push", "422", short),
        ]
        assert rows_of(failures.text, "totals")[1] == ["7", "2", "5", "2"]  # the figures are the key's
        assert 'id="export" href="/app/settings/usage/export.xlsx?app=' in failures.text

        export = await panel.get("/app/settings/usage/export.xlsx", params={"status": "2xx"})
        assert export.status_code == 200
        assert export.headers["x-row-count"] == "5"
        sheet = load_workbook(io.BytesIO(export.content), read_only=True).active
        assert sheet is not None
        assert [r[3] for r in sheet.iter_rows(min_row=2, values_only=True)] == [200, 200, 200, 201, 201]

        bad = await panel.get("/app/settings/usage", params={"app": "nonsense", "status": "6xx"})
        assert bad.status_code == 422
        assert text_of(bad.text, "app-error") == "Choose an app from the list."
        assert text_of(bad.text, "status-error") == "Choose an answer class from the list."
        tampered = await panel.get("/app/settings/usage", params={"cursor": "nope"})
        assert tampered.status_code == 422
        assert text_of(tampered.text, "cursor-error").startswith("This cursor is not one this list gave")
    finally:
        await panel.aclose()


async def test_who_sees_it(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Panel Who", environment=Environment.simulator)
    other, _ = await make_tenant(environment=Environment.simulator)
    theirs = await key_row(other, (await make_api_key(tenant=other))[:12])
    manager = await make_user(tenant=tenant, role=Role.manager)
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    for user, path, status in [
        (manager, "/app/settings/usage", 200),
        (cashier, "/app/settings/usage", 403),
        (cashier, "/app/settings/usage/export.xlsx", 403),
        (owner, f"/app/settings/usage?app={theirs.app_id}", 404),
        (owner, f"/app/settings/usage?key={theirs.id}", 404),
    ]:
        c = await business_client(server.url, user)
        try:
            r = await c.get(path)
            assert r.status_code == status, (user.role, path, r.status_code)
            if user is cashier:
                assert '<a href="/app/settings/usage"' not in (await c.get("/app/settings")).text
        finally:
            await c.aclose()
