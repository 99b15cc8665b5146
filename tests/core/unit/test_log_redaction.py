"""Secrets that travel in URL paths never reach the logs."""

from __future__ import annotations

import logging

import pytest

from web.logs import RedactCallbackTokens, redact


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
