"""What the C2B use cases take and give (the API renders these as they are)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.c2b.models import AccountsRule, DecisionStage
from core.tenants.models import ChannelKind, Mode

MAX_ACCOUNTS_PER_CALL = 1000
REFERENCE_MAX = 20  # BillRefNumber's documented length (refs/daraja.md §6.3)


def account_key(reference: str) -> str:
    """How an account number is compared: upper case, without spaces (customers type "acc 12")."""
    return "".join(reference.split()).upper()


def clean_reference(value: str) -> str:
    value = " ".join(value.split())
    if not value or not account_key(value):
        raise ValueError("An account number cannot be empty.")
    if len(value) > REFERENCE_MAX:
        raise ValueError(
            f"An account number is at most {REFERENCE_MAX} characters (an M-Pesa limit): {value!r}."
        )
    if not value.isprintable():
        raise ValueError("An account number holds only printable characters.")
    return value


class C2BRegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal["v1", "v2"] = Field(
        default="v1",
        description="Daraja's registerurl version. v1 (default) sends the payer's full number; v2 sends it "
        "masked (2547 ***** 126), so such payers cannot be told apart in the customer book",
    )
    response_type: Literal["Completed", "Cancelled"] = Field(
        default="Completed",
        description="What M-Pesa does when our validation answer does not come within about 8 s: "
        "complete the payment (Completed) or cancel it (Cancelled)",
    )


class C2BSettingsIn(BaseModel):
    """Change one or both; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    validation: bool | None = Field(
        default=None,
        description="Answer M-Pesa's validation requests with the rule below. Safaricom must also enable "
        "external validation for the short code (email apisupport@safaricom.co.ke); until it does, "
        "M-Pesa never asks and every payment goes through",
    )
    accounts_rule: AccountsRule | None = Field(
        default=None,
        description="null: any account number; known_references: only one of the channel's account "
        "numbers (POST /api/channels/{id}/c2b/accounts). Paybills only: a till payment has none",
    )

    @model_validator(mode="after")
    def _something(self) -> C2BSettingsIn:
        if not self.model_fields_set:
            raise ValueError("Give validation, accounts_rule or both.")
        if "validation" in self.model_fields_set and self.validation is None:
            raise ValueError("validation is true or false.")
        return self


class C2BAccountsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    references: list[str] = Field(
        min_length=1,
        max_length=MAX_ACCOUNTS_PER_CALL,
        description=f"Account numbers customers may pay with (1 to {REFERENCE_MAX} characters each; "
        "compared ignoring case and spaces)",
    )

    @field_validator("references")
    @classmethod
    def _clean(cls, values: list[str]) -> list[str]:
        return [clean_reference(v) for v in values]


class C2BStateOut(BaseModel):
    channel_id: uuid.UUID
    channel_name: str
    kind: ChannelKind
    mode: Mode
    short_code: str = Field(description="the short code the URLs are registered for")
    till_number: str | None
    registered: bool
    registered_at: datetime | None
    api_version: str | None = Field(description="v1 (full phone numbers) or v2 (masked)")
    confirmation_url: str = Field(description="where M-Pesa reports completed payments")
    validation_url: str = Field(description="where M-Pesa asks before completing one (when enabled)")
    validation: bool
    accounts_rule: AccountsRule | None
    accounts: int = Field(description="account numbers listed for the known_references rule")
    notes: list[str] = Field(description="what to know about this setup, in plain words")


class C2BRegisteredOut(BaseModel):
    state: C2BStateOut
    originator_conversation_id: str | None
    response_description: str = Field(description="Daraja's answer, as it said it")


class C2BDecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stage: DecisionStage
    accepted: bool
    result_code: str | None = Field(description="the validation's answer: 0 or C2B000xx")
    reason: str
    trans_id: str | None
    amount_cents: int | None
    bill_ref_number: str | None
    msisdn: str | None = Field(description="as M-Pesa sent it (masked on v2)")
    created_at: datetime


class C2BAccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    reference: str
    created_at: datetime


class C2BAccountsOut(BaseModel):
    added: int = Field(description="new account numbers (those already listed are left as they were)")
    total: int


class C2BPaymentOut(BaseModel):
    """The C2B facts of one payment, beside GET /api/transactions/{id}."""

    model_config = ConfigDict(from_attributes=True)

    payment_id: uuid.UUID
    trans_id: str
    transaction_type: str | None = Field(description="Pay Bill or Buy Goods")
    business_short_code: str
    bill_ref_number: str | None = Field(description="the account number in full (the payment keeps 12)")
    invoice_number: str | None
    third_party_trans_id: str | None
    msisdn: str | None = Field(description="as M-Pesa sent it (masked on v2)")
    amount_cents: int = Field(description="to the cent, as M-Pesa reported it")
    org_account_balance_cents: int | None = Field(description="the business's M-Pesa balance after it")
    phone_from_book: bool = Field(
        description="the number came masked and was matched to the one customer of the book it can be"
    )
    created_at: datetime
