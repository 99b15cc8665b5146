"""What the payouts domain tells the others."""

from __future__ import annotations

from dataclasses import dataclass

from core.events import DomainEvent
from core.payouts.models import Payout, PayoutStatus
from core.tenants.models import Tenant


@dataclass(frozen=True)
class PayoutFinalised(DomainEvent):
    """A payout reached success, failed or timeout, once (a repeated result publishes nothing). Carries
    the rows so subscribers in the same transaction need not load them again."""

    payout: Payout
    tenant: Tenant
    status: PayoutStatus
    result_desc: str
    name = "payout.finalised"

    @property
    def succeeded(self) -> bool:
        return self.status is PayoutStatus.success
