"""Reversal (``/mpesa/reversal/v1/request``): give a customer back a payment the organisation received.

``ReceiverParty`` is the organisation (with ``RecieverIdentifierType`` "11", Daraja's spelling) and
``TransactionID`` the receipt of a payment it received: an STK push (its store or till number) or a C2B
payment. The Result, in order of checks:

1. a bad credential: 2001 "The initiator information is invalid.";
2. the receipt is not a payment this organisation received (unknown, another organisation's, a B2C payout,
   a reversal): ``R000002`` "The OriginalTransactionID is invalid.";
3. already reversed: ``R000001`` "The transaction has already been reversed.";
4. ``Amount`` is not the payment's amount: ``R000002`` (see below);
5. Utility holds less than the amount: 1 "The balance is insufficient for the transaction.";
6. otherwise 0 with the documented ResultParameters, and the money leaves Utility.

An amount that differs from the original's is answered R000002: Daraja documents no partial reversal and no
code of its own for a mismatch, and a reversal request that names a receipt with another amount names no
transaction M-Pesa can reverse. B2C payouts are not reversible through this API.
"""

from __future__ import annotations

from typing import Any

from sim.daraja.books import Books
from sim.daraja.credential import INITIATOR_INVALID
from sim.daraja.ids import daraja_timestamp, empty_transaction_id, now_eat
from sim.daraja.money_out_requests import ReversalRequest
from sim.daraja.results import REVERSAL_REFERENCE_URL, SUCCESS_DESC, ack, param, reference, result
from sim.daraja.transactions import Transaction, org_public_name

INVALID_ORIGINAL = ("R000002", "The OriginalTransactionID is invalid.")
ALREADY_REVERSED = ("R000001", "The transaction has already been reversed.")
INSUFFICIENT = (1, "The balance is insufficient for the transaction.")


def _failure(
    books: Books, req: ReversalRequest, original: Transaction | None
) -> tuple[int | str, str] | None:
    initiator = req.initiator
    if not books.initiators.is_valid(initiator.shortcode, initiator.name, initiator.credential):
        return 2001, INITIATOR_INVALID
    if (
        original is None
        or original.kind not in ("stk", "c2b")
        or not original.belongs_to(initiator.shortcode)
    ):
        return INVALID_ORIGINAL
    if original.reversed_by is not None:
        return ALREADY_REVERSED
    if req.amount != original.amount:
        return INVALID_ORIGINAL
    if books.accounts.of(original.shortcode).utility < req.amount * 100:
        return INSUFFICIENT
    return None


def reverse(books: Books, req: ReversalRequest) -> dict[str, str]:
    accepted_at = now_eat()
    originator = books.ids.request_id()
    conversation = books.ids.conversation_id(accepted_at)
    completed_at = books.completion_time(accepted_at)
    common: dict[str, Any] = {
        "originator_conversation_id": originator,
        "conversation_id": conversation,
        "reference_data": reference("QueueTimeoutURL", REVERSAL_REFERENCE_URL),
    }
    original = books.transactions.by_receipt(req.transaction_id)
    failure = _failure(books, req, original)
    if failure is not None or original is None:
        code, desc = failure or INVALID_ORIGINAL
        body = result(
            code=code, desc=desc, transaction_id=empty_transaction_id(completed_at.date()), **common
        )
    else:
        accounts = books.accounts.of(original.shortcode)
        accounts.utility -= req.amount * 100
        receipt = books.ids.receipt(completed_at.date())
        original.reversed_by = receipt
        books.transactions.add(
            Transaction(
                receipt=receipt,
                kind="reversal",
                shortcode=original.shortcode,
                aliases=original.aliases,
                msisdn=original.msisdn,
                amount=req.amount,
                initiated_at=accepted_at,
                finalised_at=completed_at,
                reason_type="Reversal",
                originator_conversation_id=originator,
                conversation_id=conversation,
                original_receipt=original.receipt,
            )
        )
        body = result(
            code=0,
            desc=SUCCESS_DESC,
            transaction_id=receipt,
            parameters=[
                param("DebitAccountBalance", accounts.line("Utility Account", accounts.utility)),
                param("Amount", float(req.amount)),
                param("TransCompletedTime", int(daraja_timestamp(completed_at))),
                param("OriginalTransactionID", original.receipt),
                param("Charge", 0.0),
                param("CreditPartyPublicName", books.customers.public_name(original.msisdn)),
                param("DebitPartyPublicName", org_public_name(req.initiator.shortcode)),
            ],
            **common,
        )
    books.courier.send(req.result_url, body, kind="result")
    return ack(conversation_id=conversation, originator_conversation_id=originator)
