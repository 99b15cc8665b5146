"""Global exports: queued from the panel, built by the worker with progress, downloaded as .xlsx with the
business in the first columns, kept for a limited time; bad requests change nothing."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path

import httpx
from openpyxl import load_workbook
from sqlalchemy import func, select

from core.audit.models import AuditLog
from core.auth.models import Role
from core.db import utcnow
from core.exports.global_exports import sweep_expired
from core.exports.models import ExportJob, ExportStatus
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import admin_client, business_client, csrf_of
from tests.support.waiting import wait_for_final


async def _start(admin: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await admin.get("/admin/exports")
    assert page.status_code == 200
    return await admin.post("/admin/exports", data={**fields, "csrf_token": csrf_of(page.text)})


async def _finished(admin: httpx.AsyncClient, export_id: str) -> str:
    """Poll the progress fragment the page polls, until it has no data-poll of its own."""
    for _ in range(300):
        r = await admin.get(f"/admin/exports/{export_id}/progress")
        assert r.status_code == 200
        if "data-poll" not in r.text:
            return r.text
        await asyncio.sleep(0.1)
    raise AssertionError("the export did not finish within 30 s")


async def _exports_count() -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).select_from(ExportJob)) or 0)


async def test_transactions_export_across_businesses(server: LiveServer, client: httpx.AsyncClient) -> None:
    first, _ = await make_tenant(name="Export Duka One")
    second, _ = await make_tenant(name="Export Duka Two")
    for tenant, phone, amount in ((first, "0722000111", 150), (second, "0722000112", 275)):
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/stk-push",
            json={"phone": phone, "amount": amount},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201, r.text
        assert (await wait_for_final(client, key, r.json()["id"]))["status"] == "success"

    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        r = await _start(admin, kind="transactions", status="success")
        assert r.status_code == 303
        export_id = re.search(r"started=([0-9a-f-]+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
        done = await _finished(admin, export_id)
        assert '<span class="tag ok">ready</span>' in done
        link = f'href="/admin/exports/{export_id}/download"'
        assert link in done
        page = await admin.get("/admin/exports")
        assert link in page.text

        file = await admin.get(f"/admin/exports/{export_id}/download")
        assert file.status_code == 200
        assert file.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert re.search(
            r'filename="all-transactions-\d{4}-\d\d-\d\d\.xlsx"', file.headers["content-disposition"]
        )
        ws = load_workbook(io.BytesIO(file.content), read_only=True).active
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0][:6] == (
            "Business",
            "Business number",
            "Date (EAT)",
            "Phone",
            "Customer",
            "Amount (KES)",
        )
        mine = {r[0]: r for r in rows[1:] if r[0] in ("Export Duka One", "Export Duka Two")}
        assert mine["Export Duka One"][3] == "254722000111" and mine["Export Duka One"][5] == 150
        assert mine["Export Duka Two"][3] == "254722000112" and mine["Export Duka Two"][5] == 275
        assert mine["Export Duka Two"][1] == second.business_number
        assert {r[6] for r in rows[1:]} == {"success"}  # the status filter held
        # Commission at the default 1 %: KES 2.75 on 275.
        assert float(mine["Export Duka Two"][12]) == 2.75

    async with unit_of_work(readonly=True) as session:
        row = await session.get(ExportJob, uuid.UUID(export_id))
        assert row is not None and row.status is ExportStatus.done and row.rows_done == len(rows) - 1
        assert row.rows_total == row.rows_done
        actions = list(
            await session.scalars(
                select(AuditLog.action).where(AuditLog.target == export_id).order_by(AuditLog.id)
            )
        )
        assert actions == ["export.global_transactions", "export.downloaded"]


async def test_customers_export_and_expiry(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant(name="Customer Export Duka")
    key = await make_api_key(tenant=tenant)
    r = await client.post(
        "/api/stk-push",
        json={"phone": "0722000113", "amount": 90, "name": "Achieng"},
        headers={"Authorization": f"Bearer {key}"},
    )
    await wait_for_final(client, key, r.json()["id"])
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        r = await _start(admin, kind="customers")
        export_id = re.search(r"started=([0-9a-f-]+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
        await _finished(admin, export_id)
        file = await admin.get(f"/admin/exports/{export_id}/download")
        ws = load_workbook(io.BytesIO(file.content), read_only=True).active
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0][:4] == ("Business", "Business number", "Name", "Phone")
        [achieng] = [r for r in rows if r[0] == "Customer Export Duka"]
        assert achieng[2:7] == ("Achieng", "254722000113", 1, 1, 90)

        # Past its keep time the file is swept and the link says so.
        async with unit_of_work() as session:
            row = await session.get(ExportJob, uuid.UUID(export_id))
            assert row is not None and row.path is not None
            path = Path(row.path)
            row.expires_at = utcnow() - timedelta(seconds=1)
            assert await sweep_expired(session) >= 1
        assert not path.exists()  # noqa: ASYNC240
        gone = await admin.get(f"/admin/exports/{export_id}/download")
        assert gone.status_code == 404
        assert "was kept for 24 hours and has been deleted. Start a new one." in gone.text
        fragment = await admin.get(f"/admin/exports/{export_id}/progress")
        assert '<span class="tag">expired</span>' in fragment.text


async def test_bad_requests_change_nothing(server: LiveServer) -> None:
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        before = await _exports_count()
        r = await _start(admin, kind="transactions", date_from="2026-11-20", date_to="2026-11-01")
        assert r.status_code == 422
        assert '<p class="error" id="e-to">The end date is before the start date.</p>' in r.text
        r = await _start(admin, kind="transactions", date_from="2025-01-01", date_to="2026-06-01")
        assert 'id="e-to">Choose at most 366 days, or leave both dates empty.' in r.text
        r = await _start(admin, kind="transactions", date_from="yesterday")
        assert r.status_code == 422 and 'id="e-from">Enter a date as YYYY-MM-DD.' in r.text
        r = await _start(admin, kind="vouchers")
        assert r.status_code == 422 and "Choose “All transactions” or “All customers”." in r.text
        r = await _start(admin, kind="transactions", status="paid")
        assert r.status_code == 422 and 'id="e-status">Choose one of the options.' in r.text
        # Without the CSRF token nothing is queued either.
        r = await admin.post("/admin/exports", data={"kind": "customers"})
        assert r.status_code == 403
        assert await _exports_count() == before
        assert (await admin.get(f"/admin/exports/{uuid.uuid4()}/download")).status_code == 404
        assert (await admin.get(f"/admin/exports/{uuid.uuid4()}/progress")).status_code == 404


async def test_business_users_cannot_export_everything(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Curious Duka")
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        r = await _start(admin, kind="customers")
        export_id = re.search(r"started=([0-9a-f-]+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
        await _finished(admin, export_id)
    for user in (owner, cashier):
        client = await business_client(server.url, user)
        async with aclosing(client):
            for path in (
                "/admin/exports",
                f"/admin/exports/{export_id}/progress",
                f"/admin/exports/{export_id}/download",
            ):
                r = await client.get(path)
                assert r.status_code == 403, path
                assert "This is for platform administrators (role platform_admin)." in r.text
            page = await client.get("/app")
            r = await client.post(
                "/admin/exports", data={"kind": "customers", "csrf_token": csrf_of(page.text)}
            )
            assert r.status_code == 403


async def test_an_export_the_worker_gave_up_on_says_so_and_frees_its_place(server: LiveServer) -> None:
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        # Three exports stuck "running" (their worker died for good, retries spent) for 20 minutes.
        async with unit_of_work() as session:
            stuck = [
                ExportJob(
                    kind="customers",
                    status=ExportStatus.running,
                    created_at=utcnow() - timedelta(minutes=25),
                    updated_at=utcnow() - timedelta(minutes=20),
                    rows_total=10,
                    rows_done=3,
                )
                for _ in range(3)
            ]
            session.add_all(stuck)
            await session.flush()
            ids = [str(row.id) for row in stuck]
        fragment = await admin.get(f"/admin/exports/{ids[0]}/progress")
        assert "data-poll" not in fragment.text
        assert (
            "The export stopped without finishing (the worker gave up on it). Start it again."
            in fragment.text
        )
        # They no longer take the three places: a new export starts, and they are recorded as failed.
        r = await _start(admin, kind="customers")
        assert r.status_code == 303, r.text
        async with unit_of_work(readonly=True) as session:
            rows = [await session.get(ExportJob, uuid.UUID(i)) for i in ids]
            assert [row.status for row in rows if row] == [ExportStatus.failed] * 3
