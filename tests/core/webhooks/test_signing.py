"""Standard Webhooks signing, checked by the `standardwebhooks` package's own verifier (what a
receiver runs), including secret rotation with two signatures."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from core.webhooks.signing import (
    MAX_BODY_BYTES,
    PayloadTooLarge,
    RetiredSecret,
    check_secret,
    event_body,
    new_message_id,
    new_secret,
    sign,
    signing_secrets,
)

NOW = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _body() -> bytes:
    payment = {
        "id": "pay_01", "amount": 150, "phone": "254722000001", "status": "succeeded", "note": "chai ☕"
    }
    return event_body("payment.succeeded", payment, created_at=NOW, version=3)


def test_new_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert check_secret(first) == first
    for bad, message in [
        ("abc", "starts with whsec_"),
        ("whsec_***", "followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_secret(bad)


def test_event_body_is_minified_with_type_time_version_and_the_object() -> None:
    body = _body()
    assert body == (
        '{"type":"payment.succeeded","created_at":"2026-12-01T09:30:15.123456Z","version":3,'
        '"data":{"id":"pay_01","amount":150,"phone":"254722000001","status":"succeeded","note":"chai ☕"}}'
    ).encode()
    # An aware time in another zone is converted, not relabelled.
    nairobi = NOW.astimezone(timezone(timedelta(hours=3)))
    assert event_body("payment.succeeded", {}, created_at=nairobi).startswith(
        b'{"type":"payment.succeeded","created_at":"2026-12-01T09:30:15.123456Z","data"'
    )
    with pytest.raises(PayloadTooLarge, match=f"webhook bodies stay under {MAX_BODY_BYTES}"):
        event_body("payment.succeeded", {"note": "x" * MAX_BODY_BYTES}, created_at=NOW)
    with pytest.raises(ValueError, match="created_at must be timezone-aware"):
        event_body("payment.succeeded", {}, created_at=NOW.replace(tzinfo=None))


def test_message_ids_are_msg_ulids_in_time_order() -> None:
    earlier = new_message_id(now=NOW)
    later = new_message_id(now=NOW + timedelta(milliseconds=1))
    assert earlier.startswith("msg_") and len(earlier) == 30 and "." not in earlier
    assert earlier < later
    assert new_message_id() != new_message_id()


def test_headers_verify_with_the_package_for_each_secret_during_rotation() -> None:
    old, new = new_secret(), new_secret()
    body, now = _body(), datetime.now(UTC)
    secrets = signing_secrets(new, [RetiredSecret(old, now + timedelta(hours=23))], now=now)
    assert secrets == [new, old]
    headers = sign(body, msg_id="msg_rotation", timestamp=now, secrets=secrets)
    assert headers["webhook-id"] == "msg_rotation"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):  # a receiver on either secret accepts it
        assert Webhook(secret).verify(body, headers) == json.loads(body)
    # A tampered body fails for both.
    tampered = body.replace(b'"amount":150', b'"amount":15000')
    for secret in (new, old):
        with pytest.raises(WebhookVerificationError, match="No matching signature found"):
            Webhook(secret).verify(tampered, headers)


def test_a_retired_secret_stops_signing_when_its_overlap_ends() -> None:
    old, new = new_secret(), new_secret()
    now = datetime.now(UTC)
    assert signing_secrets(new, [RetiredSecret(old, now)], now=now) == [new]
    headers = sign(_body(), msg_id="msg_after", timestamp=now, secrets=signing_secrets(new, [], now=now))
    with pytest.raises(WebhookVerificationError, match="No matching signature found"):
        Webhook(old).verify(_body(), headers)


def test_the_six_receiver_cases() -> None:
    secret, other = new_secret(), new_secret()
    body, now = _body(), datetime.now(UTC)
    headers = sign(body, msg_id="msg_six", timestamp=now, secrets=[secret])
    receiver = Webhook(secret)

    # 1. valid
    assert receiver.verify(body, headers)["type"] == "payment.succeeded"
    # 2. several signatures, one valid (in any position)
    several = sign(body, msg_id="msg_six", timestamp=now, secrets=[other, new_secret(), secret])
    assert receiver.verify(body, several)["version"] == 3
    # 3. tampered body
    with pytest.raises(WebhookVerificationError, match="No matching signature found"):
        receiver.verify(body + b" ", headers)
    # 4. wrong secret
    with pytest.raises(WebhookVerificationError, match="No matching signature found"):
        Webhook(other).verify(body, headers)
    # 5. old timestamp (past the package's fixed 5 minutes)
    stale = sign(body, msg_id="msg_six", timestamp=now - timedelta(minutes=6), secrets=[secret])
    with pytest.raises(WebhookVerificationError, match="Message timestamp too old"):
        receiver.verify(body, stale)
    # 6. missing headers
    for name in headers:
        partial = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(WebhookVerificationError, match="Missing required headers"):
            receiver.verify(body, partial)


def test_sign_refuses_what_would_make_a_bad_signature() -> None:
    body, now = _body(), datetime.now(UTC)
    with pytest.raises(ValueError, match="at least one secret"):
        sign(body, msg_id="msg_x", timestamp=now, secrets=[])
    with pytest.raises(ValueError, match=r"without '\.'"):
        sign(body, msg_id="msg.x", timestamp=now, secrets=[new_secret()])
    with pytest.raises(ValueError, match="timestamp must be timezone-aware"):
        sign(body, msg_id="msg_x", timestamp=now.replace(tzinfo=None), secrets=[new_secret()])
    # A timestamp in another zone signs the same instant (the package alone would relabel it as UTC).
    secret = new_secret()
    eat = sign(body, msg_id="msg_x", timestamp=now.astimezone(timezone(timedelta(hours=3))), secrets=[secret])
    assert eat == sign(body, msg_id="msg_x", timestamp=now, secrets=[secret])
    Webhook(secret).verify(body, eat)
