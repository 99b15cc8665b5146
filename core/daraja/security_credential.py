"""The SecurityCredential that B2C, Transaction Status, Account Balance and Reversal requests carry.

Daraja's algorithm (refs/daraja.md §11.1): the plain initiator password, encrypted with the RSA public key of
the environment's M-Pesa X.509 certificate using PKCS#1 v1.5 padding (not OAEP), then base64-encoded. Nothing
is added to the password: mpesakit appends a timestamp first, which the documentation does not ask for.

PKCS#1 v1.5 padding is randomised, so two credentials for one password differ and both are valid; computing a
fresh one per request costs a millisecond and means no encrypted copy of the password is ever stored.

Certificates, by environment (see ``certs/README.md``):

- ``simulator``: ``certs/simulator.cer``, a copy of the simulator's own certificate (the simulator holds the
  private key and decrypts what we send). A copy, not a path into ``sim/``: ``core`` never depends on ``sim``.
- ``sandbox`` / ``production``: Safaricom's certificates. None is shipped, because every copy in circulation
  has an expired validity date (2016 for the sandbox, 2018 for production); the operator downloads the
  current one from the Daraja portal and passes its path. A bundled file named ``sandbox.cer`` or
  ``production.cer`` in ``certs/`` is picked up if one is ever added.

Validity dates are deliberately not checked. Only the public key is used, nothing in this exchange validates
the dates, and the certificates the Daraja portal itself hands out are past their ``notAfter``: refusing an
expired certificate would refuse the official one. What breaks credentials is a *different key* (a stale
copy from an older platform, or the TLS certificate of the API host instead of the encryption one), which
Daraja reports asynchronously as ResultCode 2001.
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.daraja.errors import DarajaCertificateError

CertificateEnvironment = Literal["simulator", "sandbox", "production"]

CERTS_DIR = Path(__file__).parent / "certs"

BUNDLED_FILES: dict[CertificateEnvironment, str] = {
    "simulator": "simulator.cer",
    "sandbox": "sandbox.cer",
    "production": "production.cer",
}

# The settings an operator would set to the downloaded certificate's path (names proposed for core/config.py;
# this module takes the path as a parameter and reads no settings itself).
CERTIFICATE_SETTINGS: dict[CertificateEnvironment, str] = {
    "simulator": "DARAJA_CERT_SIMULATOR",
    "sandbox": "DARAJA_CERT_SANDBOX",
    "production": "DARAJA_CERT_PRODUCTION",
}

_PORTAL_FILES: dict[CertificateEnvironment, str] = {
    "simulator": "simulator.cer",
    "sandbox": "SandboxCertificate.cer",
    "production": "ProductionCertificate.cer",
}

PORTAL_URL = "https://developer.safaricom.co.ke"

# A certificate file is a few kilobytes; anything far larger is not one, and is not worth parsing.
_MAX_CERTIFICATE_BYTES = 64 * 1024


def security_credential(password: str, certificate_pem_or_der: bytes) -> str:
    """Encrypt the plain initiator ``password`` for Daraja with the given certificate (PEM or DER).

    Raises :class:`DarajaCertificateError` when the certificate cannot be used, and ValueError when the
    password is empty or cannot be what an initiator password is (for example an already-encrypted
    credential passed in by mistake, a classic cause of ResultCode 2001).
    """
    if not isinstance(password, str) or password == "":
        raise ValueError("The initiator password is empty: set the API operator's password for this channel.")
    key = rsa_public_key(certificate_pem_or_der)
    plain = password.encode("utf-8")
    # PKCS#1 v1.5 leaves 11 bytes of the modulus for padding.
    if len(plain) > key.key_size // 8 - 11:
        raise ValueError(
            "The initiator password is too long to encrypt: it looks like an already-encrypted "
            "SecurityCredential. Pass the plain password of the API operator instead."
        )
    encrypted = key.encrypt(plain, padding.PKCS1v15())
    return base64.b64encode(encrypted).decode("ascii")


def load_certificate(
    environment: CertificateEnvironment, *, path: str | os.PathLike[str] | None = None
) -> bytes:
    """The certificate for ``environment``: the file at ``path`` when given, else the bundled one.

    The bytes are checked to hold a usable RSA certificate before they are returned, so a wrong download
    fails here, at start-up, rather than as a 2001 on the first payout.
    """
    if environment not in BUNDLED_FILES:
        raise ValueError(f"Unknown Daraja environment {environment!r}: use simulator, sandbox or production.")
    if path is not None and str(path).strip():
        source = Path(path).expanduser()
        if not source.is_file():
            raise DarajaCertificateError(
                f"The {environment} M-Pesa certificate file {source} does not exist. "
                f"{_where_to_get(environment)}"
            )
    else:
        source = CERTS_DIR / BUNDLED_FILES[environment]
        if not source.is_file():
            raise DarajaCertificateError(
                f"No {environment} M-Pesa certificate is bundled with lipapush, so B2C payouts, transaction "
                f"status, account balance and reversals cannot be signed. {_where_to_get(environment)}"
            )
    data = source.read_bytes()
    try:
        rsa_public_key(data)
    except DarajaCertificateError as exc:
        raise DarajaCertificateError(f"{source}: {exc.message}") from None
    return data


def security_credential_for(
    password: str,
    environment: CertificateEnvironment,
    *,
    certificate_path: str | os.PathLike[str] | None = None,
) -> str:
    """:func:`security_credential` with the certificate :func:`load_certificate` finds for ``environment``."""
    return security_credential(password, load_certificate(environment, path=certificate_path))


def rsa_public_key(certificate_pem_or_der: bytes) -> rsa.RSAPublicKey:
    """The RSA public key of an X.509 certificate given as PEM or DER bytes."""
    data = certificate_pem_or_der
    if not isinstance(data, bytes) or not data.strip():
        raise DarajaCertificateError(
            "The M-Pesa certificate is empty: download it again from the Daraja portal."
        )
    if len(data) > _MAX_CERTIFICATE_BYTES:
        raise DarajaCertificateError(
            "The M-Pesa certificate file is far too large to be a certificate: download the .cer file again "
            "from the Daraja portal."
        )
    return _parse_rsa_key(data)


@lru_cache(maxsize=16)
def _parse_rsa_key(data: bytes) -> rsa.RSAPublicKey:
    # Cached because the same one or two certificates are parsed for every request.
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        # Saving the portal's download link gives its HTML page, not the certificate.
        raise DarajaCertificateError(
            "The M-Pesa certificate file is an HTML page, not a certificate: log in to the Daraja portal "
            "and download the .cer file itself."
        )
    if b"PRIVATE KEY-----" in data:
        raise DarajaCertificateError(
            "This is a private key, not the M-Pesa certificate: use the public .cer certificate from the "
            "Daraja portal (and keep private keys out of lipapush)."
        )
    try:
        if b"-----BEGIN" in data:
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise DarajaCertificateError(
            "The M-Pesa certificate is not a readable X.509 certificate (PEM or DER): download the .cer "
            "file again from the Daraja portal."
        ) from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise DarajaCertificateError(
            "The M-Pesa certificate does not hold an RSA key, so it is not Safaricom's credential "
            "certificate: download the .cer file from the Daraja portal."
        )
    return key


def _where_to_get(environment: CertificateEnvironment) -> str:
    if environment == "simulator":
        return "Reinstall lipapush, or point DARAJA_CERT_SIMULATOR at the simulator's certificate."
    return (
        f"Log in to the Daraja portal ({PORTAL_URL}), download {_PORTAL_FILES[environment]} from the "
        f"API credentials page, and set {CERTIFICATE_SETTINGS[environment]} to the path of the saved file."
    )
