"""POST /callbacks/daraja/{token}/c2b-validation: M-Pesa asks before completing a payment (where
Safaricom enabled external validation) and waits about 8 s, so the answer comes in the request; each
decision is recorded for the merchant. Through the simulator: a wrong account number is refused (the
customer's payment ends, nothing is recorded), a listed one is paid."""

from __future__ import annotations

import json
from typing import Any

import httpx

from core.c2b.models import DecisionStage
from tests.conftest import LiveServer
from tests.core.c2b.support import c2b_business, confirmation, decisions, payments_with_receipt
from tests.support.factories import make_api_key
from tests.web.test_c2b_api import applied, auth, register, sim_pay, sim_record


async def validate(client: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        f"/callbacks/daraja/{token}/c2b-validation",
        content=content,
        headers={"Content-Type": "application/json"},
    )


async def sim_validation(base: str, short_code: str, enabled: bool) -> None:
    async with httpx.AsyncClient(timeout=10) as sim:
        r = await sim.post(f"{base}/_sim/c2b/validation", json={"shortcode": short_code, "enabled": enabled})
        assert r.status_code == 200, r.text


class TestTheValidationUrl:
    async def test_an_unknown_token_is_404_and_records_nothing(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B Unknown Token Duka")
        for token in ("not-a-token", "x" * 65):
            r = await validate(client, token, confirmation(biz.short_code))
            assert (r.status_code, r.json()["error"]) == (404, "not_found")
        assert await decisions(biz.channel_id) == []

    async def test_with_validation_off_every_payment_is_accepted_and_the_decision_kept(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B Off Duka")
        body = confirmation(biz.short_code, bill_ref="ANYTHING")
        r = await validate(client, biz.token, body)
        assert (r.status_code, r.json()) == (200, {"ResultCode": "0", "ResultDesc": "Accepted"})
        [d] = await decisions(biz.channel_id)
        assert (d.stage, d.accepted, d.result_code, d.trans_id, d.bill_ref_number, d.amount_cents) == (
            DecisionStage.validation,
            True,
            "0",
            body["TransID"],
            "ANYTHING",
            50_000,
        )
        assert d.reason == "Accepted: validation is off for this channel, so every payment goes through."

    async def test_with_validation_on_what_cannot_be_this_channels_is_refused_with_its_code(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B Checks Duka")
        key = await make_api_key(tenant=biz.tenant)
        r = await client.patch(
            f"/api/channels/{biz.channel_id}/c2b", json={"validation": True}, headers=auth(key)
        )
        assert r.status_code == 200, r.text
        cases = [
            (confirmation("1234567"), "C2B00015"),
            (confirmation(biz.short_code, amount="10.50"), "C2B00013"),
            (confirmation(biz.short_code, amount="0.00"), "C2B00013"),
            (b"{not json", "C2B00016"),
            ({"TransID": "X"}, "C2B00016"),
            (confirmation(biz.short_code, bill_ref="ANY"), "0"),
        ]
        for body, code in cases:
            r = await validate(client, biz.token, body)
            assert r.status_code == 200
            assert r.json() == {"ResultCode": code, "ResultDesc": "Accepted" if code == "0" else "Rejected"}
        rows = await decisions(biz.channel_id)
        assert [(d.result_code, d.accepted) for d in rows] == [(c, c == "0") for _, c in cases]
        assert rows[0].reason == "Refused: it is for short code 1234567, not this channel's."
        assert rows[3].reason.startswith("Refused: the request could not be read (")
        assert rows[-1].reason == "Accepted: validation is on, with no accounts rule."


class TestKnownReferencesThroughTheSimulator:
    async def test_a_wrong_account_number_is_refused_and_a_listed_one_paid(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await c2b_business(name="C2B School", wallet_cents=100_00)
        key = await make_api_key(tenant=biz.tenant)
        await register(client, key, biz.channel_id)
        base = f"/api/channels/{biz.channel_id}/c2b"
        r = await client.patch(
            base, json={"validation": True, "accounts_rule": "known_references"}, headers=auth(key)
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"{base}/accounts", json={"references": ["ADM-1042"]}, headers=auth(key))
        assert r.status_code == 201, r.text

        await sim_validation(server.production_url, biz.short_code, True)
        try:
            wrong = await sim_pay(server.production_url, biz.short_code, bill_ref="ADM-9999")
            refused = await sim_record(server.production_url, wrong)
            good = await sim_pay(server.production_url, biz.short_code, bill_ref="adm-1042", amount=1500)
            paid = await sim_record(server.production_url, good)
        finally:
            await sim_validation(server.production_url, biz.short_code, False)

        assert (refused["outcome"], refused["validation"], refused["ResultCode"]) == (
            "rejected",
            "rejected",
            "C2B00012",
        )
        assert [d["kind"] for d in refused["deliveries"]] == ["validation"]
        assert await payments_with_receipt(wrong) == []

        assert (paid["outcome"], paid["validation"]) == ("completed", "accepted")
        [row] = await applied(biz.channel_id, good)
        assert row.outcome == "applied"
        [p] = await payments_with_receipt(good)
        assert (p.amount, p.account_reference, p.source.value) == (1500, "adm-1042", "c2b")

        r = await client.get(f"{base}/decisions", params={"accepted": "false"}, headers=auth(key))
        [refusal] = r.json()
        assert (refusal["trans_id"], refusal["result_code"], refusal["bill_ref_number"]) == (
            wrong,
            "C2B00012",
            "ADM-9999",
        )
        assert refusal["reason"] == (
            "Refused: account number 'ADM-9999' is not one of this channel's account numbers (rule "
            "known_references)."
        )
        r = await client.get(f"{base}/decisions", headers=auth(key))
        assert [(d["trans_id"], d["accepted"]) for d in r.json()] == [(good, True), (wrong, False)]
        assert r.json()[0]["reason"] == "Accepted: account number 'adm-1042' is listed for this channel."
        r = await client.get(f"{base}/decisions", params={"before_id": r.json()[0]["id"]}, headers=auth(key))
        assert [d["trans_id"] for d in r.json()] == [wrong]
