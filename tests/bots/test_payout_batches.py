"""📦 Bulk payouts in the chat: the owner drops an Excel file of six rows (one bad) into the chat, reads
the preview, approves it, and the progress message edits itself to done, the result file downloads
from /payouts; a CSV after /payouts_bulk with a duplicate is previewed and cancelled (nothing paid); a
batch that runs the B2C account dry pauses itself and is resumed from the chat. The file travels as on
Telegram: the user's Document, fetched by the bot with getFile."""

from __future__ import annotations

import io
import re
import uuid

import httpx
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from core.payouts.models import BatchStatus, Payout, PayoutBatch, PayoutSource, PayoutStatus
from core.runtime import unit_of_work
from sim.telegram.client import SimMessage, TelegramSimClient
from tests.bots.test_home_wallet_settings import T, has, press
from tests.bots.test_transactions import link_chat
from tests.conftest import LiveServer
from tests.support.payouts import paying_business, sim_b2c_requests

BAD_PHONE = (
    "'12345' is not a Kenyan mobile number. Use one of: 07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX, "
    "+2541XXXXXXXX, 2547XXXXXXXX or 2541XXXXXXXX."
)
ROWS = [  # (phone, amount, name): last four digits outside the simulator's magic numbers
    ("0722301101", 1000, "Achieng"),
    ("0722301102", 1500, "Baraka"),
    ("12345", 2000, "Wrong number"),
    ("0722301104", 2000, "Chebet"),
    ("0722301105", 1500, "Dida"),
    ("0722301106", 1500, "Esther"),
]


def payroll() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Phone", "Amount", "Name", "Reference"])
    for phone, amount, name in ROWS:
        sheet.append([phone, amount, name, "December"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def batch_of(tenant_id: uuid.UUID) -> PayoutBatch:
    async with unit_of_work(readonly=True) as session:
        batch = await session.scalar(select(PayoutBatch).where(PayoutBatch.tenant_id == tenant_id))
        assert batch is not None
        return batch


async def rows_of(batch_id: uuid.UUID) -> list[Payout]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Payout)
                .where(Payout.batch_id == batch_id)
                .order_by(Payout.row_number, Payout.created_at)
            )
        )


async def shown(
    tg: TelegramSimClient, message_id: int, starts: str, *, has_also: str = "", timeout: float = 40
) -> SimMessage:
    """Bot message `message_id` once it reads `starts…` (the batch's jobs edit it in place)."""
    return await tg.wait_for_bot_message(
        predicate=lambda m: (
            m.message_id == message_id and m.content.startswith(starts) and has_also in m.content
        ),
        timeout=timeout,
    )


async def press_for_first(tg: TelegramSimClient, button: str) -> SimMessage:
    """Press a button and return the bot's first message after it (the progress message: the owner's
    own "done" notice may follow it at once)."""
    after = (await tg.transcript())[-1].message_id
    await tg.press_button(button)
    await tg.wait_for_bot_message(timeout=T, after=after)
    return next(m for m in await tg.bot_messages() if m.message_id > after)


def body(message: SimMessage) -> list[str]:
    """The progress message below its first line (the head, "✅ Done: payroll.xlsx")."""
    return message.content.split("\n")[1:]


async def test_an_excel_file_previewed_approved_and_paid(server: LiveServer, tg: TelegramSimClient) -> None:
    pb = await paying_business(server, name="Bot Bulk Duka")
    await link_chat(tg, pb.tenant, pb.owner.id)

    sent = await tg.send_document(payroll(), "payroll.xlsx")
    preview = await tg.wait_for_bot_message(
        predicate=has("payroll.xlsx"), timeout=T, after=int(sent["message"]["message_id"])
    )
    assert preview.content == (
        "📄 payroll.xlsx: 6 rows\n"
        "✅ 5 rows to pay: KES 7,500\n"
        "❌ 1 refused, never paid:\n"
        f"• Row 4: {BAD_PHONE}\n"
        "Paid through “Payouts” once you approve: nothing is paid before."
    )
    assert preview.button_texts == ["✅ Pay 5 rows (KES 7,500)", "✖ Cancel"]
    batch = await batch_of(pb.tenant.id)
    assert batch.status is BatchStatus.draft and await rows_of(batch.id) == []  # nothing paid yet

    progress = await press_for_first(tg, "✅ Pay 5 rows (KES 7,500)")
    # the preview keeps its text and loses its buttons: it cannot be approved twice
    assert next(m for m in await tg.bot_messages() if m.message_id == preview.message_id).buttons == []
    assert progress.content.startswith(("⏳ Paying: payroll.xlsx", "✅ Done: payroll.xlsx"))
    done = await shown(tg, progress.message_id, "✅ Done:")
    assert body(done) == ["▓▓▓▓▓▓▓▓▓▓ 5/5", "Paid 5 (KES 7,500) · failed 0 · waiting 0"]
    assert done.edits  # the same message, edited as rows finished

    paid = await rows_of(batch.id)
    assert [(p.row_number, p.phone, p.amount, p.status, p.source) for p in paid] == [
        (2, "254722301101", 1000, PayoutStatus.success, PayoutSource.telegram),
        (3, "254722301102", 1500, PayoutStatus.success, PayoutSource.telegram),
        (5, "254722301104", 2000, PayoutStatus.success, PayoutSource.telegram),
        (6, "254722301105", 1500, PayoutStatus.success, PayoutSource.telegram),
        (7, "254722301106", 1500, PayoutStatus.success, PayoutSource.telegram),
    ]
    assert len(await sim_b2c_requests(pb.sim, pb.short_code)) == 5  # each row went to M-Pesa once

    listed = await tg.ask("/payouts", has("Bulk payouts"), timeout=T)
    assert "• payroll.xlsx: ✅ Done, 5 of 5 paid" in listed.content
    assert listed.button_texts == ["📦 payroll.xlsx", "💸 Pay out", "📦 Bulk payout", "⬅ Menu"]
    opened = await press(tg, "📦 payroll.xlsx", has("payroll.xlsx"))
    assert opened.button_texts == ["📥 Result"]
    after = opened.message_id
    await tg.press_button("📥 Result")
    file = await tg.wait_for_bot_message(predicate=lambda m: m.document is not None, timeout=T, after=after)
    assert file.document is not None and file.document["file_name"].endswith(".xlsx")
    assert file.content == "📥 Every row of the file: paid or not, and why, with receipts."
    sheet = load_workbook(io.BytesIO(await tg.file_bytes(file.document["file_id"])), read_only=True).active
    assert sheet is not None
    table = [row for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert [(r[0], r[5]) for r in table] == [
        (2, "success"),
        (3, "success"),
        (4, "refused"),
        (5, "success"),
        (6, "success"),
        (7, "success"),
    ]
    assert table[2][8] == BAD_PHONE


async def test_a_csv_with_a_duplicate_previewed_then_cancelled(
    server: LiveServer, tg: TelegramSimClient
) -> None:
    pb = await paying_business(server, name="Bot CSV Duka")
    await link_chat(tg, pb.tenant, pb.owner.id)
    ask = await tg.ask("/payouts_bulk", has("Bulk payout"), timeout=T)
    assert ask.content == (
        "📦 Bulk payout\nSend the list as an Excel (.xlsx) or CSV file: a first row naming the columns phone "
        "and amount (name and reference optional), then one row a payout.\n"
        "You see a preview first: nothing is paid until you approve it."
    )
    assert ask.button_texts == ["✖ Cancel"]
    assert (await tg.ask("here it is", has("file"), timeout=T)).content == (
        "Send the list as a file (📎 → File), or /cancel."
    )
    # a file named otherwise is still read, having been asked for
    csv = b"phone,amount,name\n0722401101,500,Faith\n0722401102,700,Gitau\n0722401101,500,Faith again\n"
    sent = await tg.send_document(csv, "list.txt", mime_type="text/plain")
    preview = await tg.wait_for_bot_message(
        predicate=has("list.txt"), timeout=T, after=int(sent["message"]["message_id"])
    )
    assert preview.content == (
        "📄 list.txt: 3 rows\n"
        "✅ 2 rows to pay; with the duplicates, 3 rows: KES 1,700\n"
        "🔁 1 duplicate, left out unless you include it:\n"
        "• Row 4: Same phone and amount as row 2: left out unless you include duplicates.\n"
        "Paid through “Payouts” once you approve: nothing is paid before."
    )
    assert preview.button_texts == [
        "✅ Pay 2 rows, duplicates left out",
        "➕ Pay all 3 rows, duplicates too (KES 1,700)",
        "✖ Cancel",
    ]
    await tg.press_button("✖ Cancel")
    cancelled = await shown(tg, preview.message_id, "📄", has_also="Cancelled", timeout=T)
    assert cancelled.content == (
        "📄 list.txt: 3 rows\n"
        "✅ 2 rows to pay; with the duplicates, 3 rows: KES 1,700\n"
        "🔁 1 duplicate, left out unless you include it:\n"
        "• Row 4: Same phone and amount as row 2: left out unless you include duplicates.\n\n"
        "✖ Cancelled: nothing was paid."
    )
    assert cancelled.buttons == []
    batch = await batch_of(pb.tenant.id)
    assert batch.status is BatchStatus.cancelled and await rows_of(batch.id) == []


async def test_a_batch_short_of_funds_pauses_and_is_resumed(
    server: LiveServer, tg: TelegramSimClient
) -> None:
    pb = await paying_business(server, name="Bot Dry Duka")
    await link_chat(tg, pb.tenant, pb.owner.id)
    # The B2C account covers none of the rows: every row's "insufficient balance" pauses the batch. (With
    # some rows paid, the batch can end done instead when a paid row's turn comes after the last result:
    # a race in core.payout_batches, reported to the lead.)
    async with httpx.AsyncClient() as sim:
        r = await sim.post(f"{pb.sim}/_sim/balance", json={"shortcode": pb.short_code, "utility": 500})
        assert r.status_code == 200, r.text

    sent = await tg.send_document(payroll(), "payroll.xlsx")
    await tg.wait_for_bot_message(
        predicate=has("5 rows to pay"), timeout=T, after=int(sent["message"]["message_id"])
    )
    progress = await press_for_first(tg, "✅ Pay 5 rows (KES 7,500)")
    paused = await shown(tg, progress.message_id, "⏸ Paused:", has_also="failed 5")
    batch = await batch_of(pb.tenant.id)
    assert batch.status is BatchStatus.paused
    _head, bar, counts, reason = paused.content.split("\n")
    assert (bar, counts) == ("▓▓▓▓▓▓▓▓▓▓ 5/5", "Paid 0 (KES 0) · failed 5 · waiting 0")
    assert re.fullmatch(
        r"M-Pesa says the B2C account cannot cover row [23567]: top the account up, then resume the batch\. "
        r"The rows not paid yet are waiting, and nothing is paid twice\.",
        reason,
    ), reason

    await tg.ask("/payouts", has("Bulk payouts"), timeout=T)
    opened = await press(tg, "📦 payroll.xlsx", has("payroll.xlsx"))
    assert opened.button_texts == ["▶️ Resume", "✖ Cancel the rest", "📥 Result"]
    async with httpx.AsyncClient() as sim:
        await sim.post(f"{pb.sim}/_sim/balance", json={"shortcode": pb.short_code, "utility": 100_000})
    await tg.press_button("▶️ Resume")
    done = await shown(tg, opened.message_id, "✅ Done:")
    assert body(done) == ["▓▓▓▓▓▓▓▓▓▓ 5/5", "Paid 5 (KES 7,500) · failed 0 · waiting 0"]

    rows = await rows_of(batch.id)
    paid = [p for p in rows if p.status is PayoutStatus.success]
    assert sorted(p.row_number or 0 for p in paid) == [2, 3, 5, 6, 7]  # each row paid once
    assert len(rows) == 5 and len({p.receipt for p in paid}) == 5
    # five refused for want of funds, then five paid: each row's second request was its only payment
    assert len(await sim_b2c_requests(pb.sim, pb.short_code)) == 10
