from __future__ import annotations

import functools

from pwdlib import PasswordHash

from core.errors import InvalidInput

_hasher = PasswordHash.recommended()  # argon2id with pwdlib's current parameters
MIN_PASSWORD = 8
MAX_PASSWORD = 128


def validate_password(password: str, *, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(field, f"Password must be at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(field, f"Password must be at most {MAX_PASSWORD} characters.")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Returns (ok, new_hash): new_hash is set when the stored hash uses outdated parameters."""
    return _hasher.verify_and_update(password, password_hash)


@functools.cache
def dummy_hash() -> str:
    """A real hash to compare against when the email is unknown, so a login takes the same time either
    way. Made on first use, not at import: argon2 is slow on purpose, and every process start (a web
    process restarted after a crash) would pay for it."""
    return _hasher.hash("lipapush-timing-equaliser")
