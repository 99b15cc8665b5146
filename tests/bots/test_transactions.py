"""📒 Transactions in the chat: pages both ways, status and period filters, the detail view with send
again, the Excel export, and what a cashier may see. Exact replies, as the user sees them.

Payments are real (the API and the Daraja simulator, or the bot's own /pay); the only shortcuts are a
payment left waiting (created by the payment service without a push, so no callback can finish it)
and moving some payments back in time, which no API can do."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pytest

from core.auth.codes import CodePurpose, issue_code
from core.auth.models import Role
from core.exports.xlsx import EAT
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.payments.service import TransactionFilter, payments
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from core.tenants.service import tenants
from sim.telegram.client import SimMessage, TelegramSimClient
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_for_final, wait_until

T = 15.0  # deadline for a reply (not a timing assertion)
HINT = "Tap a number for the details."
FILTER_BUTTONS = ["All", "Paid", "Not paid", "Waiting", "Today", "7 days", "30 days", "All time"]


def has(text: str) -> Callable[[SimMessage], bool]:
    return lambda m: text in m.content


# -- conversation helpers (shared with test_customers) --------------------------------------------
async def link_chat(tg: TelegramSimClient, tenant: Tenant, user_id: uuid.UUID) -> SimMessage:
    """Link the current sim user's chat to an existing account with a real one-time code."""
    async with unit_of_work() as session:
        code, _ = await issue_code(
            session, purpose=CodePurpose.telegram_link, tenant_id=tenant.id, user_id=user_id
        )
    return await tg.ask(f"/start {code}", has("What would you like to do?"), timeout=T)


async def join_as_cashier(tg: TelegramSimClient, tenant: Tenant, owner_id: uuid.UUID) -> None:
    """A second Telegram user joins the business as a cashier through a staff invite code."""
    async with unit_of_work() as session:
        code, _ = await issue_code(
            session, purpose=CodePurpose.staff_invite, tenant_id=tenant.id, role=Role.cashier, by=owner_id
        )
    assert tg.user is not None
    await tg.create_user("Kioko", user_id=tg.user.id + 600_000)
    joined = await tg.ask(f"/start {code}", has("linked"), timeout=T)
    assert joined.content == f"🔗 This chat is now linked to {tenant.name} (cashier)."
    menu = await tg.wait_for_bot_message(predicate=has("What would you like to do?"), timeout=T)
    assert menu.button_texts == ["💸 Request payment", "📒 Transactions"]


async def api_pushes(server: LiveServer, tenant: Tenant, pushes: list[dict[str, Any]]) -> list[str]:
    """STK pushes through the public API, one after the other (so their order is known), then
    waited on until M-Pesa (the simulator) has answered each."""
    key = await make_api_key(tenant=tenant)
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        ids = []
        for body in pushes:
            r = await http.post("/api/stk-push", json=body, headers=auth)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        for pid in ids:
            await wait_for_final(http, key, pid)
    return ids


async def edited(tg: TelegramSimClient, message_id: int, text: str, buttons: list[str]) -> SimMessage:
    """Wait until message `message_id` reads `text` exactly, then check its buttons."""
    message = await tg.wait_for_bot_message(
        predicate=lambda m: m.message_id == message_id and m.content == text, timeout=T
    )
    assert message.button_texts == buttons
    return message


async def tap(tg: TelegramSimClient, message_id: int, label: str, head: str) -> SimMessage:
    """Press `label` on message `message_id` and wait for the message to be edited to start with `head`
    (the next press must see the new buttons)."""
    await tg.press_button(label)
    return await tg.wait_for_bot_message(
        predicate=lambda m: m.message_id == message_id and m.content.startswith(head), timeout=T
    )


async def callback_answer(tg: TelegramSimClient, update: dict[str, Any]) -> dict[str, Any]:
    for _ in range(int(T / 0.05)):
        answer = await tg.callback_answer(update["callback_query"]["id"])
        if answer.get("answered"):
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"the button press was never answered: {update}")


def xlsx_rows(data: bytes) -> list[tuple[Any, ...]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def local(msisdn: str) -> str:
    return "0" + msisdn[3:]


# -- the ledger: ten payments over two months ------------------------------------------------------
@dataclass(frozen=True)
class Pay:
    id: uuid.UUID
    amount: int
    phone: str
    name: str | None
    status: PaymentStatus
    receipt: str | None
    reference: str
    created_at: datetime
    completed_at: datetime | None

    def row(self, n: int) -> str:
        icon = {PaymentStatus.success: "✅", PaymentStatus.pending: "⏳"}.get(self.status, "❌")
        line = f"{n}. {icon} {self.created_at.astimezone(EAT):%d %b %H:%M} · KES {self.amount} · "
        line += self.name or local(self.phone)
        return line + (f" · {self.receipt}" if self.receipt else "")


def eat(at: datetime | None) -> str:
    return at.astimezone(EAT).strftime("%d %b %Y %H:%M:%S EAT") if at else "–"


def page(header: str, rows: list[Pay]) -> str:
    return "\n".join([f"📒 Transactions · {header}", *(p.row(n) for n, p in enumerate(rows, 1)), "", HINT])


def buttons(chosen: tuple[str, str], count: int, *, newer: bool = False, older: bool = False) -> list[str]:
    out = [f"✓ {b}" if b in chosen else b for b in FILTER_BUTTONS]
    out += [str(n) for n in range(1, count + 1)]
    out += (["‹ Newer"] if newer else []) + (["Older ›"] if older else [])
    return [*out, *(["📤 Export"] if count else []), "⬅ Menu"]


@dataclass
class Ledger:
    tenant: Tenant
    owner_id: uuid.UUID
    p: dict[int, Pay]  # by amount (each payment has its own)

    def by(self, *amounts: int) -> list[Pay]:
        return [self.p[a] for a in amounts]


async def snapshot(pid: uuid.UUID) -> Pay:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Payment, pid)
        assert row is not None
        return Pay(
            row.id,
            row.amount,
            row.phone,
            row.customer_name,
            row.status,
            row.receipt,
            row.account_reference,
            row.created_at,
            row.completed_at,
        )


async def backdate(pid: uuid.UUID, days: int) -> None:
    async with unit_of_work() as session:
        row = await session.get(Payment, pid)
        assert row is not None
        row.created_at -= timedelta(days=days)
        if row.completed_at is not None:
            row.completed_at -= timedelta(days=days)


@pytest.fixture(scope="module")
async def ledger(server: LiveServer) -> AsyncIterator[Ledger]:
    """Ledger Shop: newest first 110 (waiting), 109, 108, 107, 105 paid today; 104 (wrong PIN) and
    103 (cancelled) three days ago; 106 (no response) and 102 (paid) twenty days ago; 101 (paid)
    sixty days ago. Made before any chat is linked, so no "via API" notes reach the chats."""
    tenant, owner = await make_tenant(name="Ledger Shop")
    pushes = [
        (101, "0722000101", "Achieng", 60),
        (102, "0722000102", "Baraka", 20),
        (103, "0722001032", None, 3),  # the simulator cancels pushes to …1032
        (104, "0722002001", "Chebet", 3),  # … and reports a wrong PIN for …2001
        (105, "0722000105", "Dede", 0),
        (106, "0722001037", None, 20),  # … and an unreachable phone for …1037
        (107, "0722000107", "Esther <Shop> & Co", 0),
        (108, "0722000108", "Fatuma", 0),
        (109, "0722000109", "Gakii", 0),
    ]
    ids = await api_pushes(
        server,
        tenant,
        [{"phone": phone, "amount": amount, "name": name} for amount, phone, name, _ in pushes],
    )
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        waiting, _ = await payments.create_pending(
            session,
            tenant=row,
            channel=channel,
            phone="254722000110",
            amount=110,
            source=PaymentSource.api,
            settings=runtime().settings,
            name="Halima",
        )
    for pid, (_, _, _, days) in zip(ids, pushes, strict=True):
        if days:
            await backdate(uuid.UUID(pid), days)
    snaps = [await snapshot(uuid.UUID(pid)) for pid in ids] + [await snapshot(waiting.id)]
    book = Ledger(tenant, owner.id, {s.amount: s for s in snaps})
    assert [book.p[a].status for a in (103, 104, 106, 110)] == [
        PaymentStatus.cancelled,
        PaymentStatus.failed,
        PaymentStatus.timeout,
        PaymentStatus.pending,
    ]
    yield book


ALL_PAGE_1 = (110, 109, 108, 107, 105, 104, 103, 106)


class TestPages:
    async def test_eight_a_page_older_and_newer(self, ledger: Ledger, tg: TelegramSimClient) -> None:
        await link_chat(tg, ledger.tenant, ledger.owner_id)
        first = await tg.ask("/transactions", has("Transactions"), timeout=T)
        assert first.content == page("All · All time · page 1", ledger.by(*ALL_PAGE_1))
        assert "Esther <Shop> & Co" in first.content  # escaped on the way in, shown as typed
        assert first.button_texts == buttons(("All", "All time"), 8, older=True)

        await tg.press_button("Older ›")
        await edited(
            tg,
            first.message_id,
            page("All · All time · page 2", ledger.by(102, 101)),
            buttons(("All", "All time"), 2, newer=True),
        )
        await tg.press_button("‹ Newer")
        await edited(
            tg,
            first.message_id,
            page("All · All time · page 1", ledger.by(*ALL_PAGE_1)),
            buttons(("All", "All time"), 8, older=True),
        )

    async def test_the_menu_button_and_an_empty_business(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        tenant, owner = await make_tenant(name="Quiet Shop")
        await link_chat(tg, tenant, owner.id)
        await tg.press_button("📒 Transactions")
        empty = await tg.wait_for_bot_message(predicate=has("No payments yet"), timeout=T)
        assert empty.content == "📒 No payments yet. Tap 💸 Request payment to start."
        assert empty.button_texts == ["⬅ Menu"]
        again = await tg.ask("/transactions", has("No payments yet"), timeout=T)
        assert again.message_id > empty.message_id and again.content == empty.content
        await tg.press_button("⬅ Menu")
        await tg.wait_for_bot_message(
            predicate=has("What would you like to do?"), timeout=T, after=again.message_id
        )


async def wait_answered(tg: TelegramSimClient, callback_id: str) -> None:
    async def answered() -> bool:
        return bool((await tg.callback_answer(callback_id)).get("answered"))

    await wait_until(answered, timeout=T)


class TestFilters:
    async def test_status_filters(self, ledger: Ledger, tg: TelegramSimClient) -> None:
        await link_chat(tg, ledger.tenant, ledger.owner_id)
        msg = await tg.ask("/transactions", has("Transactions"), timeout=T)
        await tg.press_button("Paid")
        await edited(
            tg,
            msg.message_id,
            page("Paid · All time · page 1", ledger.by(109, 108, 107, 105, 102, 101)),
            buttons(("Paid", "All time"), 6),
        )
        # "not paid" is every way a payment can fail, merged newest first
        await tg.press_button("Not paid")
        await edited(
            tg,
            msg.message_id,
            page("Not paid · All time · page 1", ledger.by(104, 103, 106)),
            buttons(("Not paid", "All time"), 3),
        )
        await tg.press_button("Waiting")
        await edited(
            tg,
            msg.message_id,
            page("Waiting · All time · page 1", ledger.by(110)),
            buttons(("Waiting", "All time"), 1),
        )
        # the filter already chosen: nothing changes, no error. Updates are handled concurrently, so wait
        # for this press to be answered before the next one (a user's two taps can race the same way).
        pressed = await tg.press_button("✓ Waiting")
        await wait_answered(tg, pressed["callback_query"]["id"])
        await tg.press_button("All")
        await edited(
            tg,
            msg.message_id,
            page("All · All time · page 1", ledger.by(*ALL_PAGE_1)),
            buttons(("All", "All time"), 8, older=True),
        )
        assert not any("Something went wrong" in m.content for m in await tg.bot_messages())

    async def test_periods_keep_the_status_and_pages_keep_both(
        self, ledger: Ledger, tg: TelegramSimClient
    ) -> None:
        await link_chat(tg, ledger.tenant, ledger.owner_id)
        msg = await tg.ask("/transactions", has("Transactions"), timeout=T)
        await tap(tg, msg.message_id, "Not paid", "📒 Transactions · Not paid · All time")
        await tg.press_button("Today")
        await edited(
            tg,
            msg.message_id,
            "📒 Transactions · Not paid · Today · page 1\nNo payments match these filters.",
            [*(f"✓ {b}" if b in ("Not paid", "Today") else b for b in FILTER_BUTTONS), "⬅ Menu"],
        )
        await tg.press_button("7 days")
        await edited(
            tg,
            msg.message_id,
            page("Not paid · 7 days · page 1", ledger.by(104, 103)),
            buttons(("Not paid", "7 days"), 2),
        )
        await tg.press_button("Paid")
        await edited(
            tg,
            msg.message_id,
            page("Paid · 7 days · page 1", ledger.by(109, 108, 107, 105)),
            buttons(("Paid", "7 days"), 4),
        )
        await tg.press_button("Today")
        await edited(
            tg,
            msg.message_id,
            page("Paid · Today · page 1", ledger.by(109, 108, 107, 105)),
            buttons(("Paid", "Today"), 4),
        )
        await tap(tg, msg.message_id, "All", "📒 Transactions · All · Today")
        await tg.press_button("30 days")
        await edited(
            tg,
            msg.message_id,
            page("All · 30 days · page 1", ledger.by(*ALL_PAGE_1)),
            buttons(("All", "30 days"), 8, older=True),
        )
        await tg.press_button("Older ›")
        await edited(
            tg,
            msg.message_id,
            page("All · 30 days · page 2", ledger.by(102)),
            buttons(("All", "30 days"), 1, newer=True),
        )
        await tg.press_button("All time")  # a filter press starts again at page 1
        await edited(
            tg,
            msg.message_id,
            page("All · All time · page 1", ledger.by(*ALL_PAGE_1)),
            buttons(("All", "All time"), 8, older=True),
        )


class TestDetails:
    async def test_detail_views_and_back_to_the_same_list(
        self, ledger: Ledger, tg: TelegramSimClient
    ) -> None:
        await link_chat(tg, ledger.tenant, ledger.owner_id)
        msg = await tg.ask("/transactions", has("Transactions"), timeout=T)
        await tg.press_button("Older ›")
        await edited(
            tg,
            msg.message_id,
            page("All · All time · page 2", ledger.by(102, 101)),
            buttons(("All", "All time"), 2, newer=True),
        )
        paid = ledger.p[101]
        await tg.press_button("2")
        await edited(
            tg,
            msg.message_id,
            "🧾 KES 101 · ✅ Paid\nPhone: 0722000101\nName: Achieng\n"
            f"Receipt: {paid.receipt}\nReference: LEDGERSHOP\nSource: API\n"
            f"Created: {eat(paid.created_at)}\nCompleted: {eat(paid.completed_at)}",
            ["↩️ Reverse", "‹ Back to the list", "⬅ Menu"],
        )
        await tg.press_button("‹ Back to the list")
        await edited(
            tg,
            msg.message_id,
            page("All · All time · page 2", ledger.by(102, 101)),
            buttons(("All", "All time"), 2, newer=True),
        )

        await tap(tg, msg.message_id, "Not paid", "📒 Transactions · Not paid")
        await tg.press_button("1")
        wrong_pin = ledger.p[104]
        await edited(
            tg,
            msg.message_id,
            "🧾 KES 104 · ❌ Not paid\nPhone: 0722002001\nName: Chebet\n"
            "Reason: The customer entered a wrong M-Pesa PIN.\n"
            "Receipt: –\nReference: LEDGERSHOP\nSource: API\n"
            f"Created: {eat(wrong_pin.created_at)}\nCompleted: {eat(wrong_pin.completed_at)}",
            ["🔁 Send again", "‹ Back to the list", "⬅ Menu"],
        )
        await tg.press_button("‹ Back to the list")
        await edited(
            tg,
            msg.message_id,
            page("Not paid · All time · page 1", ledger.by(104, 103, 106)),
            buttons(("Not paid", "All time"), 3),
        )
        await tg.press_button("3")
        no_answer = ledger.p[106]
        await edited(
            tg,
            msg.message_id,
            "🧾 KES 106 · ❌ No response\nPhone: 0722001037\nName: –\n"
            "Reason: The customer's phone could not be reached. Ask them to check it is on and has "
            "signal, then try again.\n"
            "Receipt: –\nReference: LEDGERSHOP\nSource: API\n"
            f"Created: {eat(no_answer.created_at)}\nCompleted: {eat(no_answer.completed_at)}",
            ["🔁 Send again", "‹ Back to the list", "⬅ Menu"],
        )
        await tap(tg, msg.message_id, "‹ Back to the list", "📒 Transactions · Not paid")
        await tap(tg, msg.message_id, "Waiting", "📒 Transactions · Waiting")
        await tg.press_button("1")
        waiting = ledger.p[110]
        await edited(
            tg,
            msg.message_id,
            "🧾 KES 110 · ⏳ Waiting\nPhone: 0722000110\nName: Halima\n"
            "Waiting for the customer to enter their PIN…\n"
            f"Receipt: –\nReference: LEDGERSHOP\nSource: API\nCreated: {eat(waiting.created_at)}\n"
            "Completed: –",
            ["‹ Back to the list", "⬅ Menu"],
        )
        await tap(tg, msg.message_id, "‹ Back to the list", "📒 Transactions · Waiting")
        await tap(tg, msg.message_id, "All", "📒 Transactions · All")
        await tg.press_button("4")
        esther = ledger.p[107]
        await edited(
            tg,
            msg.message_id,
            "🧾 KES 107 · ✅ Paid\nPhone: 0722000107\nName: Esther <Shop> & Co\n"
            f"Receipt: {esther.receipt}\nReference: LEDGERSHOP\nSource: API\n"
            f"Created: {eat(esther.created_at)}\nCompleted: {eat(esther.completed_at)}",
            ["↩️ Reverse", "‹ Back to the list", "⬅ Menu"],
        )


class TestExport:
    async def test_the_filtered_list_as_excel(self, ledger: Ledger, tg: TelegramSimClient) -> None:
        await link_chat(tg, ledger.tenant, ledger.owner_id)
        msg = await tg.ask("/transactions", has("Transactions"), timeout=T)
        await tg.press_button("Not paid")
        await edited(
            tg,
            msg.message_id,
            page("Not paid · All time · page 1", ledger.by(104, 103, 106)),
            buttons(("Not paid", "All time"), 3),
        )
        update = await tg.press_button("📤 Export")
        doc = await tg.wait_for_bot_message(predicate=lambda m: m.document is not None, timeout=T)
        assert (await callback_answer(tg, update))["text"] == "Preparing your Excel file…"
        assert doc.caption == "📒 3 transactions · Not paid · All time"
        assert doc.document is not None
        assert doc.document["file_name"] == f"transactions-ledger-shop-{datetime.now(EAT):%Y-%m-%d}.xlsx"
        rows = xlsx_rows(await tg.file_bytes(doc.document["file_id"]))
        assert rows[0] == (
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
        )
        assert [r[1:9] for r in rows[1:]] == [
            (
                "254722002001",
                "Chebet",
                104,
                "failed",
                None,
                "LEDGERSHOP",
                "api",
                "The customer entered a wrong M-Pesa PIN.",
            ),
            (
                "254722001032",
                None,
                103,
                "cancelled",
                None,
                "LEDGERSHOP",
                "api",
                "The customer cancelled the M-Pesa prompt.",
            ),
            (
                "254722001037",
                None,
                106,
                "timeout",
                None,
                "LEDGERSHOP",
                "api",
                "The customer's phone could not be reached. Ask them to check it is on and has signal, "
                "then try again.",
            ),
        ]
        written = ledger.p[104].created_at.astimezone(EAT).replace(tzinfo=None)
        assert abs(rows[1][0] - written) < timedelta(seconds=1), "dates are written in Nairobi time"

        await tap(tg, msg.message_id, "Paid", "📒 Transactions · Paid · All time")
        await tg.press_button("30 days")
        await edited(
            tg,
            msg.message_id,
            page("Paid · 30 days · page 1", ledger.by(109, 108, 107, 105, 102)),
            buttons(("Paid", "30 days"), 5),
        )
        await tg.press_button("📤 Export")
        paid = await tg.wait_for_bot_message(
            predicate=lambda m: m.document is not None and m.message_id > doc.message_id, timeout=T
        )
        assert paid.caption == "📒 5 transactions · Paid · 30 days"
        assert paid.document is not None
        rows = xlsx_rows(await tg.file_bytes(paid.document["file_id"]))
        assert [(r[2], r[3], r[4], r[5]) for r in rows[1:]] == [
            (p.name, p.amount, "success", p.receipt) for p in ledger.by(109, 108, 107, 105, 102)
        ]


class TestCashier:
    async def test_sees_only_own_payments_sends_again_and_cannot_export(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        tenant, owner = await make_tenant(name="Till Shop")
        await api_pushes(server, tenant, [{"phone": "0722000401", "amount": 401, "name": "Owner's"}])
        await join_as_cashier(tg, tenant, owner.id)

        await tg.ask("/pay", has("Customer's phone number?"), timeout=T)
        await tg.ask("0722001032", has("Amount in KES"), timeout=T)
        await tg.ask("45", has("Customer name?"), timeout=T)
        await tg.press_button("Skip ⏭")
        cancelled = "❌ Cancelled: KES 45 from 0722001032.\nThe customer cancelled the M-Pesa prompt."
        first = await tg.wait_for_bot_message(predicate=lambda m: m.content == cancelled, timeout=T)

        listing = await tg.ask("/transactions", has("Transactions"), timeout=T)
        async with unit_of_work(readonly=True) as session:
            mine, _ = await payments.page(
                session,
                tenant_id=tenant.id,
                filters=TransactionFilter(),
                page=1,
                per_page=10,
            )
        own = [await snapshot(p.id) for p in mine if p.amount == 45]
        assert len(own) == 1 and own[0].status is PaymentStatus.cancelled
        assert listing.content == page("All · All time · page 1", own)
        assert listing.button_texts == [
            "✓ All",
            *FILTER_BUTTONS[1:7],
            "✓ All time",
            "1",
            "⬅ Menu",
        ], "a cashier gets no Export button"

        await tg.press_button("1")
        await edited(
            tg,
            listing.message_id,
            "🧾 KES 45 · ❌ Cancelled\nPhone: 0722001032\nName: –\n"
            "Reason: The customer cancelled the M-Pesa prompt.\n"
            "Receipt: –\nReference: TILLSHOP\nSource: Telegram\n"
            f"Created: {eat(own[0].created_at)}\nCompleted: {eat(own[0].completed_at)}",
            ["🔁 Send again", "‹ Back to the list", "⬅ Menu"],
        )
        await tg.press_button("🔁 Send again")
        again = await tg.wait_for_bot_message(
            predicate=lambda m: m.content == cancelled and m.message_id > listing.message_id, timeout=T
        )
        assert again.message_id > first.message_id
        assert again.edits == [
            "⏳ M-Pesa prompt sent to 0722001032 for KES 45.\nWaiting for the customer to enter their PIN…"
        ]

        await tg.press_button("‹ Back to the list")
        async with unit_of_work(readonly=True) as session:
            rows, _ = await payments.page(
                session, tenant_id=tenant.id, filters=TransactionFilter(), page=1, per_page=10
            )
        both = [await snapshot(p.id) for p in rows if p.amount == 45]
        assert len(both) == 2
        await edited(
            tg,
            listing.message_id,
            page("All · All time · page 1", both),
            ["✓ All", *FILTER_BUTTONS[1:7], "✓ All time", "1", "2", "⬅ Menu"],
        )
        await tg.press_button("Paid")
        await edited(
            tg,
            listing.message_id,
            "📒 Transactions · Paid · All time · page 1\nNo payments match these filters.",
            ["All", "✓ Paid", *FILTER_BUTTONS[2:7], "✓ All time", "⬅ Menu"],
        )
