"""Parsing of the asynchronous ``{"Result": {...}}`` answers Daraja POSTs to a ResultURL (B2C, Transaction
Status, Account Balance, Reversal) and of the QueueTimeOutURL notice.

Daraja types these loosely (refs/daraja.md §2.3): ResultCode and ResultType come as numbers or strings,
``ResultParameters.ResultParameter`` and ``ReferenceData.ReferenceItem`` as a list or a single object, some
parameters have a Key and no Value, amounts are floats or strings. The parsers accept all of that; what they
keep:

- ``result_code`` as text (``"0"``, ``"2001"``, ``"R000001"``) and an ``outcome``: ``success`` for ``"0"``,
  ``failed`` otherwise; a queue-timeout notice is ``timeout``, which is *not* final: resolve it with a
  transaction status query before paying again.
- every parameter as sent in ``parameters`` (first value per key) and ``parameter_list`` (all, in order),
  unknown keys of the Result in ``extra``, so nothing Daraja adds later is lost.
- money as **integer cents**, the ledger's unit (DESIGN: "integer cents in the ledger; never floats"): one
  exact conversion at the edge, via ``Decimal(str(value))`` so ``8959269.60`` is 895926960, never a binary
  float. Negative balances (a Charges Paid Account) stay negative.
- times as timezone-aware datetimes in East Africa Time: ``TransactionCompletedDateTime`` is
  ``DD.MM.YYYY HH:mm:ss``, the others ``YYYYMMDDHHmmss``.

What is refused (ValueError naming the key): a body that is not a Result, no ResultCode, no conversation id
at all, and an amount that is present but not an amount, or finer than a cent. Informational values that do
not read (a timestamp in an unknown format, a flag) become None and stay in ``parameters`` as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

EAT = ZoneInfo("Africa/Nairobi")

MoneyOutOutcome = Literal["success", "failed", "timeout"]
TransactionOutcome = Literal["success", "failed", "pending"]

# Far beyond any M-Pesa balance, yet small enough to turn into an int cheaply ("1e999999999" must not cost
# the worker minutes of CPU).
AMOUNT_DIGITS_LIMIT = 15

_KNOWN_RESULT_KEYS = frozenset(
    {
        "ResultType",
        "ResultCode",
        "ResultDesc",
        "OriginatorConversationID",
        "ConversationID",
        "TransactionID",
        "ResultParameters",
        "ReferenceData",
    }
)

# TransactionStatus values of a Transaction Status result (refs/daraja.md §8), lower-cased.
_TRANSACTION_STATUSES: dict[str, TransactionOutcome] = {
    "completed": "success",
    "cancelled": "failed",
    "declined": "failed",
    "expired": "failed",
    "failed": "failed",
    "authorized": "pending",
    "pending": "pending",
}


class MoneyOutResult(BaseModel):
    """What every Result envelope holds, whatever the API."""

    model_config = ConfigDict(frozen=True)

    result_type: str | None
    result_code: str
    result_desc: str
    originator_conversation_id: str | None
    conversation_id: str | None
    transaction_id: str | None
    parameters: dict[str, Any]
    parameter_list: tuple[tuple[str, Any], ...]
    reference_data: dict[str, Any]
    extra: dict[str, Any]

    @property
    def outcome(self) -> MoneyOutOutcome:
        return "success" if self.result_code == "0" else "failed"


class B2CResult(MoneyOutResult):
    amount_cents: int | None = None
    receipt: str | None = None
    receiver_public_name: str | None = None
    completed_at: datetime | None = None
    recipient_is_registered: bool | None = None
    utility_account_available_cents: int | None = None
    working_account_available_cents: int | None = None
    charges_paid_account_available_cents: int | None = None


class TransactionStatusResult(MoneyOutResult):
    """``outcome`` says whether the *query* was answered; ``transaction_outcome`` how the queried
    transaction ended (None when the query itself failed or the status is one we do not know)."""

    transaction_status: str | None = None
    receipt: str | None = None
    amount_cents: int | None = None
    debit_party_name: str | None = None
    credit_party_name: str | None = None
    debit_account_type: str | None = None
    debit_party_charges: str | None = None
    reason_type: str | None = None
    transaction_reason: str | None = None
    initiated_at: datetime | None = None
    finalised_at: datetime | None = None
    queried_conversation_id: str | None = None
    queried_originator_conversation_id: str | None = None

    @property
    def transaction_outcome(self) -> TransactionOutcome | None:
        if self.result_code != "0" or self.transaction_status is None:
            return None
        status = self.transaction_status.strip().lower()
        # "Authorized/Pending" is documented as one value.
        return _TRANSACTION_STATUSES.get(status.split("/")[0].strip())


class AccountBalance(BaseModel):
    """One ``name|currency|available|uncleared|reserved|…`` entry of the AccountBalance string. The meaning
    of the columns after ``available`` is loosely documented, so ``columns`` keeps them all as sent."""

    model_config = ConfigDict(frozen=True)

    name: str
    currency: str
    available_cents: int
    uncleared_cents: int | None
    reserved_cents: int | None
    columns: tuple[str, ...]


class AccountBalanceResult(MoneyOutResult):
    accounts: tuple[AccountBalance, ...] = ()
    completed_at: datetime | None = None

    def account(self, name: str) -> AccountBalance | None:
        """The account called ``name`` (case and spacing ignored), e.g. ``"Utility Account"``."""
        wanted = "".join(name.split()).lower()
        return next((a for a in self.accounts if "".join(a.name.split()).lower() == wanted), None)


class ReversalResult(MoneyOutResult):
    amount_cents: int | None = None
    original_transaction_id: str | None = None
    charge_cents: int | None = None
    completed_at: datetime | None = None
    credit_party_public_name: str | None = None
    debit_party_public_name: str | None = None
    debit_account_balance: AccountBalance | None = None


class QueueTimeout(BaseModel):
    """The QueueTimeOutURL notice: Daraja's queue gave up on the request before M-Pesa answered. Its shape
    is undocumented (modelled as a Result envelope by integrators), so every field is optional except a
    conversation id to match it by. Not a final failure."""

    model_config = ConfigDict(frozen=True)

    result_type: str | None
    result_code: str | None
    result_desc: str | None
    originator_conversation_id: str | None
    conversation_id: str | None
    extra: dict[str, Any]

    @property
    def outcome(self) -> MoneyOutOutcome:
        return "timeout"


def parse_result(payload: object) -> MoneyOutResult:
    """The common part of any Result envelope (when the API it answers is not known)."""
    return MoneyOutResult(**_envelope(payload))


def parse_b2c_result(payload: object) -> B2CResult:
    base = _envelope(payload)
    p = base["parameters"]
    receipt = text_value(p.get("TransactionReceipt"))
    if receipt is None and base["result_code"] == "0":
        receipt = base["transaction_id"]
    return B2CResult(
        **base,
        amount_cents=_cents(p, "TransactionAmount"),
        receipt=receipt,
        receiver_public_name=text_value(p.get("ReceiverPartyPublicName")),
        completed_at=parse_eat_time(p.get("TransactionCompletedDateTime")),
        recipient_is_registered=_yes_no(p.get("B2CRecipientIsRegisteredCustomer")),
        utility_account_available_cents=_cents(p, "B2CUtilityAccountAvailableFunds"),
        working_account_available_cents=_cents(p, "B2CWorkingAccountAvailableFunds"),
        charges_paid_account_available_cents=_cents(p, "B2CChargesPaidAccountAvailableFunds"),
    )


def parse_transaction_status_result(payload: object) -> TransactionStatusResult:
    base = _envelope(payload)
    p = base["parameters"]
    # The documented sample names the customer "DebitPartyName" a second time; libraries expect
    # "CreditPartyName". Take the latter, else the second DebitPartyName.
    debit_names = [v for k, v in base["parameter_list"] if k == "DebitPartyName"]
    credit = text_value(p.get("CreditPartyName"))
    if credit is None and len(debit_names) > 1:
        credit = text_value(debit_names[1])
    return TransactionStatusResult(
        **base,
        transaction_status=text_value(p.get("TransactionStatus")),
        receipt=text_value(p.get("ReceiptNo")),
        amount_cents=_cents(p, "Amount"),
        debit_party_name=text_value(debit_names[0]) if debit_names else None,
        credit_party_name=credit,
        debit_account_type=text_value(p.get("DebitAccountType")),
        debit_party_charges=text_value(p.get("DebitPartyCharges")),
        reason_type=text_value(p.get("ReasonType")),
        transaction_reason=text_value(p.get("TransactionReason")),
        initiated_at=parse_eat_time(p.get("InitiatedTime")),
        finalised_at=parse_eat_time(p.get("FinalisedTime")),
        queried_conversation_id=text_value(p.get("ConversationID")),
        queried_originator_conversation_id=text_value(p.get("OriginatorConversationID")),
    )


def parse_account_balance_result(payload: object) -> AccountBalanceResult:
    base = _envelope(payload)
    p = base["parameters"]
    raw = p.get("AccountBalance")
    accounts: tuple[AccountBalance, ...] = ()
    if not _absent(raw):
        if not isinstance(raw, str):
            raise ValueError("Result AccountBalance must be a string of accounts")
        accounts = parse_account_balances(raw)
    return AccountBalanceResult(
        **base, accounts=accounts, completed_at=parse_eat_time(p.get("BOCompletedTime"))
    )


def parse_reversal_result(payload: object) -> ReversalResult:
    base = _envelope(payload)
    p = base["parameters"]
    balance = p.get("DebitAccountBalance")
    debit_balance = None
    if isinstance(balance, str):
        debit_balance = next(iter(parse_account_balances(balance, key="DebitAccountBalance")), None)
    return ReversalResult(
        **base,
        amount_cents=_cents(p, "Amount"),
        original_transaction_id=text_value(p.get("OriginalTransactionID")),
        charge_cents=_cents(p, "Charge"),
        completed_at=parse_eat_time(p.get("TransCompletedTime")),
        credit_party_public_name=text_value(p.get("CreditPartyPublicName")),
        debit_party_public_name=text_value(p.get("DebitPartyPublicName")),
        debit_account_balance=debit_balance,
    )


def parse_queue_timeout(payload: object) -> QueueTimeout:
    """Read a QueueTimeOutURL notice, with or without the ``Result`` wrapper."""
    body = _mapping(payload, "the timeout body")
    inner = body.get("Result", body)
    result = _mapping(inner, "Result")
    originator = text_value(result.get("OriginatorConversationID"))
    conversation = text_value(result.get("ConversationID"))
    if originator is None and conversation is None:
        raise ValueError(
            "Queue timeout is malformed: it has neither an OriginatorConversationID nor a ConversationID"
        )
    return QueueTimeout(
        result_type=text_value(result.get("ResultType")),
        result_code=text_value(result.get("ResultCode")),
        result_desc=text_value(result.get("ResultDesc")),
        originator_conversation_id=originator,
        conversation_id=conversation,
        extra={k: v for k, v in result.items() if k not in _KNOWN_RESULT_KEYS},
    )


def parse_account_balances(value: str, *, key: str = "AccountBalance") -> tuple[AccountBalance, ...]:
    """Split ``Working Account|KES|700000.00|700000.00|0.00|0.00&Utility Account|KES|…`` into accounts."""
    accounts = []
    for entry in value.split("&"):
        if not entry.strip():
            continue
        columns = tuple(c.strip() for c in entry.split("|"))
        if len(columns) < 3 or not columns[0]:
            raise ValueError(f"Result {key} entry {entry!r} is not name|currency|amount|…")
        available = parse_cents(columns[2], key)
        if available is None:
            raise ValueError(f"Result {key} entry {entry!r} has no available amount")
        accounts.append(
            AccountBalance(
                name=columns[0],
                currency=columns[1],
                available_cents=available,
                uncleared_cents=parse_cents(columns[3], key) if len(columns) > 3 else None,
                reserved_cents=parse_cents(columns[4], key) if len(columns) > 4 else None,
                columns=columns,
            )
        )
    return tuple(accounts)


def parse_cents(value: object, key: str) -> int | None:
    """An amount in shillings (``10``, ``10.5``, ``"8959269.60"``, ``-1980.00``) as integer cents; None
    when absent. Raises ValueError for anything that is not an amount or is finer than a cent."""
    if _absent(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{key} must be a number, got {type(value).__name__}")
    try:
        # str() first: a float's shortest repr is its decimal meaning (8959269.6, not 8959269.59999…).
        amount = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{key} {value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{key} {value!r} is not a number")
    if amount != 0 and amount.adjusted() >= AMOUNT_DIGITS_LIMIT:
        raise ValueError(f"{key} {value!r} is beyond any M-Pesa amount")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{key} {value!r} has fractions of a cent")
    return int(cents)


def parse_eat_time(value: object) -> datetime | None:
    """``YYYYMMDDHHmmss`` (number or text) or ``DD.MM.YYYY HH:mm:ss``, East Africa Time; None when absent
    or in neither format."""
    if _absent(value) or isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    for fmt in ("%Y%m%d%H%M%S", "%d.%m.%Y %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=EAT)
        except ValueError:
            continue
    return None


def _envelope(payload: object) -> dict[str, Any]:
    body = _mapping(payload, "the result body")
    result = _mapping(body.get("Result"), "Result")
    result_code = text_value(result.get("ResultCode"))
    if result_code is None:
        raise ValueError("Result is malformed: ResultCode is missing or empty")
    originator = text_value(result.get("OriginatorConversationID"))
    conversation = text_value(result.get("ConversationID"))
    if originator is None and conversation is None:
        raise ValueError(
            "Result is malformed: it has neither an OriginatorConversationID nor a ConversationID"
        )
    parameter_list = _key_values(result.get("ResultParameters"), "ResultParameters", "ResultParameter")
    reference_list = _key_values(result.get("ReferenceData"), "ReferenceData", "ReferenceItem")
    return {
        "result_type": text_value(result.get("ResultType")),
        "result_code": result_code,
        "result_desc": text_value(result.get("ResultDesc")) or "",
        "originator_conversation_id": originator,
        "conversation_id": conversation,
        "transaction_id": text_value(result.get("TransactionID")),
        "parameters": _first_values(parameter_list),
        "parameter_list": parameter_list,
        "reference_data": _first_values(reference_list),
        "extra": {k: v for k, v in result.items() if k not in _KNOWN_RESULT_KEYS},
    }


def _key_values(container: object, outer: str, inner: str) -> tuple[tuple[str, Any], ...]:
    if container is None or container == "":
        return ()
    raw = _mapping(container, outer).get(inner)
    if raw is None:
        return ()
    # Documented as a list (ResultParameter) or a single object (ReferenceItem); either may be either.
    entries = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list):
        raise ValueError(f"Result is malformed: {outer}.{inner} is not a list")
    pairs = []
    for entry in entries:
        item = _mapping(entry, f"a {outer}.{inner} entry")
        key = item.get("Key")
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"Result is malformed: a {outer}.{inner} entry has no Key")
        pairs.append((key.strip(), item.get("Value")))
    return tuple(pairs)


def _first_values(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in pairs:
        values.setdefault(key, value)
    return values


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"Result is malformed: {what} is missing or not an object")
    return value


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _cents(parameters: Mapping[str, Any], key: str) -> int | None:
    return parse_cents(parameters.get(key), key)


def _yes_no(value: object) -> bool | None:
    text = text_value(value)
    if text is None:
        return None
    return {"y": True, "yes": True, "n": False, "no": False}.get(text.lower())


def text_value(value: object) -> str | None:
    """Daraja mixes numbers and strings for codes and ids; read both as trimmed text (None when empty)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    return None
