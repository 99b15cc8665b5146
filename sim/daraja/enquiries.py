"""Account Balance (``/mpesa/accountbalance/v1/query``) and Transaction Status
(``/mpesa/transactionstatus/v1/query``): a sync ack, then one Result to ResultURL.

Account Balance reports the short code's accounts at the moment the query is accepted (refs §9: the Result's
``ResultType``/``ResultCode`` are strings there, and its success text has no full stop).

Transaction Status finds, among the transactions this short code is a party to, the one with the given
receipt (``TransactionID``) or, failing that, the given ``OriginalConversationID`` (a B2C payout's or a
reversal's OriginatorConversationID or ConversationID). STK receipts, C2B payments, B2C payouts and
reversals are all found. Nothing found is ResultCode 2032 "The transaction receipt number does not exist.",
the answer a sandbox capture shows for an unknown receipt; the simulator gives it for an unknown conversation
id too. A bad credential is 2001 either way.
"""

from __future__ import annotations

from typing import Any

from sim.daraja.balances import kes
from sim.daraja.books import Books
from sim.daraja.credential import INITIATOR_INVALID
from sim.daraja.ids import daraja_timestamp, empty_transaction_id, now_eat
from sim.daraja.money_out_requests import BalanceRequest, Initiator, StatusRequest
from sim.daraja.results import BALANCE_REFERENCE_URL, SUCCESS_DESC, ack, param, reference, result
from sim.daraja.transactions import Transaction, org_public_name

BALANCE_SUCCESS_DESC = "The service request is processed successfully"
NOT_FOUND_CODE = 2032
NOT_FOUND_DESC = "The transaction receipt number does not exist."


def _valid(books: Books, initiator: Initiator) -> bool:
    return books.initiators.is_valid(initiator.shortcode, initiator.name, initiator.credential)


def account_balance(books: Books, req: BalanceRequest) -> dict[str, str]:
    accepted_at = now_eat()
    originator = books.ids.request_id()
    conversation = books.ids.conversation_id(accepted_at)
    completed_at = books.completion_time(accepted_at)
    common: dict[str, Any] = {
        "originator_conversation_id": originator,
        "conversation_id": conversation,
        "transaction_id": empty_transaction_id(completed_at.date()),
        "reference_data": reference("QueueTimeoutURL", BALANCE_REFERENCE_URL),
        "as_strings": True,
    }
    if not _valid(books, req.initiator):
        body = result(code=2001, desc=INITIATOR_INVALID, **common)
    else:
        accounts = books.accounts.of(req.initiator.shortcode)
        body = result(
            code=0,
            desc=BALANCE_SUCCESS_DESC,
            parameters=[
                param("AccountBalance", accounts.balance_string()),
                param("BOCompletedTime", daraja_timestamp(completed_at)),
            ],
            **common,
        )
    books.courier.send(req.result_url, body, kind="result")
    return ack(conversation_id=conversation, originator_conversation_id=originator)


def transaction_status(books: Books, req: StatusRequest) -> dict[str, str]:
    accepted_at = now_eat()
    originator = books.ids.request_id()
    conversation = books.ids.conversation_id(accepted_at)
    common: dict[str, Any] = {
        "originator_conversation_id": originator,
        "conversation_id": conversation,
        "transaction_id": empty_transaction_id(books.completion_time(accepted_at).date()),
        # The documented sample echoes the request's Occasion here (a Key alone when there was none).
        "reference_data": reference("Occasion", req.occasion) if req.occasion else reference("Occasion"),
    }
    tx = books.transactions.find(
        receipt=req.transaction_id,
        conversation_id=req.original_conversation_id,
        shortcode=req.initiator.shortcode,
    )
    if not _valid(books, req.initiator):
        body = result(code=2001, desc=INITIATOR_INVALID, **common)
    elif tx is None:
        body = result(code=NOT_FOUND_CODE, desc=NOT_FOUND_DESC, **common)
    else:
        body = result(code=0, desc=SUCCESS_DESC, parameters=status_parameters(books, tx), **common)
    books.courier.send(req.result_url, body, kind="result")
    return ack(conversation_id=conversation, originator_conversation_id=originator)


def _optional(key: str, value: str | None) -> dict[str, Any]:
    return param(key) if value is None else param(key, value)


def status_parameters(books: Books, tx: Transaction) -> list[dict[str, Any]]:
    """The documented parameters, in the documented order. The sample lists ``DebitPartyName`` twice; the
    second is the credit side and is sent here as ``CreditPartyName``, the name clients expect (refs §8).
    Keys the simulator has no value for (an STK push has no conversation ids) come with a Key only."""
    org = org_public_name(tx.shortcode)
    customer = books.customers.public_name(tx.msisdn)
    debit, credit = (org, customer) if tx.organisation_pays else (customer, org)
    charges = f"Fee For B2C Payment|KES|{kes(tx.charge_cents)}" if tx.kind == "b2c" else None
    return [
        param("DebitPartyName", debit),
        param("CreditPartyName", credit),
        _optional("OriginatorConversationID", tx.originator_conversation_id),
        param("InitiatedTime", daraja_timestamp(tx.initiated_at)),
        param("DebitAccountType", "Utility Account" if tx.organisation_pays else "Customer Account"),
        _optional("DebitPartyCharges", charges),
        param("TransactionReason"),
        param("ReasonType", tx.reason_type),
        param("TransactionStatus", "Completed"),
        param("FinalisedTime", daraja_timestamp(tx.finalised_at)),
        param("Amount", str(tx.amount)),
        _optional("ConversationID", tx.conversation_id),
        param("ReceiptNo", tx.receipt),
    ]
