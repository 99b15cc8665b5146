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


def progress_text(b: BatchOut) -> str:
    lines = [f"{HEADS[b.status]}: <b>{escape(b.filename)}</b>"]
    p = b.progress
    if p is None:
        refused = sum(1 for x in b.problems if not x.get("duplicate"))
        lines.append(
            f"{b.rows_valid} rows to pay, {format_kes(b.amount_total)}; {refused} refused, {b.duplicates} "
            "duplicates flagged."
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
        lines.append(escape(b.pause_reason))
    return "\n".join(lines)
