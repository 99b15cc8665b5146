"""C2B through the real entry points: the API registers a channel's URLs with the Daraja simulator, a
customer pays the paybill from their phone (`/_sim/c2b/pay`), the simulator POSTs the confirmation to our
callback URL, the worker applies it, and the payment, the customer book, the commission and the merchant's
webhook all follow, once, however many times the confirmation is delivered."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from standardwebhooks import Webhook
from starlette.routing import Mount

from core.payments.models import CallbackInbox
from core.runtime import unit_of_work
from core.tenants.models import ChannelKind, Environment, MpesaChannel
from tests.conftest import LiveServer
from tests.core.c2b.support import (
    SCOPE,
    c2b_business,
    commission_transfers,
    customer,
    customer_count,
    inbox_rows,
    new_short_code,
    payments_with_receipt,
    webhook_messages,
)
from tests.support.factories import make_api_key
from tests.support.receiver import receiving
from tests.support.waiting import wait_until

PHONE = "254722000111"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def sim_pay(base: str, short_code: str, **kw: Any) -> str:
    body = {"shortcode": short_code, "msisdn": PHONE, "amount": 500, "bill_ref": "INV1001", **kw}
    async with httpx.AsyncClient(timeout=10) as sim:
        r = await sim.post(f"{base}/_sim/c2b/pay", json=body)
    assert r.status_code == 200, r.text
    trans_id: str = r.json()["TransID"]
    return trans_id


async def sim_record(base: str, trans_id: str) -> dict[str, Any]:
    """The simulator's view of a payment once its last delivery is done."""
    async with httpx.AsyncClient(timeout=10) as sim:

        async def done() -> bool:
            return (await sim.get(f"{base}/_sim/c2b/{trans_id}")).json()["outcome"] != "pending"

        await wait_until(done)
        record: dict[str, Any] = (await sim.get(f"{base}/_sim/c2b/{trans_id}")).json()
        return record


async def applied(channel_id: uuid.UUID, trans_id: str, count: int = 1) -> list[CallbackInbox]:
    async def all_done() -> bool:
        rows = await inbox_rows(channel_id, trans_id)
        return len(rows) >= count and all(r.processed_at is not None for r in rows)

    await wait_until(all_done)
    return await inbox_rows(channel_id, trans_id)


async def register(client: httpx.AsyncClient, key: str, channel_id: uuid.UUID, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/api/channels/{channel_id}/c2b/register", json=body, headers=auth(key))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


class TestACustomerPaysThePaybill:
    async def test_the_payment_its_book_entry_commission_and_webhook_once_each(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B Paybill Duka", wallet_cents=100_00)
        key = await make_api_key(tenant=biz.tenant)
        r = await client.get(f"/api/channels/{biz.channel_id}/c2b", headers=auth(key))
        assert r.status_code == 200, r.text
        assert (r.json()["registered"], r.json()["validation"], r.json()["accounts_rule"]) == (
            False,
            False,
            None,
        )
        assert r.json()["notes"][0].startswith("Not registered yet")

        async with receiving() as rec:
            r = await client.post("/api/webhook-endpoints", json={"url": rec.at("/hooks")}, headers=auth(key))
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]

            out = await register(client, key, biz.channel_id)
            state = out["state"]
            assert (state["registered"], state["api_version"], out["response_description"]) == (
                True,
                "v1",
                "Success",
            )
            assert state["confirmation_url"] == (
                f"{server.url}/callbacks/daraja/{biz.token}/c2b-confirmation"
            )
            assert state["validation_url"] == f"{server.url}/callbacks/daraja/{biz.token}/c2b-validation"

            trans_id = await sim_pay(
                server.production_url, biz.short_code, first_name="JANE", last_name="WANJIKU"
            )
            record = await sim_record(server.production_url, trans_id)
            assert record["outcome"] == "completed" and record["validation"] == "not asked"
            [delivery] = record["deliveries"]
            assert (delivery["status_code"], delivery["reply"]) == (
                200,
                {"ResultCode": 0, "ResultDesc": "Success"},
            )
            [row] = await applied(biz.channel_id, trans_id)
            assert row.outcome == "applied"

            r = await client.get("/api/transactions", params={"source": "c2b"}, headers=auth(key))
            [p] = r.json()["items"]
            assert (p["source"], p["status"], p["amount"], p["phone"], p["receipt"]) == (
                "c2b",
                "success",
                500,
                PHONE,
                trans_id,
            )
            assert (p["customer_name"], p["account_reference"], p["mode"]) == (
                "JANE WANJIKU",
                "INV1001",
                "live",
            )

            [request] = await arrived(rec, "/hooks", 1)
            event = Webhook(secret).verify(request.body, request.headers)
            assert event["type"] == "payment.succeeded"
            assert (event["data"]["id"], event["data"]["source"], event["data"]["receipt"]) == (
                p["id"],
                "c2b",
                trans_id,
            )

            # Daraja delivers the same confirmation again, three times at once.
            payload = row.payload
            url = f"/callbacks/daraja/{biz.token}/c2b-confirmation"
            answers = await asyncio.gather(
                *(
                    client.post(url, content=payload, headers={"Content-Type": "application/json"})
                    for _ in range(3)
                )
            )
            assert [(a.status_code, a.json()) for a in answers] == [
                (200, {"ResultCode": 0, "ResultDesc": "Success"})
            ] * 3
            rows = await applied(biz.channel_id, trans_id, count=4)
            assert sorted(r.outcome or "" for r in rows) == ["applied", "duplicate", "duplicate", "duplicate"]

        payment_id = uuid.UUID(p["id"])
        assert [x.id for x in await payments_with_receipt(trans_id)] == [payment_id]
        book = await customer(biz.tenant.id, PHONE)
        assert book is not None and (book.requested_count, book.paid_count, book.paid_total) == (1, 1, 500)
        assert await commission_transfers(payment_id) == [("commission.wallet", 500)]
        assert await webhook_messages(payment_id) == ["payment.succeeded"]
        assert len(rec.to("/hooks")) == 1

        r = await client.get("/api/customers", headers=auth(key))
        assert [(c["phone"], c["paid_total"]) for c in r.json()["items"]] == [(PHONE, 500)]
        r = await client.get(f"/api/c2b/payments/{payment_id}", headers=auth(key))
        assert r.status_code == 200, r.text
        facts = r.json()
        assert (facts["trans_id"], facts["bill_ref_number"], facts["amount_cents"], facts["msisdn"]) == (
            trans_id,
            "INV1001",
            50_000,
            PHONE,
        )

    async def test_v2_masks_the_number_so_the_payer_stays_out_of_the_book(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B Masked Duka", wallet_cents=100_00)
        key = await make_api_key(tenant=biz.tenant)
        out = await register(client, key, biz.channel_id, version="v2")
        assert out["state"]["api_version"] == "v2"
        assert any(n.startswith("Registered through v2: M-Pesa masks") for n in out["state"]["notes"])

        trans_id = await sim_pay(server.production_url, biz.short_code, msisdn="254722000222", amount=300)
        await sim_record(server.production_url, trans_id)
        [row] = await applied(biz.channel_id, trans_id)
        assert row.outcome == "applied" and json.loads(row.payload)["MSISDN"] == "2547 ***** 222"
        [p] = await payments_with_receipt(trans_id)
        assert (p.phone, p.paid_phone, p.amount) == ("2547*****222", "2547 ***** 222", 300)
        assert await customer_count(biz.tenant.id) == 0
        assert await commission_transfers(p.id) == [("commission.wallet", 300)]


class TestRegistration:
    async def test_production_answers_already_registered_as_such(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        # The mounted simulator (the `simulator` environment's) made one-time like the production host.
        biz = await c2b_business(name="C2B Once Duka", environment=Environment.simulator)
        key = await make_api_key(tenant=biz.tenant)
        sim = mounted_simulator(server)
        sim.c2b.production = True
        try:
            await register(client, key, biz.channel_id)
            r = await client.post(f"/api/channels/{biz.channel_id}/c2b/register", json={}, headers=auth(key))
        finally:
            sim.c2b.production = False
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "c2b_urls_already_registered"
        assert r.json()["detail"].startswith(
            f"M-Pesa already has C2B URLs for short code {biz.short_code} (lipapush "
        )
        assert r.json()["detail"].endswith(
            "In production a short code takes one registration: to change it, delete the URLs under URL "
            "management on the Daraja portal (or ask apisupport@safaricom.co.ke), then register again."
        )

    async def test_a_payout_channel_has_no_c2b(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        biz = await c2b_business(name="C2B Payout Duka")
        key = await make_api_key(tenant=biz.tenant)
        async with unit_of_work(scope=SCOPE) as session:
            primary = await session.get(MpesaChannel, biz.channel_id)
            assert primary is not None
            b2c = MpesaChannel(
                tenant_id=biz.tenant.id,
                name="Payouts",
                environment=primary.environment,
                kind=ChannelKind.b2c,
                business_short_code=new_short_code(),
                consumer_key_enc=primary.consumer_key_enc,
                consumer_secret_enc=primary.consumer_secret_enc,
                passkey_enc=primary.passkey_enc,
                callback_token=secrets.token_hex(24),
            )
            session.add(b2c)
            await session.flush()
            b2c_id = b2c.id
        r = await client.post(f"/api/channels/{b2c_id}/c2b/register", json={}, headers=auth(key))
        assert (r.status_code, r.json()["error"]) == (409, "conflict")
        assert r.json()["detail"] == (
            "The channel “Payouts” is a B2C (payout) short code: customers cannot pay into it, so it has no "
            "C2B URLs. Register C2B on the paybill or till channel instead."
        )
        r = await client.get("/api/c2b", headers=auth(key))
        assert [s["channel_id"] for s in r.json()] == [str(biz.channel_id)]

    async def test_bad_input_is_refused_by_field(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        biz = await c2b_business(name="C2B Input Duka")
        key = await make_api_key(tenant=biz.tenant)
        r = await client.post(
            f"/api/channels/{biz.channel_id}/c2b/register", json={"version": "v3"}, headers=auth(key)
        )
        assert r.status_code == 422 and "version" in r.json()["errors"]
        r = await client.patch(f"/api/channels/{biz.channel_id}/c2b", json={}, headers=auth(key))
        assert r.status_code == 422, r.text


class TestWhoMay:
    async def test_another_business_gets_404_for_a_channel_not_its_own(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        mine = await c2b_business(name="C2B Mine Duka")
        theirs = await c2b_business(name="C2B Theirs Duka")
        key = await make_api_key(tenant=theirs.tenant)
        base = f"/api/channels/{mine.channel_id}/c2b"
        for method, path, body in (
            ("GET", base, None),
            ("POST", f"{base}/register", {}),
            ("PATCH", base, {"validation": True}),
            ("GET", f"{base}/decisions", None),
            ("GET", f"{base}/accounts", None),
            ("POST", f"{base}/accounts", {"references": ["A1"]}),
        ):
            r = await client.request(method, path, json=body, headers=auth(key))
            assert (r.status_code, r.json()["error"]) == (404, "not_found"), (method, path, r.text)
        assert (await channel_state(mine.channel_id)) == (None, False)

    async def test_a_read_only_key_reads_but_cannot_register(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        from core.access.permissions import ApiScope

        biz = await c2b_business(name="C2B Reader Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=[ApiScope.business_read])
        assert (await client.get(f"/api/channels/{biz.channel_id}/c2b", headers=auth(key))).status_code == 200
        r = await client.post(f"/api/channels/{biz.channel_id}/c2b/register", json={}, headers=auth(key))
        assert r.status_code == 403 and "business:write" in r.json()["detail"]


class TestSettingsAndAccounts:
    async def test_validation_its_rule_and_the_account_numbers(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B Settings Duka")
        key = await make_api_key(tenant=biz.tenant)
        base = f"/api/channels/{biz.channel_id}/c2b"
        r = await client.patch(
            base, json={"validation": True, "accounts_rule": "known_references"}, headers=auth(key)
        )
        assert r.status_code == 200, r.text
        state = r.json()
        assert (state["validation"], state["accounts_rule"], state["accounts"]) == (
            True,
            "known_references",
            0,
        )
        assert any("Safaricom has enabled external validation" in n for n in state["notes"])
        assert any(n.startswith("The known_references rule refuses every payment") for n in state["notes"])

        r = await client.post(
            f"{base}/accounts", json={"references": ["ACC-1", "acc-1", " B 2 "]}, headers=auth(key)
        )
        assert (r.status_code, r.json()) == (201, {"added": 2, "total": 2})
        r = await client.post(f"{base}/accounts", json={"references": ["b2"]}, headers=auth(key))
        assert r.json() == {"added": 0, "total": 2}
        r = await client.get(f"{base}/accounts", headers=auth(key))
        assert [a["reference"] for a in r.json()] == ["ACC-1", "B 2"]
        assert (await client.delete(f"{base}/accounts/b2", headers=auth(key))).status_code == 204
        r = await client.delete(f"{base}/accounts/b2", headers=auth(key))
        assert (
            r.status_code == 404
            and r.json()["detail"] == "'b2' is not one of this channel's account numbers."
        )

        r = await client.patch(base, json={"accounts_rule": None}, headers=auth(key))
        assert (r.json()["validation"], r.json()["accounts_rule"]) == (True, None)
        r = await client.patch(base, json={"validation": False}, headers=auth(key))
        assert r.json()["validation"] is False
        assert (
            r.json()["notes"][1]
            == "Validation is off (the default): every payment to the short code is accepted."
        )

    async def test_a_till_cannot_take_the_account_rule(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B Till Duka", kind=ChannelKind.till)
        key = await make_api_key(tenant=biz.tenant)
        r = await client.patch(
            f"/api/channels/{biz.channel_id}/c2b",
            json={"accounts_rule": "known_references"},
            headers=auth(key),
        )
        assert r.status_code == 422
        assert r.json()["errors"]["accounts_rule"].startswith(
            "A till (Buy Goods) payment carries no account number"
        )


async def arrived(rec: Any, path: str, count: int) -> list[Any]:
    async def enough() -> bool:
        return len(rec.to(path)) >= count

    await wait_until(enough, timeout=30)
    return list(rec.to(path))


def mounted_simulator(server: LiveServer) -> Any:
    for route in server.app.routes:
        if isinstance(route, Mount) and route.path == "/sim/daraja":
            return route.app.state.daraja_sim  # type: ignore[attr-defined]
    raise AssertionError("the Daraja simulator is not mounted")


async def channel_state(channel_id: uuid.UUID) -> tuple[object, bool]:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        row = await session.scalar(select(MpesaChannel).where(MpesaChannel.id == channel_id))
        assert row is not None
        return row.c2b_registered_at, row.c2b_validation
