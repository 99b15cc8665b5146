"""Settings → Webhooks over HTTP: the owner adds an endpoint (errors by the field), reads its secret,
sends a test event that a real receiver verifies, sees it in the delivery log and replays it; a
cashier and another business are kept out."""

from __future__ import annotations

import re

from standardwebhooks import Webhook

from core.auth.models import Role
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user
from tests.support.panel import business_client, form_post, text_of
from tests.support.receiver import receiving
from tests.support.waiting import wait_until


async def test_owner_adds_an_endpoint_tests_it_and_replays(server: LiveServer) -> None:
    tenant, owner = await make_tenant()
    client = await business_client(server.url, owner)
    try:
        page = await client.get("/app/settings/webhooks")
        assert page.status_code == 200
        assert text_of(page.text, "no-endpoints") == "No webhook endpoints yet."

        r = await form_post(
            client, "/app/settings/webhooks", "/app/settings/webhooks", {"url": "ftp://x.example"}
        )
        assert r.status_code == 422
        assert text_of(r.text, "url-error").startswith("use an https:// URL")

        async with receiving() as rec:
            r = await form_post(
                client,
                "/app/settings/webhooks",
                "/app/settings/webhooks",
                {"url": rec.at("/panel"), "description": "Till backend", "event_type": "payment.succeeded"},
            )
            assert r.status_code == 303
            detail_url = r.headers["location"]
            assert detail_url.endswith("?done=created")
            page = await client.get(detail_url)
            secret = text_of(page.text, "secret")
            assert secret.startswith("whsec_")
            endpoint_path = detail_url.split("?")[0]

            r = await form_post(client, endpoint_path, f"{endpoint_path}/test")
            assert r.status_code == 303

            async def arrived() -> bool:
                return len(rec.to("/panel")) >= 1

            await wait_until(arrived)
            event = Webhook(secret).verify(rec.to("/panel")[0].body, rec.to("/panel")[0].headers)
            assert event["type"] == "webhook.test"

            async def logged() -> bool:
                return "succeeded" in text_of((await client.get(endpoint_path)).text, "deliveries")

            await wait_until(logged)
            page = await client.get(endpoint_path)
            [delivery_id] = re.findall(r'id="delivery-(\d+)"', page.text)
            r = await form_post(client, endpoint_path, f"{endpoint_path}/deliveries/{delivery_id}/replay")
            assert r.status_code == 303

            async def again() -> bool:
                return len(rec.to("/panel")) >= 2

            await wait_until(again)
            first, second = rec.to("/panel")
            assert first.headers["webhook-id"] == second.headers["webhook-id"]

            r = await form_post(client, endpoint_path, f"{endpoint_path}/enabled", {"enabled": "false"})
            page = await client.get(r.headers["location"])
            assert text_of(page.text, "endpoint-state") == "off: switched off by the business"
        listing = await client.get("/app/settings/webhooks")
        assert "Till backend" in listing.text and "payment.succeeded" in listing.text
    finally:
        await client.aclose()

    # A cashier may not manage webhooks; another business's owner does not find this one.
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    _, other_owner = await make_tenant()
    for user, path, status in [(cashier, "/app/settings/webhooks", 403), (other_owner, endpoint_path, 404)]:
        c = await business_client(server.url, user)
        try:
            assert (await c.get(path)).status_code == status
        finally:
            await c.aclose()
