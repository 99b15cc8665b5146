"""Each short code's M-Pesa organisation accounts, in cents, and the simulator's B2C charge table.

The accounts are those the Account Balance result lists (refs §9), and money moves between them the way
Safaricom's product pages describe:

- customer payments (STK push, C2B) are credited to the **Utility** account ("the account that receives
  payments in both pay bill and buy goods"), so collections can fund payouts;
- a B2C payout and a reversal are debited from **Utility** ("B2C transactions are debited from the Utility
  account"); when Utility holds less than the amount the result is ResultCode 1;
- the B2C charge is debited from the **Charges Paid** account, which "always accrues a negative balance"
  (the doc samples show ``B2CChargesPaidAccountAvailableFunds -1980.00``); it does not count against Utility.

A new short code opens with KES 100 000.00 in Utility and nothing elsewhere; ``POST /_sim/balance`` sets it.

``B2C_CHARGES`` is this simulator's own banded table, not Safaricom's tariff (which changes and differs by
contract): KES 10-1 000 costs 5.00, 1 001-10 000 costs 15.00, 10 001-250 000 costs 22.40.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_UTILITY_CENTS = 100_000_00

# (highest amount in the band in shillings, charge in cents)
B2C_CHARGES: tuple[tuple[int, int], ...] = ((1_000, 5_00), (10_000, 15_00), (250_000, 22_40))


def b2c_charge_cents(amount: int) -> int:
    for ceiling, charge in B2C_CHARGES:
        if amount <= ceiling:
            return charge
    return B2C_CHARGES[-1][1]


def kes(cents: int) -> str:
    """``1234.50``, ``-1540.00``: how Daraja writes money inside strings."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def shillings(cents: int) -> float:
    """A JSON number of shillings (``8959269.6``), as the B2C result's ``…AvailableFunds`` values are."""
    return cents / 100


@dataclass(slots=True)
class OrgAccounts:
    utility: int = DEFAULT_UTILITY_CENTS
    working: int = 0
    charges_paid: int = 0

    def line(self, name: str, cents: int) -> str:
        # The second column repeats the first in every sample; the last two are reserved and uncleared funds.
        return f"{name}|KES|{kes(cents)}|{kes(cents)}|0.00|0.00"

    def balance_string(self) -> str:
        """The Account Balance result's ``AccountBalance`` value, accounts in the documented order."""
        return "&".join(
            (
                self.line("Working Account", self.working),
                self.line("Float Account", 0),
                self.line("Utility Account", self.utility),
                self.line("Charges Paid Account", self.charges_paid),
                self.line("Organization Settlement Account", 0),
            )
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "utility": kes(self.utility),
            "working": kes(self.working),
            "charges_paid": kes(self.charges_paid),
        }


class Accounts:
    def __init__(self) -> None:
        self._by_shortcode: dict[str, OrgAccounts] = {}

    def of(self, shortcode: str) -> OrgAccounts:
        accounts = self._by_shortcode.get(shortcode)
        if accounts is None:
            accounts = self._by_shortcode[shortcode] = OrgAccounts()
        return accounts

    def set(self, shortcode: str, *, utility: int | None, working: int | None) -> OrgAccounts:
        accounts = self.of(shortcode)
        if utility is not None:
            accounts.utility = utility
        if working is not None:
            accounts.working = working
        return accounts

    def reset(self) -> None:
        self._by_shortcode.clear()
