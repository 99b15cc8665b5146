"""Secrets that travel in URLs (path segments, query strings) or are configured never reach the logs."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace
from urllib.parse import quote

import pytest

import core.runtime
from core.config import load_settings
from web.logs import RedactCallbackTokens, redact, secret_values, setup_logging


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"POST /callbacks/daraja/3f9a0c1d2e HTTP/1.1" 200', '"POST /callbacks/daraja/**** HTTP/1.1" 200'),
        ('"GET /login/reset/4b1c.mz0k1a.AbC-_x HTTP/1.1" 200', '"GET /login/reset/**** HTTP/1.1" 200'),
        ('"POST /join/Zx9_kq-Lm2 HTTP/1.1" 303', '"POST /join/**** HTTP/1.1" 303'),
        ('"GET /dl/abcdefghijkl.mz0k1a.AbCdEfGhIjKlMnOp HTTP/1.1"', '"GET /dl/**** HTTP/1.1"'),
        ('"GET /api/tickets/K7P3M9QX/status HTTP/1.1"', '"GET /api/tickets/****/status HTTP/1.1"'),
        ('"GET /app/transactions HTTP/1.1" 200', '"GET /app/transactions HTTP/1.1" 200'),
    ],
)
def test_paths_with_secrets_are_redacted(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_uvicorn_access_arguments_are_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/login/reset/abc.def.ghi", "1.1", 200),
        None,
    )
    assert RedactCallbackTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /login/reset/**** HTTP/1.1" 200'


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"POST /ussd?secret=abcDEF123_-x HTTP/1.1" 200', '"POST /ussd?secret=**** HTTP/1.1" 200'),
        (
            '"POST /callbacks/at/delivery?secret=abc HTTP/1.1" 200',
            '"POST /callbacks/at/****?secret=**** HTTP/1.1" 200',
        ),
        (
            "GET /x?page=2&api_key=k1&Access_Token=t1&X-Amz-Signature=s1&password=p1&sig=z",
            "GET /x?page=2&api_key=****&Access_Token=****&X-Amz-Signature=****&password=****&sig=****",
        ),
        (
            '"POST /telegram/webhook/Zx9_kq-Lm2abcdefgh HTTP/1.1" 401',
            '"POST /telegram/webhook/**** HTTP/1.1" 401',
        ),
        # Names that only contain a short word stay, and so do key=value pairs outside a query string.
        (
            "GET /app/transactions?page=2&shipping=1&design=a",
            "GET /app/transactions?page=2&shipping=1&design=a",
        ),
        ("event=daraja.request key=value", "event=daraja.request key=value"),
    ],
)
def test_query_string_secrets_are_redacted(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_configured_secret_values_are_redacted_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        _env_file=None,
        AT_CALLBACK_SECRET="at-callback-secret-0001",
        TELEGRAM_WEBHOOK_SECRET="tg-webhook-secret-0001",
        SECRET_KEY="a-secret-key-of-at-least-32-characters!",
        TELEGRAM_BOT_TOKEN="12345:bot-token-value",
        REDIS_URL="redis://:redis-password-1@redis:6379/0",
    )
    values = secret_values(settings)
    assert {
        "at-callback-secret-0001",
        "tg-webhook-secret-0001",
        "a-secret-key-of-at-least-32-characters!",
        quote("a-secret-key-of-at-least-32-characters!", safe=""),
        "12345:bot-token-value",
        "redis-password-1",
        *settings.ENCRYPTION_KEYS,
    } <= values
    monkeypatch.setattr(core.runtime, "_runtime", SimpleNamespace(settings=settings))
    line = "retry https://api.telegram.org/bot12345:bot-token-value/getMe with at-callback-secret-0001"
    assert redact(line) == "retry https://api.telegram.org/bot****/getMe with ****"
    assert "a-secret-key" not in redact(f"key={quote(settings.SECRET_KEY, safe='')}")


def test_non_string_arguments_and_tracebacks_are_redacted() -> None:
    record = logging.LogRecord(
        "lipapush", logging.ERROR, "", 0, "calling %s: %r", (b"x", {"url": "/ussd?secret=s3cr3t"}), None
    )
    try:
        raise RuntimeError("POST /telegram/webhook/Zx9_kq-Lm2abcdefgh failed")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactCallbackTokens().filter(record)
    text = logging.Formatter().format(record)
    assert "s3cr3t" not in text and "Zx9_kq" not in text
    assert "?secret=****" in text and "/telegram/webhook/****" in text


def test_every_handler_masks_records_of_any_logger(capsys: pytest.CaptureFixture[str]) -> None:
    """setup_logging puts the filter on the handlers, so a child logger's record (which a filter on
    its parent logger never sees) is masked too: uvicorn.access, uvicorn.error, aiogram, ours."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    try:
        setup_logging("INFO")
        # uvicorn's own access handler (installed when another test ran a server in this process)
        # unpacks exactly five arguments: log that logger's records in its real shape.
        logging.getLogger("uvicorn.access").warning(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/ussd?secret=leaky-value", "1.1", 200
        )
        for name in ("uvicorn.error", "aiogram.event", "lipapush.web.child"):
            logging.getLogger(name).warning('"POST /ussd?secret=%s HTTP/1.1"', "leaky-value")
    finally:
        root.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Logging error" not in err
    assert "leaky-value" not in err
    # uvicorn's loggers stop propagating to the root handler once a server in this process has
    # configured them, so only ours and aiogram's lines are sure to reach this stream.
    assert err.count("/ussd?secret=****") >= 2


def test_a_formatter_that_unpacks_the_arguments_still_can() -> None:
    """uvicorn's access formatter unpacks exactly five arguments: masking keeps their shape."""
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s?secret=%s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5000", "POST", "/ussd", "leaky-value", "1.1", 200)
    RedactCallbackTokens().filter(record)
    assert record.args == ("127.0.0.1:5000", "POST", "/ussd", "****", "1.1", 200)
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    access.args = ("127.0.0.1:5000", "POST", "/ussd?secret=leaky-value", "1.1", 200)
    RedactCallbackTokens().filter(access)
    line = AccessFormatter(fmt="%(client_addr)s %(request_line)s %(status_code)s").format(access)
    assert "leaky-value" not in line and "/ussd?secret=****" in line
