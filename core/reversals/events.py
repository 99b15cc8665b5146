"""What the reversals domain tells the others."""

from __future__ import annotations

from dataclasses import dataclass

from core.events import DomainEvent
from core.payments.models import Payment
from core.reversals.models import Reversal
from core.tenants.models import Tenant


@dataclass(frozen=True)
class PaymentReversed(DomainEvent):
    """M-Pesa's result says a received payment went back to the payer, once. The customer book and
    the commission are corrected by compensating entries (core.customers, core.billing)."""

    payment: Payment
    reversal: Reversal
    tenant: Tenant
    name = "payment.reversed"


@dataclass(frozen=True)
class ReversalFailed(DomainEvent):
    """M-Pesa refused a confirmed reversal, or never answered it (timeout): the payment stands."""

    payment: Payment
    reversal: Reversal
    tenant: Tenant
    name = "reversal.failed"
