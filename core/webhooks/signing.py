"""Standard Webhooks signing: secrets, message ids, event bodies and the three `webhook-*` headers.

The HMAC itself is the `standardwebhooks` package's (`Webhook.sign`); this module only decides what
goes in: the exact bytes that are sent, a UTC timestamp (the package relabels any datetime as UTC
rather than converting it) and every secret that is still valid, so a receiver that has not yet
switched to a rotated secret keeps verifying for `ROTATION_OVERLAP`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# A rotated-out secret keeps signing this long, so receivers can switch without losing a delivery.
ROTATION_OVERLAP = timedelta(hours=24)
# Standard Webhooks asks payloads to stay under ~20 kB (send a link for more); ours are one payment
# or voucher, so a bigger body is a bug in the caller, refused before it is stored or sent.
MAX_BODY_BYTES = 20 * 1024

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class PayloadTooLarge(ValueError):
    """An event body over MAX_BODY_BYTES: send less (ids and a link), never a truncated body."""


@dataclass(frozen=True, slots=True)
class RetiredSecret:
    """A secret replaced by rotation; it signs alongside the current one until `expires_at`."""

    secret: str
    expires_at: datetime


def new_secret() -> str:
    """A fresh endpoint secret, shown to the developer once: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def check_secret(secret: str) -> str:
    """The secret if it is one we could have issued (prefix, base64, 24–64 bytes), else ValueError."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return secret


def signing_secrets(current: str, retired: Iterable[RetiredSecret], *, now: datetime) -> list[str]:
    """Every secret a delivery at `now` is signed with: the current one first, then each retired one
    still inside its overlap."""
    return [current] + [r.secret for r in retired if r.expires_at > now and r.secret != current]


def new_message_id(*, now: datetime | None = None) -> str:
    """`msg_` + a ULID (48-bit milliseconds + 80 random bits, Crockford base32): ids sort by creation,
    so a delivery log reads in order. Never contains a `.` (the signed string is `id.ts.body`)."""
    millis = int((now.timestamp() if now else time.time()) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_CROCKFORD[index])
    return "msg_" + "".join(reversed(chars))


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def event_body(
    event_type: str, data: Mapping[str, Any], *, created_at: datetime, version: int | None = None
) -> bytes:
    """The bytes of one event, minified JSON: `{"type", "created_at", "version", "data"}`.

    `data` is the object as the API returns it (JSON-ready: `model_dump(mode="json")`); `created_at`
    is when the event happened (not when it is sent), `version` the object's own counter so a receiver
    can drop an event older than one it already applied (omitted for events without an object, such
    as a test event). These bytes are stored once and sent, byte for byte, on every attempt.
    """
    envelope: dict[str, Any] = {
        "type": event_type,
        "created_at": _utc(created_at, "created_at").isoformat().replace("+00:00", "Z"),
    }
    if version is not None:
        envelope["version"] = version
    envelope["data"] = data
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"{event_type} event is {len(body)} bytes; webhook bodies stay under {MAX_BODY_BYTES}"
        )
    return body


def sign(payload: bytes, *, msg_id: str, timestamp: datetime, secrets: Sequence[str]) -> dict[str, str]:
    """The `webhook-id`, `webhook-timestamp` and `webhook-signature` headers for sending `payload`.

    `timestamp` is the attempt's (a retry is signed afresh, with the same `msg_id`); the signature
    header holds one `v1,<base64>` per secret, space-separated, and a receiver accepts any match.
    """
    if not secrets:
        raise ValueError("sign with at least one secret")
    if not msg_id or "." in msg_id or " " in msg_id:
        raise ValueError("msg_id must be non-empty without '.' or spaces")
    at = _utc(timestamp, "timestamp")
    # The package takes text and encodes it as UTF-8 again: decoding first signs exactly `payload`.
    text = payload.decode("utf-8")
    signatures = " ".join(Webhook(check_secret(s)).sign(msg_id, at, text) for s in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
