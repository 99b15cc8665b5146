"""Request validation for the initiator APIs: B2C, Transaction Status, Account Balance and Reversal.

Fields are checked in the order the documentation lists them and the first bad one is reported as
``400.002.02 Bad Request - Invalid <Field>``, like STK push. Only the shape is checked here; everything M-Pesa
itself decides (the credential, amount limits, funds, the receipt) comes back in the asynchronous Result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.daraja.validation import MSISDN, SHORTCODE, invalid, matching, numeric_text, url_field, whole_amount

B2C_COMMANDS = frozenset({"BusinessPayment", "SalaryPayment", "PromotionPayment"})
# The documented type is 4 (organisation short code); older docs and libraries also send 1 and 2 (refs §8).
IDENTIFIER_TYPES = frozenset({"1", "2", "4"})
# "11" is the 2025 doc's value; "4" appears in older examples (refs §10).
REVERSAL_IDENTIFIER_TYPES = frozenset({"11", "4"})


@dataclass(frozen=True, slots=True)
class Initiator:
    shortcode: str
    name: str
    credential: str


@dataclass(frozen=True, slots=True)
class B2CRequest:
    originator_conversation_id: str | None
    initiator: Initiator
    command_id: str
    amount: int
    party_b: str
    remarks: str
    queue_timeout_url: str
    result_url: str


@dataclass(frozen=True, slots=True)
class BalanceRequest:
    initiator: Initiator
    queue_timeout_url: str
    result_url: str


@dataclass(frozen=True, slots=True)
class StatusRequest:
    initiator: Initiator
    transaction_id: str | None
    original_conversation_id: str | None
    queue_timeout_url: str
    result_url: str
    occasion: str | None


@dataclass(frozen=True, slots=True)
class ReversalRequest:
    initiator: Initiator
    transaction_id: str
    amount: int
    queue_timeout_url: str
    result_url: str


def _text(value: object, field: str, *, low: int = 1, high: int = 100) -> str:
    if not isinstance(value, str) or len(value.strip()) < low or len(value) > high:
        raise invalid(field)
    return value


def _optional_text(value: object, field: str, *, high: int = 100) -> str | None:
    # Clients often send "" for an optional field they have nothing for; that is not a bad value.
    if value is None or value == "":
        return None
    return _text(value, field, high=high)


def _credential(value: object) -> str:
    # Only an absent credential is visible to the gateway; a wrong one fails later as 2001 (credential.py).
    if not isinstance(value, str) or not value.strip():
        raise invalid("SecurityCredential")
    return value


def _command(value: object, allowed: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise invalid("CommandID")
    return value


def _identifier_type(value: object, allowed: frozenset[str], field: str) -> str:
    text = numeric_text(value)
    if text is None or text not in allowed:
        raise invalid(field)
    return text


def _reference(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    text = numeric_text(value)
    if text is None or not text.strip() or len(text) > 64:
        raise invalid(field)
    return text.strip()


def validate_b2c(body: dict[str, Any], *, v3: bool) -> B2CRequest:
    """``v3`` requires the caller's OriginatorConversationID; v1 has no such field (Daraja mints one)."""
    originator = _text(body.get("OriginatorConversationID"), "OriginatorConversationID") if v3 else None
    name = _text(body.get("InitiatorName"), "InitiatorName")
    credential = _credential(body.get("SecurityCredential"))
    command_id = _command(body.get("CommandID"), B2C_COMMANDS)
    amount = whole_amount(body.get("Amount"))
    party_a = matching(body.get("PartyA"), SHORTCODE, "PartyA")
    party_b = matching(body.get("PartyB"), MSISDN, "PartyB")
    remarks = _text(body.get("Remarks"), "Remarks", low=2)
    queue_timeout_url = url_field(body.get("QueueTimeOutURL"), "QueueTimeOutURL")
    result_url = url_field(body.get("ResultURL"), "ResultURL")
    # The documented spelling is "Occassion"; many clients send "Occasion". Optional either way.
    _optional_text(body.get("Occassion", body.get("Occasion")), "Occassion")
    return B2CRequest(
        originator_conversation_id=originator,
        initiator=Initiator(party_a, name, credential),
        command_id=command_id,
        amount=amount,
        party_b=party_b,
        remarks=remarks,
        queue_timeout_url=queue_timeout_url,
        result_url=result_url,
    )


def validate_balance(body: dict[str, Any]) -> BalanceRequest:
    name = _text(body.get("Initiator"), "Initiator")
    credential = _credential(body.get("SecurityCredential"))
    _command(body.get("CommandID"), frozenset({"AccountBalance"}))
    party_a = matching(body.get("PartyA"), SHORTCODE, "PartyA")
    _identifier_type(body.get("IdentifierType"), IDENTIFIER_TYPES, "IdentifierType")
    _optional_text(body.get("Remarks"), "Remarks")
    queue_timeout_url = url_field(body.get("QueueTimeOutURL"), "QueueTimeOutURL")
    result_url = url_field(body.get("ResultURL"), "ResultURL")
    return BalanceRequest(Initiator(party_a, name, credential), queue_timeout_url, result_url)


def validate_status(body: dict[str, Any]) -> StatusRequest:
    name = _text(body.get("Initiator"), "Initiator")
    credential = _credential(body.get("SecurityCredential"))
    _command(body.get("CommandID"), frozenset({"TransactionStatusQuery"}))
    transaction_id = _reference(body.get("TransactionID"), "TransactionID")
    original = _reference(body.get("OriginalConversationID"), "OriginalConversationID")
    if transaction_id is None and original is None:
        # Either id will do (refs §8); with neither there is nothing to look for.
        raise invalid("TransactionID")
    party_a = matching(body.get("PartyA"), SHORTCODE, "PartyA")
    _identifier_type(body.get("IdentifierType"), IDENTIFIER_TYPES, "IdentifierType")
    result_url = url_field(body.get("ResultURL"), "ResultURL")
    queue_timeout_url = url_field(body.get("QueueTimeOutURL"), "QueueTimeOutURL")
    _optional_text(body.get("Remarks"), "Remarks")
    occasion = _optional_text(body.get("Occasion"), "Occasion")
    return StatusRequest(
        initiator=Initiator(party_a, name, credential),
        transaction_id=transaction_id,
        original_conversation_id=original,
        queue_timeout_url=queue_timeout_url,
        result_url=result_url,
        occasion=occasion,
    )


def validate_reversal(body: dict[str, Any]) -> ReversalRequest:
    name = _text(body.get("Initiator"), "Initiator")
    credential = _credential(body.get("SecurityCredential"))
    _command(body.get("CommandID"), frozenset({"TransactionReversal"}))
    transaction_id = _reference(body.get("TransactionID"), "TransactionID")
    if transaction_id is None:
        raise invalid("TransactionID")
    amount = whole_amount(body.get("Amount"))
    receiver = matching(body.get("ReceiverParty"), SHORTCODE, "ReceiverParty")
    # Daraja's own spelling; a client that "fixes" it sends a field Daraja does not read.
    _identifier_type(body.get("RecieverIdentifierType"), REVERSAL_IDENTIFIER_TYPES, "RecieverIdentifierType")
    result_url = url_field(body.get("ResultURL"), "ResultURL")
    queue_timeout_url = url_field(body.get("QueueTimeOutURL"), "QueueTimeOutURL")
    _optional_text(body.get("Remarks"), "Remarks")
    _optional_text(body.get("Occasion"), "Occasion")
    return ReversalRequest(
        initiator=Initiator(receiver, name, credential),
        transaction_id=transaction_id,
        amount=amount,
        queue_timeout_url=queue_timeout_url,
        result_url=result_url,
    )
