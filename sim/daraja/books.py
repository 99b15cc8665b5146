"""The simulator's books: what B2C, Transaction Status, Account Balance, Reversal and C2B share.

State changes happen when a request is accepted, in request order (a bulk batch that runs Utility dry
fails from the first row that no longer fits); only the Result waits for ``callback_delay``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sim.daraja.balances import Accounts
from sim.daraja.credential import Initiators
from sim.daraja.delivery import Courier, Host
from sim.daraja.ids import IdFactory, now_eat
from sim.daraja.transactions import Customers, Transaction, TransactionBook, TransactionKind


@dataclass
class Books:
    host: Host
    ids: IdFactory
    initiators: Initiators
    accounts: Accounts = field(default_factory=Accounts)
    transactions: TransactionBook = field(default_factory=TransactionBook)
    customers: Customers = field(default_factory=Customers)
    # Every OriginatorConversationID a B2C request has used: the one idempotency key Daraja has (refs §7).
    originator_ids: set[str] = field(default_factory=set)
    courier: Courier = field(init=False)

    def __post_init__(self) -> None:
        self.courier = Courier(self.host)

    @classmethod
    def create(cls, host: Host, ids: IdFactory, initiators: Mapping[str, Mapping[str, str]] | None) -> Books:
        return cls(host=host, ids=ids, initiators=Initiators(initiators))

    def completion_time(self, accepted_at: datetime | None = None) -> datetime:
        """When an accepted request completes: as its Result is delivered, ``callback_delay`` later."""
        return (accepted_at or now_eat()) + timedelta(seconds=self.host.callback_delay)

    def record_collection(
        self,
        *,
        kind: TransactionKind,
        receipt: str,
        shortcode: str,
        msisdn: str,
        amount: int,
        initiated_at: datetime,
        finalised_at: datetime,
        reason_type: str,
        aliases: frozenset[str] = frozenset(),
    ) -> Transaction:
        """A customer paid the organisation (STK push, C2B): credit its Utility, remember the receipt."""
        self.accounts.of(shortcode).utility += amount * 100
        tx = Transaction(
            receipt=receipt,
            kind=kind,
            shortcode=shortcode,
            aliases=aliases - {shortcode},
            msisdn=msisdn,
            amount=amount,
            initiated_at=initiated_at,
            finalised_at=finalised_at,
            reason_type=reason_type,
        )
        self.transactions.add(tx)
        return tx

    def reset(self) -> None:
        self.initiators.reset()
        self.accounts.reset()
        self.transactions.reset()
        self.customers.reset()
        self.originator_ids.clear()
        self.courier.reset()
