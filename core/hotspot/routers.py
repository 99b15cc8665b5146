"""Providers' routers: registry, health, and the per-router circuit breaker.

The breaker lives in the database (not in a process) because provisioning runs in any worker: after
BREAKER_AFTER consecutive failures a router is left alone until `retry_after`, so a dead router costs
one attempt per window instead of one per queued voucher.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.crypto import SecretBox
from core.db import utcnow
from core.errors import Conflict, NotFound
from core.hotspot.models import Router, RouterStatus
from core.hotspot.routeros import RouterAddress, RouterInfo
from core.hotspot.schemas import RouterIn

BREAKER_AFTER = 3
BREAKER_MAX = timedelta(minutes=5)
# How stale `last_seen_at` may get while a router answers every call (see `worth_recording`).
SEEN_EVERY = timedelta(seconds=30)


class RouterService:
    async def add(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        data: RouterIn,
        box: SecretBox,
        by: uuid.UUID | None,
        audit: bool = True,
    ) -> Router:
        """A new router, its password encrypted. `audit=False` is for the use case
        (core.hotspot.use_cases_routers.add_router), which writes the `router.added` row itself."""
        if await session.scalar(
            select(Router.id).where(Router.tenant_id == tenant_id, Router.name == data.name)
        ):
            raise Conflict(f"You already have a router called {data.name!r}. Pick another name.")
        router = Router(
            tenant_id=tenant_id,
            name=data.name,
            host=data.host,
            port=data.port,
            username=data.username,
            password_enc=box.encrypt(data.password),
            tls=data.tls,
            hotspot_server=data.hotspot_server,
        )
        session.add(router)
        await session.flush()
        if audit:
            await record(
                session, action="router.added", tenant_id=tenant_id, user_id=by, target=str(router.id)
            )
        return router

    async def get(self, session: AsyncSession, *, tenant_id: uuid.UUID, router_id: uuid.UUID) -> Router:
        router = await session.get(Router, router_id)
        if router is None or router.tenant_id != tenant_id:
            raise NotFound("No such router.")
        return router

    async def list(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Router]:
        return list(
            await session.scalars(select(Router).where(Router.tenant_id == tenant_id).order_by(Router.name))
        )

    def address(self, router: Router, *, box: SecretBox, timeout: float = 8.0) -> RouterAddress:
        return RouterAddress(
            host=router.host,
            port=router.port,
            username=router.username,
            password=box.decrypt(router.password_enc),
            tls=router.tls,
            timeout=timeout,
        )

    def breaker_open(self, router: Router) -> bool:
        return router.retry_after is not None and router.retry_after > utcnow()

    def worth_recording(self, router: Router) -> bool:
        """Whether a successful call changes anything `mark_up` would write: a router that was failing
        or resting, or one last seen more than SEEN_EVERY ago. Busy paths (a voucher provisioned) skip
        the write otherwise, so one router row is not updated by every job on that router."""
        return (
            router.status is not RouterStatus.up
            or router.failures > 0
            or router.retry_after is not None
            or router.last_error is not None
            or router.last_seen_at is None
            or router.last_seen_at < utcnow() - SEEN_EVERY
        )

    def mark_up(self, router: Router, info: RouterInfo | None = None) -> bool:
        """Record a successful call; True when the router was down before (a "back" notice is due)."""
        was_down = router.status is RouterStatus.down
        router.status, router.failures, router.retry_after = RouterStatus.up, 0, None
        router.last_seen_at, router.last_error = utcnow(), None
        if info is not None:
            router.identity, router.version, router.uptime = (
                info.identity[:64],
                info.version[:40],
                info.uptime[:40],
            )
        return was_down

    def mark_failed(self, router: Router, error: str) -> bool:
        """Record a failed call and open the breaker after BREAKER_AFTER in a row; True when this
        failure takes the router down (a "down" notice is due)."""
        router.failures += 1
        router.last_error = error[:500]
        if router.failures < BREAKER_AFTER:
            return False
        backoff = min(BREAKER_MAX, timedelta(seconds=15 * 2 ** (router.failures - BREAKER_AFTER)))
        router.retry_after = utcnow() + backoff
        newly_down = router.status is not RouterStatus.down
        router.status = RouterStatus.down
        return newly_down


routers = RouterService()
