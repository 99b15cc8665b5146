"""The README walk-through, step by step, against the real `lipapush serve` process."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from openpyxl import load_workbook

from tests.e2e.conftest import (
    XLSX_MEDIA_TYPE,
    Business,
    NewBusiness,
    Serve,
    all_transactions,
    bearer,
    run_cli,
    unique_email,
    unique_phone,
    wait_final,
)

EAT = ZoneInfo("Africa/Nairobi")

CUSTOMER_HEADERS = [
    "Name",
    "Phone",
    "Total transactions",
    "Paid transactions",
    "Total amount processed (KES)",
    "First transaction (EAT)",
    "Last transaction (EAT)",
]
TRANSACTION_HEADERS = [
    "Date (EAT)",
    "Phone",
    "Customer",
    "Amount (KES)",
    "Status",
    "M-Pesa receipt",
    "Reference",
    "Source",
    "Result",
    "Completed (EAT)",
]


def eat_wall_clock(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(EAT).replace(tzinfo=None)


def same_moment(cell: object, iso: str) -> bool:
    """An Excel datetime keeps about a millisecond; compare to the API's value at that precision."""
    assert isinstance(cell, datetime), f"{cell!r} is not a datetime"
    return abs(cell - eat_wall_clock(iso)) < timedelta(milliseconds=5)


def read_xlsx(r: httpx.Response, *, prefix: str, sheet: str) -> list[tuple[Any, ...]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX_MEDIA_TYPE
    disposition = r.headers["content-disposition"]
    match = re.fullmatch(r'attachment; filename="([^"]+)"', disposition)
    assert match, disposition
    filename = match.group(1)
    assert filename.endswith(".xlsx"), filename
    assert filename.startswith(prefix), filename
    assert r.content[:2] == b"PK"  # a zip container, not an HTML error page
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == [sheet]
    rows = [tuple(row) for row in wb[sheet].iter_rows(values_only=True)]
    assert int(r.headers["x-row-count"]) == len(rows) - 1
    return rows


class TestReadmeWalkthrough:
    async def test_create_business_push_and_read_the_books(
        self, serve: Serve, http: httpx.AsyncClient
    ) -> None:
        # 1. lipapush tenant create … --environment simulator: the KES 1 test push verifies the channel.
        email = unique_email("walkthrough")
        owner_phone = unique_phone("5678")
        made = await run_cli(
            serve,
            "tenant", "create",
            "--name", "Mama Mboga",
            "--email", email,
            "--password", "secret-pass-1",
            "--phone", owner_phone,
            "--environment", "simulator",
        )  # fmt: skip
        assert made.returncode == 0, made.output
        assert "Created business Mama Mboga" in made.stdout, made.output
        assert "Sending the KES 1 test push to the owner's phone" in made.stdout, made.output
        assert re.search(r"Test push sent \(CheckoutRequestID ws_CO_\d+\)", made.stdout), made.output
        assert "Channel verified: Mama Mboga is active." in made.stdout, made.output

        # 2. lipapush apikey create --tenant <email>: the key on stdout, once; a test key, since the
        #    business's channel is the simulator (test mode: its payments never touch money).
        keyed = await run_cli(serve, "apikey", "create", "--tenant", email)
        assert keyed.returncode == 0, keyed.output
        key = keyed.stdout.strip()
        assert re.fullmatch(r"lp_test_[A-Za-z0-9_\-]{43}", key), keyed.output
        assert "Store it now: it is shown only once." in keyed.stderr
        serve.api_keys.append(key)

        r = await http.get("/api/settings", headers=bearer(key))
        assert r.status_code == 200, r.text
        settings = r.json()
        business = settings["business"]
        assert (business["name"], business["status"], business["email"]) == ("Mama Mboga", "active", email)
        assert settings["channel"]["environment"] == "simulator"
        assert settings["channel"]["verified"] is True
        slug = settings["business"]["slug"]

        # 3. POST /api/stk-push → pending, then success within seconds.
        r = await http.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": 150, "name": "Wanjiku"},
            headers=bearer(key),
        )
        assert r.status_code == 201, r.text
        pushed = r.json()
        assert pushed["status"] == "pending"
        assert pushed["phone"] == "254722000111"
        assert pushed["amount"] == 150
        assert pushed["customer_name"] == "Wanjiku"
        assert pushed["source"] == "api"
        assert pushed["account_reference"] == "MAMAMBOGA"
        assert pushed["checkout_request_id"].startswith("ws_CO_")
        biz = Business(
            name="Mama Mboga", email=email, password="secret-pass-1", phone="254" + owner_phone[1:],
            key=key, slug=slug, tenant_id=settings["business"]["id"],
            callback_url=settings["channel"]["callback_url"],
        )  # fmt: skip
        final = await wait_final(http, biz, pushed["id"])
        assert final["status"] == "success"
        assert final["result_code"] == "0"
        assert final["result_desc"] == "Paid"
        assert re.fullmatch(r"[A-Z0-9]{10}", final["receipt"]), final
        assert final["flag"] is None
        assert final["completed_at"] is not None

        # 4. GET /api/customers: Wanjiku, paid 150.
        r = await http.get("/api/customers", headers=bearer(key))
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == 1
        [wanjiku] = page["items"]
        assert (
            wanjiku
            | {
                "phone": "254722000111",
                "name": "Wanjiku",
                "requested_count": 1,
                "requested_total": 150,
                "paid_count": 1,
                "paid_total": 150,
            }
            == wanjiku
        )
        assert wanjiku["last_paid_at"] is not None

        # 5. GET /api/customers/export-excel: a real workbook with typed cells.
        r = await http.get("/api/customers/export-excel", headers=bearer(key))
        rows = read_xlsx(r, prefix=f"customers-{slug}-", sheet="Customers")
        assert list(rows[0]) == CUSTOMER_HEADERS
        assert len(rows) == 2
        name, phone, requested, paid, total, first, last = rows[1]
        assert (name, phone) == ("Wanjiku", "254722000111")
        assert (requested, paid, total) == (1, 1, 150)
        assert all(type(v) is int for v in (requested, paid, total))
        assert same_moment(first, wanjiku["first_seen_at"])
        assert same_moment(last, wanjiku["last_seen_at"])

        # 6. GET /api/dashboard: totals of customer payments (the KES 1 verification is not one).
        r = await http.get("/api/dashboard", headers=bearer(key))
        assert r.status_code == 200, r.text
        dash = r.json()
        assert (
            dash
            | {
                "business": "Mama Mboga",
                "status": "active",
                "total_processed": 150,
                "transactions": 1,
                "success_count": 1,
                "failed_count": 0,
                "pending_count": 0,
                "success_rate": 1.0,
            }
            == dash
        )
        assert [c["name"] for c in dash["recent_customers"]] == ["Wanjiku"]

        # 7. GET /api/transactions/export-excel: the same rows as GET /api/transactions.
        listed = await all_transactions(http, biz)
        assert pushed["id"] in {t["id"] for t in listed}
        r = await http.get("/api/transactions/export-excel", headers=bearer(key))
        rows = read_xlsx(r, prefix=f"transactions-{slug}-", sheet="Transactions")
        assert list(rows[0]) == TRANSACTION_HEADERS
        assert len(rows) - 1 == len(listed)
        [row] = [row for row in rows[1:] if row[1] == "254722000111"]
        date, phone, customer, amount, status, receipt, reference, source, result, completed = row
        assert (phone, customer, amount, status) == ("254722000111", "Wanjiku", 150, "success")
        assert type(amount) is int
        assert (receipt, reference, source, result) == (final["receipt"], "MAMAMBOGA", "api", "Paid")
        assert same_moment(date, final["created_at"])
        assert same_moment(completed, final["completed_at"])


async def test_push_accepts_every_documented_phone_form(
    new_business: NewBusiness, http: httpx.AsyncClient
) -> None:
    biz = await new_business(name="Phone Forms")
    for fmt in ("+254 722 000 111", "254722000111", "0722-000-111"):
        r = await http.post("/api/stk-push", json={"phone": fmt, "amount": 10}, headers=biz.headers)
        assert r.status_code == 201, r.text
        assert r.json()["phone"] == "254722000111"
        assert (await wait_final(http, biz, r.json()["id"]))["status"] == "success"
