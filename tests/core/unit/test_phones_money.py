from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import InvalidInput
from core.money import parse_shillings
from core.phones import ACCEPTED_FORMS, mask_msisdn, normalize_msisdn


class TestNormalizeMsisdn:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("0712345678", "254712345678"),
            ("0112345678", "254112345678"),
            ("+254712345678", "254712345678"),
            ("254712345678", "254712345678"),
            ("+254 712 345 678", "254712345678"),
            ("0712-345-678", "254712345678"),
            ("254110000000", "254110000000"),
        ],
    )
    def test_accepted_forms(self, raw: str, expected: str) -> None:
        assert normalize_msisdn(raw) == expected

    @pytest.mark.parametrize(
        "raw",
        ["12345", "0812345678", "+255712345678", "07123456789", "071234567", "abc", "", "2547123456781"],
    )
    def test_rejected_with_accepted_forms_in_message(self, raw: str) -> None:
        with pytest.raises(InvalidInput) as info:
            normalize_msisdn(raw)
        assert info.value.field == "phone"
        assert ACCEPTED_FORMS in info.value.message

    def test_non_string_rejected(self) -> None:
        with pytest.raises(InvalidInput):
            normalize_msisdn(None)
        with pytest.raises(InvalidInput):
            normalize_msisdn(True)

    @pytest.mark.parametrize(
        "raw", ["07\u0662\u0662000111", "0722\uff10\uff10\uff10111", "2547\u0967\u0968000111"]
    )
    def test_unicode_digits_rejected(self, raw: str) -> None:
        # Arabic-Indic, fullwidth and Devanagari digits are \d to Python's re, but M-Pesa cannot dial
        # them and they would be stored as a customer's number.
        with pytest.raises(InvalidInput) as info:
            normalize_msisdn(raw)
        assert "is not a Kenyan mobile number" in info.value.message

    def test_mask(self) -> None:
        assert mask_msisdn("254722000111") == "2547****0111"


class TestParseShillings:
    @pytest.mark.parametrize(
        ("raw", "expected"), [(150, 150), ("150", 150), (150.0, 150), (Decimal("7"), 7), (1, 1)]
    )
    def test_whole_amounts(self, raw: object, expected: int) -> None:
        assert parse_shillings(raw) == expected

    @pytest.mark.parametrize(
        ("raw", "fragment"),
        [
            (0, "at least KES 1"),
            (-5, "at least KES 1"),
            (1.5, "whole shillings"),
            ("10.50", "whole shillings"),
            ("abc", "whole number"),
            (True, "whole number"),
            (None, "whole number"),
            (250_001, "at most KES 250,000"),
            (float("nan"), "whole shillings"),
        ],
    )
    def test_rejected(self, raw: object, fragment: str) -> None:
        with pytest.raises(InvalidInput) as info:
            parse_shillings(raw)
        assert fragment in info.value.message
