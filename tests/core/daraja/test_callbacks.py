"""STK callback parsing and ResultCode classification."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from core.daraja import classify, parse_stk_callback
from core.daraja.result_codes import RESULT_CODES

SUCCESS: dict[str, Any] = {
    "Body": {
        "stkCallback": {
            "MerchantRequestID": "29115-34620561-1",
            "CheckoutRequestID": "ws_CO_191220191020363925",
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "CallbackMetadata": {
                "Item": [
                    {"Name": "Amount", "Value": 1.00},
                    {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": 20191219102115},
                    {"Name": "PhoneNumber", "Value": 254708374149},
                ]
            },
        }
    }
}

FAILURE: dict[str, Any] = {
    "Body": {
        "stkCallback": {
            "MerchantRequestID": "f1e2-4b95-a71d-b30d3cdbb7a7942864",
            "CheckoutRequestID": "ws_CO_21072024125243250722943992",
            "ResultCode": 1032,
            "ResultDesc": "Request cancelled by user",
        }
    }
}


def success_with(**values: object) -> dict[str, Any]:
    payload = copy.deepcopy(SUCCESS)
    items = payload["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    for item in items:
        if item["Name"] in values:
            item["Value"] = values[item["Name"]]
    return payload


class TestParseStkCallback:
    def test_documented_success(self) -> None:
        cb = parse_stk_callback(SUCCESS)
        assert cb.merchant_request_id == "29115-34620561-1"
        assert cb.checkout_request_id == "ws_CO_191220191020363925"
        assert cb.result_code == "0"
        assert cb.result_desc == "The service request is processed successfully."
        assert cb.amount == 1
        assert cb.receipt == "NLJ7RT61SV"
        assert cb.phone == "254708374149"
        assert cb.balance is None
        assert cb.transaction_date is not None
        assert cb.transaction_date.tzinfo is not None
        # 10:21:15 in Nairobi is 07:21:15 UTC.
        assert cb.transaction_date == datetime(2019, 12, 19, 7, 21, 15, tzinfo=UTC)

    def test_items_are_read_by_name_not_position(self) -> None:
        payload = copy.deepcopy(SUCCESS)
        payload["Body"]["stkCallback"]["CallbackMetadata"]["Item"].reverse()
        cb = parse_stk_callback(payload)
        assert (cb.amount, cb.receipt, cb.phone) == (1, "NLJ7RT61SV", "254708374149")

    def test_failure_without_metadata(self) -> None:
        cb = parse_stk_callback(FAILURE)
        assert cb.result_code == "1032"
        assert cb.result_desc == "Request cancelled by user"
        assert (cb.amount, cb.receipt, cb.transaction_date, cb.phone, cb.balance) == (None,) * 5

    def test_string_result_code(self) -> None:
        payload = copy.deepcopy(FAILURE)
        payload["Body"]["stkCallback"]["ResultCode"] = "1037"
        assert parse_stk_callback(payload).result_code == "1037"

    def test_non_numeric_result_code(self) -> None:
        payload = copy.deepcopy(FAILURE)
        payload["Body"]["stkCallback"]["ResultCode"] = "SFC_IC0003"
        assert parse_stk_callback(payload).result_code == "SFC_IC0003"

    @pytest.mark.parametrize(
        ("value", "expected"), [("05", 5), ("1", 1), (1.0, 1), (150, 150), ("10.00", 10), (" 7 ", 7)]
    )
    def test_amount_shapes(self, value: object, expected: int) -> None:
        assert parse_stk_callback(success_with(Amount=value)).amount == expected

    @pytest.mark.parametrize("value", [1.5, "1.5", "ten", True, [1], "NaN"])
    def test_unreadable_amounts_are_refused(self, value: object) -> None:
        with pytest.raises(ValueError, match="Amount"):
            parse_stk_callback(success_with(Amount=value))

    def test_string_transaction_date_and_phone(self) -> None:
        cb = parse_stk_callback(success_with(TransactionDate="20240710091526", PhoneNumber="254110123456"))
        assert cb.transaction_date == datetime(2024, 7, 10, 6, 15, 26, tzinfo=UTC)
        assert cb.phone == "254110123456"

    @pytest.mark.parametrize("value", ["2019121910211", "20191319102115", "yesterday"])
    def test_bad_transaction_date(self, value: object) -> None:
        with pytest.raises(ValueError, match="TransactionDate"):
            parse_stk_callback(success_with(TransactionDate=value))

    def test_balance_with_value(self) -> None:
        assert parse_stk_callback(success_with(Balance=1500)).balance == "1500"

    def test_single_item_object(self) -> None:
        payload = copy.deepcopy(SUCCESS)
        payload["Body"]["stkCallback"]["CallbackMetadata"]["Item"] = {"Name": "Amount", "Value": 10}
        assert parse_stk_callback(payload).amount == 10

    def test_float_phone_number_keeps_digits(self) -> None:
        assert parse_stk_callback(success_with(PhoneNumber=254708374149.0)).phone == "254708374149"

    @pytest.mark.parametrize(
        "payload",
        [
            None,
            "not json",
            [],
            {},
            {"Body": {}},
            {"Body": {"stkCallback": "x"}},
            {"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0}}},
            {"Body": {"stkCallback": {"MerchantRequestID": "m", "ResultCode": 0}}},
            {"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": "c"}}},
            {
                "Body": {
                    "stkCallback": {
                        "MerchantRequestID": "m",
                        "CheckoutRequestID": "c",
                        "ResultCode": 0,
                        "CallbackMetadata": {"Item": [{"Value": 1}]},
                    }
                }
            },
            {
                "Body": {
                    "stkCallback": {
                        "MerchantRequestID": "m",
                        "CheckoutRequestID": "c",
                        "ResultCode": 0,
                        "CallbackMetadata": {"Item": "Amount"},
                    }
                }
            },
        ],
    )
    def test_malformed_bodies_raise_value_error(self, payload: object) -> None:
        with pytest.raises(ValueError, match="STK callback"):
            parse_stk_callback(payload)


class TestClassify:
    @pytest.mark.parametrize(
        ("code", "outcome", "message"),
        [
            ("0", "success", "Paid"),
            ("1032", "cancelled", "The customer cancelled the M-Pesa prompt."),
            (
                "1037",
                "timeout",
                "The customer's phone could not be reached. "
                "Ask them to check it is on and has signal, then try again.",
            ),
            ("1019", "timeout", "The customer did not respond to the M-Pesa prompt in time."),
            ("2001", "failed", "The customer entered a wrong M-Pesa PIN."),
            ("1", "failed", "The customer's M-Pesa balance is too low for this payment."),
            ("4242", "failed", "M-Pesa declined the payment (code 4242)."),
        ],
    )
    def test_table(self, code: str, outcome: str, message: str) -> None:
        assert classify(code) == (outcome, message)

    @pytest.mark.parametrize(
        "code", ["2", "3", "4", "8", "17", "26", "1001", "1025", "9999", "2028", "8006", "SFC_IC0003"]
    )
    def test_other_documented_codes_fail_with_their_own_message(self, code: str) -> None:
        outcome, message = classify(code)
        assert outcome == "failed"
        assert code in RESULT_CODES
        assert "declined the payment (code" not in message

    @pytest.mark.parametrize("code", ["2028", "SFC_IC0003"])
    def test_setup_errors_point_at_the_channel(self, code: str) -> None:
        assert "Till/Paybill setup is wrong" in classify(code)[1]

    def test_codes_are_compared_as_trimmed_text(self) -> None:
        assert classify(" 0 ") == ("success", "Paid")
