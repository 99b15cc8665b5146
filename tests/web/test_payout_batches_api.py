"""The issue's acceptance run of bulk payouts, through the API against the Daraja stand-in: a file of
200 rows (3 of them bad) is previewed with the bad rows named, approved, runs out of money part way
(the simulator's Utility account holds 120 payouts), pauses itself at the first "insufficient
balance", is resumed once the account is topped up, and ends with every good row paid exactly once
(the account went down by exactly 197 payouts), the ledger proving it, and the result file listing
every row."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from core.billing.integrity import check_all
from core.payouts.models import Payout, PayoutStatus
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.payouts import paying_business, sim_balance
from tests.support.waiting import wait_until
from tests.web.test_usage_api import login

GOOD, AMOUNT = 197, 100


def the_file() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Phone", "Amount", "Name", "Reference"])
    good = iter(range(GOOD))
    for n in range(200):
        if n == 17:
            sheet.append(["12345", AMOUNT, "Bad phone", "November"])
        elif n == 88:
            sheet.append(["0722109888", 1.5, "Cents", "November"])
        elif n == 150:
            sheet.append(["0722109150", 5, "Too little", "November"])
        else:
            i = next(good)
            # last four digits 1000-1196: none of the simulator's magic numbers
            sheet.append([f"07221{1000 + i:05d}", AMOUNT, f"Worker {i}", "November"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def batch(client: httpx.AsyncClient, auth: dict[str, str], batch_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/payout-batches/{batch_id}", headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_200_rows_pause_on_insufficient_funds_resume_and_pay_each_once(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    pb = await paying_business(server, name="Bulk Payroll Duka")
    auth = await login(client, pb.owner.email)
    async with httpx.AsyncClient() as sim:
        r = await sim.post(
            f"{pb.sim}/_sim/balance", json={"shortcode": pb.short_code, "utility": 120 * AMOUNT}
        )
        assert r.status_code == 200, r.text

    r = await client.post(
        "/api/payout-batches",
        files={"file": ("november.xlsx", the_file(), "application/vnd.ms-excel")},
        data={"command": "salary"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    preview = r.json()
    assert (preview["status"], preview["rows_total"], preview["rows_valid"], preview["amount_total"]) == (
        "draft",
        200,
        GOOD,
        GOOD * AMOUNT,
    )
    assert [(p["row"], p["field"]) for p in preview["problems"]] == [
        (19, "phone"),
        (90, "amount"),
        (152, "amount"),
    ]
    assert preview["problems"][1]["reason"] == "1.5 has cents: M-Pesa pays whole shillings."
    assert preview["progress"] is None
    async with unit_of_work(readonly=True) as session:  # nothing is paid before approval
        none = await session.scalar(select(func.count()).where(Payout.tenant_id == pb.tenant.id))
    assert none == 0

    r = await client.post(f"/api/payout-batches/{preview['id']}/approve", json={}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running"

    async def paused() -> bool:  # and settled: the rows that were with M-Pesa have their results
        b = await batch(client, auth, preview["id"])
        return b["status"] == "paused" and b["progress"]["pending"] == 0

    await wait_until(paused, timeout=90)
    stopped = await batch(client, auth, preview["id"])
    progress = stopped["progress"]
    assert progress["paid"] == 120  # exactly what the account held
    # The rows already with M-Pesa when the money ran out (ten at a time), and the few let go by results
    # that were applied in the same moment: a handful, never the hundreds still queued.
    assert 1 <= progress["failed"] <= 20
    assert progress["queued"] == GOOD - 120 - progress["failed"] and progress["pending"] == 0
    assert stopped["pause_reason"].startswith("M-Pesa says the B2C account cannot cover row ")
    assert (await sim_balance(pb.sim, pb.short_code))["utility"] == "0.00"

    async with httpx.AsyncClient() as sim:
        await sim.post(f"{pb.sim}/_sim/balance", json={"shortcode": pb.short_code, "utility": 100_000})
    r = await client.post(f"/api/payout-batches/{preview['id']}/resume", headers=auth)
    assert r.status_code == 200, r.text

    async def done() -> bool:
        return (await batch(client, auth, preview["id"]))["status"] == "done"

    await wait_until(done, timeout=90)
    final = (await batch(client, auth, preview["id"]))["progress"]
    assert (final["paid"], final["failed"], final["timeout"], final["queued"], final["pending"]) == (
        GOOD,
        0,
        0,
        0,
        0,
    )
    assert final["paid_kes"] == GOOD * AMOUNT
    # every good row paid once: the account went down by exactly 197 payouts in all
    left = (await sim_balance(pb.sim, pb.short_code))["utility"]
    assert left == f"{100_000 - (GOOD - 120) * AMOUNT:.2f}"
    async with unit_of_work(readonly=True) as session:
        rows = list(await session.scalars(select(Payout).where(Payout.batch_id == uuid.UUID(preview["id"]))))
        assert len(rows) == GOOD and {p.status for p in rows} == {PayoutStatus.success}
        assert len({p.receipt for p in rows}) == GOOD and len({p.row_number for p in rows}) == GOOD
        assert await check_all(session, tenant_id=pb.tenant.id) == []

    r = await client.get(f"/api/payout-batches/{preview['id']}/result.xlsx", headers=auth)
    assert r.status_code == 200
    assert r.headers["x-row-count"] == "200"
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).active
    assert sheet is not None
    listed = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [row[0] for row in listed] == list(range(2, 202))
    assert [row[5] for row in listed].count("success") == GOOD
    assert listed[17][5] == "refused" and listed[17][8].startswith("'12345' is not a Kenyan mobile number.")


async def test_approval_twice_another_business_and_a_bad_file(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    pb = await paying_business(server, name="Bulk Guard Duka")
    auth = await login(client, pb.owner.email)
    csv = b"phone,amount\n0722301111,100\n0722301112,100\n0722301111,100\n"
    r = await client.post("/api/payout-batches", files={"file": ("small.csv", csv, "text/csv")}, headers=auth)
    assert r.status_code == 201, r.text
    preview = r.json()
    assert preview["duplicates"] == 1 and preview["problems"][0]["row"] == 4

    other = await paying_business(server, name="Bulk Stranger Duka")
    stranger = await login(client, other.owner.email)
    assert (await client.get(f"/api/payout-batches/{preview['id']}", headers=stranger)).status_code == 404
    r = await client.post(f"/api/payout-batches/{preview['id']}/approve", json={}, headers=stranger)
    assert r.status_code == 404

    r = await client.post(f"/api/payout-batches/{preview['id']}/approve", json={}, headers=auth)
    assert r.status_code == 200, r.text
    again = await client.post(f"/api/payout-batches/{preview['id']}/approve", json={}, headers=auth)
    assert (again.status_code, again.json()["detail"]) == (
        409,
        "This batch is running: it cannot be approved.",
    )

    async def done() -> bool:
        return (await batch(client, auth, preview["id"]))["status"] == "done"

    await wait_until(done, timeout=30)
    assert (await batch(client, auth, preview["id"]))["progress"]["paid"] == 2  # the duplicate left out

    bad = await client.post(
        "/api/payout-batches", files={"file": ("list.pdf", b"%PDF-1.4", "application/pdf")}, headers=auth
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == {"file": "Send the list as an Excel file (.xlsx) or a CSV file (.csv)."}
