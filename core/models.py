"""Every domain's models, imported once so Alembic and tests see one metadata."""

from core.apps.models import App
from core.audit.models import AuditLog
from core.auth.codes import OneTimeCode
from core.auth.models import ApiKey, PhoneVerification, User
from core.auth.panel_sessions import PanelSession
from core.auth.twofactor import LoginChallenge
from core.billing.models import (
    Invoice,
    InvoiceLine,
    PlatformSetting,
    SubscriptionOrder,
    SubscriptionPlan,
)
from core.c2b.models import C2BAccount, C2BDecision, C2BPaymentFacts
from core.confirmations.models import Confirmation
from core.customers.models import Customer
from core.exports.models import ExportJob
from core.hotspot.models import Plan, Router, Voucher, VoucherOrder
from core.jobs.models import JobOutbox, PeriodicRun
from core.ledger.models import Account, Transfer
from core.lookups.models import Lookup
from core.notify.models import Notification, SmsDeliveryReport
from core.payments.models import CallbackInbox, Payment
from core.payouts.models import Payout, PayoutBatch
from core.plans.models import ApiPlan, PlanUsage
from core.reversals.models import Reversal
from core.tenants.models import MpesaChannel, Tenant
from core.usage.models import ApiKeyNetwork, ApiRequest
from core.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage

__all__ = [
    "Account",
    "ApiKey",
    "ApiKeyNetwork",
    "ApiPlan",
    "ApiRequest",
    "App",
    "AuditLog",
    "C2BAccount",
    "C2BDecision",
    "C2BPaymentFacts",
    "CallbackInbox",
    "Confirmation",
    "Customer",
    "ExportJob",
    "Invoice",
    "InvoiceLine",
    "JobOutbox",
    "LoginChallenge",
    "Lookup",
    "MpesaChannel",
    "Notification",
    "OneTimeCode",
    "PanelSession",
    "Payment",
    "Payout",
    "PayoutBatch",
    "PeriodicRun",
    "PhoneVerification",
    "Plan",
    "PlanUsage",
    "PlatformSetting",
    "Reversal",
    "Router",
    "SmsDeliveryReport",
    "SubscriptionOrder",
    "SubscriptionPlan",
    "Tenant",
    "Transfer",
    "User",
    "Voucher",
    "VoucherOrder",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookMessage",
]
