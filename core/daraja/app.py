"""What a call needs to reach Daraja as one app, and the initiator the money-out APIs add.

:class:`DarajaApp` is the part of a credentials object that the transport uses (base URL, consumer key and
secret, the mode guard's two values). STK's :class:`~core.daraja.schemas.DarajaCredentials` and the models
here all satisfy it, so one token cache and one mode guard serve every product.

Money out often runs on a different Daraja app from STK (Safaricom issues B2C and C2B on separate apps), so
these models carry their own keys instead of extending the STK credentials.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from core.daraja.schemas import ShortCode, _http_url
from core.daraja.security_credential import rsa_public_key, security_credential


class DarajaApp(Protocol):
    @property
    def base_url(self) -> str: ...
    @property
    def consumer_key(self) -> str: ...
    @property
    def consumer_secret(self) -> SecretStr: ...
    @property
    def mode(self) -> Literal["test", "live"] | None: ...
    @property
    def production_url(self) -> str | None: ...


class AppCredentials(BaseModel):
    """A Daraja app and the organisation short code it acts for: enough for C2B URL registration.

    ``mode`` and ``production_url`` work as on the STK credentials: with both set, a test-mode request
    bound for the production host (or a live one bound elsewhere) is refused before anything is sent.
    """

    model_config = ConfigDict(frozen=True)

    base_url: str
    consumer_key: str = Field(min_length=1)
    consumer_secret: SecretStr
    short_code: ShortCode
    mode: Literal["test", "live"] | None = None
    production_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_base_url(cls, value: str) -> str:
        return _http_url(value).rstrip("/")


class InitiatorCredentials(AppCredentials):
    """An app plus the API operator ("initiator") that B2C, Transaction Status, Account Balance and
    Reversal requests act as, and the certificate of the environment its password is encrypted for.

    ``short_code`` is the organisation's side: PartyA of a payout, status or balance query, and the
    ReceiverParty of a reversal. The certificate is checked when the model is built, so a wrong file fails
    at configuration time; the SecurityCredential itself is computed fresh for every request.
    """

    initiator_name: str = Field(min_length=1, max_length=100)
    initiator_password: SecretStr
    certificate: bytes = Field(repr=False)

    @field_validator("initiator_name")
    @classmethod
    def _trim_initiator(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("certificate")
    @classmethod
    def _usable_certificate(cls, value: bytes) -> bytes:
        rsa_public_key(value)  # raises DarajaCertificateError naming the problem
        return value

    def security_credential(self) -> str:
        return security_credential(self.initiator_password.get_secret_value(), self.certificate)
