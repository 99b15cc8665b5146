"""POST/GET /api/payouts against the live server and its simulators: a payout pays exactly once, a
refusal fails it with M-Pesa's reason, a repeated Idempotency-Key is the same payout, limits and
permissions refuse with nothing written, and a key reaches only its own mode and business."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select
from standardwebhooks import Webhook

from core.access.permissions import ApiScope
from core.audit.models import AuditLog
from core.auth.models import Role, User
from core.notify.models import Notification
from core.payouts.models import Payout, PayoutStatus
from core.runtime import unit_of_work
from core.tenants.models import Environment, Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.payouts import (
    add_payout_channel,
    answers_of,
    paying_business,
    payout_row,
    sim_b2c_requests,
    sim_balance,
    wait_final,
)
from tests.support.receiver import receiving
from tests.support.waiting import wait_until

PAYOUT_SCOPES = [ApiScope.payouts_write]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def login(client: httpx.AsyncClient, email: str, password: str = "secret-pass-1") -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return auth(r.json()["access_token"])


async def payouts_of(tenant_id: uuid.UUID) -> list[Payout]:
    async with unit_of_work(readonly=True) as session:
        return list(await session.scalars(select(Payout).where(Payout.tenant_id == tenant_id)))


class TestOnePayout:
    async def test_it_pays_once_with_the_receipt_and_the_balances(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Payday Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        before = await sim_balance(biz.sim, biz.short_code)
        r = await client.post(
            "/api/payouts",
            json={"phone": "0722000111", "amount": 1500, "name": "Wanjiku", "reference": "March wages"},
            headers=auth(key),
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["status"], body["amount"], body["phone"], body["command"], body["mode"]) == (
            "pending",
            1500,
            "254722000111",
            "BusinessPayment",
            "live",
        )
        assert body["originator_conversation_id"] == "lp_" + uuid.UUID(body["id"]).hex
        done = await wait_final(body["id"])
        assert (done.status, done.result_code, done.result_desc) == (PayoutStatus.success, "0", "Paid")
        assert done.receipt is not None and len(done.receipt) == 10
        assert done.recipient_registered is True and done.recipient_name
        assert done.utility_balance_cents == 100_000_00 - 1500_00
        assert done.working_balance_cents == 0 and done.charges_paid_balance_cents == -15_00
        assert done.conversation_id is not None and done.sent_at is not None and done.send_attempts == 1
        after = await sim_balance(biz.sim, biz.short_code)
        assert (before["utility"], after["utility"]) == ("100000.00", "98500.00")
        [sent] = await sim_b2c_requests(biz.sim, biz.short_code)
        assert (sent["OriginatorConversationID"], sent["Amount"], sent["PartyB"], sent["Remarks"]) == (
            body["originator_conversation_id"],
            1500,
            "254722000111",
            "March wages",
        )
        got = (await client.get(f"/api/payouts/{body['id']}", headers=auth(key))).json()
        assert (got["status"], got["receipt"], got["utility_balance_cents"]) == (
            "success",
            done.receipt,
            98_500_00,
        )

    async def test_an_initiator_refusal_fails_it_with_the_reason_and_stops_the_channel(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        # 2001 (the simulator's magic number): "The initiator information is invalid."
        biz = await paying_business(server, name="Refused Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        r = await client.post("/api/payouts", json={"phone": "0722002001", "amount": 500}, headers=auth(key))
        assert r.status_code == 201, r.text
        done = await wait_final(r.json()["id"])
        message = (
            "The initiator information is invalid: check the initiator name and password, and that the "
            "certificate is the current one for this environment (sandbox or production)."
        )
        assert (done.status, done.result_code, done.result_desc, done.receipt) == (
            PayoutStatus.failed,
            "2001",
            message,
            None,
        )
        assert (await sim_balance(biz.sim, biz.short_code))["utility"] == "100000.00"
        async with unit_of_work(readonly=True) as session:
            told = list(
                await session.scalars(
                    select(Notification).where(
                        Notification.tenant_id == biz.tenant.id, Notification.kind == "payout.failed"
                    )
                )
            )
            audited = list(
                await session.scalars(
                    select(AuditLog.action)
                    .where(AuditLog.tenant_id == biz.tenant.id, AuditLog.target == str(done.id))
                    .order_by(AuditLog.id)
                )
            )
        assert len(told) == 1 and "initiator information is invalid" in told[0].body
        assert audited == ["payout.requested", "payout.failed"]
        # Every payout through that initiator would fail the same way: none is sent until it is set again.
        r = await client.post("/api/payouts", json={"phone": "0722000111", "amount": 500}, headers=auth(key))
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "initiator_not_verified"
        assert r.json()["detail"].startswith(
            "The channel “Payouts” cannot pay out yet: its M-Pesa initiator is not verified. The last check "
            f"said: {message} To fix it, set its M-Pesa initiator name and password (PUT /api/channels/"
            f"{biz.channel_id}/initiator"
        )
        assert len(await payouts_of(biz.tenant.id)) == 1

    async def test_a_result_delivered_twice_changes_it_once(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        # 9998: the simulator delivers the same success Result twice.
        biz = await paying_business(server, name="Twice Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        r = await client.post("/api/payouts", json={"phone": "0722009998", "amount": 200}, headers=auth(key))
        assert r.status_code == 201, r.text
        done = await wait_final(r.json()["id"])
        assert done.status is PayoutStatus.success

        async def both_applied() -> bool:
            rows = await answers_of(biz.channel_id, "b2c-result")
            return len(rows) == 2 and all(row.processed_at for row in rows)

        await wait_until(both_applied)
        assert [row.outcome for row in await answers_of(biz.channel_id, "b2c-result")] == [
            "applied",
            "duplicate",
        ]
        assert (await payout_row(done.id)).updated_at == done.updated_at
        assert (await sim_balance(biz.sim, biz.short_code))["utility"] == "99800.00"
        async with unit_of_work(readonly=True) as session:
            paid = await session.scalar(
                select(func.count()).where(AuditLog.target == str(done.id), AuditLog.action == "payout.paid")
            )
        assert paid == 1


class TestIdempotency:
    async def test_the_same_key_is_the_same_payout_and_another_body_is_refused(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Retry Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        headers = {**auth(key), "Idempotency-Key": "salary-2026-12-wanjiku"}
        first = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 300}, headers=headers
        )
        assert first.status_code == 201, first.text
        await wait_final(first.json()["id"])
        again = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 300}, headers=headers
        )
        assert (again.status_code, again.json()["id"], again.json()["status"]) == (
            201,
            first.json()["id"],
            "success",
        )
        other = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 301}, headers=headers
        )
        assert (other.status_code, other.json()) == (
            409,
            {
                "error": "idempotency_key_reused",
                "detail": "This Idempotency-Key was already used for a different payout (another phone, "
                "amount or command): use a new key for a new payout.",
            },
        )
        assert len(await payouts_of(biz.tenant.id)) == 1
        assert len(await sim_b2c_requests(biz.sim, biz.short_code)) == 1
        assert (await sim_balance(biz.sim, biz.short_code))["utility"] == "99700.00"


class TestLimits:
    async def test_over_the_per_payout_limit_is_refused_with_nothing_written(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Small Duka")
        await set_limits(biz.tenant.id, per_payout=1000, daily=None)
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        r = await client.post("/api/payouts", json={"phone": "0722000111", "amount": 1001}, headers=auth(key))
        detail = (
            "KES 1,001 is more than Small Duka may send in one payout: its limit is KES 1,000. Send a "
            "smaller amount, or split it over several payouts; lipapush support can change it "
            "(`lipapush payout limits --tenant …`)."
        )
        assert (r.status_code, r.json()) == (
            422,
            {
                "error": "payout_over_limit",
                "detail": detail,
                "limit_kes": 1000,
                "amount_kes": 1001,
                "errors": {"amount": detail},
            },
        )
        assert await payouts_of(biz.tenant.id) == []
        assert await sim_b2c_requests(biz.sim, biz.short_code) == []

    async def test_over_the_daily_limit_is_refused_until_midnight_with_nothing_written(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Daily Duka")
        await set_limits(biz.tenant.id, per_payout=None, daily=2000)
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        ok = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 1500}, headers=auth(key)
        )
        assert ok.status_code == 201, ok.text
        # a failed payout does not count: it sent nothing
        failed = await client.post(
            "/api/payouts", json={"phone": "0722002040", "amount": 400}, headers=auth(key)
        )
        assert failed.status_code == 201, failed.text
        assert (await wait_final(failed.json()["id"])).status is PayoutStatus.failed
        r = await client.post("/api/payouts", json={"phone": "0722000222", "amount": 600}, headers=auth(key))
        assert r.status_code == 429, r.text
        body = r.json()
        assert body["detail"] == (
            "This payout of KES 600 would take today's payouts to KES 2,100, over Daily Duka's daily "
            "limit of KES 2,000: KES 1,500 is already sent or on its way today (Nairobi time), so KES 500 "
            "is left. Send at most that, or wait until midnight in Nairobi; lipapush support can change it "
            "(`lipapush payout limits --tenant …`)."
        )
        assert (
            body["error"],
            body["limit"],
            body["allowed"],
            body["sent_today_kes"],
            body["amount_kes"],
        ) == (
            "payout_daily_limit",
            "payout_daily",
            2000,
            1500,
            600,
        )
        assert int(r.headers["Retry-After"]) == body["retry_after"] and 0 < body["retry_after"] <= 86400
        assert body["resets_at"].endswith("21:00:00Z")  # midnight in Nairobi
        assert len(await payouts_of(biz.tenant.id)) == 2
        exact = await client.post(
            "/api/payouts", json={"phone": "0722000222", "amount": 500}, headers=auth(key)
        )
        assert exact.status_code == 201, exact.text


class TestWhoMay:
    async def test_a_manager_needs_the_owners_grant(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Staff Duka")
        manager = await make_user(tenant=biz.tenant, role=Role.manager)
        headers = await login(client, manager.email)
        r = await client.post("/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=headers)
        assert (r.status_code, r.json()) == (
            403,
            {
                "error": "permission_denied",
                "detail": "Paying out is for the owner of Staff Duka, and staff the owner allowed to pay "
                "out: ask the owner to allow it for you.",
            },
        )
        assert await payouts_of(biz.tenant.id) == []
        async with unit_of_work() as session:
            row = await session.get(User, manager.id)
            assert row is not None
            row.may_pay_out = True
        r = await client.post("/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=headers)
        assert r.status_code == 201, r.text
        assert (await payout_row(r.json()["id"])).initiated_by_id == manager.id

    async def test_a_key_without_payouts_write_is_refused(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Scoped Duka")
        default = await make_api_key(tenant=biz.tenant)  # every scope but money out's
        r = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=auth(default)
        )
        assert r.status_code == 403, r.text
        assert r.json()["detail"].startswith("This API key lacks the payouts:write scope.")
        reader = await make_api_key(tenant=biz.tenant, scopes=[ApiScope.payouts_read])
        r = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=auth(reader)
        )
        assert r.status_code == 403, r.text
        assert (await client.get("/api/payouts", headers=auth(reader))).json() == {
            "items": [],
            "next_cursor": None,
        }
        assert await payouts_of(biz.tenant.id) == []

    async def test_another_business_payout_is_not_found(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Mine Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        r = await client.post("/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=auth(key))
        other, _ = await make_tenant(name="Theirs Duka")
        theirs = await make_api_key(tenant=other, scopes=PAYOUT_SCOPES)
        got = await client.get(f"/api/payouts/{r.json()['id']}", headers=auth(theirs))
        assert (got.status_code, got.json()) == (
            404,
            {
                "error": "not_found",
                "detail": "No such payout. List this business's payouts with GET /api/payouts.",
            },
        )
        listed = await client.get("/api/payouts", headers=auth(theirs))
        assert listed.json()["items"] == []


class TestModes:
    async def test_a_test_key_pays_out_only_through_the_simulator(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        # Collecting through the simulator, so its keys are test keys; paying out from production first.
        tenant, owner = await make_tenant(name="Modes Duka", environment=Environment.simulator)
        live_channel, live_code = await add_payout_channel(server, tenant, owner, name="Live payouts")
        test_key = await make_api_key(tenant=tenant, scopes=PAYOUT_SCOPES)
        r = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=auth(test_key)
        )
        assert (r.status_code, r.json()["error"]) == (409, "no_payout_channel")
        assert r.json()["detail"].startswith("This business has no test payout channel yet")
        r = await client.post(
            "/api/payouts",
            json={"phone": "0722000111", "amount": 100, "channel_id": str(live_channel)},
            headers=auth(test_key),
        )
        assert (r.status_code, r.json()["error"]) == (409, "mode_mismatch")
        assert r.json()["detail"].startswith(
            "This is a test key (lp_test_…) and the channel “Live payouts” is a production one"
        )
        assert await payouts_of(tenant.id) == []

        sim_channel, code = await add_payout_channel(
            server, tenant, owner, name="Sim payouts", environment=Environment.simulator
        )
        r = await client.post(
            "/api/payouts", json={"phone": "0722000111", "amount": 100}, headers=auth(test_key)
        )
        assert r.status_code == 201, r.text
        assert (r.json()["mode"], r.json()["channel_id"]) == ("test", str(sim_channel))
        done = await wait_final(r.json()["id"])
        assert done.status is PayoutStatus.success
        assert [b["Amount"] for b in await sim_b2c_requests(server.settings.simulator_url, code)] == [100]
        assert await sim_b2c_requests(server.production_url, live_code) == []
        # The owner (a person) pays out through either, naming one; the key lists its own mode's only.
        owner_headers = await login(client, owner.email)
        live = await client.post(
            "/api/payouts",
            json={"phone": "0722000111", "amount": 100, "channel_id": str(live_channel)},
            headers=owner_headers,
        )
        assert (live.status_code, live.json()["mode"]) == (201, "live")
        listed = (await client.get("/api/payouts", headers=auth(test_key))).json()["items"]
        assert [p["id"] for p in listed] == [r.json()["id"]]
        assert (
            await client.get(f"/api/payouts/{live.json()['id']}", headers=auth(test_key))
        ).status_code == 404
        both = (await client.get("/api/payouts", headers=owner_headers)).json()["items"]
        assert [p["mode"] for p in both] == ["live", "test"]


class TestWebhooks:
    async def test_paid_and_refused_payouts_reach_the_apps_endpoints_as_the_api_shows_them(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Hooked Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=[ApiScope.payouts_write, ApiScope.webhooks])
        async with receiving() as rec:
            # payout events come only to an endpoint that names them; "every type" stays collections
            named = {"url": rec.at("/hooks"), "event_types": ["payout.succeeded", "payout.failed"]}
            r = await client.post("/api/webhook-endpoints", json=named, headers=auth(key))
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]
            r = await client.post("/api/webhook-endpoints", json={"url": rec.at("/all")}, headers=auth(key))
            assert r.status_code == 201, r.text
            ids = []
            for phone in ("0722000111", "0722000003"):  # paid; SFC_IC0003: not on M-Pesa
                r = await client.post("/api/payouts", json={"phone": phone, "amount": 60}, headers=auth(key))
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
                await wait_final(ids[-1])

            async def both() -> bool:
                return len(rec.to("/hooks")) >= 2

            await wait_until(both)
        assert rec.to("/all") == []
        verified = [Webhook(secret).verify(req.body, req.headers) for req in rec.to("/hooks")]
        events = sorted(verified, key=lambda e: e["type"])
        assert [(e["type"], e["data"]["id"], e["data"]["status"], e["version"]) for e in events] == [
            ("payout.failed", ids[1], "failed", 1),
            ("payout.succeeded", ids[0], "success", 1),
        ]
        for event in events:
            shown = (await client.get(f"/api/payouts/{event['data']['id']}", headers=auth(key))).json()
            assert event["data"] == shown
        assert events[0]["data"]["result_desc"] == "The recipient's number is invalid or not on M-Pesa."

    async def test_naming_payout_events_needs_payouts_read(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Nosy Hooks Duka")
        key = await make_api_key(tenant=tenant, scopes=[ApiScope.webhooks, ApiScope.payments_read])
        body = {"url": "https://example.com/hooks", "event_types": ["payment.succeeded", "payout.failed"]}
        r = await client.post("/api/webhook-endpoints", json=body, headers=auth(key))
        assert r.status_code == 403, r.text
        assert r.json()["detail"].startswith("This API key lacks the payouts:read scope.")
        r = await client.post(
            "/api/webhook-endpoints", json={"url": "https://example.com/hooks"}, headers=auth(key)
        )
        assert r.status_code == 201, r.text
        r = await client.patch(
            f"/api/webhook-endpoints/{r.json()['id']}",
            json={"event_types": ["payout.succeeded"]},
            headers=auth(key),
        )
        assert r.status_code == 403, r.text


async def set_limits(tenant_id: uuid.UUID, *, per_payout: int | None, daily: int | None) -> None:
    async with unit_of_work() as session:
        row = await session.get(Tenant, tenant_id)
        assert row is not None
        row.payout_max_kes, row.payout_daily_max_kes = per_payout, daily
