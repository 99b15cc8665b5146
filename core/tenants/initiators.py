"""A channel's Daraja initiator: what B2C payouts, balance and status lookups and reversals act as,
and the URLs their answers come back to. Setting the initiator and proving it are use cases of
core.tenants.use_cases_initiators; this module only builds what a request needs."""

from __future__ import annotations

from pydantic import SecretStr

from core.config import Settings
from core.crypto import SecretBox
from core.daraja.app import InitiatorCredentials
from core.daraja.security_credential import load_certificate
from core.errors import Conflict
from core.mpesa_inbox.kinds import RESULT_KINDS
from core.tenants.models import Environment, Mode, MpesaChannel


def answer_urls(channel: MpesaChannel, request: str, *, settings: Settings) -> tuple[str, str]:
    """(ResultURL, QueueTimeOutURL) of a `request` ("b2c", "status", "balance", "reversal") on this
    channel: its unguessable callback token and the answer's kind (core.mpesa_inbox.kinds)."""
    result, timeout = RESULT_KINDS[request]
    base = f"{settings.base_url}/callbacks/daraja/{channel.callback_token}"
    return f"{base}/{result.value}", f"{base}/{timeout.value}"


def certificate_path(environment: Environment, settings: Settings) -> str | None:
    return {
        Environment.simulator: None,
        Environment.sandbox: settings.DARAJA_CERT_SANDBOX,
        Environment.production: settings.DARAJA_CERT_PRODUCTION,
    }[environment]


def initiator_credentials(
    channel: MpesaChannel, *, box: SecretBox, settings: Settings, mode: Mode | None = None
) -> InitiatorCredentials:
    """The channel's app and initiator at its environment's URL, with the certificate its password is
    encrypted with; `mode` as for core.tenants.service.credentials (a test request never reaches
    production). Refused (409) while the channel has no initiator."""
    if not channel.initiator_name or not channel.initiator_password_enc:
        raise Conflict(
            f"The channel “{channel.name}” has no M-Pesa initiator yet: add its initiator name and "
            "password (Settings → Channels, or PUT /api/channels/{id}/initiator) first."
        )
    base = {
        Environment.simulator: settings.simulator_url,
        Environment.sandbox: settings.DARAJA_SANDBOX_URL,
        Environment.production: settings.DARAJA_PRODUCTION_URL,
    }[channel.environment]
    return InitiatorCredentials(
        base_url=base,
        consumer_key=box.decrypt(channel.consumer_key_enc) or "",
        consumer_secret=SecretStr(box.decrypt(channel.consumer_secret_enc) or ""),
        short_code=channel.business_short_code,
        mode=(mode or channel.mode).value,
        production_url=settings.DARAJA_PRODUCTION_URL,
        initiator_name=channel.initiator_name,
        initiator_password=SecretStr(box.decrypt(channel.initiator_password_enc) or ""),
        certificate=load_certificate(
            channel.environment.value, path=certificate_path(channel.environment, settings)
        ),
    )
