"""How many SMS parts a text costs (GSM 03.38 / 03.40 rules, refs §4.3).

A text made only of the GSM-7 default alphabet goes out 7-bit: 160 septets in a single SMS, 153 per part once
it is concatenated (the UDH eats 7). The extension-table characters (``^{}\\[~]|€`` and form feed) are sent as
ESC + char and cost two septets; a pair is never split across two parts, so it moves whole to the next one.
Any other character switches the whole message to UCS-2: 70 UTF-16 code units single, 67 per part, and a
surrogate pair (an emoji) is likewise never split.
"""

from __future__ import annotations

from typing import Final, Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 default alphabet, without ESC (0x1B), which only introduces an extension character.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _units(text: str) -> tuple[list[int], Encoding]:
    """The cost of each character in its encoding's units (septets or UTF-16 code units)."""
    if is_gsm7(text):
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text], "GSM-7"
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text], "UCS-2"


def _pack(units: list[int], per_part: int) -> int:
    parts, used = 1, 0
    for cost in units:
        if used + cost > per_part:
            parts += 1
            used = 0
        used += cost
    return parts


def sms_segments(text: str) -> tuple[int, Encoding]:
    """(parts, encoding) for ``text``; an empty text still costs one SMS."""
    units, encoding = _units(text)
    single, per_part = (GSM7_SINGLE, GSM7_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    if sum(units) <= single:
        return 1, encoding
    return _pack(units, per_part), encoding


def encoded_length(text: str) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the text occupies, before any splitting."""
    return sum(_units(text)[0])
