"""Money: whole shillings on the M-Pesa wire, integer cents in the ledger. Never floats."""

from __future__ import annotations

from decimal import Decimal
from typing import NewType

from pydantic.json_schema import JsonDict

from core.errors import InvalidInput

Shillings = NewType("Shillings", int)
Cents = NewType("Cents", int)

MIN_STK_AMOUNT = 1
# M-Pesa's own per-transaction ceiling; `STK_MAX_AMOUNT` may only lower it.
MPESA_MAX_AMOUNT = 250_000


def stk_max_amount() -> int:
    """The largest push, from `STK_MAX_AMOUNT`: the one limit every channel honours (API, bot, USSD,
    panel, portal, plan prices). Outside a configured process (a bare model in a unit test) it is
    M-Pesa's own ceiling."""
    from core.runtime import configured_settings  # the runtime imports money's users; not at import time

    settings = configured_settings()
    return min(settings.STK_MAX_AMOUNT, MPESA_MAX_AMOUNT) if settings else MPESA_MAX_AMOUNT


def amount_schema(schema: JsonDict) -> None:
    """The JSON schema of a push amount (OpenAPI): whole shillings from 1 to the configured limit,
    read when the document is built."""
    schema.update(minimum=MIN_STK_AMOUNT, maximum=stk_max_amount())


def parse_shillings(value: object, *, field: str = "amount", maximum: int | None = None) -> Shillings:
    """Accept an int, or a str/Decimal/float holding a whole number; refuse cents, zero and negatives.

    Floats are accepted only when exactly whole (JSON has no integer type of its own), and never
    rounded: 1.5 is an error, not 2. `maximum` defaults to the configured push limit.
    """
    if maximum is None:
        maximum = stk_max_amount()
    if isinstance(value, bool):
        raise InvalidInput(field, "Amount must be a whole number of shillings, like 150.")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, float | Decimal | str):
        try:
            dec = Decimal(str(value).strip())
        except Exception:
            raise InvalidInput(field, "Amount must be a whole number of shillings, like 150.") from None
        if not dec.is_finite() or dec != dec.to_integral_value():
            raise InvalidInput(
                field, "M-Pesa only takes whole shillings: send an amount without cents, like 150."
            )
        amount = int(dec)
    else:
        raise InvalidInput(field, "Amount must be a whole number of shillings, like 150.")
    if amount < MIN_STK_AMOUNT:
        raise InvalidInput(field, f"Amount must be at least KES {MIN_STK_AMOUNT}.")
    if amount > maximum:
        whose = "the M-Pesa" if maximum == MPESA_MAX_AMOUNT else "this platform's"
        raise InvalidInput(field, f"Amount must be at most KES {maximum:,} ({whose} per-payment limit).")
    return Shillings(amount)


def to_cents(amount: int) -> Cents:
    return Cents(amount * 100)


def format_kes(amount: int) -> str:
    return f"KES {amount:,}"


def format_cents(cents: int) -> str:
    """KES 1,234.50 (negative amounts as -KES 12.00)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}KES {whole:,}.{frac:02d}"
