"""What the OpenAPI document says about errors: every /api route declares the answers the error table
(core/errors.py, rendered by web/errors.py) can give it, in the one envelope they all share.

Checked against the running API by schemathesis (tests/web/test_openapi_conformance.py): a status a
route can answer but does not declare, or a body not in this shape, fails the build."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    """Every error the API answers: a stable `error` code to branch on and a sentence to show."""

    model_config = ConfigDict(extra="allow", title="Error")

    error: str = Field(description="Stable code, e.g. invalid_input, not_found, too_many_requests")
    detail: str = Field(description="What was wrong and what to do, in plain words")
    errors: dict[str, str] | None = Field(
        default=None, description="422 only: the message for each field that was wrong"
    )
    request_id: str | None = Field(default=None, description="500 only: quote it to support")
    limit: str | None = Field(
        default=None, description="429 from a push limit: which one refused (per_key, per_phone)"
    )
    allowed: int | None = Field(default=None, description="429: how many the limit allows per window")
    window_seconds: int | None = Field(default=None, description="429: the limit's window")
    retry_after: int | None = Field(
        default=None, description="429: seconds until a slot frees (also the Retry-After header)"
    )
    resets_at: str | None = Field(default=None, description="429: when a slot frees (UTC, ISO 8601)")


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description, **extra}


RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}

# What any /api route may answer besides its own success.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("No valid API key or login token (Authorization: Bearer …), or a rolled key past its expiry"),
    403: _error("This account may not do this, the key lacks a scope it needs, or the business is inactive"),
    404: _error("No such thing, or it belongs to another business"),
    409: _error("Conflicts with the current state (already done, not set up yet, reused key)"),
    413: _error("The request body is over this URL's size limit"),
    422: _error("The input is not valid: `errors` names each field and what is wrong with it"),
    429: _error("Too many requests: wait `Retry-After` seconds", headers=RETRY_AFTER),
    500: _error("Something went wrong on our side: try again, and quote request_id if it persists"),
    503: _error("A service we depend on is unavailable or busy: try again shortly"),
}

# Pushes (STK push, wallet top-up) also reach M-Pesa and the wallet.
PUSH_ERRORS: dict[int | str, dict[str, Any]] = {
    402: _error("The wallet balance cannot cover this payment's commission: top it up"),
    502: _error("M-Pesa (Daraja) refused the request: the payment is recorded as failed"),
    409: _error(
        "Conflicts with the current state: the channel is not set up or verified, the Idempotency-Key was "
        "used for another payment, or the key's mode does not fit its app's channel (`mode_mismatch`: a "
        "test key on a production channel; `live_mode_not_ready`: a live key without a verified "
        "production channel). Nothing was recorded"
    ),
}
