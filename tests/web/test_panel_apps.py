"""Settings → Apps in the panel: the owner creates, renames, sets callback hosts and archives (with
CSRF, errors beside their field); a manager sees the list only; the subnav links it."""

from __future__ import annotations

import re

from sqlalchemy import select

from core.audit.models import AuditLog
from core.auth.models import Role
from core.runtime import unit_of_work
from core.tenants.models import Environment, Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import business_client, csrf_of, text_of


async def app_actions(tenant: Tenant) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog.action)
            .where(AuditLog.tenant_id == tenant.id, AuditLog.action.like("app.%"))
            .order_by(AuditLog.id)
        )
        return list(rows)


def app_ids(page: str) -> list[str]:
    return re.findall(r'<tr id="app-([0-9a-f-]{36})">', page)


async def test_owner_creates_renames_sets_hosts_and_archives(server: LiveServer) -> None:
    tenant, owner = await make_tenant(environment=Environment.simulator)
    await make_api_key(tenant=tenant)  # the business's Default app
    panel = await business_client(server.url, owner)
    try:
        settings = await panel.get("/app/settings")
        assert '<a href="/app/settings/apps">Apps</a>' in settings.text
        page = await panel.get("/app/settings/apps")
        assert page.status_code == 200
        csrf = csrf_of(page.text)
        [default_id] = app_ids(page.text)
        assert text_of(page.text, f"app-{default_id}").startswith(
            "Default app test Main: Paybill 174379 (simulator)"
        )

        bad = await panel.post(
            "/app/settings/apps",
            data={"name": "Shop", "callback_hosts": "https://shop.example.com/cb", "csrf_token": csrf},
        )
        assert bad.status_code == 422
        assert text_of(bad.text, "hosts-error").startswith("'https://shop.example.com/cb' is not a host name")
        assert 'value="Shop"' in bad.text  # what was typed stays
        taken = await panel.post(
            "/app/settings/apps", data={"name": "default APP", "callback_hosts": "", "csrf_token": csrf}
        )
        assert taken.status_code == 409
        assert text_of(taken.text, "name-error") == (
            "This business already has an app named “default APP”: choose another name, or rename that app."
        )
        made = await panel.post(
            "/app/settings/apps",
            data={"name": "Shop", "callback_hosts": "Shop.Example.com\napi.example.com", "csrf_token": csrf},
            follow_redirects=True,
        )
        assert made.status_code == 200 and str(made.url).endswith("/app/settings/apps?done=created")
        assert text_of(made.text, "done") == "App created. Make its API keys in Settings → API keys."
        shop_id = next(i for i in app_ids(made.text) if i != default_id)
        row = text_of(made.text, f"app-{shop_id}")
        assert (
            row.startswith("Shop test Main: Paybill 174379 (simulator)")
            and "0 0 shop.example.com api.example.com" in row
        )

        one = await panel.get(f"/app/settings/apps/{shop_id}")
        assert text_of(one.text, "app-title") == "Shop"
        renamed = await panel.post(
            f"/app/settings/apps/{shop_id}/name",
            data={"name": "Shop site", "csrf_token": csrf},
            follow_redirects=True,
        )
        assert text_of(renamed.text, "app-title") == "Shop site"
        assert text_of(renamed.text, "done") == "App renamed."
        hosts = await panel.post(
            f"/app/settings/apps/{shop_id}/hosts",
            data={"callback_hosts": "", "csrf_token": csrf},
            follow_redirects=True,
        )
        assert text_of(hosts.text, "done") == "Callback hosts saved."
        assert "<dt>Callback hosts</dt><dd>none</dd>" in hosts.text

        # the confirmation is asked before the form posts
        assert 'data-confirm="Archive the app “Shop site”? Its API keys are revoked at once."' in hosts.text
        gone = await panel.post(
            f"/app/settings/apps/{shop_id}/archive", data={"csrf_token": csrf}, follow_redirects=True
        )
        assert (
            text_of(gone.text, "done") == "App archived: its API keys are revoked and it is no longer listed."
        )
        assert app_ids(gone.text) == [default_id]
        last = await panel.post(f"/app/settings/apps/{default_id}/archive", data={"csrf_token": csrf})
        assert last.status_code == 409
        assert text_of(last.text, "archive-error").startswith("“Default app” is this business's only app")

        forged = await panel.post("/app/settings/apps", data={"name": "Forged", "callback_hosts": ""})
        assert forged.status_code == 403
    finally:
        await panel.aclose()
    assert await app_actions(tenant) == ["app.created", "app.renamed", "app.callback_hosts", "app.archived"]


async def test_a_manager_sees_the_list_without_controls(server: LiveServer) -> None:
    tenant, _ = await make_tenant()
    await make_api_key(tenant=tenant)
    manager = await make_user(tenant=tenant, role=Role.manager)
    panel = await business_client(server.url, manager)
    try:
        page = await panel.get("/app/settings/apps")
        assert page.status_code == 200
        [app_id] = app_ids(page.text)
        assert "Create an app" not in page.text
        assert "The owner creates, renames and archives apps." in page.text
        one = await panel.get(f"/app/settings/apps/{app_id}")
        assert one.status_code == 200 and "/archive" not in one.text
        refused = await panel.post(
            "/app/settings/apps",
            data={"name": "Mine", "callback_hosts": "", "csrf_token": csrf_of(page.text)},
        )
        assert refused.status_code == 403
        assert "This is for the owner of" in refused.text
    finally:
        await panel.aclose()
    assert await app_actions(tenant) == []
