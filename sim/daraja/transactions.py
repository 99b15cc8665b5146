"""The completed M-Pesa transactions the simulator knows, and the public names of their parties.

Transaction Status finds these by receipt or conversation id, and Reversal reverses the collections among
them. Only money that moved is here: a failed or never-processed payout leaves nothing to find, so a status
query for it answers "does not exist" (ResultCode 2032).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

TransactionKind = Literal["stk", "c2b", "b2c", "reversal"]

# Deterministic names, so a test can predict ReceiverPartyPublicName for a number it never introduced.
_FIRST = ("JOHN", "MARY", "PETER", "GRACE", "JAMES", "FAITH", "DAVID", "JOY", "SAMUEL", "MERCY")
_MIDDLE = ("", "WANJIRU", "OTIENO", "", "KIPKEMBOI", "AKINYI", "", "NJERI", "MUTUA", "")
_LAST = (
    "KAMAU",
    "OCHIENG",
    "WAMBUI",
    "MWANGI",
    "ACHIENG",
    "KIPROTICH",
    "NJOROGE",
    "CHEBET",
    "ODHIAMBO",
    "MUTUA",
)


@dataclass(frozen=True, slots=True)
class CustomerName:
    first: str
    middle: str
    last: str

    def full(self) -> str:
        return " ".join(part for part in (self.first, self.middle, self.last) if part)


def default_name(msisdn: str) -> CustomerName:
    n = int(msisdn[-6:])
    return CustomerName(_FIRST[n % 10], _MIDDLE[(n // 10) % 10], _LAST[(n // 100) % 10])


def org_public_name(shortcode: str) -> str:
    """Like the sandbox's ``600992 - Safaricom Daraja 992``."""
    return f"{shortcode} - Daraja Simulator {shortcode[-3:]}"


class Customers:
    """Names by MSISDN: a C2B payer's given names are remembered, everyone else gets a default one."""

    def __init__(self) -> None:
        self._names: dict[str, CustomerName] = {}

    def name(self, msisdn: str) -> CustomerName:
        return self._names.get(msisdn) or default_name(msisdn)

    def remember(self, msisdn: str, name: CustomerName) -> None:
        self._names[msisdn] = name

    def public_name(self, msisdn: str) -> str:
        """``254705912645 - NICHOLAS JOHN SONGOK``"""
        return f"{msisdn} - {self.name(msisdn).full()}"

    def reset(self) -> None:
        self._names.clear()


@dataclass(slots=True)
class Transaction:
    receipt: str
    kind: TransactionKind
    shortcode: str
    msisdn: str
    amount: int
    initiated_at: datetime
    finalised_at: datetime
    reason_type: str
    # Other short codes that name the same organisation: an STK push's till (PartyB) beside its store.
    aliases: frozenset[str] = frozenset()
    charge_cents: int = 0
    originator_conversation_id: str | None = None
    conversation_id: str | None = None
    original_receipt: str | None = None
    reversed_by: str | None = None

    @property
    def organisation_pays(self) -> bool:
        return self.kind in ("b2c", "reversal")

    def belongs_to(self, shortcode: str) -> bool:
        return shortcode == self.shortcode or shortcode in self.aliases


class TransactionBook:
    def __init__(self) -> None:
        self._by_receipt: dict[str, Transaction] = {}
        self._by_conversation: dict[str, Transaction] = {}

    def add(self, tx: Transaction) -> None:
        self._by_receipt[tx.receipt] = tx
        for conversation in (tx.originator_conversation_id, tx.conversation_id):
            if conversation:
                self._by_conversation[conversation] = tx

    def by_receipt(self, receipt: str) -> Transaction | None:
        return self._by_receipt.get(receipt)

    def find(self, *, receipt: str | None, conversation_id: str | None, shortcode: str) -> Transaction | None:
        """The transaction a status query means, if ``shortcode`` is a party to it (another organisation's
        receipt is as unknown as a made-up one)."""
        for tx in (
            self._by_receipt.get(receipt) if receipt else None,
            self._by_conversation.get(conversation_id) if conversation_id else None,
        ):
            if tx is not None and tx.belongs_to(shortcode):
                return tx
        return None

    def reset(self) -> None:
        self._by_receipt.clear()
        self._by_conversation.clear()
