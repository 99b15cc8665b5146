"""What the money-out pages of the panel share: whether this viewer may pay out (the owner, and staff
the owner allowed: core.payouts.use_cases.with_payout_grant answers, as it does for the API, the bot
and USSD), the payout channels to choose from, and the words each state reads as."""

from __future__ import annotations

import uuid

from core.access.permissions import Permission
from core.errors import PermissionDenied
from core.payout_batches.schemas import BatchOut
from core.payouts.models import BatchStatus, PayoutCommand, PayoutStatus
from core.payouts.use_cases import with_payout_grant
from core.tenants.initiator_schemas import PayoutChannelOut
from core.tenants.models import ChannelKind
from core.tenants.use_cases_initiators import list_payout_channels
from web.panel.security import Viewer

STATUS_LABELS = {
    PayoutStatus.queued: "waiting its turn",
    PayoutStatus.pending: "with M-Pesa",
    PayoutStatus.success: "paid",
    PayoutStatus.failed: "failed",
    PayoutStatus.timeout: "no answer",
}
BATCH_LABELS = {
    BatchStatus.draft: "preview",
    BatchStatus.running: "paying",
    BatchStatus.paused: "paused",
    BatchStatus.done: "done",
    BatchStatus.cancelled: "cancelled",
}
COMMANDS = (
    ("business", PayoutCommand.business, "Business payment (refunds, winnings, suppliers)"),
    ("salary", PayoutCommand.salary, "Salary"),
    ("promotion", PayoutCommand.promotion, "Promotion (rewards, bonuses)"),
)
COMMAND_LABELS = {command: label.split(" (")[0] for _, command, label in COMMANDS}
COMMAND_FIELD = {command: value for value, command, _ in COMMANDS}
BAD_CHANNEL = "Choose a payout channel from the list."


async def may_pay_out(viewer: Viewer) -> bool:
    """Whether the pages offer this viewer the money-out controls. An admin viewing read-only sees the
    owner's page (its forms refuse with the read-only message), as for every other control."""
    actor = viewer.actor
    if actor.shows(Permission.payouts_request):
        return True
    try:
        return (await with_payout_grant(actor)).can(Permission.payouts_request)
    except PermissionDenied:
        return False


async def require_paying(viewer: Viewer) -> None:
    """Refuse (403, core's sentence) before a money-out form is read, as `business(viewer, …)` does for
    the other pages; the use case checks again."""
    (await with_payout_grant(viewer.actor)).require(Permission.payouts_request)


async def payout_channels(viewer: Viewer) -> list[PayoutChannelOut]:
    """The channels a payout can go through (B2C short codes first). Empty for a cashier the owner
    allowed to pay out: reading them is the owner's and manager's, and core picks the channel for them."""
    if not viewer.actor.shows(Permission.payouts_read):
        return []
    return await list_payout_channels(viewer.actor)


def channel_label(c: PayoutChannelOut) -> str:
    """How a payout channel reads in a list of choices: "Payouts: B2C 600100 (production) · live"."""
    kind = "B2C" if c.kind is ChannelKind.b2c else c.kind.value.title()
    label = f"{c.name}: {kind} {c.short_code} ({c.environment.value}) · {c.mode.value}"
    state = c.initiator.verification
    if state == "verified":
        return label
    return f"{label} · initiator {'being checked' if state == 'pending' else 'not verified'}"


def channel_names(channels: list[PayoutChannelOut]) -> dict[uuid.UUID, str]:
    return {c.id: c.name for c in channels}


def refused_rows(batch: BatchOut) -> list[dict[str, object]]:
    """The rows the file check refused (never paid), apart from the flagged duplicates."""
    return [p for p in batch.problems if not p.get("duplicate")]


def duplicate_rows(batch: BatchOut) -> list[dict[str, object]]:
    return [p for p in batch.problems if p.get("duplicate")]
