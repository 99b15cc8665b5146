"""👥 The customer book in the chat: pages, sorts, filters, search and minimum total, the Excel export
sent at once or, for a large book, by a job while a "preparing" message waits. Exact replies.

The book is made of real pushes through the API and the Daraja simulator; two customers are then
moved back in time (last seen twenty and sixty days ago), which no API can do."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

import core.exports.jobs  # noqa: F401  - the export job, as web/app.py registers it at start-up
from bots.routers import customers as customers_router
from core.audit.models import AuditLog
from core.customers.schemas import CustomerOut, CustomerQuery
from core.customers.service import customers
from core.exports.xlsx import EAT
from core.runtime import unit_of_work
from core.tenants.models import Mode, Tenant
from sim.telegram.client import TelegramSimClient
from tests.bots.test_transactions import (
    T,
    api_pushes,
    callback_answer,
    edited,
    has,
    join_as_cashier,
    link_chat,
    xlsx_rows,
)
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until

HINT = "Search: /customers wanjiku or /customers 0722"
WAFULAS = [f"07330003{n:02d}" for n in range(1, 8)]


@dataclass
class Book:
    tenant: Tenant
    owner_id: uuid.UUID
    c: dict[str, CustomerOut]  # by name ("–" for the one without a name)

    def rows(self, *names: str, start: int = 1) -> list[str]:
        out = []
        for n, name in enumerate(names, start=start):
            c = self.c[name]
            out.append(
                f"{n}. {name} 0{c.phone[3:]} · paid KES {c.paid_total:,} in {c.paid_count} of "
                f"{c.requested_count} · seen {c.last_seen_at.astimezone(EAT):%d %b}"
            )
        return out


def listing(head: str, how: str, rows: list[str]) -> str:
    return "\n".join([head, how, *rows, "", HINT])


def keys(
    sort: str = "Total paid",
    paid: str = "All",
    active: str = "Any time",
    *,
    minimum: str = "💰 Min total",
    search: bool = False,
    prev: bool = False,
    next_: bool = False,
) -> list[str]:
    def mark(options: list[str], chosen: str) -> list[str]:
        return [f"✓ {o}" if o == chosen else o for o in options]

    return [
        *mark(["Total paid", "Transactions", "Last seen"], sort),
        *mark(["Paid", "Never paid", "All"], paid),
        *mark(["Active 7 days", "Active 30 days", "Any time"], active),
        "🔎 Search",
        minimum,
        *(["✖ Clear search"] if search else []),
        *(["‹ Previous"] if prev else []),
        *(["Next ›"] if next_ else []),
        "📤 Export to Excel",
        "⬅ Menu",
    ]


W = [f"Wafula {n}" for n in range(7, 0, -1)]  # biggest total first: Wafula 7 paid 17, … Wafula 1 paid 11
BY_TOTAL = ["Baraka", "Achieng", "Dede", "Chebet", *W, "–"]
BY_TRANSACTIONS = ["–", "Achieng", *W, "Dede", "Chebet", "Baraka"]  # ties: newest customer first
BY_LAST_SEEN = ["–", "Achieng", *W, "Baraka", "Chebet", "Dede"]


@pytest.fixture(scope="module")
async def book(server: LiveServer) -> AsyncIterator[Book]:
    """Book Shop's twelve customers: Baraka paid 1,000; Achieng 300 + 200; a nameless one cancelled
    twice; Chebet paid 50 (last seen 20 days ago); Dede 70 (60 days ago); Wafula 1…7 paid 11…17."""
    tenant, owner = await make_tenant(name="Book Shop")
    people = [
        ("0722000201", 300, "Achieng"),
        ("0722000202", 1000, "Baraka"),
        ("0722001032", 40, None),  # the simulator cancels pushes to …1032
        ("0722000204", 50, "Chebet"),
        ("0722000205", 70, "Dede"),
        *((phone, 10 + n, f"Wafula {n}") for n, phone in enumerate(WAFULAS, start=1)),
        ("0722000201", 200, "Achieng"),
        ("0722001032", 41, None),
    ]
    await api_pushes(server, tenant, [{"phone": p, "amount": a, "name": n} for p, a, n in people])
    async with unit_of_work() as session:
        for phone, days in (("254722000204", 20), ("254722000205", 60)):
            row = await customers.get(session, tenant_id=tenant.id, mode=Mode.live, phone=phone)
            assert row is not None
            row.last_seen_at -= timedelta(days=days)
    async with unit_of_work(readonly=True) as session:
        rows = (
            await customers.search(
                session, tenant_id=tenant.id, mode=Mode.live, query=CustomerQuery(per_page=100)
            )
        ).items
    yield Book(tenant, owner.id, {c.name or "–": c for c in rows})


class TestBrowse:
    async def test_pages_both_ways_and_sorts(self, book: Book, tg: TelegramSimClient) -> None:
        await link_chat(tg, book.tenant, book.owner_id)
        first = await tg.ask("/customers", has("Customers"), timeout=T)
        page_1 = listing("👥 Customers (12)", "Sorted by total paid · page 1 of 2", book.rows(*BY_TOTAL[:10]))
        assert first.content == page_1
        assert first.button_texts == keys("Total paid", next_=True)
        await tg.press_button("Next ›")
        await edited(
            tg,
            first.message_id,
            listing(
                "👥 Customers (12)", "Sorted by total paid · page 2 of 2", book.rows(*BY_TOTAL[10:], start=11)
            ),
            keys("Total paid", prev=True),
        )
        await tg.press_button("‹ Previous")
        await edited(tg, first.message_id, page_1, keys("Total paid", next_=True))

        await tg.press_button("Transactions")
        await edited(
            tg,
            first.message_id,
            listing(
                "👥 Customers (12)", "Sorted by transactions · page 1 of 2", book.rows(*BY_TRANSACTIONS[:10])
            ),
            keys("Transactions", next_=True),
        )
        await tg.press_button("Last seen")
        await edited(
            tg,
            first.message_id,
            listing("👥 Customers (12)", "Sorted by last seen · page 1 of 2", book.rows(*BY_LAST_SEEN[:10])),
            keys("Last seen", next_=True),
        )
        await tg.press_button("Next ›")
        await edited(
            tg,
            first.message_id,
            listing(
                "👥 Customers (12)",
                "Sorted by last seen · page 2 of 2",
                book.rows(*BY_LAST_SEEN[10:], start=11),
            ),
            keys("Last seen", prev=True),
        )

    async def test_filters_keep_the_sort_and_page_with_it(self, book: Book, tg: TelegramSimClient) -> None:
        await link_chat(tg, book.tenant, book.owner_id)
        msg = await tg.ask("/customers", has("Customers"), timeout=T)
        await tg.press_button("Paid")
        paid = [n for n in BY_TOTAL if n != "–"]
        await edited(
            tg,
            msg.message_id,
            listing("👥 Customers (11)", "Sorted by total paid · paid · page 1 of 2", book.rows(*paid[:10])),
            keys(paid="Paid", next_=True),
        )
        await tg.press_button("Next ›")
        await edited(
            tg,
            msg.message_id,
            listing(
                "👥 Customers (11)",
                "Sorted by total paid · paid · page 2 of 2",
                book.rows("Wafula 1", start=11),
            ),
            keys(paid="Paid", prev=True),
        )
        await tg.press_button("Never paid")
        await edited(
            tg,
            msg.message_id,
            listing("👥 Customers (1)", "Sorted by total paid · never paid", book.rows("–")),
            keys(paid="Never paid"),
        )
        await tg.press_button("All")
        await edited(
            tg,
            msg.message_id,
            listing("👥 Customers (12)", "Sorted by total paid · page 1 of 2", book.rows(*BY_TOTAL[:10])),
            keys(next_=True),
        )

    async def test_activity_filters(self, book: Book, tg: TelegramSimClient) -> None:
        await link_chat(tg, book.tenant, book.owner_id)
        msg = await tg.ask("/customers", has("Customers"), timeout=T)
        await tg.press_button("Active 7 days")
        recent = [n for n in BY_TOTAL if n not in ("Chebet", "Dede")]
        await edited(
            tg,
            msg.message_id,
            listing(
                "👥 Customers (10)", "Sorted by total paid · active in the last 7 days", book.rows(*recent)
            ),
            keys(active="Active 7 days"),
        )
        await tg.press_button("Active 30 days")
        month = [n for n in BY_TOTAL if n != "Dede"]
        await edited(
            tg,
            msg.message_id,
            listing(
                "👥 Customers (11)",
                "Sorted by total paid · active in the last 30 days · page 1 of 2",
                book.rows(*month[:10]),
            ),
            keys(active="Active 30 days", next_=True),
        )
        await tg.press_button("Never paid")
        await edited(
            tg,
            msg.message_id,
            listing(
                "👥 Customers (1)",
                "Sorted by total paid · never paid · active in the last 30 days",
                book.rows("–"),
            ),
            keys(paid="Never paid", active="Active 30 days"),
        )
        await tg.press_button("Any time")
        await edited(
            tg,
            msg.message_id,
            listing("👥 Customers (1)", "Sorted by total paid · never paid", book.rows("–")),
            keys(paid="Never paid"),
        )


class TestSearch:
    async def test_search_by_command_button_and_clear(self, book: Book, tg: TelegramSimClient) -> None:
        await link_chat(tg, book.tenant, book.owner_id)
        found = await tg.ask("/customers WAFULA", has("Customers"), timeout=T)
        assert found.content == listing(
            "👥 Customers (7) matching “WAFULA”", "Sorted by total paid", book.rows(*W)
        )
        assert found.button_texts == keys(search=True)
        await tg.press_button("Last seen")  # the search stays
        await edited(
            tg,
            found.message_id,
            listing("👥 Customers (7) matching “WAFULA”", "Sorted by last seen", book.rows(*W)),
            keys("Last seen", search=True),
        )
        await tg.press_button("✖ Clear search")
        await edited(
            tg,
            found.message_id,
            listing("👥 Customers (12)", "Sorted by last seen · page 1 of 2", book.rows(*BY_LAST_SEEN[:10])),
            keys("Last seen", next_=True),
        )

        await tg.press_button("🔎 Search")
        ask = await tg.wait_for_bot_message(predicate=has("to search for"), timeout=T)
        assert ask.content == "🔎 Send a name, or part of a phone number, to search for."
        assert ask.button_texts == ["✖ Cancel"]
        by_phone = await tg.ask("0722 000", has("matching"), timeout=T)
        assert by_phone.content == listing(
            "👥 Customers (4) matching “0722 000”",
            "Sorted by last seen",  # the sort of the list the search started from
            book.rows("Achieng", "Baraka", "Chebet", "Dede"),
        )
        assert by_phone.button_texts == keys("Last seen", search=True)
        # an ordinary message afterwards is not taken for a search
        other = await tg.ask("hello", has("didn't understand"), timeout=T)
        assert other.content == "I didn't understand that. Use the buttons below, or /help."

    async def test_minimum_total(self, book: Book, tg: TelegramSimClient) -> None:
        await link_chat(tg, book.tenant, book.owner_id)
        await tg.ask("/customers 0722", has("Customers"), timeout=T)
        await tg.press_button("💰 Min total")
        ask = await tg.wait_for_bot_message(predicate=has("at least how much"), timeout=T)
        assert ask.content == (
            "💰 Show customers who paid at least how much in total, in KES? Send 0 for no minimum."
        )
        assert ask.button_texts == ["✖ Cancel"]
        bad = await tg.ask("lots", has("⚠️"), timeout=T)
        assert (
            bad.content == "⚠️ Amount must be a whole number of shillings, like 150.\nTry again, or /cancel."
        )
        assert bad.button_texts == ["✖ Cancel"]
        rich = await tg.ask("500", has("matching"), timeout=T)
        assert rich.content == listing(
            "👥 Customers (2) matching “0722”",
            "Sorted by total paid · paid at least KES 500",
            book.rows("Baraka", "Achieng"),
        )
        assert rich.button_texts == keys(minimum="💰 Min KES 500", search=True)
        await tg.press_button("💰 Min KES 500")
        await tg.wait_for_bot_message(predicate=has("at least how much"), timeout=T, after=rich.message_id)
        everyone = await tg.ask("0", has("matching"), timeout=T)
        assert everyone.content == listing(
            "👥 Customers (5) matching “0722”",
            "Sorted by total paid",
            book.rows("Baraka", "Achieng", "Dede", "Chebet", "–"),
        )
        assert everyone.button_texts == keys(search=True)

        await tg.press_button("💰 Min total")
        await tg.wait_for_bot_message(
            predicate=has("at least how much"), timeout=T, after=everyone.message_id
        )
        await tg.press_button("✖ Cancel")
        done = await tg.wait_for_bot_message(predicate=has("Cancelled"), timeout=T)
        assert done.content == "Cancelled. Nothing was changed."

    async def test_a_search_forgotten_by_cancel_says_so(self, book: Book, tg: TelegramSimClient) -> None:
        await link_chat(tg, book.tenant, book.owner_id)
        found = await tg.ask("/customers wafula", has("matching"), timeout=T)
        await tg.ask("/cancel", has("cancel"), timeout=T)  # clears the chat's FSM data, searches too
        update_ = await tg.press_button("Last seen")
        answer = await callback_answer(tg, update_)
        assert answer["text"] == (
            "This search is no longer kept. Search again: /customers followed by a name or phone."
        )
        assert answer["show_alert"] is True
        unchanged = next(m for m in await tg.transcript() if m.message_id == found.message_id)
        assert unchanged.content == found.content and not unchanged.edits


class TestWhoMaySee:
    async def test_empty_book_and_cashier(self, server: LiveServer, tg: TelegramSimClient) -> None:
        tenant, owner = await make_tenant(name="New Shop")
        await link_chat(tg, tenant, owner.id)
        await tg.press_button("👥 Customers")
        empty = await tg.wait_for_bot_message(predicate=has("No customers yet"), timeout=T)
        assert empty.content == "👥 No customers yet. They appear here after your first payment request."
        assert empty.button_texts == ["⬅ Menu"]
        again = await tg.ask("/customers", has("No customers yet"), timeout=T)
        assert again.content == empty.content and again.message_id > empty.message_id

        await join_as_cashier(tg, tenant, owner.id)
        refused = await tg.ask("/customers", has("⚠️"), timeout=T)
        assert refused.content == "⚠️ This is for the owner or manager of New Shop.\nTry again, or /cancel."


class TestExport:
    async def test_small_book_is_sent_at_once_with_the_filters(
        self, book: Book, tg: TelegramSimClient
    ) -> None:
        await link_chat(tg, book.tenant, book.owner_id)
        msg = await tg.ask("/customers wafula", has("matching"), timeout=T)
        await tg.press_button("Paid")
        await tg.wait_for_bot_message(
            predicate=lambda m: (
                m.message_id == msg.message_id and "\nSorted by total paid · paid\n" in m.content
            ),
            timeout=T,
        )
        update_ = await tg.press_button("📤 Export to Excel")
        doc = await tg.wait_for_bot_message(predicate=lambda m: m.document is not None, timeout=T)
        assert (await callback_answer(tg, update_))["text"] == "Preparing your Excel file…"
        # the search narrows the list, not the export: the book with the list's sort and filters
        assert doc.caption == "👥 11 customers · paid"
        assert doc.document is not None
        assert doc.document["file_name"] == f"customers-book-shop-{datetime.now(EAT):%Y-%m-%d}.xlsx"
        rows = xlsx_rows(await tg.file_bytes(doc.document["file_id"]))
        assert rows[0][:5] == (
            "Name",
            "Phone",
            "Total transactions",
            "Paid transactions",
            "Total amount processed (KES)",
        )
        paid = [n for n in BY_TOTAL if n != "–"]
        assert [r[:5] for r in rows[1:]] == [
            (n, book.c[n].phone, book.c[n].requested_count, book.c[n].paid_count, book.c[n].paid_total)
            for n in paid
        ]

        async def note_deleted() -> bool:
            notes = [m for m in await tg.transcript() if m.content == "⏳ Preparing the customer book…"]
            return len(notes) == 1 and notes[0].deleted

        await wait_until(note_deleted, timeout=T)  # the preparing note goes once the file is there

        await tg.press_button("Never paid")
        await tg.wait_for_bot_message(
            predicate=lambda m: m.message_id == msg.message_id and "· never paid\n" in m.content, timeout=T
        )
        await tg.press_button("💰 Min total")
        await tg.wait_for_bot_message(predicate=has("at least how much"), timeout=T)
        nobody = await tg.ask("100", has("No customers match"), timeout=T)
        assert nobody.content == listing(
            "👥 Customers (0) matching “wafula”",
            "Sorted by total paid · never paid · paid at least KES 100",
            ["No customers match."],
        )
        update_ = await tg.press_button("📤 Export to Excel")
        answer = await callback_answer(tg, update_)
        assert (answer["text"], answer["show_alert"]) == ("No customers to export with these filters.", True)

    async def test_large_book_is_built_by_a_job(
        self, book: Book, tg: TelegramSimClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(customers_router, "INLINE_EXPORT_MAX_ROWS", 5)
        await link_chat(tg, book.tenant, book.owner_id)
        await tg.ask("/customers", has("Customers"), timeout=T)
        await tg.press_button("📤 Export to Excel")
        # the "preparing" message is edited once the file is sent (the job may be quicker than a poll)
        done = await tg.wait_for_bot_message(predicate=has("✅ Sent the customer book"), timeout=T)
        assert done.content == "✅ Sent the customer book: 12 customers."
        assert done.edits == [
            "⏳ Preparing the customer book (12 customers). I will send the Excel file here as soon as it is "
            "ready."
        ]
        doc = await tg.wait_for_bot_message(predicate=lambda m: m.document is not None, timeout=T)
        assert doc.message_id > done.message_id
        assert doc.caption == "👥 12 customers"
        assert doc.document is not None
        assert doc.document["file_name"] == f"customers-book-shop-{datetime.now(EAT):%Y-%m-%d}.xlsx"
        rows = xlsx_rows(await tg.file_bytes(doc.document["file_id"]))
        assert [r[0] or "–" for r in rows[1:]] == BY_TOTAL
        async with unit_of_work(readonly=True) as session:
            audit = (
                await session.scalars(
                    select(AuditLog).where(
                        AuditLog.tenant_id == book.tenant.id, AuditLog.action == "export.customers"
                    )
                )
            ).all()
        assert {"rows": 12, "via": "telegram"} in [a.detail for a in audit]
        assert book.owner_id in {a.user_id for a in audit}

    async def test_a_job_that_cannot_build_the_file_says_so(
        self, server: LiveServer, book: Book, tg: TelegramSimClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(customers_router, "INLINE_EXPORT_MAX_ROWS", 5)
        # the export directory has gone (a full or unmounted disk, say): the file cannot be written
        monkeypatch.setattr(server.rt.settings, "EXPORT_DIR", f"/nonexistent-{uuid.uuid4().hex}")
        await link_chat(tg, book.tenant, book.owner_id)
        await tg.ask("/customers", has("Customers"), timeout=T)
        await tg.press_button("Active 30 days")
        await tg.wait_for_bot_message(predicate=has("active in the last 30 days"), timeout=T)
        await tg.press_button("📤 Export to Excel")
        failed = await tg.wait_for_bot_message(predicate=has("❌ The customer book"), timeout=T)
        assert (
            failed.content == "❌ The customer book could not be sent: something went wrong. Try again later."
        )
        assert failed.edits == [
            "⏳ Preparing the customer book (11 customers). I will send the Excel file here as soon as it "
            "is ready."
        ]
        assert not any(m.document for m in await tg.transcript())
