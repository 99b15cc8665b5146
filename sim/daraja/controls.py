"""Bodies of the test-driving ``/_sim/…`` endpoints: what a test may change in the simulated world.

These are not Daraja APIs: they need no token, are not recorded in ``/_sim/requests`` and answer bad input
with FastAPI's 422.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Shortcode = Annotated[str, StringConstraints(pattern=r"^\d{5,7}$")]
Msisdn = Annotated[str, StringConstraints(pattern=r"^254[17]\d{8}$")]
Shillings = Annotated[Decimal, Field(ge=0, max_digits=15, decimal_places=2)]
Name = Annotated[str, StringConstraints(max_length=40)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitiatorIn(_Strict):
    """Add or replace one API operator of a short code."""

    shortcode: Shortcode
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class BalanceIn(_Strict):
    """Set a short code's Utility and/or Working account, in shillings (``"250.00"`` or ``250``)."""

    shortcode: Shortcode
    utility: Shillings | None = None
    working: Shillings | None = None


class ValidationIn(_Strict):
    """Turn external C2B validation on or off for a short code (off until enabled, as on Daraja)."""

    shortcode: Shortcode
    enabled: bool


class C2BPayIn(_Strict):
    """A customer pays a short code from their phone, as ``/mpesa/c2b/v1/simulate`` does, without OAuth."""

    shortcode: Shortcode
    msisdn: Msisdn
    amount: Annotated[int, Field(ge=1, le=250_000)]
    bill_ref: Annotated[str, StringConstraints(max_length=20)] = ""
    command_id: Literal["CustomerPayBillOnline", "CustomerBuyGoodsOnline"] = "CustomerPayBillOnline"
    invoice_number: Annotated[str, StringConstraints(max_length=20)] = ""
    first_name: Name | None = None
    middle_name: Name = ""
    last_name: Name = ""


def to_cents(amount: Decimal | None) -> int | None:
    return None if amount is None else int(amount * 100)
