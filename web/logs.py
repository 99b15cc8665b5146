"""Logging set-up. Some URLs carry a secret in their path (a channel's callback token, a password-reset
token, a staff invite code, a signed download, a WiFi voucher code), so logs redact it."""

from __future__ import annotations

import logging
import re
import sys

import structlog

_TOKEN_PATH = re.compile(r"(/callbacks/[a-z]+/|/login/reset/|/join/|/dl/|/api/tickets/)[A-Za-z0-9_.\-]+")


def redact(text: str) -> str:
    return _TOKEN_PATH.sub(r"\1****", text)


class RedactCallbackTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def setup_logging(level: str, *, json: bool = False) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # httpx logs full request URLs at INFO; Daraja calls are logged by our client instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redact = RedactCallbackTokens()
    for name in ("uvicorn.access", "uvicorn.error", "lipapush", ""):
        logging.getLogger(name).addFilter(redact)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)

    # structlog (the Daraja client) goes through the same stdlib handlers, level and redaction.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer()
            if json
            else structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
