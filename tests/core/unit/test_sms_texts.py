from __future__ import annotations

import pytest

from core.auth.pins import validate_new_pin
from core.errors import InvalidInput
from core.exports.links import new_download, resolve, sign
from core.notify.sms import to_gsm_text, validate_sender_id
from core.notify.texts import DEFAULT_RECEIPT_TEMPLATE, receipt_sms, validate_receipt_template


def test_default_receipt_fits_one_sms() -> None:
    text = receipt_sms(
        None, business="B" * 40, amount=250_000, receipt="UKN1234567", date="23 Nov 2026 23:59"
    )
    assert len(text) <= 160
    assert text == ("B" * 40) + ": we received KES 250,000 from you, M-Pesa receipt UKN1234567. Thank you!"
    assert validate_receipt_template(DEFAULT_RECEIPT_TEMPLATE) == DEFAULT_RECEIPT_TEMPLATE


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("Thanks {name}", "Unknown field {name}"),
        ("Paid {amount!r}", "Unknown field {amount}"),
        ("Paid {amount:>10}", "Unknown field {amount}"),
        ("   ", "The receipt template is empty."),
        ("x" * 320, "The receipt template is too long"),
        ("Broken {", "The receipt template has an unmatched { or }"),
    ],
)
def test_bad_receipt_templates_are_named(template: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("{", r"\{").replace("}", r"\}")):
        validate_receipt_template(template)


def test_sender_id_and_gsm_text() -> None:
    assert validate_sender_id("  ") is None
    assert validate_sender_id("MAMA-MBOGA") == "MAMA-MBOGA"
    with pytest.raises(ValueError, match="1 to 11"):
        validate_sender_id("TOO-LONG-SENDER")
    assert to_gsm_text("Njeri’s “Café”") == 'Njeri\'s "Cafe"'


@pytest.mark.parametrize("pin", ["123", "12345", "abcd", "1111", "1234", "9876", " 12 "])
def test_weak_or_malformed_pins_are_refused(pin: str) -> None:
    with pytest.raises(InvalidInput):
        validate_new_pin(pin)


def test_signed_links(tmp_path) -> None:  # type: ignore[no-untyped-def]
    name, path = new_download(tmp_path, "customers.xlsx")
    path.write_bytes(b"PK")
    token = sign("k1", name, ttl_seconds=60, now=1_000_000)
    assert resolve("k1", tmp_path, token, now=1_000_030) == path
    assert resolve("k1", tmp_path, token, now=1_000_061) is None  # expired
    assert resolve("k2", tmp_path, token, now=1_000_030) is None  # another secret
    n, exp, sig = token.split(".")
    assert resolve("k1", tmp_path, f"{n}.{int(exp, 36) + 1000:x}.{sig}", now=1_000_030) is None  # extended
    assert resolve("k1", tmp_path, "../../etc/passwd", now=1_000_030) is None
