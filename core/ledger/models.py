"""Double-entry ledger in integer cents.

A transfer moves a positive amount from one account (debited) to another (credited): balanced by
construction, and the database refuses anything else (CHECK constraints). Transfers are immutable; a
mistake is corrected by a reversing transfer. Every transfer is keyed by its cause
(`cause_type`, `cause_id`, `kind`) with a UNIQUE constraint, so replaying a cause posts nothing.

An account's `balance_cents` is Σ credits − Σ debits, materialised in the same transaction as each
transfer (`lipapush ledger check` proves it equals the sum). Platform accounts exist per tenant
(revenue from tenant X, cash received from tenant X): there is no single platform row that every
tenant's commission would have to lock, and "commission collected by tenant" is a balance read.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigIntId, UTCDateTime, str_enum, utcnow


class AccountKind(StrEnum):
    wallet = "wallet"  # the merchant's pre-paid funds (the platform owes them)
    receivable = "receivable"  # commission the merchant owes on invoice (negative balance = owed)
    revenue = "revenue"  # platform: commission earned from this tenant
    cash = "cash"  # platform: money received from this tenant (top-ups, invoice payments)
    adjustments = "adjustments"  # platform: admin credits and debits to this tenant
    # Memorandum accounts of money out (core/ledger/payouts.py): what the business's B2C short code
    # sent and the people it reached. The money is the business's own, never the platform's, so
    # the two only mirror each other: one transfer per live payout that M-Pesa paid.
    b2c_out = "b2c_out"
    payees = "payees"


class Account(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind"),
        CheckConstraint("reserved_cents >= 0", name="reserved_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"))
    kind: Mapped[AccountKind] = mapped_column(str_enum(AccountKind, "account_kind"))
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # Commission held for pushes still in flight (wallet accounts): spendable = balance − reserved.
    reserved_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transfer(Base):
    __tablename__ = "ledger_transfers"
    __table_args__ = (
        UniqueConstraint("cause_type", "cause_id", "kind"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        Index("ix_ledger_transfers_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_ledger_transfers_debit", "debit_account_id"),
        Index("ix_ledger_transfers_credit", "credit_account_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    cause_type: Mapped[str] = mapped_column(String(32))
    cause_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    # Set when the cause is a payment, so postings join to it without parsing cause_id.
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payments.id", ondelete="RESTRICT"), index=True
    )
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="RESTRICT"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="RESTRICT"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    memo: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
