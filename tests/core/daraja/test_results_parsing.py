"""Result and QueueTimeOut envelopes of B2C, Transaction Status, Account Balance and Reversal, from the
documented samples (refs/daraja.md §7–§10) and the loose typing Daraja is known for."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.daraja.result_codes import MONEY_OUT_RESULT_CODES, describe_money_out_result
from core.daraja.results import (
    AccountBalance,
    parse_account_balance_result,
    parse_account_balances,
    parse_b2c_result,
    parse_cents,
    parse_eat_time,
    parse_queue_timeout,
    parse_result,
    parse_reversal_result,
    parse_transaction_status_result,
)

EAT = ZoneInfo("Africa/Nairobi")

B2C_SUCCESS: dict[str, Any] = {
    "Result": {
        "ResultType": 0,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": "53e3-4aa8-9fe0-8fb5e4092cdd3533373",
        "ConversationID": "AG_20240706_2010364430d9bbdaf872",
        "TransactionID": "SG632NMUAB",
        "ResultParameters": {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": 10},
                {"Key": "TransactionReceipt", "Value": "SG632NMUAB"},
                {"Key": "ReceiverPartyPublicName", "Value": "254705912645 - NICHOLAS JOHN SONGOK"},
                {"Key": "TransactionCompletedDateTime", "Value": "06.07.2024 22:48:52"},
                {"Key": "B2CUtilityAccountAvailableFunds", "Value": 8959269.60},
                {"Key": "B2CWorkingAccountAvailableFunds", "Value": 1199371.00},
                {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                {"Key": "B2CChargesPaidAccountAvailableFunds", "Value": -1980.00},
            ]
        },
        "ReferenceData": {
            "ReferenceItem": {
                "Key": "QueueTimeoutURL",
                "Value": "https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit",
            }
        },
    }
}

B2C_FAILED: dict[str, Any] = {
    "Result": {
        "ResultType": 0,
        "ResultCode": 2001,
        "ResultDesc": "The initiator information is invalid.",
        "OriginatorConversationID": "po_01HZX3Q7W8N2",
        "ConversationID": "AG_20240706_20106e9209f64bebd05b",
        "TransactionID": "SG70000000",
        "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "https://x.test/t"}},
    }
}

STATUS_RESULT: dict[str, Any] = {
    "Result": {
        "ConversationID": "AG_20180223_0000493344ae97d86f75",
        "OriginatorConversationID": "3213-416199-2",
        "ReferenceData": {"ReferenceItem": {"Key": "Occasion"}},
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "ResultParameters": {
            "ResultParameter": [
                {"Key": "DebitPartyName", "Value": "600310 - Safaricom333"},
                {"Key": "CreditPartyName", "Value": "254708374149 - John Doe"},
                {"Key": "OriginatorConversationID", "Value": "3211-416020-3"},
                {"Key": "InitiatedTime", "Value": "20180223054112"},
                {"Key": "DebitAccountType", "Value": "Utility Account"},
                {"Key": "DebitPartyCharges", "Value": "Fee For B2C Payment|KES|22.40"},
                {"Key": "TransactionReason"},
                {"Key": "ReasonType", "Value": "Business Payment to Customer via API"},
                {"Key": "TransactionStatus", "Value": "Completed"},
                {"Key": "FinalisedTime", "Value": "20180223054112"},
                {"Key": "Amount", "Value": "300"},
                {"Key": "ConversationID", "Value": "AG_20180223_000041b09c22e613d6c9"},
                {"Key": "ReceiptNo", "Value": "MBN31H462N"},
            ]
        },
        "ResultType": 0,
        "TransactionID": "MBN0000000",
    }
}

BALANCE_RESULT: dict[str, Any] = {
    "Result": {
        "ResultType": "0",
        "ResultCode": "0",
        "ResultDesc": "The service request is processed successfully",
        "OriginatorConversationID": "16917-22577599-3",
        "ConversationID": "AG_20200206_00005e091a8ec6b9eac5",
        "TransactionID": "OA90000000",
        "ResultParameters": {
            "ResultParameter": [
                {
                    "Key": "AccountBalance",
                    "Value": "Working Account|KES|700000.00|700000.00|0.00|0.00"
                    "&Float Account|KES|0.00|0.00|0.00|0.00"
                    "&Utility Account|KES|228037.00|228037.00|0.00|0.00"
                    "&Charges Paid Account|KES|-1540.00|-1540.00|0.00|0.00"
                    "&Organization Settlement Account|KES|0.00|0.00|0.00|0.00",
                },
                {"Key": "BOCompletedTime", "Value": "20200109125710"},
            ]
        },
        "ReferenceData": {
            "ReferenceItem": {
                "Key": "QueueTimeoutURL",
                "Value": "https://internalsandbox.safaricom.co.ke/mpesa/abresults/v1/submit",
            }
        },
    }
}

REVERSAL_RESULT: dict[str, Any] = {
    "Result": {
        "ResultType": 0,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": "dad6-4c34-8787-c8cb963a496d1268232",
        "ConversationID": "AG_20211114_201018edbbf9f1582eaa",
        "TransactionID": "SKE52PAWR9",
        "ResultParameters": {
            "ResultParameter": [
                {
                    "Key": "DebitAccountBalance",
                    "Value": "Utility Account|KES|7722179.62|7722179.62|0.00|0.00",
                },
                {"Key": "Amount", "Value": 1.00},
                {"Key": "TransCompletedTime", "Value": 20211114132711},
                {"Key": "OriginalTransactionID", "Value": "SKC82PACB8"},
                {"Key": "Charge", "Value": 0.00},
                {"Key": "CreditPartyPublicName", "Value": "254705912645 - NICHOLAS JOHN SONGOK"},
                {"Key": "DebitPartyPublicName", "Value": "600992 - Safaricom Daraja 992"},
            ]
        },
        "ReferenceData": {
            "ReferenceItem": {
                "Key": "QueueTimeoutURL",
                "Value": "https://internalsandbox.safaricom.co.ke/mpesa/reversalresults/v1/submit",
            }
        },
    }
}


def with_params(payload: dict[str, Any], params: object) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    changed["Result"]["ResultParameters"] = {"ResultParameter": params}
    return changed


class TestB2CResult:
    def test_documented_success(self) -> None:
        r = parse_b2c_result(B2C_SUCCESS)
        assert r.outcome == "success"
        assert r.result_code == "0"
        assert r.result_type == "0"
        assert r.result_desc == "The service request is processed successfully."
        assert r.originator_conversation_id == "53e3-4aa8-9fe0-8fb5e4092cdd3533373"
        assert r.conversation_id == "AG_20240706_2010364430d9bbdaf872"
        assert r.transaction_id == "SG632NMUAB"
        assert r.amount_cents == 1000
        assert r.receipt == "SG632NMUAB"
        assert r.receiver_public_name == "254705912645 - NICHOLAS JOHN SONGOK"
        assert r.completed_at == datetime(2024, 7, 6, 22, 48, 52, tzinfo=EAT)
        assert r.recipient_is_registered is True
        assert r.utility_account_available_cents == 895926960
        assert r.working_account_available_cents == 119937100
        assert r.charges_paid_account_available_cents == -198000
        assert r.reference_data == {
            "QueueTimeoutURL": "https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit"
        }
        assert r.parameters["B2CRecipientIsRegisteredCustomer"] == "Y"
        assert len(r.parameter_list) == 8

    def test_documented_failure_has_no_parameters(self) -> None:
        r = parse_b2c_result(B2C_FAILED)
        assert r.outcome == "failed"
        assert r.result_code == "2001"
        assert r.amount_cents is None
        assert r.receipt is None  # the failed TransactionID is not a receipt
        assert r.transaction_id == "SG70000000"
        assert r.parameters == {}
        assert describe_money_out_result(r.result_code).startswith("The initiator information is invalid")

    def test_single_parameter_object_instead_of_a_list(self) -> None:
        payload = with_params(B2C_SUCCESS, {"Key": "TransactionAmount", "Value": "250.00"})
        r = parse_b2c_result(payload)
        assert r.amount_cents == 25000
        # No TransactionReceipt: a successful result's TransactionID is the receipt.
        assert r.receipt == "SG632NMUAB"

    def test_string_typed_values(self) -> None:
        payload = with_params(
            B2C_SUCCESS,
            [
                {"Key": "TransactionAmount", "Value": "10"},
                {"Key": "B2CUtilityAccountAvailableFunds", "Value": "8959269.60"},
                {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "N"},
                {"Key": "TransactionCompletedDateTime", "Value": "not a time"},
            ],
        )
        r = parse_b2c_result(payload)
        assert r.amount_cents == 1000
        assert r.utility_account_available_cents == 895926960
        assert r.recipient_is_registered is False
        assert r.completed_at is None
        assert r.parameters["TransactionCompletedDateTime"] == "not a time"

    def test_missing_values_are_none(self) -> None:
        payload = with_params(
            B2C_SUCCESS, [{"Key": "TransactionAmount"}, {"Key": "TransactionReceipt", "Value": ""}]
        )
        r = parse_b2c_result(payload)
        assert r.amount_cents is None
        assert r.parameters == {"TransactionAmount": None, "TransactionReceipt": ""}

    def test_unknown_keys_are_kept(self) -> None:
        payload = copy.deepcopy(B2C_SUCCESS)
        payload["Result"]["NewField"] = {"x": 1}
        payload["Result"]["ResultParameters"]["ResultParameter"].append({"Key": "Brand new", "Value": 7})
        r = parse_b2c_result(payload)
        assert r.extra == {"NewField": {"x": 1}}
        assert r.parameters["Brand new"] == 7

    @pytest.mark.parametrize("amount", ["ten", 10.005, [10], "1e999999999"])
    def test_unreadable_amount_is_refused(self, amount: object) -> None:
        with pytest.raises(ValueError, match="TransactionAmount"):
            parse_b2c_result(with_params(B2C_SUCCESS, [{"Key": "TransactionAmount", "Value": amount}]))

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ([], "the result body is missing or not an object"),
            ({"Body": {}}, "Result is missing or not an object"),
            ({"Result": {"ConversationID": "AG_1"}}, "ResultCode is missing or empty"),
            ({"Result": {"ResultCode": 0}}, "neither an OriginatorConversationID nor a ConversationID"),
            (
                {
                    "Result": {
                        "ResultCode": 0,
                        "ConversationID": "AG_1",
                        "ResultParameters": {"ResultParameter": 5},
                    }
                },
                "ResultParameters.ResultParameter is not a list",
            ),
            (
                {
                    "Result": {
                        "ResultCode": 0,
                        "ConversationID": "AG_1",
                        "ResultParameters": {"ResultParameter": [{"Value": 1}]},
                    }
                },
                "entry has no Key",
            ),
        ],
    )
    def test_malformed(self, payload: object, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_b2c_result(payload)


class TestTransactionStatusResult:
    def test_documented_sample(self) -> None:
        r = parse_transaction_status_result(STATUS_RESULT)
        assert r.outcome == "success"
        assert r.transaction_outcome == "success"
        assert r.transaction_status == "Completed"
        assert r.receipt == "MBN31H462N"
        assert r.amount_cents == 30000
        assert r.debit_party_name == "600310 - Safaricom333"
        assert r.credit_party_name == "254708374149 - John Doe"
        assert r.debit_account_type == "Utility Account"
        assert r.debit_party_charges == "Fee For B2C Payment|KES|22.40"
        assert r.reason_type == "Business Payment to Customer via API"
        assert r.transaction_reason is None
        assert r.initiated_at == datetime(2018, 2, 23, 5, 41, 12, tzinfo=EAT)
        assert r.finalised_at == datetime(2018, 2, 23, 5, 41, 12, tzinfo=EAT)
        assert r.queried_conversation_id == "AG_20180223_000041b09c22e613d6c9"
        assert r.queried_originator_conversation_id == "3211-416020-3"
        assert r.originator_conversation_id == "3213-416199-2"
        assert r.reference_data == {"Occasion": None}
        assert r.transaction_id == "MBN0000000"

    def test_repeated_debit_party_name_is_the_credit_party(self) -> None:
        # The documented sample literally repeats DebitPartyName for the customer.
        params = copy.deepcopy(STATUS_RESULT["Result"]["ResultParameters"]["ResultParameter"])
        params[1] = {"Key": "DebitPartyName", "Value": "254708374149 - John Doe"}
        r = parse_transaction_status_result(with_params(STATUS_RESULT, params))
        assert r.debit_party_name == "600310 - Safaricom333"
        assert r.credit_party_name == "254708374149 - John Doe"
        assert r.parameters["DebitPartyName"] == "600310 - Safaricom333"

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            ("Completed", "success"),
            ("Cancelled", "failed"),
            ("Declined", "failed"),
            ("Expired", "failed"),
            ("Authorized/Pending", "pending"),
            ("Pending", "pending"),
            ("Something new", None),
        ],
    )
    def test_transaction_outcome(self, status: str, outcome: str | None) -> None:
        params = [{"Key": "TransactionStatus", "Value": status}]
        assert (
            parse_transaction_status_result(with_params(STATUS_RESULT, params)).transaction_outcome == outcome
        )

    def test_failed_query_says_nothing_about_the_transaction(self) -> None:
        payload = {
            "Result": {
                "ResultType": 0,
                "ResultCode": 2032,
                "ResultDesc": "The transaction receipt number does not exist.",
                "OriginatorConversationID": "8423-4a3b-87d8-1d918a78741e243712",
                "ConversationID": "AG_20260928_0100101002hi3i67m6ml",
                "TransactionID": "UIR0000000",
            }
        }
        r = parse_transaction_status_result(payload)
        assert r.outcome == "failed"
        assert r.transaction_outcome is None
        assert (
            describe_money_out_result(r.result_code) == "M-Pesa has no transaction with this receipt number."
        )


class TestAccountBalanceResult:
    def test_documented_sample(self) -> None:
        r = parse_account_balance_result(BALANCE_RESULT)
        assert r.outcome == "success"
        assert r.completed_at == datetime(2020, 1, 9, 12, 57, 10, tzinfo=EAT)
        assert [(a.name, a.currency, a.available_cents) for a in r.accounts] == [
            ("Working Account", "KES", 70000000),
            ("Float Account", "KES", 0),
            ("Utility Account", "KES", 22803700),
            ("Charges Paid Account", "KES", -154000),
            ("Organization Settlement Account", "KES", 0),
        ]
        utility = r.account("utility  account")
        assert utility == AccountBalance(
            name="Utility Account",
            currency="KES",
            available_cents=22803700,
            uncleared_cents=22803700,
            reserved_cents=0,
            columns=("Utility Account", "KES", "228037.00", "228037.00", "0.00", "0.00"),
        )
        assert r.account("Mystery Account") is None

    def test_short_entries_keep_what_they_have(self) -> None:
        (account,) = parse_account_balances("Working Account|KES|10.50")
        assert account.available_cents == 1050
        assert account.uncleared_cents is None
        assert account.reserved_cents is None

    def test_failed_query_has_no_accounts(self) -> None:
        payload = copy.deepcopy(BALANCE_RESULT)
        payload["Result"]["ResultCode"] = "2001"
        del payload["Result"]["ResultParameters"]
        r = parse_account_balance_result(payload)
        assert r.outcome == "failed"
        assert r.accounts == ()

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("Working Account|KES", "is not name|currency|amount"),
            ("Working Account|KES|lots|0.00", "'lots' is not a number"),
            ("Working Account|KES||0.00", "has no available amount"),
            ("Working Account|KES|1.001|0.00", "fractions of a cent"),
        ],
    )
    def test_unreadable_balances_are_refused(self, value: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_account_balance_result(
                with_params(BALANCE_RESULT, [{"Key": "AccountBalance", "Value": value}])
            )

    def test_balance_must_be_text(self) -> None:
        with pytest.raises(ValueError, match="AccountBalance must be a string"):
            parse_account_balance_result(with_params(BALANCE_RESULT, [{"Key": "AccountBalance", "Value": 5}]))


class TestReversalResult:
    def test_documented_success(self) -> None:
        r = parse_reversal_result(REVERSAL_RESULT)
        assert r.outcome == "success"
        assert r.transaction_id == "SKE52PAWR9"
        assert r.amount_cents == 100
        assert r.charge_cents == 0
        assert r.original_transaction_id == "SKC82PACB8"
        assert r.completed_at == datetime(2021, 11, 14, 13, 27, 11, tzinfo=EAT)
        assert r.credit_party_public_name == "254705912645 - NICHOLAS JOHN SONGOK"
        assert r.debit_party_public_name == "600992 - Safaricom Daraja 992"
        assert r.debit_account_balance is not None
        assert r.debit_account_balance.name == "Utility Account"
        assert r.debit_account_balance.available_cents == 772217962

    def test_already_reversed(self) -> None:
        payload = copy.deepcopy(REVERSAL_RESULT)
        payload["Result"].update(
            ResultCode="R000001", ResultDesc="The transaction has already been reversed."
        )
        del payload["Result"]["ResultParameters"]
        r = parse_reversal_result(payload)
        assert r.outcome == "failed"
        assert r.result_code == "R000001"
        assert r.debit_account_balance is None
        assert describe_money_out_result("R000001") == "This transaction has already been reversed."


class TestQueueTimeout:
    def test_result_shaped_notice(self) -> None:
        t = parse_queue_timeout(
            {
                "Result": {
                    "ResultType": 1,
                    "ResultCode": "1",
                    "ResultDesc": "The service request has timed out.",
                    "OriginatorConversationID": "po_01HZX3Q7W8N2",
                    "ConversationID": "AG_20240706_20106e9209f64bebd05b",
                    "Anything": "kept",
                }
            }
        )
        assert t.outcome == "timeout"
        assert t.result_code == "1"
        assert t.result_desc == "The service request has timed out."
        assert t.originator_conversation_id == "po_01HZX3Q7W8N2"
        assert t.conversation_id == "AG_20240706_20106e9209f64bebd05b"
        assert t.extra == {"Anything": "kept"}

    def test_bare_notice_with_one_id(self) -> None:
        t = parse_queue_timeout({"OriginatorConversationID": "po_1"})
        assert t.outcome == "timeout"
        assert t.conversation_id is None
        assert t.result_code is None

    def test_needs_an_id(self) -> None:
        with pytest.raises(ValueError, match="neither an OriginatorConversationID nor a ConversationID"):
            parse_queue_timeout({"Result": {"ResultDesc": "The service request has timed out."}})


class TestCommonParts:
    def test_parse_result_reads_any_envelope(self) -> None:
        r = parse_result(REVERSAL_RESULT)
        assert r.outcome == "success"
        assert r.parameters["OriginalTransactionID"] == "SKC82PACB8"

    def test_reference_items_as_a_list(self) -> None:
        payload = copy.deepcopy(B2C_SUCCESS)
        payload["Result"]["ReferenceData"] = {
            "ReferenceItem": [{"Key": "QueueTimeoutURL", "Value": "u"}, {"Key": "Occasion", "Value": "x"}]
        }
        assert parse_result(payload).reference_data == {"QueueTimeoutURL": "u", "Occasion": "x"}

    @pytest.mark.parametrize(
        ("value", "cents"),
        [
            (10, 1000),
            (1.0, 100),
            ("5.00", 500),
            (8959269.60, 895926960),
            (-1980.00, -198000),
            ("1,000.50", 100050),
        ],
    )
    def test_cents(self, value: object, cents: int) -> None:
        assert parse_cents(value, "Amount") == cents

    @pytest.mark.parametrize("value", [None, "", "  "])
    def test_absent_cents(self, value: object) -> None:
        assert parse_cents(value, "Amount") is None

    @pytest.mark.parametrize("value", [True, float("nan"), "Infinity", {"a": 1}])
    def test_not_cents(self, value: object) -> None:
        with pytest.raises(ValueError, match="Amount"):
            parse_cents(value, "Amount")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (20211114132711, datetime(2021, 11, 14, 13, 27, 11, tzinfo=EAT)),
            ("20200109125710", datetime(2020, 1, 9, 12, 57, 10, tzinfo=EAT)),
            ("06.07.2024 22:48:52", datetime(2024, 7, 6, 22, 48, 52, tzinfo=EAT)),
            ("2024-07-06T22:48:52", None),
            ("31.02.2024 10:00:00", None),
            (None, None),
        ],
    )
    def test_times(self, value: object, expected: datetime | None) -> None:
        assert parse_eat_time(value) == expected

    def test_every_money_out_code_has_a_message(self) -> None:
        for code, message in MONEY_OUT_RESULT_CODES.items():
            assert describe_money_out_result(code) == message
        assert describe_money_out_result(" 9999 ") == "M-Pesa declined the request (code 9999)."
