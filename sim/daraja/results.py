"""The bodies money-out APIs send: the synchronous ack, the asynchronous ``Result`` and the queue-timeout
notice (refs §7-§10).

Types follow the documented samples: ``ResultType`` and ``ResultCode`` are JSON numbers in B2C, Transaction
Status and Reversal results, strings in the Account Balance result, and a non-numeric code
(``SFC_IC0003``, ``R000001``) is always a string.
"""

from __future__ import annotations

from typing import Any

SUCCESS_DESC = "The service request is processed successfully."
ACCEPTED_DESC = "Accept the service request successfully."
TIMED_OUT_DESC = "The service request has timed out."

# What Daraja's own results carry as ReferenceData (its internal queue-timeout endpoint, not yours).
B2C_REFERENCE_URL = "https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit"
BALANCE_REFERENCE_URL = "https://internalsandbox.safaricom.co.ke/mpesa/abresults/v1/submit"
REVERSAL_REFERENCE_URL = "https://internalsandbox.safaricom.co.ke/mpesa/reversalresults/v1/submit"

_NO_VALUE = object()


def param(key: str, value: object = _NO_VALUE) -> dict[str, Any]:
    """A ``{"Key": …, "Value": …}`` entry; without a value the entry has a Key only, as Daraja sends some."""
    return {"Key": key} if value is _NO_VALUE else {"Key": key, "Value": value}


def reference(key: str, value: object = _NO_VALUE) -> dict[str, Any]:
    return {"ReferenceItem": param(key, value)}


def ack(*, conversation_id: str, originator_conversation_id: str) -> dict[str, str]:
    return {
        "ConversationID": conversation_id,
        "OriginatorConversationID": originator_conversation_id,
        "ResponseCode": "0",
        "ResponseDescription": ACCEPTED_DESC,
    }


def result(
    *,
    code: int | str,
    desc: str,
    originator_conversation_id: str,
    conversation_id: str,
    transaction_id: str,
    parameters: list[dict[str, Any]] | None = None,
    reference_data: dict[str, Any] | None = None,
    as_strings: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ResultType": "0" if as_strings else 0,
        "ResultCode": str(code) if as_strings else code,
        "ResultDesc": desc,
        "OriginatorConversationID": originator_conversation_id,
        "ConversationID": conversation_id,
        "TransactionID": transaction_id,
    }
    if parameters is not None:
        body["ResultParameters"] = {"ResultParameter": parameters}
    if reference_data is not None:
        body["ReferenceData"] = reference_data
    return {"Result": body}


def queue_timeout(*, originator_conversation_id: str, conversation_id: str) -> dict[str, Any]:
    """The QueueTimeOutURL notice. Its shape is not in Safaricom's docs; this is the one integrators model
    (refs §7): ResultType 1, ResultCode 1 (the same code as "insufficient balance", so a receiver must tell
    the two apart by the URL it arrived on), no TransactionID."""
    return {
        "Result": {
            "ResultType": 1,
            "ResultCode": 1,
            "ResultDesc": TIMED_OUT_DESC,
            "OriginatorConversationID": originator_conversation_id,
            "ConversationID": conversation_id,
        }
    }
