"""C2B validation/confirmation payloads (refs/daraja.md §6.3) and the replies Daraja expects."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.daraja.c2b import (
    C2BRejection,
    confirmation_reply,
    full_msisdn,
    parse_c2b_payment,
    validation_accepted,
    validation_rejected,
)

EAT = ZoneInfo("Africa/Nairobi")

DOCUMENTED: dict[str, Any] = {
    "TransactionType": "Pay Bill",
    "TransID": "RKL51ZDR4F",
    "TransTime": "20231121121325",
    "TransAmount": "5.00",
    "BusinessShortCode": "600966",
    "BillRefNumber": "Sample Transaction",
    "InvoiceNumber": "",
    "OrgAccountBalance": "25.00",
    "ThirdPartyTransID": "",
    "MSISDN": "2547 ***** 126",
    "FirstName": "NICHOLAS",
    "MiddleName": "",
    "LastName": "",
}


def payload(**changes: object) -> dict[str, Any]:
    body = copy.deepcopy(DOCUMENTED)
    body.update(changes)
    return body


class TestParse:
    def test_documented_confirmation(self) -> None:
        p = parse_c2b_payment(DOCUMENTED)
        assert p.transaction_type == "Pay Bill"
        assert p.trans_id == "RKL51ZDR4F"
        assert p.trans_time == datetime(2023, 11, 21, 12, 13, 25, tzinfo=EAT)
        assert p.amount_cents == 500
        assert p.business_short_code == "600966"
        assert p.bill_ref_number == "Sample Transaction"
        assert p.invoice_number is None
        assert p.org_account_balance_cents == 2500
        assert p.third_party_trans_id is None
        assert p.msisdn == "2547 ***** 126"
        assert p.phone is None
        assert p.phone_masked is True
        assert p.first_name == "NICHOLAS"
        assert p.middle_name is None and p.last_name is None
        assert p.payer_name == "NICHOLAS"
        assert p.extra == {}

    def test_validation_has_a_blank_balance(self) -> None:
        p = parse_c2b_payment(payload(OrgAccountBalance="", TransAmount="10"))
        assert p.org_account_balance_cents is None
        assert p.amount_cents == 1000

    def test_numbers_where_strings_are_documented(self) -> None:
        p = parse_c2b_payment(
            payload(TransTime=20231121121325, TransAmount=5, BusinessShortCode=600966, MSISDN=254708374149)
        )
        assert p.trans_time == datetime(2023, 11, 21, 12, 13, 25, tzinfo=EAT)
        assert p.amount_cents == 500
        assert p.business_short_code == "600966"
        assert p.phone == "254708374149"
        assert p.phone_masked is False

    def test_buy_goods_has_no_bill_reference(self) -> None:
        p = parse_c2b_payment(payload(TransactionType="Buy Goods", BillRefNumber=None))
        assert p.bill_ref_number is None

    def test_names_may_be_empty(self) -> None:
        p = parse_c2b_payment(payload(FirstName="", MiddleName=None))
        assert p.payer_name is None

    def test_unknown_keys_are_kept(self) -> None:
        p = parse_c2b_payment(payload(NewField="x"))
        assert p.extra == {"NewField": "x"}

    def test_no_msisdn_at_all(self) -> None:
        body = payload()
        del body["MSISDN"]
        p = parse_c2b_payment(body)
        assert p.msisdn is None and p.phone is None
        assert p.phone_masked is False

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("not a dict", "the body is not an object"),
            (payload(TransID=""), "TransID is missing or empty"),
            (payload(TransTime="2023-11-21"), "TransTime is missing or not YYYYMMDDHHmmss"),
            (payload(TransAmount=None), "TransAmount is missing"),
            (payload(TransAmount="five"), "TransAmount 'five' is not a number"),
            (payload(BusinessShortCode=None), "BusinessShortCode is missing or empty"),
        ],
    )
    def test_malformed(self, body: object, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_c2b_payment(body)


class TestMsisdn:
    @pytest.mark.parametrize(
        ("raw", "phone"),
        [
            ("254708374149", "254708374149"),
            ("254110123456", "254110123456"),
            ("0708374149", "254708374149"),
            ("+254 708 374 149", "254708374149"),
            ("2547 ***** 126", None),
            ("2547****126", None),
            ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None),
            ("255712345678", None),
            (None, None),
        ],
    )
    def test_full_numbers_only(self, raw: str | None, phone: str | None) -> None:
        assert full_msisdn(raw) == phone


class TestReplies:
    def test_accept(self) -> None:
        assert validation_accepted() == {"ResultCode": "0", "ResultDesc": "Accepted"}

    def test_accept_with_our_reference(self) -> None:
        assert validation_accepted("INV-42") == {
            "ResultCode": "0",
            "ResultDesc": "Accepted",
            "ThirdPartyTransID": "INV-42",
        }

    @pytest.mark.parametrize(
        ("reason", "code"),
        [
            (C2BRejection.invalid_msisdn, "C2B00011"),
            (C2BRejection.invalid_account, "C2B00012"),
            (C2BRejection.invalid_amount, "C2B00013"),
            (C2BRejection.invalid_kyc, "C2B00014"),
            (C2BRejection.invalid_short_code, "C2B00015"),
            (C2BRejection.other, "C2B00016"),
        ],
    )
    def test_reject(self, reason: C2BRejection, code: str) -> None:
        assert validation_rejected(reason) == {"ResultCode": code, "ResultDesc": "Rejected"}

    def test_confirmation(self) -> None:
        assert confirmation_reply() == {"ResultCode": 0, "ResultDesc": "Success"}
