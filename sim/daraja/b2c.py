"""B2C payouts: ``/mpesa/b2c/v3/paymentrequest`` (and v1, which has no OriginatorConversationID).

The outcome is decided when the request is accepted, in this order: the initiator's credential (2001), the
amount limits (below KES 10: 2, above 250 000: 3), the recipient scenario below, then funds (Utility below
the amount: 1). A payout that succeeds debits Utility by the amount and Charges Paid by the charge
(``balances.py``), gets a receipt and can be found by Transaction Status.

Scenarios by the last four digits of PartyB (the recipient), the way STK outcomes are picked:

- any other number: success, one Result with ResultCode 0 and ResultParameters;
- ``2001``: Result 2001 "The initiator information is invalid." (whatever the credential);
- ``2040``: Result 2040, the recipient is not a registered M-Pesa customer;
- ``0003``: Result ``SFC_IC0003`` "The operator does not exist." (the number is not on M-Pesa);
- ``0008``: Result 8, the payout would take the customer over their maximum balance;
- ``9997``: queue timeout: a QueueTimeOutURL notice and **no Result**. The payout really went through (when
  the funds allow), so Transaction Status by OriginalConversationID finds it Completed;
- ``9996``: queue timeout: the notice and no Result, and the payout was never processed, so Transaction
  Status answers 2032 (does not exist);
- ``9999``: lost: the payout succeeds and **nothing** is delivered; only Transaction Status can tell;
- ``9998``: the success Result is delivered twice (receivers must be idempotent on the ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sim.daraja.balances import b2c_charge_cents, shillings
from sim.daraja.books import Books
from sim.daraja.credential import INITIATOR_INVALID
from sim.daraja.ids import empty_transaction_id, now_eat, result_timestamp
from sim.daraja.money_out_requests import B2CRequest
from sim.daraja.results import B2C_REFERENCE_URL, SUCCESS_DESC, ack, param, queue_timeout, reference, result
from sim.daraja.transactions import Transaction
from sim.daraja.validation import DarajaError

MIN_AMOUNT = 10
MAX_AMOUNT = 250_000
INSUFFICIENT_DESC = "The balance is insufficient for the transaction."
BELOW_MINIMUM_DESC = "Declined due to limit rule"
ABOVE_MAXIMUM_DESC = "Declined due to limit rule: greater than the maximum transaction amount."
# The official sample error body ends with a full stop (the docs' summary table drops it).
DUPLICATE_DESC = "Duplicate OriginatorConversationID."

REASON_TYPES: Mapping[str, str] = {
    "BusinessPayment": "Business Payment to Customer via API",
    "SalaryPayment": "Salary Payment via API",
    "PromotionPayment": "Promotion Payment via API",
}


@dataclass(frozen=True, slots=True)
class PayoutScenario:
    code: int | str
    desc: str
    deliveries: int = 1
    queue_timeout: bool = False
    processed: bool = True


_SUCCESS = PayoutScenario(0, SUCCESS_DESC)

B2C_OUTCOMES: Mapping[str, PayoutScenario] = {
    "2001": PayoutScenario(2001, INITIATOR_INVALID),
    "2040": PayoutScenario(
        2040,
        "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the service.",
    ),
    "0003": PayoutScenario("SFC_IC0003", "The operator does not exist."),
    "0008": PayoutScenario(8, "Declined due to limit rule: would exceed the maximum balance."),
    "9997": PayoutScenario(0, SUCCESS_DESC, deliveries=0, queue_timeout=True),
    "9996": PayoutScenario(0, SUCCESS_DESC, deliveries=0, queue_timeout=True, processed=False),
    "9999": PayoutScenario(0, SUCCESS_DESC, deliveries=0),
    "9998": PayoutScenario(0, SUCCESS_DESC, deliveries=2),
}


def scenario_for(msisdn: str) -> PayoutScenario:
    return B2C_OUTCOMES.get(msisdn[-4:], _SUCCESS)


def pay(books: Books, req: B2CRequest) -> dict[str, str]:
    originator = req.originator_conversation_id or books.ids.request_id()
    if originator in books.originator_ids:
        raise DarajaError(500, "500.002.1001", DUPLICATE_DESC)
    books.originator_ids.add(originator)
    accepted_at = now_eat()
    conversation = books.ids.conversation_id(accepted_at)
    scenario = scenario_for(req.party_b)
    body = (
        _process(books, req, scenario, originator, conversation, accepted_at) if scenario.processed else None
    )
    if scenario.queue_timeout:
        notice = queue_timeout(originator_conversation_id=originator, conversation_id=conversation)
        books.courier.send(req.queue_timeout_url, notice, kind="queue_timeout")
    elif body is not None and scenario.deliveries:
        books.courier.send(req.result_url, body, kind="result", times=scenario.deliveries)
    return ack(conversation_id=conversation, originator_conversation_id=originator)


def _failure(books: Books, req: B2CRequest, scenario: PayoutScenario) -> tuple[int | str, str] | None:
    initiator = req.initiator
    if not books.initiators.is_valid(initiator.shortcode, initiator.name, initiator.credential):
        return 2001, INITIATOR_INVALID
    if req.amount < MIN_AMOUNT:
        return 2, BELOW_MINIMUM_DESC
    if req.amount > MAX_AMOUNT:
        return 3, ABOVE_MAXIMUM_DESC
    if scenario.code != 0:
        return scenario.code, scenario.desc
    if books.accounts.of(initiator.shortcode).utility < req.amount * 100:
        return 1, INSUFFICIENT_DESC
    return None


def _process(
    books: Books,
    req: B2CRequest,
    scenario: PayoutScenario,
    originator: str,
    conversation: str,
    accepted_at: datetime,
) -> dict[str, Any]:
    completed_at = books.completion_time(accepted_at)
    reference_data = reference("QueueTimeoutURL", B2C_REFERENCE_URL)
    failure = _failure(books, req, scenario)
    if failure is not None:
        code, desc = failure
        return result(
            code=code,
            desc=desc,
            originator_conversation_id=originator,
            conversation_id=conversation,
            transaction_id=empty_transaction_id(completed_at.date()),
            reference_data=reference_data,
        )
    shortcode = req.initiator.shortcode
    accounts = books.accounts.of(shortcode)
    charge = b2c_charge_cents(req.amount)
    accounts.utility -= req.amount * 100
    accounts.charges_paid -= charge
    receipt = books.ids.receipt(completed_at.date())
    books.transactions.add(
        Transaction(
            receipt=receipt,
            kind="b2c",
            shortcode=shortcode,
            msisdn=req.party_b,
            amount=req.amount,
            initiated_at=accepted_at,
            finalised_at=completed_at,
            reason_type=REASON_TYPES[req.command_id],
            charge_cents=charge,
            originator_conversation_id=originator,
            conversation_id=conversation,
        )
    )
    return result(
        code=0,
        desc=SUCCESS_DESC,
        originator_conversation_id=originator,
        conversation_id=conversation,
        transaction_id=receipt,
        parameters=[
            param("TransactionAmount", req.amount),
            param("TransactionReceipt", receipt),
            param("ReceiverPartyPublicName", books.customers.public_name(req.party_b)),
            param("TransactionCompletedDateTime", result_timestamp(completed_at)),
            param("B2CUtilityAccountAvailableFunds", shillings(accounts.utility)),
            param("B2CWorkingAccountAvailableFunds", shillings(accounts.working)),
            param("B2CRecipientIsRegisteredCustomer", "Y"),
            param("B2CChargesPaidAccountAvailableFunds", shillings(accounts.charges_paid)),
        ],
        reference_data=reference_data,
    )
