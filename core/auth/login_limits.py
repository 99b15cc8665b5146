"""Wrong passwords, counted where they come from.

A failed sign-in counts against the account *from that network* and against the network, never
against the account alone: ten wrong passwords for an owner's email from one network stop that network
trying that email for a while (and fifty from one network stop it trying any), while the owner signs in
as usual from every other network. A browser that signed in to the account before (a *known device*:
the signed cookie the panel sets at sign-in) counts its own failures apart and is never stopped by
anyone else's. An owner stuck on the same network as the attacker without a known device resets the
password: the counters are keyed by the account's `token_version`, which the reset bumps.

An email with no account is counted exactly like one with an account, and a refusal is decided before
the password is looked at, so the answer (status, message, Retry-After) never tells them apart.

The counters live in Redis when it is configured, so every process counts together, else in memory
(also while Redis is unreachable: an outage must not stop people signing in). A window starts at the
first failure and later tries do not extend it. They are not `core.ratelimit.hit`, which only counts:
here the counters are read before they count, and a right password takes its try back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.auth.models import User
from core.db import utcnow
from core.errors import TooManyRequests
from core.runtime import runtime

log = logging.getLogger(__name__)

DEVICE_PURPOSE = b"lipapush.known_device"
MAX_DEVICE_TOKEN = 200

# Said for an account and for a network alike, and for an email with or without an account: the
# message never changes with the time left (that is in Retry-After), so two answers compare equal.
ACCOUNT_LIMITED = (
    "Too many wrong passwords for this email from your network. Try again in at most {minutes} "
    "minutes, or reset your password (“Forgot your password?” on the sign-in page)."
)
NETWORK_LIMITED = (
    "Too many wrong passwords from your network. Try again in at most {minutes} minutes, or sign in "
    "from a browser you signed in with before."
)


class SignInLimited(TooManyRequests):
    """Rendered 429 with Retry-After: the seconds until this network may try again."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Refusal:
    message: str
    retry_after: int  # seconds


def network_of(ip: str | None) -> str:
    """The network a request came from: its IPv4 address, or the /64 of an IPv6 one (one home or
    phone gets a whole /64, so counting single IPv6 addresses would count nothing). `ip` is the
    client address uvicorn resolved, through X-Forwarded-For only from FORWARDED_ALLOW_IPS."""
    if not ip:
        return "unknown"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


# -- known devices ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownDevice:
    """A browser that signed in to `user_id` before, as its signed cookie says."""

    user_id: uuid.UUID
    device_id: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _device_mac(secret: str, user_id: uuid.UUID, device_id: str, expires: int) -> str:
    message = f"{user_id}|{device_id}|{expires}".encode()
    return _b64(hmac.new(secret.encode(), DEVICE_PURPOSE + b"\x00" + message, hashlib.sha256).digest())


def device_token(user: User, *, secret: str, days: int, keep: KnownDevice | None = None) -> str:
    """The cookie value that marks this browser as a known device of `user` for `days`; a browser that
    already was one for this user keeps its device id (its own failure counter)."""
    device_id = keep.device_id if keep is not None and keep.user_id == user.id else secrets.token_urlsafe(12)
    expires = int((utcnow() + timedelta(days=days)).timestamp())
    return f"{_b64(user.id.bytes)}.{device_id}.{expires}.{_device_mac(secret, user.id, device_id, expires)}"


def read_device(token: str | None, *, secret: str) -> KnownDevice | None:
    """The known device a cookie names, or None for a missing, malformed, forged or expired one."""
    if not token or len(token) > MAX_DEVICE_TOKEN:
        return None
    parts = token.split(".")
    if len(parts) != 4 or not parts[2].isdigit() or len(parts[2]) > 12:
        return None
    raw_id, device_id, expires, mac = parts
    try:
        user_id = uuid.UUID(bytes=base64.urlsafe_b64decode(raw_id + "=" * (-len(raw_id) % 4)))
    except (binascii.Error, ValueError):
        return None
    if int(expires) <= int(utcnow().timestamp()):
        return None
    if not hmac.compare_digest(mac.encode(), _device_mac(secret, user_id, device_id, int(expires)).encode()):
        return None
    return KnownDevice(user_id, device_id)


# -- the counters ----------------------------------------------------------------------------------

_memory: dict[str, tuple[float, int]] = {}  # key -> (monotonic end of its window, failures)
# Take back a provisional failure only while its window lives: a bare DECR would recreate an expired
# key at -1 with no expiry.
_GIVE_BACK = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0"


class _Counters:
    async def _redis(self) -> tuple[Any, str] | None:
        rt = runtime()
        r = rt.redis()
        return (r, f"{rt.settings.REDIS_NAMESPACE}:login:") if r is not None else None

    @staticmethod
    def _warn(exc: Exception) -> None:
        log.warning("sign-in counter store unavailable (%s); counting in memory", type(exc).__name__)

    async def peek(self, keys: list[str]) -> list[tuple[int, int]]:
        """(failures, seconds left in the window) for each key."""
        if (found := await self._redis()) is not None:
            r, ns = found
            try:
                async with r.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.get(ns + key)
                        pipe.ttl(ns + key)
                    out = await pipe.execute()
                return [(int(out[i] or 0), max(int(out[i + 1]), 0)) for i in range(0, len(out), 2)]
            except Exception as exc:
                self._warn(exc)
        now = time.monotonic()
        result = []
        for key in keys:
            until, count = _memory.get(key, (0.0, 0))
            result.append((count, math.ceil(until - now)) if until > now else (0, 0))
        return result

    async def count(self, keys: list[str], window: int) -> list[tuple[int, int]]:
        """Count one failure under each key (a window starts at a key's first); as `peek`, after."""
        if (found := await self._redis()) is not None:
            r, ns = found
            try:
                async with r.pipeline(transaction=True) as pipe:
                    for key in keys:
                        pipe.incr(ns + key)
                        pipe.expire(ns + key, window, nx=True)
                        pipe.ttl(ns + key)
                    out = await pipe.execute()
                return [(int(out[i]), max(int(out[i + 2]), 0)) for i in range(0, len(out), 3)]
            except Exception as exc:
                self._warn(exc)
        now = time.monotonic()
        if len(_memory) > 100_000:
            for k in [k for k, (until, _) in _memory.items() if until <= now]:
                del _memory[k]
        result = []
        for key in keys:
            until, count = _memory.get(key, (0.0, 0))
            if until <= now:
                until, count = now + window, 0
            _memory[key] = (until, count + 1)
            result.append((count + 1, math.ceil(until - now)))
        return result

    async def forget(self, key: str) -> None:
        if (found := await self._redis()) is not None:
            r, ns = found
            try:
                await r.delete(ns + key)
                return
            except Exception as exc:
                self._warn(exc)
        _memory.pop(key, None)

    async def give_back(self, key: str) -> None:
        """Take back one provisional failure."""
        if (found := await self._redis()) is not None:
            r, ns = found
            try:
                await r.eval(_GIVE_BACK, 1, ns + key)
                return
            except Exception as exc:
                self._warn(exc)
        until, count = _memory.get(key, (0.0, 0))
        if until > time.monotonic() and count > 0:
            _memory[key] = (until, count - 1)


counters = _Counters()


@dataclass(frozen=True)
class _Limit:
    key: str
    most: int
    message: str


@dataclass(frozen=True)
class Gate:
    """One sign-in attempt, let through before its password is checked. It is counted as a failure
    from the start (so many tries at once cannot all slip under the limit); `succeeded` takes that
    back and clears the account's failures from this network (or device)."""

    limits: tuple[_Limit, ...]
    reached: bool  # this failure, if it is one, is the one that reached a limit

    async def succeeded(self) -> None:
        account, *networks = self.limits
        await counters.forget(account.key)
        for limit in networks:  # a network's count is of failures: never cleared by anyone's success
            await counters.give_back(limit.key)


def _subject(email: str, user: User | None) -> str:
    if user is not None:
        # token_version: a password reset or change starts the account's counters afresh.
        return f"{user.id}.{user.token_version}"
    return "e." + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def open_gate(
    *, email: str, user: User | None, network: str | None, device: KnownDevice | None
) -> Gate | Refusal:
    """Let one sign-in attempt through, or refuse it (nothing counted) when a limit is reached.
    `user` is the account `email` names (None: none does); the path is the same either way."""
    s = runtime().settings
    window = s.LOGIN_FAILURE_WINDOW_MINUTES * 60
    account = ACCOUNT_LIMITED.format(minutes=s.LOGIN_FAILURE_WINDOW_MINUTES)
    if device is not None and user is not None and device.user_id == user.id:
        limits: tuple[_Limit, ...] = (
            _Limit(f"dev:{device.device_id}", s.LOGIN_MAX_FAILURES_PER_ACCOUNT_NETWORK, account),
        )
    else:
        net = network_of(network)
        limits = (
            _Limit(f"acct:{_subject(email, user)}:{net}", s.LOGIN_MAX_FAILURES_PER_ACCOUNT_NETWORK, account),
            _Limit(
                f"net:{net}",
                s.LOGIN_MAX_FAILURES_PER_NETWORK,
                NETWORK_LIMITED.format(minutes=s.LOGIN_FAILURE_WINDOW_MINUTES),
            ),
        )
    keys = [limit.key for limit in limits]
    for limit, (failures, left) in zip(limits, await counters.peek(keys), strict=True):
        if failures >= limit.most:
            return Refusal(limit.message, max(left, 1))
    counted = await counters.count(keys, window)
    for limit, (failures, left) in zip(limits, counted, strict=True):
        if failures > limit.most:  # others got there first, a moment ago
            return Refusal(limit.message, max(left, 1))
    reached = any(failures == limit.most for limit, (failures, _) in zip(limits, counted, strict=True))
    return Gate(limits, reached)
