"""The secrets a delivery is signed with: an endpoint's, or an app's for a push's own callback_url.
Each is the current secret plus the previous one while its rotation overlap lasts."""

from __future__ import annotations

from datetime import datetime

from core.apps.models import App
from core.crypto import SecretBox
from core.webhooks.models import WebhookEndpoint
from core.webhooks.signing import RetiredSecret, new_secret, signing_secrets


def endpoint_signing_secrets(endpoint: WebhookEndpoint, box: SecretBox, *, now: datetime) -> list[str]:
    retired = []
    if endpoint.previous_secret_enc and endpoint.previous_secret_expires_at:
        retired.append(
            RetiredSecret(box.decrypt(endpoint.previous_secret_enc), endpoint.previous_secret_expires_at)
        )
    return signing_secrets(box.decrypt(endpoint.secret_enc), retired, now=now)


def app_callback_secret(app: App, box: SecretBox) -> str:
    """The app's callback secret, made on first use (the caller's transaction stores it)."""
    if app.callback_secret_enc is None:
        app.callback_secret_enc = box.encrypt(new_secret())
    return box.decrypt(app.callback_secret_enc)


def callback_signing_secrets(app: App, box: SecretBox, *, now: datetime) -> list[str]:
    current = app_callback_secret(app, box)
    retired = []
    if app.previous_callback_secret_enc and app.previous_callback_secret_expires_at:
        retired.append(
            RetiredSecret(
                box.decrypt(app.previous_callback_secret_enc), app.previous_callback_secret_expires_at
            )
        )
    return signing_secrets(current, retired, now=now)
