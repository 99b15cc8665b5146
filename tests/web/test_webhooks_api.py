"""Signed webhooks through the real entry points: the API registers an endpoint, a real STK push is
paid by the Daraja simulator, the callback is applied by the worker, and the delivery job POSTs the
event to a receiver on loopback, signed per Standard Webhooks (verified here with the package)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from standardwebhooks import Webhook

from core.notify.models import Notification
from core.runtime import unit_of_work
from core.webhooks.models import DeliveryStatus
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.receiver import Received, Receiver, receiving
from tests.support.waiting import wait_for_final, wait_until


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def verified(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def register(client: httpx.AsyncClient, key: str, url: str, **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/webhook-endpoints", json={"url": url, **extra}, headers=auth(key))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def pay(
    client: httpx.AsyncClient, key: str, phone: str = "0722000111", amount: int = 150
) -> dict[str, Any]:
    r = await client.post("/api/stk-push", json={"phone": phone, "amount": amount}, headers=auth(key))
    assert r.status_code == 201, r.text
    return await wait_for_final(client, key, r.json()["id"])


async def arrived(rec: Receiver, path: str, count: int, *, timeout: float = 30.0) -> list[Received]:
    async def enough() -> bool:
        return len(rec.to(path)) >= count

    await wait_until(enough, timeout=timeout)
    return rec.to(path)


async def test_a_paid_push_reaches_the_endpoint_signed(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        endpoint = await register(client, key, rec.at("/hooks"), description="Shop backend")
        assert endpoint["secret"].startswith("whsec_")
        assert endpoint["enabled"] is True and endpoint["event_types"] == []
        final = await pay(client, key)
        assert final["status"] == "success"
        [request] = await arrived(rec, "/hooks", 1)
    event = verified(endpoint["secret"], request)
    assert event["type"] == "payment.succeeded"
    assert event["version"] == 1
    assert event["data"]["id"] == final["id"]
    assert event["data"]["receipt"] == final["receipt"]
    assert event["data"]["amount"] == 150 and event["data"]["status"] == "success"
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"

    async def logged() -> bool:
        r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(key))
        return bool(r.json()["items"]) and r.json()["items"][0]["status"] == "succeeded"

    await wait_until(logged)
    r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(key))
    [delivery] = r.json()["items"]
    assert delivery["message_id"] == request.headers["webhook-id"]
    assert (delivery["event_type"], delivery["attempts"], delivery["last_status_code"]) == (
        "payment.succeeded",
        1,
        200,
    )
    r = await client.get(f"/api/webhook-deliveries/{delivery['id']}", headers=auth(key))
    detail = r.json()
    assert detail["payload"] == request.body.decode()
    [attempt] = detail["attempt_log"]
    assert attempt["outcome"] == "delivered" and attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "answer 200" and attempt["latency_ms"] >= 0


async def test_a_receiver_failing_twice_gets_the_third_attempt_with_the_same_id(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        rec.script["/flaky"] = [500, 500]
        endpoint = await register(client, key, rec.at("/flaky"), event_types=["payment.succeeded"])
        await pay(client, key)
        requests = await arrived(rec, "/flaky", 3, timeout=60)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1  # the same bytes every time, signed afresh
    for request in requests:
        assert verified(endpoint["secret"], request)["type"] == "payment.succeeded"

    async def settled() -> bool:
        r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(key))
        return r.json()["items"][0]["status"] == "succeeded"

    await wait_until(settled)
    r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(key))
    [delivery] = r.json()["items"]
    detail = (await client.get(f"/api/webhook-deliveries/{delivery['id']}", headers=auth(key))).json()
    assert [(a["number"], a["outcome"], a["status_code"]) for a in detail["attempt_log"]] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "delivered", 200),
    ]
    assert detail["attempt_log"][0]["error"] == "HTTP 500"
    endpoint_now = (await client.get(f"/api/webhook-endpoints/{endpoint['id']}", headers=auth(key))).json()
    assert endpoint_now["failing_since"] is None and endpoint_now["last_success_at"] is not None


async def test_an_endpoint_only_gets_the_types_it_subscribed_to(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        await register(
            client, key, rec.at("/failed-only"), event_types=["payment.failed", "payment.cancelled"]
        )
        everything = await register(client, key, rec.at("/all"))
        await pay(client, key, phone="0722001032")  # the customer cancels
        await pay(client, key)  # paid
        all_requests = await arrived(rec, "/all", 2)
        [cancelled] = await arrived(rec, "/failed-only", 1)
    assert json.loads(cancelled.body)["type"] == "payment.cancelled"
    assert sorted(verified(everything["secret"], r)["type"] for r in all_requests) == [
        "payment.cancelled",
        "payment.succeeded",
    ]


async def test_410_gone_switches_the_endpoint_off_and_tells_the_owner(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        rec.script["/gone"] = [410]
        endpoint = await register(client, key, rec.at("/gone"))
        await pay(client, key)
        await arrived(rec, "/gone", 1)

        async def disabled() -> bool:
            r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}", headers=auth(key))
            return r.json()["enabled"] is False

        await wait_until(disabled)
        r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}", headers=auth(key))
        assert r.json()["disabled_reason"] == "it answered 410 Gone"
        async with unit_of_work() as session:
            [note] = (
                await session.scalars(
                    select(Notification).where(
                        Notification.tenant_id == tenant.id, Notification.kind == "webhook.disabled"
                    )
                )
            ).all()
        assert rec.at("/gone") in note.body and "410 Gone" in note.body

        # While it is off, events are recorded as not sent; switched back on, a replay delivers them.
        await pay(client, key, amount=99)

        # The second payment's delivery is recorded as not sent while the endpoint is off.
        r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(key))
        assert [(d["status"], d["attempts"], d["last_error"]) for d in r.json()["items"]] == [
            ("failed", 0, "not sent: the endpoint was switched off"),
            ("failed", 1, "HTTP 410 Gone: the receiver asked to stop"),
        ]
        r = await client.patch(
            f"/api/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=auth(key)
        )
        assert r.status_code == 200 and r.json()["enabled"] is True and r.json()["disabled_reason"] is None
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        r = await client.post(
            f"/api/webhook-endpoints/{endpoint['id']}/replay", json={"since": since}, headers=auth(key)
        )
        assert r.status_code == 202 and r.json() == {"replayed": 2}
        requests = await arrived(rec, "/gone", 3)
    # The two replays go out together, in either order: the 410'd event again with its own id, and the
    # one made while the endpoint was off.
    first, *replayed = requests
    assert [r.headers["webhook-id"] for r in replayed].count(first.headers["webhook-id"]) == 1
    amounts = sorted(verified(endpoint["secret"], r)["data"]["amount"] for r in replayed)
    assert verified(endpoint["secret"], first)["data"]["amount"] == 150 and amounts == [99, 150]


async def test_replay_and_test_event_and_rotation(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        endpoint = await register(client, key, rec.at("/r"))
        r = await client.post(f"/api/webhook-endpoints/{endpoint['id']}/test", headers=auth(key))
        assert r.status_code == 202 and r.json()["event_type"] == "webhook.test"
        [test] = await arrived(rec, "/r", 1)
        event = verified(endpoint["secret"], test)
        assert event["type"] == "webhook.test" and event["data"]["endpoint_id"] == endpoint["id"]
        assert "version" not in event

        await pay(client, key)
        [_, first] = await arrived(rec, "/r", 2)

        async def delivered() -> list[dict[str, Any]]:
            r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(key))
            return [d for d in r.json()["items"] if d["event_type"] == "payment.succeeded"]

        async def one_succeeded() -> bool:
            return [d["status"] for d in await delivered()] == ["succeeded"]

        await wait_until(one_succeeded)
        [delivery] = await delivered()
        r = await client.post(f"/api/webhook-deliveries/{delivery['id']}/replay", headers=auth(key))
        assert r.status_code == 202, r.text
        [_, _, again] = await arrived(rec, "/r", 3)
        assert again.headers["webhook-id"] == first.headers["webhook-id"] and again.body == first.body

        # Rotation: for the overlap, both the new and the old secret sign each delivery.
        r = await client.post(
            f"/api/webhook-endpoints/{endpoint['id']}/secret/rotate", json={}, headers=auth(key)
        )
        assert r.status_code == 200
        rotated = r.json()
        assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_expires_at"] is not None
        await client.post(f"/api/webhook-endpoints/{endpoint['id']}/test", headers=auth(key))
        [*_, signed_twice] = await arrived(rec, "/r", 4)
        assert len(signed_twice.headers["webhook-signature"].split(" ")) == 2
        assert verified(rotated["secret"], signed_twice)["type"] == "webhook.test"
        assert verified(endpoint["secret"], signed_twice)["type"] == "webhook.test"
        # A leaked secret: overlap 0 stops the old one at once.
        r = await client.post(
            f"/api/webhook-endpoints/{endpoint['id']}/secret/rotate",
            json={"overlap_seconds": 0},
            headers=auth(key),
        )
        latest = r.json()["secret"]
        assert r.json()["previous_secret_expires_at"] is None
        await client.post(f"/api/webhook-endpoints/{endpoint['id']}/test", headers=auth(key))
        [*_, signed_once] = await arrived(rec, "/r", 5)
    assert len(signed_once.headers["webhook-signature"].split(" ")) == 1
    assert verified(latest, signed_once)["type"] == "webhook.test"
    r = await client.get(f"/api/webhook-endpoints/{endpoint['id']}/secret", headers=auth(key))
    assert r.json()["secret"] == latest


async def test_bad_input_and_other_businesses(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    other, _ = await make_tenant()
    other_key = await make_api_key(tenant=other)
    r = await client.post("/api/webhook-endpoints", json={"url": "ftp://example.com/x"}, headers=auth(key))
    assert r.status_code == 422 and r.json()["errors"]["url"].startswith("use an https:// URL"), r.text
    r = await client.post(
        "/api/webhook-endpoints",
        json={"url": "https://example.com/x", "event_types": ["payment.paid"]},
        headers=auth(key),
    )
    assert r.status_code == 422
    assert r.json()["errors"]["event_types"].startswith("Unknown event type payment.paid; choose from")
    endpoint = await register(client, key, "https://example.com/hooks")
    for method, path in [
        ("GET", f"/api/webhook-endpoints/{endpoint['id']}"),
        ("GET", f"/api/webhook-endpoints/{endpoint['id']}/secret"),
        ("POST", f"/api/webhook-endpoints/{endpoint['id']}/test"),
        ("DELETE", f"/api/webhook-endpoints/{endpoint['id']}"),
    ]:
        r = await client.request(method, path, headers=auth(other_key))
        assert r.status_code == 404, (method, path, r.text)
    assert (await client.get("/api/webhook-endpoints", headers=auth(other_key))).json() == []
    r = await client.delete(f"/api/webhook-endpoints/{endpoint['id']}", headers=auth(key))
    assert r.status_code == 204
    assert (await client.get("/api/webhook-endpoints", headers=auth(key))).json() == []
    r = await client.get("/api/webhook-event-types", headers=auth(key))
    assert [t["type"] for t in r.json()] == [
        "payment.succeeded",
        "payment.failed",
        "payment.cancelled",
        "payment.expired",
        "payment.flagged",
        "voucher.issued",
        "payout.succeeded",
        "payout.failed",
        "reversal.succeeded",
        "reversal.failed",
    ]


async def test_a_push_with_its_own_callback_url(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    [app] = (await client.get("/api/apps", headers=auth(key))).json()
    async with receiving() as rec:
        own_url = rec.at("/own").replace("127.0.0.1", "localhost")
        # Not an allowed host yet: refused by the field, and no payment is made.
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": 60, "callback_url": own_url},
            headers=auth(key),
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"]["callback_url"].startswith("localhost is not a callback host of the app")
        assert (await client.get("/api/transactions", headers=auth(key))).json()["items"] == []

        r = await client.patch(
            f"/api/apps/{app['id']}", json={"callback_hosts": ["localhost"]}, headers=auth(key)
        )
        assert r.status_code == 200, r.text
        secret = (await client.get(f"/api/apps/{app['id']}/callback-secret", headers=auth(key))).json()[
            "secret"
        ]
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": 60, "callback_url": own_url},
            headers=auth(key),
        )
        assert r.status_code == 201, r.text
        final = await wait_for_final(client, key, r.json()["id"])
        [request] = await arrived(rec, "/own", 1)
    event = verified(secret, request)
    assert (event["type"], event["data"]["id"], event["data"]["amount"]) == (
        "payment.succeeded",
        final["id"],
        60,
    )


async def test_a_flag_added_after_the_fact_is_an_event(server: LiveServer, client: httpx.AsyncClient) -> None:
    from core.payments.models import Payment
    from core.payments.service import payments

    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        endpoint = await register(client, key, rec.at("/flags"))
        final = await pay(client, key)
        await arrived(rec, "/flags", 1)
        async with unit_of_work() as session:
            payment = await session.get(Payment, uuid.UUID(final["id"]))
            assert payment is not None
            added = await payments.add_facts(session, payment=payment, flag="M-Pesa reported KES 151 for 150")
        assert added.added == ("flag",)
        [_, request] = await arrived(rec, "/flags", 2)
    event = verified(endpoint["secret"], request)
    assert event["type"] == "payment.flagged" and event["version"] == 2
    assert event["data"]["flag"] == "M-Pesa reported KES 151 for 150" and event["data"]["status"] == "success"


async def test_a_replaced_url_gets_the_retries_and_the_audit_log_keeps_no_token(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    from core.audit.models import AuditLog

    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    async with receiving() as rec:
        rec.script["/old"] = [500] * 8
        endpoint = await register(client, key, rec.at("/old") + "?token=s3cret")
        await pay(client, key)
        [first, *_] = await arrived(rec, "/old", 1)
        r = await client.patch(
            f"/api/webhook-endpoints/{endpoint['id']}", json={"url": rec.at("/new")}, headers=auth(key)
        )
        assert r.status_code == 200, r.text
        [moved] = await arrived(rec, "/new", 1, timeout=60)
        sent_to_old = len(rec.to("/old"))
        assert moved.headers["webhook-id"] == first.headers["webhook-id"]
        assert verified(endpoint["secret"], moved)["type"] == "payment.succeeded"
    assert sent_to_old <= 2  # at most one retry raced the change
    async with unit_of_work() as session:
        rows = (
            await session.scalars(
                select(AuditLog.detail).where(
                    AuditLog.tenant_id == tenant.id, AuditLog.action.like("webhook.endpoint_%")
                )
            )
        ).all()
    urls = sorted(str(d["url"]) for d in rows)
    assert urls == [rec.at("/new"), rec.at("/old") + "?…"]


async def test_test_events_are_limited_and_old_messages_are_pruned(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    from core.webhooks.jobs import prune_webhooks
    from core.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookMessage

    tenant, _ = await make_tenant()
    key = await make_api_key(tenant=tenant)
    endpoint = await register(client, key, "https://example.com/hooks")
    answers = [
        (await client.post(f"/api/webhook-endpoints/{endpoint['id']}/test", headers=auth(key))).status_code
        for _ in range(11)
    ]
    assert answers == [202] * 10 + [429]
    r = await client.post(f"/api/webhook-endpoints/{endpoint['id']}/test", headers=auth(key))
    assert r.json()["limit"] == "webhook_test_events" and int(r.headers["retry-after"]) >= 1

    # Ten test deliveries to example.com (not reachable here: they fail and wait for a retry). Age
    # all but one message past the retention; settle all but one of the aged ones.
    async with unit_of_work() as session:
        messages = (
            await session.scalars(
                select(WebhookMessage)
                .where(WebhookMessage.tenant_id == tenant.id)
                .order_by(WebhookMessage.id)
            )
        ).all()
        assert len(messages) == 10
        old = datetime.now(UTC) - timedelta(days=31)
        for m in messages[:9]:
            m.created_at = old
        deliveries = {
            d.message_id: d
            for d in (
                await session.scalars(select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant.id))
            ).all()
        }
        for m in messages[:8]:
            deliveries[m.id].status = DeliveryStatus.failed
            deliveries[m.id].next_attempt_at = None
        deliveries[messages[8].id].status = DeliveryStatus.pending
        kept = {messages[8].id, messages[9].id}
    await prune_webhooks()
    async with unit_of_work() as session:
        left = set(
            (
                await session.scalars(select(WebhookMessage.id).where(WebhookMessage.tenant_id == tenant.id))
            ).all()
        )
        kept_deliveries = (
            await session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.tenant_id == tenant.id))
        ).all()
    assert left == kept  # the old one still being tried stays, as does the recent one
    assert len(kept_deliveries) == 2
    kept_ids = {deliveries[m].id for m in kept}
    assert set(kept_deliveries) == kept_ids
    async with unit_of_work() as session:
        stray = (
            await session.scalars(
                select(WebhookAttempt.id).where(
                    WebhookAttempt.tenant_id == tenant.id, WebhookAttempt.delivery_id.not_in(kept_ids)
                )
            )
        ).all()
    assert stray == []  # the pruned deliveries' attempt logs went with them
