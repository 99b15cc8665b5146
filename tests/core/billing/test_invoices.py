from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.integrity import check_all
from core.billing.invoices import EAT, invoices, last_complete_period
from core.billing.models import InvoiceLine, InvoiceStatus
from core.ledger.models import Account, AccountKind
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, InvoicePeriod, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import account_balance, make_api_key, make_tenant, set_billing
from tests.support.services import TestDatabase
from tests.support.waiting import wait_for_final


class TestPeriods:
    def test_daily_weekly_monthly_in_eat(self) -> None:
        now = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)  # 05:30 EAT, a Monday
        start, end = last_complete_period(InvoicePeriod.daily, now)
        assert (start.astimezone(EAT).isoformat(), end.astimezone(EAT).isoformat()) == (
            "2026-11-22T00:00:00+03:00",
            "2026-11-23T00:00:00+03:00",
        )
        start, end = last_complete_period(InvoicePeriod.weekly, now)
        assert (start.astimezone(EAT).date().isoformat(), end.astimezone(EAT).date().isoformat()) == (
            "2026-11-16",
            "2026-11-23",
        )
        start, end = last_complete_period(InvoicePeriod.monthly, now)
        assert (start.astimezone(EAT).date().isoformat(), end.astimezone(EAT).date().isoformat()) == (
            "2026-10-01",
            "2026-11-01",
        )


async def fresh(session: AsyncSession, tenant: Tenant) -> Tenant:
    return await tenants.get(session, tenant.id)


async def accrue(client: httpx.AsyncClient, amounts: list[int]) -> tuple[Tenant, str]:
    tenant, _ = await make_tenant()
    await set_billing(tenant, mode=BillingMode.invoice, bps=100, period=InvoicePeriod.daily)
    key = await make_api_key(tenant=tenant)
    for amount in amounts:
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": amount},
            headers={"Authorization": f"Bearer {key}"},
        )
        await wait_for_final(client, key, r.json()["id"])
    return tenant, key


class TestInvoices:
    async def test_issue_is_idempotent_and_covers_every_accrual_once(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, key = await accrue(client, [150, 275, 1_000])
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        settings = runtime().settings
        async with unit_of_work() as session:
            first = await invoices.issue_for(
                session, tenant=await fresh(session, tenant), now=tomorrow, settings=settings
            )
        async with unit_of_work() as session:
            t = await fresh(session, tenant)
            again = await invoices.issue_for(session, tenant=t, now=tomorrow, settings=settings)
            later = await invoices.issue_for(
                session, tenant=t, now=tomorrow + timedelta(days=1), settings=settings
            )
        assert first is not None and again is None and later is None  # nothing new accrued since
        assert (first.total_cents, first.line_count, first.status) == (
            150 + 275 + 1_000,
            3,
            InvoiceStatus.issued,
        )
        async with unit_of_work(readonly=True) as session:
            lines = await session.scalar(
                select(func.count()).select_from(InvoiceLine).where(InvoiceLine.invoice_id == first.id)
            )
        assert lines == 3
        r = await client.get("/api/invoices", headers={"Authorization": f"Bearer {key}"})
        assert [i["number"] for i in r.json()] == [first.number]
        detail = (
            await client.get(f"/api/invoices/{first.id}", headers={"Authorization": f"Bearer {key}"})
        ).json()
        assert sorted(line["commission_cents"] for line in detail["lines"]) == [150, 275, 1_000]
        x = await client.get(
            f"/api/invoices/{first.id}/export-excel", headers={"Authorization": f"Bearer {key}"}
        )
        assert x.status_code == 200 and x.content[:2] == b"PK"

    async def test_overdue_invoice_holds_pushes_until_paid(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, key = await accrue(client, [500])
        settings = runtime().settings
        issued_at = datetime.now(UTC) + timedelta(days=1)
        async with unit_of_work() as session:
            invoice = await invoices.issue_for(
                session, tenant=await fresh(session, tenant), now=issued_at, settings=settings
            )
            assert invoice is not None
        overdue_now = invoice.due_at + timedelta(days=settings.INVOICE_GRACE_DAYS, hours=1)
        async with unit_of_work() as session:
            # due, but still inside the grace period: not put on hold
            await invoices.enforce_overdue(session, now=invoice.due_at, settings=settings)
            assert (await tenants.get(session, tenant.id)).billing_hold is None
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": 10},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201  # due but within the grace period: still collecting
        await wait_for_final(client, key, r.json()["id"])
        async with unit_of_work() as session:
            await invoices.enforce_overdue(session, now=overdue_now, settings=settings)
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": 10},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert (r.status_code, r.json()["error"]) == (403, "billing_hold")
        assert invoice.number in r.json()["detail"] and "Pay it to resume" in r.json()["detail"]
        async with unit_of_work() as session:
            await invoices.mark_paid(session, invoice_id=invoice.id, by=None, settings=settings)
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": 10},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201
        # paid: the receivable only owes what accrued after the invoice (the two KES 10 pushes, 10 cents each)
        await wait_for_final(client, key, r.json()["id"])
        assert await account_balance(tenant, AccountKind.receivable) == -20


async def run_cli(cli: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [str(cli), "ledger", "check"], env=env, capture_output=True, text=True, timeout=60
    )


class TestLedgerCheck:
    async def test_cli_passes_then_names_a_corrupted_balance(
        self, server: LiveServer, client: httpx.AsyncClient, database: TestDatabase
    ) -> None:
        tenant, _ = await accrue(client, [300])
        cli = Path(sys.executable).with_name("lipapush")
        env = {**os.environ, "DATABASE_URL": database.url}

        async with unit_of_work(readonly=True) as session:
            assert await check_all(session, tenant_id=tenant.id) == []
        ok = await run_cli(cli, env)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "ledger balanced" in ok.stdout

        async with unit_of_work() as session:
            acc = await session.scalar(
                select(Account).where(Account.tenant_id == tenant.id, Account.kind == AccountKind.revenue)
            )
            assert acc is not None
            await session.execute(
                update(Account).where(Account.id == acc.id).values(balance_cents=Account.balance_cents + 1)
            )
        try:
            bad = await run_cli(cli, env)
            assert bad.returncode == 1
            wrong = (
                f"balance: account {acc.id} (revenue of tenant {tenant.id}) holds 301 cents but its "
                "transfers sum to 300"
            )
            assert wrong in bad.stdout
            # the check scoped to this business finds the same, and only what is this business's
            async with unit_of_work(readonly=True) as session:
                found = await check_all(session, tenant_id=tenant.id)
            assert [f"{p.what}: {p.detail}" for p in found] == [wrong]
        finally:
            async with unit_of_work() as session:
                await session.execute(
                    update(Account)
                    .where(Account.id == acc.id)
                    .values(balance_cents=Account.balance_cents - 1)
                )
        async with unit_of_work(readonly=True) as session:
            assert await check_all(session, tenant_id=tenant.id) == []
