"""C2B: register URLs, customer payments (``simulate`` or ``POST /_sim/c2b/pay``), validation, confirmation.

Registration (refs §6.1): ``/mpesa/c2b/v1/registerurl`` and ``/v2/registerurl`` answer with Daraja's
``OriginatorCoversationID`` spelling. The sandbox lets a short code register again (the new URLs replace the
old); with ``production=True`` a second registration is ``500.003.1001 Urls are already registered.``.
The version registered with decides the MSISDN a merchant sees: v1 gets ``254712345678``, v2 the masked
``2547 ***** 678`` of the v2 docs.

A payment, after ``callback_delay``:

1. If the short code registered a validation URL **and** external validation is enabled for it
   (``POST /_sim/c2b/validation``; off by default, as on Daraja), the validation payload is POSTed and the
   simulator waits up to ``validation_timeout`` (8 s, Daraja's figure) for ``{"ResultCode": "0"}``
   (accepted) or any other ResultCode such as ``"C2B00011"`` (rejected: the payment ends, nothing is
   confirmed). No usable answer in time (timeout, connection error, non-2xx status, a body without
   ResultCode) applies the registered ``ResponseType``: Completed goes on, Cancelled ends the payment.
2. The payment completes: the Utility account is credited, the receipt (``TransID``) is known to Transaction
   Status and Reversal, and if URLs are registered the confirmation is POSTed with ``OrgAccountBalance`` set
   and the ``ThirdPartyTransID`` the validation answer gave. With no URLs registered it completes silently.

``GET /_sim/c2b`` lists every payment with its outcome (``pending`` until its last delivery is done, then
``completed``, ``rejected`` or ``cancelled``) and each delivery with the merchant's reply.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx

from sim.daraja.balances import kes
from sim.daraja.books import Books
from sim.daraja.c2b_requests import C2B_COMMANDS, RegisterRequest, SimulateRequest
from sim.daraja.delivery import post_json
from sim.daraja.ids import daraja_timestamp, now_eat
from sim.daraja.results import ACCEPTED_DESC
from sim.daraja.transactions import CustomerName
from sim.daraja.validation import DarajaError

VALIDATION_TIMEOUT = 8.0
# STK and C2B name their products differently in Transaction Status' ReasonType (a simulator choice).
C2B_REASON_TYPES = {"CustomerPayBillOnline": "Pay Bill", "CustomerBuyGoodsOnline": "Buy Goods"}

Outcome = Literal["pending", "completed", "rejected", "cancelled"]
Validation = Literal["not asked", "accepted", "rejected", "no answer"]


def masked_msisdn(msisdn: str) -> str:
    """``2547 ***** 126``: the v2 payload's form (refs §6.3)."""
    return f"{msisdn[:4]} ***** {msisdn[-3:]}"


@dataclass(frozen=True, slots=True)
class Registration:
    version: int
    response_type: str
    confirmation_url: str
    validation_url: str | None


@dataclass(slots=True)
class C2BPayment:
    trans_id: str
    shortcode: str
    command_id: str
    amount: int
    msisdn: str
    bill_ref: str
    invoice_number: str
    name: CustomerName
    trans_time: datetime
    outcome: Outcome = "pending"
    validation: Validation = "not asked"
    result_code: str | None = None
    result_desc: str | None = None
    third_party_trans_id: str = ""
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def payload(self, *, masked: bool, org_balance: str) -> dict[str, str]:
        return {
            "TransactionType": C2B_COMMANDS[self.command_id],
            "TransID": self.trans_id,
            "TransTime": daraja_timestamp(self.trans_time),
            "TransAmount": f"{self.amount}.00",
            "BusinessShortCode": self.shortcode,
            "BillRefNumber": self.bill_ref,
            "InvoiceNumber": self.invoice_number,
            "OrgAccountBalance": org_balance,
            "ThirdPartyTransID": self.third_party_trans_id,
            "MSISDN": masked_msisdn(self.msisdn) if masked else self.msisdn,
            "FirstName": self.name.first,
            "MiddleName": self.name.middle,
            "LastName": self.name.last,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "TransID": self.trans_id,
            "ShortCode": self.shortcode,
            "CommandID": self.command_id,
            "Amount": self.amount,
            "MSISDN": self.msisdn,
            "BillRefNumber": self.bill_ref,
            "outcome": self.outcome,
            "validation": self.validation,
            "ResultCode": self.result_code,
            "ResultDesc": self.result_desc,
            "deliveries": self.deliveries,
        }


def _answer(record: dict[str, Any]) -> tuple[str, str, str] | None:
    """(ResultCode, ResultDesc, ThirdPartyTransID) of a validation reply, or None for no usable answer."""
    status = record["status_code"]
    reply = record["reply"]
    if status is None or not 200 <= status < 300 or not isinstance(reply, dict):
        return None
    code = reply.get("ResultCode")
    if isinstance(code, bool) or not isinstance(code, int | str) or str(code).strip() == "":
        return None
    third_party = reply.get("ThirdPartyTransID")
    return (
        str(code).strip(),
        str(reply.get("ResultDesc") or ""),
        "" if third_party is None else str(third_party),
    )


class C2B:
    def __init__(self, books: Books, *, production: bool, validation_timeout: float) -> None:
        self.books = books
        self.production = production
        self.validation_timeout = validation_timeout
        self.registrations: dict[str, Registration] = {}
        self.validation_enabled: set[str] = set()
        self.payments: dict[str, C2BPayment] = {}

    def register(self, req: RegisterRequest, *, version: int) -> dict[str, str]:
        if self.production and req.shortcode in self.registrations:
            raise DarajaError(500, "500.003.1001", "Urls are already registered.")
        self.registrations[req.shortcode] = Registration(
            version, req.response_type, req.confirmation_url, req.validation_url
        )
        return {
            "OriginatorCoversationID": self.books.ids.request_id(),
            "ResponseCode": "0",
            "ResponseDescription": "Success",
        }

    def simulate(self, req: SimulateRequest) -> dict[str, str]:
        self.pay(
            shortcode=req.shortcode,
            command_id=req.command_id,
            amount=req.amount,
            msisdn=req.msisdn,
            bill_ref=req.bill_ref,
        )
        return {
            "OriginatorCoversationID": self.books.ids.request_id(),
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED_DESC,
        }

    def pay(
        self,
        *,
        shortcode: str,
        command_id: str,
        amount: int,
        msisdn: str,
        bill_ref: str,
        invoice_number: str = "",
        name: CustomerName | None = None,
    ) -> C2BPayment:
        """Start a customer's payment; its outcome follows after the callback delay."""
        if name is None:
            name = self.books.customers.name(msisdn)
        else:
            self.books.customers.remember(msisdn, name)
        trans_time = now_eat()
        payment = C2BPayment(
            trans_id=self.books.ids.receipt(trans_time.date()),
            shortcode=shortcode,
            command_id=command_id,
            amount=amount,
            msisdn=msisdn,
            bill_ref=bill_ref if command_id == "CustomerPayBillOnline" else "",
            invoice_number=invoice_number,
            name=name,
            trans_time=trans_time,
        )
        self.payments[payment.trans_id] = payment
        self.books.host.spawn(self._run(payment))
        return payment

    def set_validation(self, shortcode: str, enabled: bool) -> None:
        if enabled:
            self.validation_enabled.add(shortcode)
        else:
            self.validation_enabled.discard(shortcode)

    async def _run(self, payment: C2BPayment) -> None:
        await asyncio.sleep(self.books.host.callback_delay)
        registration = self.registrations.get(payment.shortcode)
        client = self.books.host.http_client()
        if (
            registration is not None
            and registration.validation_url is not None
            and payment.shortcode in self.validation_enabled
            and not await self._validated(client, payment, registration, registration.validation_url)
        ):
            return
        tx = self.books.record_collection(
            kind="c2b",
            receipt=payment.trans_id,
            shortcode=payment.shortcode,
            msisdn=payment.msisdn,
            amount=payment.amount,
            initiated_at=payment.trans_time,
            finalised_at=now_eat(),
            reason_type=C2B_REASON_TYPES[payment.command_id],
        )
        if registration is not None:
            balance = kes(self.books.accounts.of(tx.shortcode).utility)
            body = payment.payload(masked=registration.version == 2, org_balance=balance)
            record = await post_json(client, registration.confirmation_url, body, kind="confirmation")
            payment.deliveries.append(record)
        payment.outcome = "completed"

    async def _validated(
        self, client: httpx.AsyncClient, payment: C2BPayment, registration: Registration, url: str
    ) -> bool:
        body = payment.payload(masked=registration.version == 2, org_balance="")
        record = await post_json(client, url, body, kind="validation", wait=self.validation_timeout)
        payment.deliveries.append(record)
        answer = _answer(record)
        if answer is None:
            payment.validation = "no answer"
            if registration.response_type == "Completed":
                return True
            payment.outcome = "cancelled"
            return False
        code, desc, third_party = answer
        payment.result_code, payment.result_desc = code, desc
        if code == "0":
            payment.validation = "accepted"
            payment.third_party_trans_id = third_party
            return True
        payment.validation = "rejected"
        payment.outcome = "rejected"
        return False

    def reset(self) -> None:
        self.registrations.clear()
        self.validation_enabled.clear()
        self.payments.clear()
