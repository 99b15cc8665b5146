"""Logging set-up, and the one place secrets are taken out of log lines.

Some URLs carry a secret in their path (a channel's callback token, the Telegram webhook secret, a
password-reset token, a staff invite code, a signed download, a WiFi voucher code) or in their query
string (`/ussd?secret=<AT_CALLBACK_SECRET>`), and uvicorn's access log writes every URL. `redact` masks
those path segments, the value of any query parameter named like a secret (secret, token, key,
password, signature, …) and any configured secret value (`secret_values`: SECRET_KEY,
AT_CALLBACK_SECRET, TELEGRAM_WEBHOOK_SECRET, the bot token, API keys, …) wherever it appears.
`RedactCallbackTokens` applies it to every record that reaches a handler: the message with its
arguments, the traceback and the stack, for uvicorn's access and error logs, our stdlib loggers and
structlog (which logs through them)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

import structlog

import core.runtime
from core.config import Settings

MASK = "****"

_TOKEN_PATH = re.compile(
    r"(/callbacks/[a-z]+/|/telegram/webhook/|/login/reset/|/join/|/dl/|/api/tickets/)"
    r"[A-Za-z0-9_.~%\-]+"
)
# A query parameter whose name says it holds a secret: any name containing one of the first words
# (`secret`, `api_key`, `access_token`, `X-Amz-Signature`, …), or one of the short ones as a whole word.
_NAME = r"[^=&;#\s\"'?]*"
_QUERY_SECRET = re.compile(
    rf"(?P<name>[?&;](?:{_NAME}(?:secret|token|key|passw|pwd|signature|credential|auth){_NAME}"
    rf"|(?:{_NAME}[_.\-])?(?:sig|pin|otp|code|pass|session|sid))=)(?P<value>[^&;#\s\"']+)",
    re.IGNORECASE,
)
_MIN_SECRET = 8  # shorter configured values are not replaced wherever they occur (too many false hits)

_SECRET_SETTINGS = (
    "SECRET_KEY",
    "AT_CALLBACK_SECRET",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_BOT_TOKEN",
    "AT_API_KEY",
    "PLATFORM_CONSUMER_KEY",
    "PLATFORM_CONSUMER_SECRET",
    "PLATFORM_PASSKEY",
    "PESAPAL_CONSUMER_KEY",
    "PESAPAL_CONSUMER_SECRET",
)
_SECRET_URLS = ("DATABASE_URL", "REDIS_URL", "SMTP_URL")


def secret_values(settings: Settings) -> set[str]:
    """The configured secrets, as they could appear in a log line (raw and percent-encoded)."""
    values: set[str] = set(settings.ENCRYPTION_KEYS)
    values.update(v for name in _SECRET_SETTINGS if isinstance(v := getattr(settings, name), str))
    for name in _SECRET_URLS:
        url = getattr(settings, name)
        if isinstance(url, str):
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                values.add(password)
    values |= {quote(v, safe="") for v in values}
    return {v for v in values if len(v) >= _MIN_SECRET}


_extra: set[str] = set()
# The sorted list is made once per (settings, registered secrets), not for every log line: `redact`
# runs on each record's arguments and rendered line, access log included. `_extra` only grows, so its
# size tells when it changed.
_ordered: tuple[tuple[int, int], tuple[str, ...]] = ((0, 0), ())


def register_secrets(values: Iterable[str | None]) -> None:
    """Also mask these values (besides the running lipapush's own settings) in every log line."""
    _extra.update(v for v in values if v and len(v) >= _MIN_SECRET)


def _configured() -> Iterable[str]:
    """The running lipapush's secrets (read from its runtime once it is configured) plus any
    registered ones, longest first so a secret containing another is masked whole."""
    global _ordered
    try:
        settings = core.runtime.runtime().settings
    except RuntimeError:
        settings = None
    key = (id(settings) if settings is not None else 0, len(_extra))
    if _ordered[0] != key:
        found = set(secret_values(settings)) if settings is not None else set()
        _ordered = (key, tuple(sorted(found | _extra, key=len, reverse=True)))
    return _ordered[1]


def redact(text: str) -> str:
    text = _TOKEN_PATH.sub(rf"\1{MASK}", text)
    text = _QUERY_SECRET.sub(rf"\g<name>{MASK}", text)
    for value in _configured():
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactCallbackTokens(logging.Filter):
    """Masks secrets in a record before any handler formats it (see `redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args:
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
        elif isinstance(record.args, tuple):
            # Argument by argument first, so a formatter that reads them (uvicorn's) still can.
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if record.args:
            # The format string is not masked alone (`?secret=%s` would lose its %s), and a secret may
            # hide in a non-string argument (a URL object, a dict): check the rendered line, and when
            # anything in it is masked keep that line instead of the format and its arguments.
            try:
                message = record.getMessage()
            except Exception:  # noqa: S110 - a bad format is the handler's to report, unchanged
                pass
            else:
                if (masked := redact(message)) != message:
                    _mask_arguments(record, masked)
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _mask_arguments(record: logging.LogRecord, masked: str) -> None:
    """The rendered line gave a secret away that no argument showed alone (`?secret=%s` and its
    value). Mask the arguments that vanished from the masked line, keeping their number and order:
    uvicorn's access formatter unpacks exactly five. Only if that still leaks, keep the masked line."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            MASK if isinstance(a, str) and a and a not in masked else a for a in record.args
        )
        try:
            again = record.getMessage()
        except Exception:
            again = None
        if again is not None and redact(again) == again:
            return
    record.msg, record.args = masked, ()


_TRACEBACKS = logging.Formatter()
_REDACT = RedactCallbackTokens()


def _add_filter(target: logging.Filterer) -> None:
    if not any(isinstance(f, RedactCallbackTokens) for f in target.filters):
        target.addFilter(_REDACT)


def setup_logging(level: str, *, json: bool = False) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # httpx logs full request URLs at INFO; Daraja calls are logged by our client instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # On the loggers whose records carry URLs, and on every handler, so a record is masked whichever
    # logger it came from (a logger's own filter sees only records logged on it, not its children's).
    for name in ("uvicorn.access", "uvicorn.error", "lipapush", ""):
        _add_filter(logging.getLogger(name))
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            _add_filter(handler)

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
