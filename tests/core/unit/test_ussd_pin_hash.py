"""USSD PIN hashes: keyed HMAC-SHA256 (core.auth.pins), argon2 ones from before still verify, keys rotate."""

from __future__ import annotations

from cryptography.fernet import Fernet
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from core.auth.pins import hash_pin, needs_rehash, pin_matches

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
# What core.auth.pins stored before the keyed form.
ARGON2 = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))


async def test_keyed_hash_verifies_only_the_right_pin() -> None:
    stored = hash_pin("4826", keys=[OLD])
    assert stored.startswith("hmac-sha256$") and "4826" not in stored
    assert await pin_matches("4826", stored, keys=[OLD])
    assert not await pin_matches("4827", stored, keys=[OLD])
    assert not await pin_matches("482", stored, keys=[OLD])
    assert not await pin_matches("4826 ", stored, keys=[OLD])
    assert not needs_rehash(stored, keys=[OLD])


async def test_salted_so_equal_pins_do_not_show() -> None:
    assert hash_pin("4826", keys=[OLD]) != hash_pin("4826", keys=[OLD])


async def test_no_hash_or_garbage_never_matches() -> None:
    assert not await pin_matches("0000", None, keys=[OLD])
    assert not needs_rehash(None, keys=[OLD])
    for junk in ("", "hmac-sha256$", "hmac-sha256$x$zz$00", "plain4826", "hmac-sha256$a$b$c$d"):
        assert not await pin_matches("4826", junk, keys=[OLD]), junk


async def test_the_database_alone_cannot_check_a_pin() -> None:
    """Without the key, the stored value says nothing: another key gets no PIN to match."""
    stored = hash_pin("4826", keys=[OLD])
    other = Fernet.generate_key().decode()
    assert not any([await pin_matches(f"{n:04d}", stored, keys=[other]) for n in range(0, 10_000, 37)])
    assert not await pin_matches("4826", stored, keys=[other])


async def test_argon2_hashes_from_before_still_verify_and_ask_to_be_rewritten() -> None:
    legacy = ARGON2.hash("4826")
    assert await pin_matches("4826", legacy, keys=[OLD])
    assert not await pin_matches("1111", legacy, keys=[OLD])
    assert needs_rehash(legacy, keys=[OLD])


async def test_keys_rotate_like_the_secrets_box() -> None:
    """The first key hashes; an older key still listed verifies (and asks for a rewrite); a removed
    key's hashes stop verifying."""
    under_old = hash_pin("4826", keys=[OLD])
    assert await pin_matches("4826", under_old, keys=[NEW, OLD])
    assert needs_rehash(under_old, keys=[NEW, OLD])
    assert not needs_rehash(hash_pin("4826", keys=[NEW, OLD]), keys=[NEW, OLD])
    assert not await pin_matches("4826", under_old, keys=[NEW])
