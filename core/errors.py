"""The one table of domain errors.

Every error has a stable `code`, an HTTP status and a plain message a merchant can act on. The web layer
renders `{"error": code, "detail": message}`, the bot sends the message, USSD answers `END <message>`.
Messages never contain secrets.
"""

from __future__ import annotations

from typing import ClassVar


class LipapushError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class InvalidInput(LipapushError, ValueError):
    """Also a ValueError, so the same validators report per-field errors inside pydantic models."""

    code = "invalid_input"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class NotFound(LipapushError):
    code = "not_found"
    status = 404


class AuthenticationFailed(LipapushError):
    code = "authentication_failed"
    status = 401


class PermissionDenied(LipapushError):
    code = "permission_denied"
    status = 403


class Conflict(LipapushError):
    code = "conflict"
    status = 409


class EmailTaken(Conflict):
    code = "email_taken"


class TenantNotActive(LipapushError):
    code = "tenant_not_active"
    status = 403


class ChannelNotConfigured(LipapushError):
    code = "channel_not_configured"
    status = 409


class ChannelNotVerified(LipapushError):
    code = "channel_not_verified"
    status = 409


class IdempotencyKeyReused(LipapushError):
    code = "idempotency_key_reused"
    status = 409


class DarajaRejected(LipapushError):
    """Daraja refused the request synchronously (credentials, validation, business rule)."""

    code = "daraja_rejected"
    status = 502


class DarajaUnavailable(LipapushError):
    code = "daraja_unavailable"
    status = 503


class ServiceUnavailable(LipapushError):
    code = "service_unavailable"
    status = 503


class Busy(ServiceUnavailable):
    """Postgres aborted the transaction to break a deadlock or a serialization conflict with others
    changing the same rows, and did again on every retry (core.retry): nothing was saved."""

    code = "busy"


class InsufficientWalletBalance(LipapushError):
    code = "insufficient_wallet_balance"
    status = 402


class BillingHold(LipapushError):
    code = "billing_hold"
    status = 403


class TooManyRequests(LipapushError):
    code = "too_many_requests"
    status = 429


class ModeMismatch(LipapushError):
    """A test key asked to reach a production channel, or a live key a simulator or sandbox one (or a
    key of one mode was asked for on an app of the other). Test keys never reach real money; live keys
    never reach a stand-in."""

    code = "mode_mismatch"
    status = 409


class LiveModeNotReady(LipapushError):
    """A live key (or a push with one) before the business has a verified production channel."""

    code = "live_mode_not_ready"
    status = 409
