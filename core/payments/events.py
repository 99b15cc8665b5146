"""What the payments domain tells the others."""

from __future__ import annotations

from dataclasses import dataclass

from core.events import DomainEvent
from core.payments.models import Payment, PaymentStatus
from core.tenants.models import Tenant


@dataclass(frozen=True)
class PaymentFinalised(DomainEvent):
    """A push reached its final state, once (a replayed callback publishes nothing). Carries the rows
    so subscribers in the same transaction need not load them again."""

    payment: Payment
    tenant: Tenant
    status: PaymentStatus
    result_desc: str
    name = "payment.finalised"

    @property
    def succeeded(self) -> bool:
        return self.status is PaymentStatus.success


@dataclass(frozen=True)
class PaymentFlagged(DomainEvent):
    """A final payment got a flag after the fact (M-Pesa reported something that disagrees with it,
    e.g. a success for a push already given up): nothing about its money changed."""

    payment: Payment
    flag: str
    name = "payment.flagged"
