"""Initiators and their SecurityCredential: who may call B2C, Transaction Status, Account Balance, Reversal.

A client encrypts the initiator's plain password with ``certs/simulator.cer`` (RSA, PKCS#1 v1.5, base64;
refs §11.1) and the simulator decrypts it with ``certs/simulator-key.pem``.

Where a bad credential is reported, and why: Daraja's gateway does not decrypt anything, so a credential
that is wrong - encrypted with another certificate, the plain password sent as is, a wrong password, an
unknown initiator name - is **accepted** (``ResponseCode "0"``) and the asynchronous Result carries
``ResultCode 2001 "The initiator information is invalid."`` (the B2C result table says 2001 covers a wrong
user name, a wrong password and a wrong algorithm or certificate; integrators report stale certificates
and plain passwords as 2001, refs §14.6). Only a missing, empty or non-string ``SecurityCredential`` is a
synchronous ``400.002.02 Bad Request - Invalid SecurityCredential``: that suffix is seen on real responses
(refs §2.1), and an absent field is what a gateway schema check can see.

Which initiators are known: ``create_app(initiators={shortcode: {name: password}})`` lists them per short
code, and ``POST /_sim/initiators`` adds or replaces one at run time. A short code with no initiator
listed accepts any name whose credential decrypts to a plausible password when ``initiators`` is None (the
way ``apps=None`` accepts any consumer key), and nobody when a mapping was given.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CERTS_DIR = Path(__file__).parent / "certs"
INITIATOR_INVALID = "The initiator information is invalid."

# OpenSSL 3.2+ answers a PKCS#1 v1.5 ciphertext made for another key with pseudo-random bytes instead of an
# error ("implicit rejection", against Bleichenbacher oracles). A real password is short printable text;
# random bytes of 6+ characters pass that test about once in 60 000 tries.
_MIN_PASSWORD = 6
_MAX_PASSWORD = 64


@cache
def _private_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((CERTS_DIR / "simulator-key.pem").read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("sim/daraja/certs/simulator-key.pem must hold an RSA private key")
    return key


def decrypt_credential(credential: str) -> str | None:
    """The initiator password inside ``credential``, or None when it is not one this simulator can read."""
    try:
        encrypted = base64.b64decode(credential.strip(), validate=True)
        plain = _private_key().decrypt(encrypted, padding.PKCS1v15())
        password = plain.decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not _MIN_PASSWORD <= len(password) <= _MAX_PASSWORD or not password.isprintable():
        return None
    return password


class Initiators:
    """The API operators each short code has, as configured at start plus what tests added since."""

    def __init__(self, configured: Mapping[str, Mapping[str, str]] | None) -> None:
        self._open = configured is None
        self._configured = {str(code): dict(names) for code, names in (configured or {}).items()}
        self._by_shortcode = {code: dict(names) for code, names in self._configured.items()}

    def set(self, shortcode: str, name: str, password: str) -> None:
        self._by_shortcode.setdefault(shortcode, {})[name] = password

    def is_valid(self, shortcode: str, name: str, credential: str) -> bool:
        password = decrypt_credential(credential)
        if password is None:
            return False
        names = self._by_shortcode.get(shortcode)
        if names is None:
            return self._open
        known = names.get(name)
        return known is not None and hmac.compare_digest(known.encode(), password.encode())

    def reset(self) -> None:
        self._by_shortcode = {code: dict(names) for code, names in self._configured.items()}
