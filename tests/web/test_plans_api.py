"""API plans over HTTP: the monthly live-push quota refuses the push past it (429, Retry-After and the
RateLimit fields) and writes nothing; test pushes and Idempotency-Key replays never count; a plan with
a fee applies once paid from the wallet (the rest of the month at its share) and the default plan
applies while it is not."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from core.access.actor import Actor, Via
from core.billing.periods import EAT
from core.ledger.models import Transfer
from core.ledger.service import ledger
from core.payments.models import Payment
from core.plans import use_cases_admin
from core.plans.models import PlanUsage
from core.plans.schemas import PlanIn
from core.plans.service import month_of, next_month_start
from core.runtime import unit_of_work
from core.tenants.models import Environment, Tenant, TenantKind
from tests.conftest import LiveServer
from tests.support.factories import fund_wallet, letters_token, make_api_key, make_tenant, wallet_state
from tests.support.panel import business_client
from tests.support.waiting import wait_until
from tests.web.test_usage_api import login

ADMIN = Actor.system(via=Via.cli)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def on_plan(tenant: Tenant, *, quota: int | None, fee_kes: int = 0) -> str:
    """A plan of this test's own (codes are unique), the business on it."""
    code = f"t-{letters_token()}"
    await use_cases_admin.save_plan(
        ADMIN,
        PlanIn(code=code, name=f"Plan {code}", monthly_fee_cents=fee_kes * 100, live_pushes_per_month=quota),
    )
    await use_cases_admin.assign_plan(ADMIN, tenant.id, code=code)
    return code


async def payments_of(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).where(Payment.tenant_id == tenant.id)) or 0)


async def push(client: httpx.AsyncClient, key: str, phone: str, idem: str | None = None) -> httpx.Response:
    headers = bearer(key) | ({"Idempotency-Key": idem} if idem else {})
    return await client.post("/api/stk-push", json={"phone": phone, "amount": 10}, headers=headers)


class TestQuota:
    async def test_the_push_past_the_quota_is_refused_with_the_standard_headers(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Quota Duka")
        code = await on_plan(tenant, quota=2)
        key = await make_api_key(tenant=tenant)
        first = await push(client, key, "0712000678", idem="order-1")
        assert first.status_code == 201, first.text
        assert (await push(client, key, "0712000679")).status_code == 201
        # a replay of the first order is the same payment, not a third push
        again = await push(client, key, "0712000678", idem="order-1")
        assert (again.status_code, again.json()["id"]) in {
            (200, first.json()["id"]),
            (201, first.json()["id"]),
        }

        before = datetime.now(UTC)
        refused = await push(client, key, "0712000680")
        assert refused.status_code == 429, refused.text
        body = refused.json()
        resets = next_month_start(before)
        month = before.astimezone(EAT)
        assert body["error"] == "too_many_requests"
        assert (body["limit"], body["allowed"]) == ("monthly_live_pushes", 2)
        assert body["resets_at"] == resets.isoformat().replace("+00:00", "Z")
        assert body["detail"] == (
            f"This business has used its 2 live payment requests for {month:%B %Y} on the Plan "
            f"{code} plan; the count starts again on {resets.astimezone(EAT):%-d %B} at "
            "00:00 (Nairobi). Move to a bigger plan (Settings → Plan, or POST /api/plan) to push more."
        )
        wait = int(refused.headers["Retry-After"])
        assert abs(wait - (resets - before).total_seconds()) < 30
        start = datetime(month.year, month.month, 1, tzinfo=EAT)
        window = int((resets - start).total_seconds())
        assert refused.headers["RateLimit-Policy"] == f'"monthly_live_pushes";q=2;w={window}'
        assert refused.headers["RateLimit"] == f'"monthly_live_pushes";r=0;t={wait}'
        assert await payments_of(tenant) == 2  # nothing written for the refused push

        status = (await client.get("/api/plan", headers=bearer(key))).json()
        assert (status["live_pushes"], status["remaining"], status["month"]) == (2, 0, month_of(before))

    async def test_test_pushes_never_count(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant(name="Sandbox Duka", environment=Environment.simulator)
        await on_plan(tenant, quota=0)
        key = await make_api_key(tenant=tenant)
        for i in range(3):
            r = await push(client, key, f"071200{i:04d}")
            assert r.status_code == 201, r.text
        status = (await client.get("/api/plan", headers=bearer(key))).json()
        assert (status["live_pushes"], status["remaining"]) == (0, 0)

    async def test_last_months_pushes_do_not_count_this_month(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="New Month Duka")
        await on_plan(tenant, quota=1)
        last_month = month_of(datetime.now(UTC).astimezone(EAT).replace(day=1) - timedelta(days=1))
        async with unit_of_work() as session:
            session.add(PlanUsage(tenant_id=tenant.id, month=last_month, live_pushes=500))
        key = await make_api_key(tenant=tenant)
        assert (await push(client, key, "0712000678")).status_code == 201
        assert (await push(client, key, "0712000679")).status_code == 429


class TestPaidPlans:
    async def test_unpaid_falls_back_then_paying_restores_it(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Paying Duka")
        r = await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})
        auth = bearer(r.json()["access_token"])
        code = f"p-{letters_token()}"
        await use_cases_admin.save_plan(
            ADMIN,
            PlanIn(code=code, name="Growth test", monthly_fee_cents=300_000, live_pushes_per_month=5000),
        )
        chose = await client.post("/api/plan", json={"code": code}, headers=auth)
        assert chose.status_code == 200, chose.text
        status = chose.json()
        assert (status["chosen"]["code"], status["effective"]["code"], status["unpaid"]) == (
            code,
            "free",
            True,
        )

        refused = await client.post("/api/plan/pay", headers=auth)
        assert (refused.status_code, refused.json()["error"]) == (409, "conflict")
        assert "and the wallet has KES 0.00 available. Top up the wallet" in refused.json()["detail"]

        await fund_wallet(tenant, 1_000_000)
        paid = await client.post("/api/plan/pay", headers=auth)
        assert paid.status_code == 200, paid.text
        body = paid.json()
        start = datetime.fromisoformat(body["period_start"])
        end = datetime.fromisoformat(body["period_end"])
        local = start.astimezone(EAT)
        month_begins = datetime(local.year, local.month, 1, tzinfo=EAT)
        assert end == next_month_start(start)
        assert body["amount_cents"] == max(
            1, math.ceil(300_000 * (end - start).total_seconds() / (end - month_begins).total_seconds())
        )
        assert (body["status"]["effective"]["code"], body["status"]["unpaid"]) == (code, False)
        assert await wallet_state(tenant) == (1_000_000 - body["amount_cents"], 0)

        # the next month, at the full fee; then a month ahead is enough
        nxt = await client.post("/api/plan/pay", headers=auth)
        assert (nxt.status_code, nxt.json()["amount_cents"]) == (200, 300_000)
        assert datetime.fromisoformat(nxt.json()["period_start"]) == end
        ahead = await client.post("/api/plan/pay", headers=auth)
        assert (ahead.status_code, ahead.json()["error"]) == (409, "conflict")
        assert await wallet_state(tenant) == (1_000_000 - body["amount_cents"] - 300_000, 0)
        async with unit_of_work(readonly=True) as session:
            assert await ledger.check(session) == []

    async def test_a_manager_reads_but_does_not_choose_and_a_hidden_plan_is_unknown(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        from core.auth.models import Role
        from tests.support.factories import make_user

        tenant, owner = await make_tenant(name="Roles Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        r = await client.post("/api/login", json={"email": manager.email, "password": "secret-pass-1"})
        m_auth = bearer(r.json()["access_token"])
        assert (await client.get("/api/plan", headers=m_auth)).json()["effective"]["code"] == "free"
        assert (await client.post("/api/plan", json={"code": "free"}, headers=m_auth)).status_code == 403
        r = await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})
        auth = bearer(r.json()["access_token"])
        hidden = await client.post("/api/plan", json={"code": "founding"}, headers=auth)
        assert (hidden.status_code, hidden.json()["error"]) == (404, "not_found")
        offered = [p["code"] for p in (await client.get("/api/plan/options", headers=auth)).json()]
        assert "free" in offered and "founding" not in offered


class TestPerKeyRate:
    async def test_a_plan_sets_how_many_pushes_a_key_may_start_a_minute(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Rate Duka", environment=Environment.simulator)
        code = f"r-{letters_token()}"
        await use_cases_admin.save_plan(
            ADMIN, PlanIn(code=code, name="Slow", monthly_fee_cents=0, pushes_per_key_per_minute=2)
        )
        await use_cases_admin.assign_plan(ADMIN, tenant.id, code=code)
        key = await make_api_key(tenant=tenant)
        for i in range(2):
            assert (await push(client, key, f"07120010{i:02d}")).status_code == 201
        refused = await push(client, key, "0712001099")
        assert refused.status_code == 429, refused.text
        assert (refused.json()["limit"], refused.json()["allowed"], refused.json()["window_seconds"]) == (
            "per_key",
            2,
            60,
        )
        assert refused.headers["RateLimit-Policy"] == '"per_key";q=2;w=60'
        assert refused.headers["RateLimit"] == f'"per_key";r=0;t={refused.headers["Retry-After"]}'
        assert await payments_of(tenant) == 2


class TestPaidByMpesa:
    async def test_the_prompt_pays_the_plan_when_its_money_lands(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Mpesa Plan Duka")
        r = await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})
        auth = bearer(r.json()["access_token"])
        code = f"m-{letters_token()}"
        await use_cases_admin.save_plan(
            ADMIN, PlanIn(code=code, name="Pro test", monthly_fee_cents=150_000, live_pushes_per_month=900)
        )
        assert (await client.post("/api/plan", json={"code": code}, headers=auth)).status_code == 200
        status = (await client.get("/api/plan", headers=auth)).json()
        shillings = math.ceil(status["next_payment_cents"] / 100)

        r = await client.post("/api/plan/pay", json={"via": "mpesa"}, headers=auth)
        assert r.status_code == 202, r.text
        assert (r.json()["amount"], r.json()["source"], r.json()["phone"]) == (
            shillings,
            "topup",
            "254712345678",
        )

        async def paid() -> bool:
            return not (await client.get("/api/plan", headers=auth)).json()["unpaid"]

        await wait_until(paid)
        after = (await client.get("/api/plan", headers=auth)).json()
        assert after["effective"]["code"] == code
        # the top-up came in whole shillings; the plan took its share to the cent; the rest stays
        balance, _ = await wallet_state(tenant)
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Tenant, tenant.id)
            assert row is not None and row.plan_payment_id is None
            fee = await session.scalar(
                select(func.sum(Transfer.amount_cents)).where(
                    Transfer.tenant_id == tenant.id, Transfer.kind == "plan_fee"
                )
            )
        assert balance == shillings * 100 - int(fee or 0)
        assert 0 <= balance < 100


class TestHotspotProviders:
    async def test_a_provider_is_on_no_plan_and_its_live_sales_never_count(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Plan Free WiFi", tenant_kind=TenantKind.hotspot)
        auth = await login(client, owner.email)
        for method, path, body in (
            ("GET", "/api/plan", None),
            ("GET", "/api/plan/options", None),
            ("POST", "/api/plan", {"code": "free"}),
            ("POST", "/api/plan/pay", {"via": "wallet"}),
            ("POST", "/api/plan/pay", {"via": "mpesa"}),
        ):
            r = await client.request(method, path, json=body, headers=auth)
            assert r.status_code == 409, (path, r.text)
            assert r.json()["detail"] == (
                "API plans limit the live M-Pesa payment requests of a business. A WiFi hotspot provider "
                "is never limited by one: its WiFi subscription covers its sales (WiFi in the panel, /wifi "
                "in the bot)."
            )
        key = await make_api_key(tenant=tenant)
        assert (await push(client, key, "0722000111")).status_code == 201  # a live push
        async with unit_of_work(readonly=True) as session:
            counted = await session.scalar(select(PlanUsage).where(PlanUsage.tenant_id == tenant.id))
        assert counted is None
        assert (await payments_of(tenant)) == 1

        panel = await business_client(server.url, owner)
        try:
            settings = await panel.get("/app/settings")
            assert settings.status_code == 200
            assert 'href="/app/settings/plan"' not in settings.text
            assert (await panel.get("/app/settings/plan")).status_code == 409
        finally:
            await panel.aclose()
