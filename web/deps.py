from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.schemas import Principal
from core.auth.service import auth
from core.auth.tokens import looks_like_api_key, read_access_token
from core.errors import AuthenticationFailed
from core.runtime import runtime, unit_of_work


async def _read_session() -> AsyncIterator[AsyncSession]:
    async with unit_of_work(readonly=True) as session:
        yield session


# Read-only: routes that change state open their own unit_of_work(), so a failed commit can never
# be reported as success, and the transaction ends before the response is sent.
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]


async def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Send 'Authorization: Bearer <token>' with an API key (lp_live_…) or a login token."
        )
    token = token.strip()
    async with unit_of_work() as session:
        if looks_like_api_key(token):
            return await auth.principal_from_api_key(session, token)
        claims = read_access_token(token, secret=runtime().settings.SECRET_KEY)
        return await auth.principal_from_claims(session, claims)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
