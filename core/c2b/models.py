"""What C2B keeps beside the payments table: a received payment's own facts, the account numbers a
channel's validation accepts, and every decision taken on an incoming payment that did not simply
become a payment (a validation answer, a refused confirmation), so the merchant can see why.

The payment itself is an ordinary `payments` row (source `c2b`, status `success`); these tables only
add what its columns cannot hold."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, str_enum, utcnow


class AccountsRule(StrEnum):
    """What a channel's validation accepts as the account number (BillRefNumber) of a paybill payment.
    None (no rule): any account number."""

    # Only one of the account numbers the business listed for the channel (`c2b_accounts`).
    known_references = "known_references"


class DecisionStage(StrEnum):
    validation = "validation"  # M-Pesa asked before completing the payment; we answered
    confirmation = "confirmation"  # M-Pesa reported a completed payment; we did not record it


class C2BPaymentFacts(Base):
    """The C2B confirmation behind a `payments` row, with what the row cannot hold: the full account
    number (the payment keeps its first 12 characters), the amount to the cent (a payment is whole
    shillings), the number exactly as M-Pesa sent it (masked on v2), the invoice number, and the
    business's M-Pesa balance after the payment."""

    __tablename__ = "c2b_payments"
    __table_args__ = (Index("ix_c2b_payments_tenant_channel", "tenant_id", "channel_id"),)

    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    # M-Pesa's TransID, also the payment's receipt: unique here too, a second guard against a replay.
    trans_id: Mapped[str] = mapped_column(String(20), unique=True)
    transaction_type: Mapped[str | None] = mapped_column(String(40))  # "Pay Bill" or "Buy Goods"
    business_short_code: Mapped[str] = mapped_column(String(20))
    bill_ref_number: Mapped[str | None] = mapped_column(String(100))
    invoice_number: Mapped[str | None] = mapped_column(String(100))
    third_party_trans_id: Mapped[str | None] = mapped_column(String(100))
    msisdn: Mapped[str | None] = mapped_column(String(64))  # as sent: full, masked or hashed
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    org_account_balance_cents: Mapped[int | None] = mapped_column(BigInteger)
    # The number was masked and the payment was matched to the one customer of the book it can be.
    phone_from_book: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class C2BAccount(Base):
    """An account number customers may pay a channel's paybill with, under the `known_references`
    rule (an invoice, a student or meter number, a member number). Compared ignoring case and spaces
    (`key`): customers type "acc 12" for "ACC12"."""

    __tablename__ = "c2b_accounts"
    __table_args__ = (UniqueConstraint("channel_id", "key"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(20))  # as the business typed it
    key: Mapped[str] = mapped_column(String(20))  # upper case, no spaces: what is compared
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class C2BDecision(Base):
    """One decision on an incoming payment: every validation answer (accepted or not, and why), and
    every confirmation that was refused (another short code, an impossible amount). Confirmations that
    became payments are the payments themselves; replays are only in the callback inbox."""

    __tablename__ = "c2b_decisions"
    __table_args__ = (Index("ix_c2b_decisions_channel_recent", "channel_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mpesa_channels.id", ondelete="CASCADE"))
    stage: Mapped[DecisionStage] = mapped_column(str_enum(DecisionStage, "c2b_stage"))
    accepted: Mapped[bool] = mapped_column(Boolean)
    # The validation's ResultCode ("0", "C2B00012", …); None for a confirmation.
    result_code: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    trans_id: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    bill_ref_number: Mapped[str | None] = mapped_column(String(100))
    msisdn: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
