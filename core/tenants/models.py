from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, encrypted, str_enum, utcnow


class TenantKind(StrEnum):
    business = "business"
    hotspot = "hotspot"
    # The platform itself: owns the platform's Daraja channel used for wallet top-ups.
    platform = "platform"


class TenantStatus(StrEnum):
    onboarding = "onboarding"
    active = "active"
    suspended = "suspended"


class BillingMode(StrEnum):
    wallet = "wallet"
    invoice = "invoice"
    hybrid = "hybrid"
    subscription = "subscription"


class InvoicePeriod(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[TenantKind] = mapped_column(str_enum(TenantKind, "tenant_kind"), default=TenantKind.business)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(140), unique=True)
    # The number a payer types in the USSD "pay a business" menu: short, digits only, never reused.
    business_number: Mapped[str | None] = mapped_column(String(8), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(12))
    status: Mapped[TenantStatus] = mapped_column(
        str_enum(TenantStatus, "tenant_status"), default=TenantStatus.onboarding
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    commission_bps: Mapped[int | None] = mapped_column(Integer)
    billing_mode: Mapped[BillingMode] = mapped_column(
        str_enum(BillingMode, "billing_mode"), default=BillingMode.hybrid
    )
    # Wallet: a push is refused if its commission would take the spendable balance below this floor
    # (negative = credit allowed). Null: the platform default (WALLET_FLOOR_CENTS).
    wallet_floor_cents: Mapped[int | None] = mapped_column(BigInteger)
    low_balance_threshold_cents: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the low-balance alert went out; cleared when the balance is back above the threshold.
    low_balance_alerted: Mapped[bool] = mapped_column(default=False)
    invoice_period: Mapped[InvoicePeriod] = mapped_column(
        str_enum(InvoicePeriod, "invoice_period"), default=InvoicePeriod.monthly
    )
    # Tell the owner's Telegram chat about payments started from the API or USSD.
    notify_owner_on_payments: Mapped[bool] = mapped_column(default=True)
    # Why new pushes are held for billing (an overdue invoice); separate from an admin suspension.
    billing_hold: Mapped[str | None] = mapped_column(Text)
    # SMS: the sender id registered for this business with Africa's Talking (null: the platform's),
    # and whether paying customers get a receipt SMS, from this template (null: the default).
    sms_sender_id: Mapped[str | None] = mapped_column(String(11))
    sms_receipts: Mapped[bool] = mapped_column(default=False)
    sms_receipt_template: Mapped[str | None] = mapped_column(String(320))
    # Hotspot providers: characters in a voucher code (8 = 30^8, about 6.6e11 codes).
    voucher_length: Mapped[int] = mapped_column(Integer, default=8)
    # Hotspot providers on the `subscription` billing mode: may sell until this moment, the end of
    # the free trial at first, then extended by each paid Pesapal order (which starts where it ends).
    subscription_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The end of a hotspot provider's free trial (set once, when it is created); time in
    # subscription_until beyond it has been paid for.
    trial_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subscription_reminded: Mapped[str | None] = mapped_column(String(40))  # which reminder went out
    # The API plan the business chose (core.plans); null: the default plan. A plan with a fee counts
    # only while paid: until `plan_paid_until`, after which the default plan applies until it is paid.
    plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    plan_paid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The M-Pesa top-up whose arrival in the wallet pays the chosen plan (POST /api/plan/pay by M-Pesa).
    plan_payment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The Nairobi month ("2026-12") the owner was told the plan's renewal could not be paid.
    plan_reminded: Mapped[str | None] = mapped_column(String(7))
    # Money out (core.payouts): the most one payout may send and all payouts of one Nairobi day
    # together, in whole shillings; null: the platform's PAYOUT_MAX_KES / PAYOUT_DAILY_MAX_KES.
    payout_max_kes: Mapped[int | None] = mapped_column(Integer)
    payout_daily_max_kes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Tenant {self.slug} {self.status}>"


class Mode(StrEnum):
    """Test or live, Stripe's word for it. Test objects come only from simulator or sandbox channels
    and never move real money, earn commission or count toward quotas; live ones only from production."""

    test = "test"
    live = "live"


class Environment(StrEnum):
    simulator = "simulator"
    sandbox = "sandbox"
    production = "production"

    @property
    def mode(self) -> Mode:
        return Mode.live if self is Environment.production else Mode.test


class ChannelKind(StrEnum):
    paybill = "paybill"
    till = "till"
    # A bulk-payment (B2C) shortcode: it pays out (core.payouts) and is never prompted for an STK push,
    # so it is never primary, an app's channel or a payee on USSD (core.tenants.channels).
    b2c = "b2c"

    @property
    def collects(self) -> bool:
        return self is not ChannelKind.b2c


class MpesaChannel(Base):
    """A Daraja app of a business and the Till or Paybill it collects into. Secrets are Fernet tokens.

    A business may hold several (a till per branch, a paybill and a till, a sandbox channel next to
    the production one for test keys), each verified by its own KES 1 push. Exactly one is its
    *primary* channel: the one the bot, USSD and the panel's "Request payment" push through, whose
    verification activates the business. An app chooses any of them (core.apps)."""

    __tablename__ = "mpesa_channels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index(
            "uq_mpesa_channels_primary",
            "tenant_id",
            unique=True,
            postgresql_where=text("is_primary"),
            sqlite_where=text("is_primary"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # How the business tells its channels apart ("Main", "Westlands till"); unique in the business.
    name: Mapped[str] = mapped_column(String(60), default="Main")
    is_primary: Mapped[bool] = mapped_column(default=False)
    environment: Mapped[Environment] = mapped_column(str_enum(Environment, "environment"))
    kind: Mapped[ChannelKind] = mapped_column(str_enum(ChannelKind, "channel_kind"))
    # Paybill: the paybill number. Till: the Head Office/Store number Daraja calls BusinessShortCode.
    # Indexed: "pay a business" on USSD looks a business up by its Till or Paybill number.
    business_short_code: Mapped[str] = mapped_column(String(10), index=True)
    till_number: Mapped[str | None] = mapped_column(String(10), index=True)
    consumer_key_enc: Mapped[str] = mapped_column(Text, info=encrypted("channel secret"))
    consumer_secret_enc: Mapped[str] = mapped_column(Text, info=encrypted("channel secret"))
    passkey_enc: Mapped[str] = mapped_column(Text, info=encrypted("channel secret"))
    # Unguessable path segment of the callback URL: Daraja callbacks are unsigned (refs §11.4).
    callback_token: Mapped[str] = mapped_column(String(64), unique=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verification_payment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    verification_error: Mapped[str | None] = mapped_column(Text)
    # The business's own Daraja "initiator" (an API operator of this shortcode) for everything that is
    # not a push: B2C payouts, account balance, transaction status, reversals. The password is sent
    # only as the SecurityCredential (core.daraja.security_credential); a balance query proves it
    # (`initiator_verified_at`), as the KES 1 push proves the collection credentials.
    initiator_name: Mapped[str | None] = mapped_column(String(64))
    initiator_password_enc: Mapped[str | None] = mapped_column(Text, info=encrypted("channel secret"))
    # Safaricom expires an initiator password after 90 days: the owner is reminded before.
    initiator_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    initiator_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    initiator_error: Mapped[str | None] = mapped_column(Text)
    # C2B: when this shortcode's confirmation/validation URLs were registered, through which Daraja
    # version (v2 masks the payer's phone), and whether Safaricom enabled external validation for it
    # (off unless asked; then `c2b_accounts_rule` may refuse account references it does not know).
    c2b_registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    c2b_api_version: Mapped[str | None] = mapped_column(String(4))
    c2b_validation: Mapped[bool] = mapped_column(default=False)
    c2b_accounts_rule: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def mode(self) -> Mode:
        return self.environment.mode

    def __repr__(self) -> str:  # never the secrets
        return f"<MpesaChannel {self.kind} {self.business_short_code} {self.environment}>"
