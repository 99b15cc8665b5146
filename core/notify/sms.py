"""Sending SMS through Africa's Talking's bulk messaging REST API (refs/frontends.md §4).

Not the official `africastalking` SDK: it is synchronous (`requests`), hard-codes its hosts (a stand-in
could only be reached by overwriting private attributes), and returns the raw text instead of JSON
when the content type carries a charset. The API is one form POST, so a small httpx client is
simpler, async-native and points at `AT_BASE_URL` (sim/africastalking in tests).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

LIVE_URL = "https://api.africastalking.com"
SANDBOX_URL = "https://api.sandbox.africastalking.com"

# Per-recipient statusCode (§4.1): accepted, or refused for a reason retrying the same message to the
# same number will not fix, or refused for a reason that may pass later (balance, gateway trouble).
ACCEPTED = frozenset({100, 101, 102})
RETRYABLE = frozenset({405, 500, 501, 502})

SENDER_ID = re.compile(r"^[A-Za-z0-9 \-_.]{1,11}$")


class SmsError(Exception):
    """The message was not accepted; `retry` says whether sending it again may succeed."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class _Recipient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status_code: int = Field(alias="statusCode")
    number: str = ""
    status: str = ""
    cost: str | None = None
    message_id: str | None = Field(default=None, alias="messageId")


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Message: str = ""
    Recipients: list[_Recipient] = []


class _Reply(BaseModel):
    SMSMessageData: _Data


@dataclass(frozen=True)
class SmsAccepted:
    message_id: str
    status: str
    cost: str | None


def to_gsm_text(text: str) -> str:
    """SMS bodies in plain GSM-7: a curly quote or an accented letter would switch the whole message
    to UCS-2 and halve its length (70 characters a part instead of 160)."""
    swapped = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-", 0x2014: "-"})
    return unicodedata.normalize("NFKD", swapped).encode("ascii", "ignore").decode()


def validate_sender_id(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not SENDER_ID.match(value):
        raise ValueError(
            "A sender id is 1 to 11 letters, digits, spaces or - _ . (as registered with Africa's Talking)."
        )
    return value


@dataclass
class AfricasTalkingSms:
    http: httpx.AsyncClient
    username: str
    api_key: str
    base_url: str | None = None
    timeout: float = 15.0

    @property
    def url(self) -> str:
        base = self.base_url or (SANDBOX_URL if self.username == "sandbox" else LIVE_URL)
        return base.rstrip("/") + "/version1/messaging"

    async def send(self, *, to: str, message: str, sender_id: str | None = None) -> SmsAccepted:
        """One message to one number (`2547…`, sent as `+2547…`). Raises SmsError."""
        form = {
            "username": self.username,
            "to": "+" + to.lstrip("+"),
            "message": message,
            "bulkSMSMode": "1",
        }
        if sender_id:
            form["from"] = sender_id
        headers = {"apiKey": self.api_key, "Accept": "application/json"}
        try:
            r = await self.http.post(self.url, data=form, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise SmsError(f"Africa's Talking unreachable: {type(exc).__name__}", retry=True) from None
        if r.status_code in (401, 403):
            raise SmsError(
                f"Africa's Talking refused the credentials (HTTP {r.status_code}): check AT_USERNAME and "
                "AT_API_KEY.",
                retry=True,  # a fixed configuration should let the queued messages through
            )
        if not r.is_success:
            raise SmsError(f"Africa's Talking answered HTTP {r.status_code}: {r.text[:200]}", retry=True)
        try:
            recipients = _Reply.model_validate_json(r.content).SMSMessageData.Recipients
        except ValidationError:
            raise SmsError(f"Africa's Talking sent an unexpected reply: {r.text[:200]}", retry=True) from None
        if not recipients:
            raise SmsError("Africa's Talking accepted no recipient.", retry=False)
        first = recipients[0]
        if first.status_code in ACCEPTED and first.message_id and first.message_id != "None":
            return SmsAccepted(message_id=first.message_id, status=first.status, cost=first.cost)
        raise SmsError(
            f"Not sent: {first.status or 'refused'} ({first.status_code}).",
            retry=first.status_code in RETRYABLE,
        )
