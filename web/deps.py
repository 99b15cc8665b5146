from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.access import key_cache
from core.access.actor import Actor, Via
from core.access.permissions import ApiScope
from core.auth.models import ApiKey
from core.auth.schemas import Principal
from core.auth.service import auth
from core.auth.tokens import hash_api_key, looks_like_api_key, read_access_token
from core.db import Scope, utcnow
from core.errors import AuthenticationFailed
from core.runtime import runtime, unit_of_work

API_KEY_LOOKUP = Scope.platform("API key lookup by its hash")


async def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Send 'Authorization: Bearer <token>' with an API key (lp_live_…) or a login token."
        )
    token = token.strip()
    if not looks_like_api_key(token) and token.count(".") != 2:
        # Neither of our two shapes: "log in again" would send a developer hunting for a login.
        raise AuthenticationFailed(
            "This is not a lipapush API key (they start with lp_live_ or lp_test_) nor a login token: "
            "check the key you copied, or create a new one with `lipapush apikey create`."
        )
    rt = runtime()
    if looks_like_api_key(token):
        # Remembered for a few seconds while no key changes (core.access.key_cache): the lookup's own
        # transaction was one of the three an STK push opened in this process.
        key_hash = hash_api_key(token)
        redis, namespace = rt.redis(), rt.settings.REDIS_NAMESPACE
        known, version = await key_cache.lookup(redis, namespace, key_hash, utcnow())
        if known is not None:
            return known
        # Whose key it is, is what the lookup by its hash finds out: it is asked of every business.
        async with unit_of_work(scope=API_KEY_LOOKUP) as session:
            who = await auth.principal_from_api_key(session, token)
            row = await session.get(ApiKey, who.api_key_id)  # the row just read: no second query
            expires_at = row.expires_at if row is not None else None
        if version is not None:
            key_cache.remember(namespace, key_hash, who, expires_at=expires_at, version=version)
        return who
    claims = read_access_token(token, secret=rt.settings.SECRET_KEY)
    # A login token names its business, signed: its account is read in that business's scope (a
    # platform admin's, which belongs to none, in the platform's).
    scope = (
        Scope.tenant(claims.tenant_id)
        if claims.tenant_id
        else Scope.platform("login token of an account of no business")
    )
    async with unit_of_work(scope=scope) as session:
        return await auth.principal_from_claims(session, claims)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def actor_of(who: Principal, *, via: Via = Via.api) -> Actor:
    if who.api_key_id is not None and who.tenant_id is not None:
        return Actor.for_api_key(
            api_key_id=who.api_key_id,
            tenant_id=who.tenant_id,
            created_by=who.user_id,
            scopes=[ApiScope(s) for s in who.scopes if s in {a.value for a in ApiScope}],
            app_id=who.app_id,
            mode=who.mode,
            via=via,
        )
    assert who.user_id is not None  # a login token always names its user
    return Actor.for_user(user_id=who.user_id, tenant_id=who.tenant_id, role=who.role, via=Via.api)


async def _actor(who: CurrentPrincipal) -> Actor:
    return actor_of(who)


# The one thing an API route needs to know about its caller: core decides what the actor may do.
CurrentActor = Annotated[Actor, Depends(_actor)]
