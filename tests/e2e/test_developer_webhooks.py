"""A developer's first hour, against the real `lipapush serve` process and only through the API and
`/docs`: sign up, connect a simulator channel, create an app and its test key, register a webhook
endpoint on their own server, verify a test event, then take a test payment and verify its
`payment.succeeded` event with the Standard Webhooks package, as their receiver would."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.e2e.conftest import Serve, bearer, unique_email, unique_phone, wait_for
from tests.support.receiver import receiving


async def test_from_a_new_app_to_a_verified_webhook_for_a_paid_test_payment(serve: Serve) -> None:
    async with httpx.AsyncClient(base_url=serve.url, timeout=30) as api, receiving() as rec:
        # The docs are served by the product itself and describe the webhook endpoints.
        docs = await api.get("/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        spec = (await api.get("/openapi.json")).json()
        for path in ("/api/apps", "/api/webhook-endpoints", "/api/webhook-endpoints/{endpoint_id}/test"):
            assert path in spec["paths"], path

        # Sign up and connect a simulator channel (the KES 1 verification push happens by itself).
        r = await api.post(
            "/api/signup",
            json={
                "business_name": "Duka la Dev",
                "email": unique_email("dev"),
                "password": f"pass-{secrets.token_hex(6)}",
                "phone": unique_phone("5678"),
            },
        )
        assert r.status_code == 201, r.text
        owner = bearer(r.json()["access_token"])
        r = await api.post("/api/settings", json={"environment": "simulator"}, headers=owner)
        assert r.status_code == 200, r.text

        async def verified() -> bool:
            s = (await api.get("/api/settings", headers=owner)).json()
            return bool(s["channel"]["verified"])

        await wait_for(verified, what="channel verified")

        # An app, and a key for it: on a simulator channel that is a test key.
        r = await api.post("/api/apps", json={"name": "Web shop"}, headers=owner)
        assert r.status_code == 201, r.text
        app = r.json()
        assert app["mode"] == "test"
        r = await api.post("/api/api-keys", json={"name": "shop backend", "app_id": app["id"]}, headers=owner)
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        assert key.startswith("lp_test_")
        dev = bearer(key)

        # The developer's endpoint, then a test event their receiver verifies.
        r = await api.post(
            "/api/webhook-endpoints",
            json={"url": rec.at("/lipapush"), "event_types": ["payment.succeeded", "payment.failed"]},
            headers=dev,
        )
        assert r.status_code == 201, r.text
        endpoint = r.json()
        assert (endpoint["app_id"], endpoint["mode"]) == (app["id"], "test")
        secret = endpoint["secret"]
        r = await api.post(f"/api/webhook-endpoints/{endpoint['id']}/test", headers=dev)
        assert r.status_code == 202, r.text

        async def got(n: int) -> bool:
            return len(rec.to("/lipapush")) >= n

        await wait_for(lambda: got(1), what="test event received")
        test_event: dict[str, Any] = Webhook(secret).verify(
            rec.to("/lipapush")[0].body, rec.to("/lipapush")[0].headers
        )
        assert test_event["type"] == "webhook.test"

        # A test payment, paid in the simulator: its event arrives signed, with the payment in it.
        r = await api.post("/api/stk-push", json={"phone": unique_phone("0111"), "amount": 250}, headers=dev)
        assert r.status_code == 201, r.text
        payment = r.json()
        await wait_for(lambda: got(2), what="payment.succeeded received")
        request = rec.to("/lipapush")[1]
        event: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
        assert event["type"] == "payment.succeeded"
        assert event["data"]["id"] == payment["id"]
        assert event["data"]["amount"] == 250 and event["data"]["status"] == "success"
        assert event["data"]["mode"] == "test"
        assert event["version"] == 1

        r = await api.get(f"/api/transactions/{payment['id']}", headers=dev)
        assert r.json()["receipt"] == event["data"]["receipt"]

        async def logged() -> list[dict[str, Any]] | None:
            r = await api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=dev)
            items: list[dict[str, Any]] = r.json()["items"]
            return items if all(d["status"] == "succeeded" for d in items) and len(items) == 2 else None

        items = await wait_for(logged, what="both deliveries logged as succeeded")
        assert [d["event_type"] for d in items] == ["payment.succeeded", "webhook.test"]
        assert items[0]["message_id"] == request.headers["webhook-id"]
