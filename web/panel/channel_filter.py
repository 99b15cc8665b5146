"""The channel select of the business pages that add up payments (the dashboard, transactions, the
customer book): offered only when the business has more than one channel to choose from, read as the
`channel` query field, and passed to the page's use case and to its export link like its other filters.
The use case checks the channel is the business's (core.payments.use_cases.check_channel)."""

from __future__ import annotations

import uuid

from core.payments.use_cases import ChannelChoice, channel_choices
from web.panel.forms import parse_uuid
from web.panel.security import Viewer

FIELD = "channel"
BAD_CHANNEL = "Choose a channel from the list."


def parse_channel(raw: str, errors: dict[str, str]) -> uuid.UUID | None:
    """The `channel` field: empty for every channel; a malformed id puts the message by the field."""
    return parse_uuid(raw, FIELD, errors, BAD_CHANNEL)


async def channel_options(viewer: Viewer, *, book_only: bool = False) -> list[ChannelChoice]:
    """The channels to offer, none when there is nothing to choose between. `book_only`: those of the
    mode the dashboard and the customer book add up (core.payments.use_cases.channel_choices)."""
    choices = await channel_choices(viewer.actor, book_only=book_only)
    return choices if len(choices) > 1 else []
