"""SecurityCredential: PKCS#1 v1.5 round trip against the simulator's key pair, certificate loading by
environment, and the errors an operator sees for a missing or wrong certificate."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from core.daraja import security_credential as sc
from core.daraja.errors import DarajaCertificateError, DarajaError
from core.daraja.security_credential import (
    load_certificate,
    rsa_public_key,
    security_credential,
    security_credential_for,
)

REPO = Path(__file__).resolve().parents[3]
SIM_CERT = REPO / "sim" / "daraja" / "certs" / "simulator.cer"
SIM_KEY = REPO / "sim" / "daraja" / "certs" / "simulator-key.pem"
PASSWORD = "Safaricom999!*!"


def sim_private_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(SIM_KEY.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def decrypt(credential: str, key: rsa.RSAPrivateKey | None = None) -> str:
    return (key or sim_private_key()).decrypt(base64.b64decode(credential), padding.PKCS1v15()).decode()


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, name: str = "other") -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))  # long expired: dates must not matter
        .sign(key, hashes.SHA256())
    )


class TestRoundTrip:
    def test_simulator_key_decrypts_the_plain_password(self) -> None:
        credential = security_credential(PASSWORD, SIM_CERT.read_bytes())
        assert decrypt(credential) == PASSWORD

    def test_nothing_is_added_to_the_password(self) -> None:
        # mpesakit appends a timestamp before encrypting; Daraja's documented algorithm does not.
        credential = security_credential("abc", SIM_CERT.read_bytes())
        assert decrypt(credential) == "abc"

    def test_der_certificates_work_too(self) -> None:
        pem = x509.load_pem_x509_certificate(SIM_CERT.read_bytes())
        der = pem.public_bytes(serialization.Encoding.DER)
        assert decrypt(security_credential(PASSWORD, der)) == PASSWORD

    def test_credentials_are_randomised_and_key_sized(self) -> None:
        first = security_credential(PASSWORD, SIM_CERT.read_bytes())
        second = security_credential(PASSWORD, SIM_CERT.read_bytes())
        assert first != second
        assert decrypt(first) == decrypt(second) == PASSWORD
        # A 2048-bit key gives 256 bytes, 344 base64 characters, whatever the password's length.
        assert len(first) == 344

    def test_non_ascii_password_is_utf8(self) -> None:
        assert decrypt(security_credential("Pässwörd#1", SIM_CERT.read_bytes())) == "Pässwörd#1"

    def test_expired_certificate_is_used_all_the_same(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self_signed(key).public_bytes(serialization.Encoding.PEM)
        assert decrypt(security_credential(PASSWORD, cert), key) == PASSWORD

    def test_a_credential_made_for_another_certificate_does_not_decrypt(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other = self_signed(key).public_bytes(serialization.Encoding.PEM)
        with pytest.raises(ValueError):
            decrypt(security_credential(PASSWORD, other))


class TestPasswordChecks:
    def test_empty_password(self) -> None:
        with pytest.raises(ValueError, match="initiator password is empty"):
            security_credential("", SIM_CERT.read_bytes())

    def test_an_already_encrypted_credential_is_refused(self) -> None:
        credential = security_credential(PASSWORD, SIM_CERT.read_bytes())
        with pytest.raises(ValueError, match="already-encrypted SecurityCredential"):
            security_credential(credential, SIM_CERT.read_bytes())


class TestWrongCertificates:
    def test_private_key_instead_of_certificate(self) -> None:
        with pytest.raises(DarajaCertificateError, match="private key, not the M-Pesa certificate"):
            security_credential(PASSWORD, SIM_KEY.read_bytes())

    def test_saved_html_page(self) -> None:
        page = (
            b"<!DOCTYPE html><html><head><title>Daraja - Safaricom Developers' Portal</title></head></html>"
        )
        with pytest.raises(DarajaCertificateError, match="HTML page, not a certificate"):
            security_credential(PASSWORD, page)

    @pytest.mark.parametrize(
        "data",
        [b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
        ids=["garbage", "broken-pem"],
    )
    def test_unreadable(self, data: bytes) -> None:
        with pytest.raises(DarajaCertificateError) as info:
            security_credential(PASSWORD, data)
        assert str(info.value) == (
            "The M-Pesa certificate is not a readable X.509 certificate (PEM or DER): download the .cer "
            "file again from the Daraja portal."
        )
        assert info.value.kind == "config"
        assert isinstance(info.value, DarajaError)

    def test_empty(self) -> None:
        with pytest.raises(DarajaCertificateError, match="certificate is empty"):
            security_credential(PASSWORD, b"  \n")

    def test_not_rsa(self) -> None:
        cert = self_signed(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.PEM)
        with pytest.raises(DarajaCertificateError, match="does not hold an RSA key"):
            rsa_public_key(cert)

    def test_huge_file(self) -> None:
        with pytest.raises(DarajaCertificateError, match="far too large"):
            rsa_public_key(b"-----BEGIN CERTIFICATE-----\n" + b"A" * 70_000)


class TestLoadCertificate:
    def test_bundled_simulator_certificate_is_the_simulators(self) -> None:
        # A copy (core does not depend on sim): both must change together.
        assert load_certificate("simulator") == SIM_CERT.read_bytes()

    def test_simulator_credential_for_environment(self) -> None:
        assert decrypt(security_credential_for(PASSWORD, "simulator")) == PASSWORD

    @pytest.mark.parametrize(
        ("environment", "subject"),
        [
            ("sandbox", "apicrypt.safaricom.co.ke"),
            ("production", "apigee.apicaller.safaricom.co.ke"),
        ],
    )
    def test_safaricom_certificates_are_bundled(
        self, environment: sc.CertificateEnvironment, subject: str
    ) -> None:
        """The certificates the Daraja portal hands out (past their printed expiry, still the ones
        Safaricom decrypts with: core/daraja/certs/README.md); a setting replaces either."""
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(load_certificate(environment))
        assert cert.subject.rfc4514_string().startswith(f"CN={subject},")
        credential = security_credential_for(PASSWORD, environment)
        assert len(base64.b64decode(credential)) == 256  # a 2048-bit RSA block

    def test_operator_supplied_path(self, tmp_path: Path) -> None:
        target = tmp_path / "ProductionCertificate.cer"
        target.write_bytes(SIM_CERT.read_bytes())
        assert load_certificate("production", path=target) == SIM_CERT.read_bytes()
        assert load_certificate("production", path=str(target)) == SIM_CERT.read_bytes()

    def test_missing_path_says_what_to_set(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.cer"
        with pytest.raises(DarajaCertificateError) as info:
            load_certificate("sandbox", path=missing)
        assert str(info.value).startswith(f"The sandbox M-Pesa certificate file {missing} does not exist. ")
        assert "DARAJA_CERT_SANDBOX" in str(info.value)

    def test_bad_file_names_the_file(self, tmp_path: Path) -> None:
        bad = tmp_path / "cert.cer"
        bad.write_text("<html>login</html>")
        with pytest.raises(DarajaCertificateError) as info:
            load_certificate("production", path=bad)
        assert str(info.value) == (
            f"{bad}: The M-Pesa certificate file is an HTML page, not a certificate: log in to the Daraja "
            "portal and download the .cer file itself."
        )

    def test_unknown_environment(self) -> None:
        with pytest.raises(ValueError, match="Unknown Daraja environment 'staging'"):
            load_certificate("staging")  # type: ignore[arg-type]
