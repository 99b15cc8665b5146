"""What a payout looks like at the edges: the request a front end parses, the object every front end
shows (and a webhook carries), a page of them and the filters of a list."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.money import parse_shillings
from core.payments.schemas import PhoneField, clean_name
from core.payouts.models import PayoutCommand, PayoutSource, PayoutStatus
from core.tenants.models import Mode

# M-Pesa's B2C bounds (refs/daraja.md §7): a business's own limit may only lower the top.
B2C_MIN_AMOUNT = 10
B2C_MAX_AMOUNT = 250_000

# Remarks and Occassion reach M-Pesa's records; odd characters are refused silently (refs §14.8).
_TEXT = re.compile(r"^[A-Za-z0-9 _\-./#,:'&()]+$")
_TEXT_SCHEMA = {"pattern": r"^[A-Za-z0-9 _\-./#,:'&()]*$"}

COMMANDS = {
    "business": PayoutCommand.business,
    "salary": PayoutCommand.salary,
    "promotion": PayoutCommand.promotion,
}


def parse_command(value: object) -> PayoutCommand:
    """business, salary or promotion (or Daraja's own BusinessPayment, SalaryPayment,
    PromotionPayment), any case."""
    if isinstance(value, PayoutCommand):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else ""
    for short, command in COMMANDS.items():
        if text in (short, command.value.lower()):
            return command
    raise ValueError("command must be business, salary or promotion")


def clean_text(value: str | None, *, field: str, minimum: int, maximum: int = 100) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if not value:
        return None
    if not minimum <= len(value) <= maximum:
        raise ValueError(f"{field} must be {minimum} to {maximum} characters (an M-Pesa limit).")
    if not _TEXT.match(value):
        raise ValueError(f"{field} may only contain letters, digits, spaces and - _ . / # , : ' & ( )")
    return value


def parse_payout_amount(value: object) -> int:
    """Whole shillings within M-Pesa's B2C bounds (the business's own limit is checked by the use
    case, which knows the business)."""
    amount = parse_shillings(value, maximum=B2C_MAX_AMOUNT)
    if amount < B2C_MIN_AMOUNT:
        raise ValueError(f"A payout is at least KES {B2C_MIN_AMOUNT} (M-Pesa's B2C minimum).")
    return amount


CommandField = Annotated[PayoutCommand, BeforeValidator(parse_command)]
AmountField = Annotated[
    int,
    BeforeValidator(parse_payout_amount),
    Field(json_schema_extra={"minimum": B2C_MIN_AMOUNT, "maximum": B2C_MAX_AMOUNT}),
]


class PayoutIn(BaseModel):
    """POST /api/payouts. The POST itself is the confirmation: an integration shows its own
    confirmation screen before sending it (the bot, USSD and the CLI ask before they call)."""

    model_config = ConfigDict(extra="forbid")

    phone: PhoneField = Field(description="Recipient's M-Pesa phone: 07…, 01…, +254… or 254…")
    amount: AmountField = Field(
        description="Whole shillings, 10 to 250 000 and at most the business's per-payout limit",
        examples=[1500],
    )
    name: str | None = Field(
        default=None,
        description="Who you mean to pay, kept with the payout (M-Pesa reports the registered name)",
        json_schema_extra={"maxLength": 100},
    )
    reference: str | None = Field(
        default=None,
        description="Sent to M-Pesa as Remarks (2 to 100 characters); default 'Payout'",
        json_schema_extra={"maxLength": 100, **_TEXT_SCHEMA},
    )
    occasion: str | None = Field(
        default=None,
        description="Sent to M-Pesa as Occassion (1 to 100 characters)",
        json_schema_extra={"maxLength": 100, **_TEXT_SCHEMA},
    )
    command: CommandField = Field(
        default=PayoutCommand.business,
        description="business (BusinessPayment, default), salary (SalaryPayment) or promotion "
        "(PromotionPayment)",
        json_schema_extra={"type": "string"},
    )
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="The payout channel (GET /api/payout-channels); default: the business's only one "
        "of the key's mode",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return clean_name(v)

    @field_validator("reference")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        return clean_text(v, field="reference", minimum=2)

    @field_validator("occasion")
    @classmethod
    def _occasion(cls, v: str | None) -> str | None:
        return clean_text(v, field="occasion", minimum=1)


class PayoutOut(BaseModel):
    """A payout as GET /api/payouts/{id} returns it and its webhooks carry it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: PayoutStatus = Field(
        description="pending (being sent, or waiting for M-Pesa's result), success, failed, or timeout "
        "(M-Pesa never said: not sent again, check the M-Pesa statement); queued: a batch row"
    )
    amount: int = Field(description="Whole shillings")
    phone: str
    name: str | None = Field(description="Who the business meant to pay")
    reference: str | None
    occasion: str | None
    command: PayoutCommand
    source: PayoutSource
    mode: Mode = Field(description="test: a simulator or sandbox channel, never real money; live: production")
    channel_id: uuid.UUID
    batch_id: uuid.UUID | None
    originator_conversation_id: str = Field(
        description="Daraja's idempotency key for this payout, minted once and sent on every retry"
    )
    conversation_id: str | None
    receipt: str | None = Field(description="The M-Pesa receipt, once paid")
    recipient_name: str | None = Field(description="The recipient's name as M-Pesa has it registered")
    recipient_registered: bool | None
    utility_balance_cents: int | None = Field(description="The B2C utility account after this payout")
    working_balance_cents: int | None
    charges_paid_balance_cents: int | None
    result_code: str | None
    result_desc: str | None = Field(description="What M-Pesa said, in words to act on")
    transaction_completed_at: datetime | None = Field(description="When M-Pesa completed it")
    created_at: datetime
    sent_at: datetime | None = Field(description="When M-Pesa accepted the request")
    completed_at: datetime | None = Field(description="When it became final here")


class PayoutPage(BaseModel):
    items: list[PayoutOut]
    next_cursor: str | None


@dataclass(frozen=True)
class PayoutFilter:
    status: PayoutStatus | None = None
    channel_id: uuid.UUID | None = None
    mode: Mode | None = None
    batch_id: uuid.UUID | None = None
    phone: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def payout_data(payout: Any) -> dict[str, Any]:
    """The payout as JSON, the body of its webhooks."""
    return PayoutOut.model_validate(payout).model_dump(mode="json")
