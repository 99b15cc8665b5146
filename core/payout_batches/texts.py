"""How a batch's progress reads in a chat message (the bot's message that edits itself)."""

from __future__ import annotations

from html import escape

from core.money import format_kes
from core.payout_batches.schemas import BatchOut
from core.payouts.models import BatchStatus

BAR = 10
HEADS = {
    BatchStatus.draft: "📄 Preview",
    BatchStatus.running: "⏳ Paying",
    BatchStatus.paused: "⏸ Paused",
    BatchStatus.done: "✅ Done",
    BatchStatus.cancelled: "✖ Cancelled",
}


def progress_text(b: BatchOut, *, html: bool = True) -> str:
    """The batch in a few lines: HTML for the bot's message, plain for an SMS or a plain chat note."""
    name = f"<b>{escape(b.filename)}</b>" if html else b.filename
    lines = [f"{HEADS[b.status]}: {name}"]
    p = b.progress
    if p is None:
        refused = sum(1 for x in b.problems if not x.get("duplicate"))
        lines.append(
            f"{b.rows_to_pay} rows to pay, {format_kes(b.amount_to_pay)}; {refused} refused, {b.duplicates} "
            "duplicates left out unless included."
        )
        return "\n".join(lines)
    total = p.queued + p.pending + p.paid + p.failed + p.timeout
    done = p.paid + p.failed + p.timeout
    filled = round(BAR * done / total) if total else BAR
    lines.append(f"{'▓' * filled}{'░' * (BAR - filled)} {done}/{total}")
    lines.append(
        f"Paid {p.paid} ({format_kes(p.paid_kes)}) · failed {p.failed} · waiting {p.queued + p.pending}"
    )
    if p.timeout:
        lines.append(f"{p.timeout} not answered by M-Pesa: check the statement before paying them again.")
    if b.pause_reason:
        lines.append(escape(b.pause_reason) if html else b.pause_reason)
    return "\n".join(lines)


def progress_buttons(b: BatchOut) -> list[list[str]] | None:
    """The controls under the bot's progress message ([text, callback data], the bot's BatchCb), kept
    when a job edits it (an edit without a keyboard removes it)."""
    rows = []
    if b.status is BatchStatus.running:
        rows.append(["⏸ Pause", f"pb:pause:{b.id}"])
    if b.status is BatchStatus.paused:
        rows += [["▶️ Resume", f"pb:resume:{b.id}"], ["✖ Cancel the rest", f"pb:stop:{b.id}"]]
    if b.status is not BatchStatus.draft:
        rows.append(["📥 Result", f"pb:result:{b.id}"])
    return rows or None
