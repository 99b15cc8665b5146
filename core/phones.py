"""Kenyan mobile numbers as M-Pesa wants them: `254` followed by 9 digits, starting 7 or 1."""

from __future__ import annotations

import functools
import re
from typing import NewType

import phonenumbers
from pydantic.json_schema import JsonDict

from core.errors import InvalidInput

Msisdn = NewType("Msisdn", str)

ACCEPTED_FORMS = "07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX, +2541XXXXXXXX, 2547XXXXXXXX or 2541XXXXXXXX"
_SEPARATORS = re.compile(r"[\s\-().]")
# [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits, which M-Pesa cannot dial.
_SHAPE = re.compile(r"(?:\+?254|0)[17][0-9]{8}")
# What the API documents (OpenAPI) for a phone field: the accepted forms, without separators, in the
# mobile ranges `phonenumbers` knows; every value it matches is accepted.
PHONE_SCHEMA: JsonDict = {
    "pattern": r"^(?:\+?254|0)(?:7\d\d|1(?:0[0-8]|1\d|2[014]|3[05-9]|4[0-6]|8\d))\d{6}$",
    "examples": ["0722000111"],
}


def normalize_msisdn(value: object, *, field: str = "phone") -> Msisdn:
    """Normalise 07…, 01…, +254…, 254… (spaces and dashes allowed) to `2547XXXXXXXX`/`2541XXXXXXXX`.

    The shape check runs first so that only Kenyan mobile forms are accepted; `phonenumbers` then
    confirms the number is a valid Kenyan mobile number (it knows the allocated ranges).
    """
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidInput(field, f"Phone number must be text in one of these forms: {ACCEPTED_FORMS}.")
    raw = _SEPARATORS.sub("", str(value))
    if not _SHAPE.fullmatch(raw):
        raise InvalidInput(
            field, f"'{str(value)[:20]}' is not a Kenyan mobile number. Use one of: {ACCEPTED_FORMS}."
        )
    national = raw.lstrip("+")[-9:]
    if not _mobile_in_use(national):
        raise InvalidInput(field, f"'{str(value)[:20]}' is not a Kenyan mobile number in use.")
    return Msisdn("254" + national)


@functools.lru_cache(maxsize=65_536)
def _mobile_in_use(national: str) -> bool:
    """phonenumbers' verdict on a Kenyan national number (9 digits). Kept per number: parsing and
    checking it against the allocated ranges was a tenth of a bot update that reads a number, and the
    same numbers come back (a business's customers); 65 536 answers are a few MiB at most."""
    parsed = phonenumbers.parse("+254" + national)
    return phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def mask_msisdn(msisdn: str) -> str:
    """2547****0111: enough for a merchant to recognise a customer, not enough to misuse."""
    if len(msisdn) < 8:
        return "****"
    return msisdn[:4] + "****" + msisdn[-4:]
