"""Voucher codes: `secrets` over an alphabet without look-alikes (no 0/O, 1/I/L, Q), single case so
a phone keyboard's auto-capitalisation cannot break them. Uniqueness per provider is a database
constraint; a collision is drawn again."""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPRSTUVWXYZ"
MIN_LENGTH, MAX_LENGTH = 6, 12


def new_code(length: int = 8) -> str:
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"voucher codes are {MIN_LENGTH} to {MAX_LENGTH} characters")
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalize_code(text: str) -> str:
    """What a buyer types: spaces and hyphens dropped, upper case."""
    return "".join(ch for ch in text.upper() if ch not in " -\t")
