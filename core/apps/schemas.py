"""What the API, the panel, the bot and the CLI send and get back about apps, and the two rules on
what they type (a name, the callback hosts), written once: the use cases apply the same functions to
whatever a front end passes them."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import InvalidInput
from core.tenants.models import ChannelKind, Environment, Mode
from core.text import has_unstorable

NAME_MAX = 80
MAX_CALLBACK_HOSTS = 20
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_EXAMPLE = "e.g. shop.example.com"


def clean_app_name(value: str) -> str:
    """An app's name: 1–80 characters once the spaces around it are gone, on one line."""
    name = " ".join(value.split()) if isinstance(value, str) else ""
    if not name:
        raise InvalidInput("name", "Give the app a name (1 to 80 characters), e.g. Shop website.")
    if len(name) > NAME_MAX:
        raise InvalidInput(
            "name", f"An app's name is at most {NAME_MAX} characters; this one has {len(name)}."
        )
    if has_unstorable(name):
        raise InvalidInput("name", "The name contains characters that cannot be stored: retype it.")
    return name


def clean_host(value: str) -> str:
    """One callback host: a DNS host name, lower case, without scheme, port, path or trailing dot."""
    raw = value.strip() if isinstance(value, str) else ""
    shown = repr(raw[:60])
    if not raw:
        raise InvalidInput("callback_hosts", f"A callback host is empty: give a host name, {_EXAMPLE}.")
    if "://" in raw or any(c in raw for c in "/:@?#") or any(c.isspace() for c in raw):
        raise InvalidInput(
            "callback_hosts",
            f"{shown} is not a host name: give only the host, {_EXAMPLE} (no https://, port or path).",
        )
    host = raw.lower().rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput("callback_hosts", f"{shown} is not a valid host name ({_EXAMPLE}).") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise InvalidInput(
            "callback_hosts",
            f"{shown} is an IP address: give the host name your system answers on, {_EXAMPLE}.",
        )
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise InvalidInput(
            "callback_hosts",
            f"{shown} is not a valid host name: letters, digits, hyphens and dots only, {_EXAMPLE}.",
        )
    return host


def clean_callback_hosts(values: Iterable[str] | None) -> list[str]:
    """The hosts a push's own callback_url may point at: each checked and lower-cased, duplicates
    dropped (first one kept), at most 20. None or an empty list: a push may carry no callback_url."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    hosts: list[str] = []
    for value in values:
        host = clean_host(value)
        if host not in hosts:
            hosts.append(host)
    if len(hosts) > MAX_CALLBACK_HOSTS:
        raise InvalidInput(
            "callback_hosts",
            f"An app allows at most {MAX_CALLBACK_HOSTS} callback hosts; {len(hosts)} given.",
        )
    return hosts


def split_hosts(text: str) -> list[str]:
    """Hosts typed in one box (a form's textarea, a chat message): one per line or comma-separated."""
    return [h for h in re.split(r"[\s,;]+", text) if h]


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="1 to 80 characters, unique in the business")
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="The business's M-Pesa channel the app's pushes go through (GET /api/channels); "
        "default: its primary channel. The app's mode, and so its keys', is that channel's.",
    )
    callback_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Host names a push's own callback_url may point at (exact, e.g. "
        "shop.example.com; at most 20)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return clean_app_name(v)

    @field_validator("callback_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return clean_callback_hosts(v)


class AppPatch(BaseModel):
    """Only what is given changes."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200, description="The new name")
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="Move the app to another of the business's channels (owner only; a channel of the "
        "other mode only while the app has no working keys)",
    )
    callback_hosts: list[str] | None = Field(
        default=None, max_length=100, description="Replaces the list; [] allows no callback_url"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else clean_app_name(v)

    @field_validator("callback_hosts")
    @classmethod
    def _hosts(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else clean_callback_hosts(v)


class AppChannelOut(BaseModel):
    """The M-Pesa channel an app's pushes go through (no secrets)."""

    id: uuid.UUID
    name: str = Field(description="The business's name for the channel, e.g. Main, Westlands till")
    primary: bool
    kind: ChannelKind
    number: str = Field(description="The paybill number, or the till number for a till")
    environment: Environment
    verified: bool
    label: str = Field(description='For people, e.g. "Main: Paybill 174379 (simulator)"')


class AppOut(BaseModel):
    id: uuid.UUID
    name: str
    mode: Mode = Field(description="test (simulator or sandbox channel) or live (production channel)")
    channel: AppChannelOut | None = Field(description="Null until the business has an M-Pesa channel")
    callback_hosts: list[str]
    key_count: int = Field(description="The app's API keys that work now (not revoked, not expired)")
    webhook_endpoint_count: int = Field(description="The app's webhook endpoints, in both modes")
    created_at: datetime
    archived_at: datetime | None = None
