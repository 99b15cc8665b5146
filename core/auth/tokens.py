"""JWT access tokens (HS256, SECRET_KEY) and API keys (`lp_live_…`/`lp_test_…`)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt

from core.auth.models import ApiKeyMode, Role
from core.db import utcnow
from core.errors import AuthenticationFailed

ISSUER = "lipapush"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID | None
    role: Role
    token_version: int


def mint_access_token(
    *,
    secret: str,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    role: Role,
    token_version: int,
    minutes: int,
) -> str:
    now = utcnow()
    payload = {
        "iss": ISSUER,
        "sub": str(user_id),
        "tid": str(tenant_id) if tenant_id else None,
        "role": role.value,
        "ver": token_version,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def read_access_token(token: str, *, secret: str) -> AccessClaims:
    try:
        data = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "sub", "iss"]}
        )
        return AccessClaims(
            user_id=uuid.UUID(data["sub"]),
            tenant_id=uuid.UUID(data["tid"]) if data.get("tid") else None,
            role=Role(data["role"]),
            token_version=int(data.get("ver", 0)),
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed("Your session has expired: log in again.") from None
    except (jwt.PyJWTError, KeyError, ValueError):
        raise AuthenticationFailed("The access token is not valid: log in again.") from None


API_KEY_PREFIXES = {ApiKeyMode.live: "lp_live_", ApiKeyMode.test: "lp_test_"}


def new_api_key(mode: ApiKeyMode) -> tuple[str, str, str]:
    """Returns (full key, display prefix, sha256 digest). The full key is shown once and never stored."""
    key = API_KEY_PREFIXES[mode] + secrets.token_urlsafe(32)
    return key, key[:12], hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_api_key(token: str) -> bool:
    return token.startswith(tuple(API_KEY_PREFIXES.values()))
