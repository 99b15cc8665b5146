"""Getting vouchers onto routers, and off them again: a durable state machine, never a web request.

- `provision_voucher` puts one voucher on its router (create-or-update by name: safe to repeat) and
  only then marks it `provisioned`. Failures are retried with backoff; the router's circuit breaker
  (core.hotspot.routers) stops a dead router from being hammered.
- `reconcile_router`, run periodically for every router, compares the router with the database and
  repairs drift both ways: a first login seen on the router starts the voucher's validity clock; a
  usable voucher missing on the router is put back; a lipapush user the database no longer backs
  (expired, revoked, unknown) is removed, with its session; a voucher past its expiry is removed.
- `expire_voucher` runs at a voucher's expiry time (scheduled when its first login is seen) and
  takes it off the router; reconciliation catches any it missed.
- `sweep` (periodic) re-queues vouchers still `issued` after their job's retries ran out (never a
  second job beside one still pending or retrying) and reconciles every router whose breaker allows
  it: nothing paid for is ever dropped.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Scope, narrow_scope, utcnow
from core.hotspot.models import Router, RouterStatus, Voucher, VoucherStatus, profile_name
from core.hotspot.routeros import ProfileSpec, RouterClient, RouterError, RouterInfo, UserSpec
from core.hotspot.routers import routers
from core.jobs.models import JobOutbox
from core.jobs.registry import enqueue, enqueue_at, job
from core.notify.service import notify
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant

log = logging.getLogger(__name__)

COMMENT_PREFIX = "lp:"
STALE_ISSUED = timedelta(minutes=2)
# A job carries only a voucher's or a router's id: whose it is, is what its first read finds out, asked
# of every provider. From there on the job works in that provider's scope.
FIND_VOUCHER = Scope.platform("hotspot job: the provider of a voucher")
FIND_ROUTER = Scope.platform("hotspot job: the provider of a router")
SWEEP = Scope.platform("hotspot.sweep: every provider's vouchers and routers")


async def _provider_voucher(
    session: AsyncSession, voucher_id: uuid.UUID, *, lock: bool = False
) -> Voucher | None:
    """The voucher, found in a FIND_VOUCHER transaction that from then on sees only its provider's rows."""
    voucher = await session.get(Voucher, voucher_id, with_for_update=lock)
    if voucher is not None:
        await narrow_scope(session, voucher.tenant_id)
    return voucher


class RouterBusy(Exception):
    """The router's breaker is open: try again later (raised so the job is retried with backoff)."""


async def router_failed(session: AsyncSession, router: Router, error: str) -> None:
    """Record a failure; the provider hears once, when the router is declared down."""
    if routers.mark_failed(router, error):
        tenant = await session.get(Tenant, router.tenant_id)
        if tenant is not None:
            await notify.to_owner(
                session,
                tenant=tenant,
                kind="router.down",
                body=f"Router {router.name} is not answering: {error[:200]} "
                "Vouchers sold meanwhile are kept and sent to it when it is back.",
            )


async def router_ok(session: AsyncSession, router: Router, info: RouterInfo | None = None) -> None:
    if routers.mark_up(router, info):
        tenant = await session.get(Tenant, router.tenant_id)
        if tenant is not None:
            await notify.to_owner(
                session, tenant=tenant, kind="router.up", body=f"Router {router.name} is answering again."
            )


def validity_text(minutes: int) -> str:
    for unit, size in (("day", 1440), ("hour", 60)):
        if minutes >= size and minutes % size == 0:
            n = minutes // size
            return f"{n} {unit}" + ("s" if n != 1 else "")
    return f"{minutes} min"


def voucher_sms(voucher: Voucher, tenant: Tenant | None) -> str:
    """One GSM-7 segment: who, the code, the plan and how long it lasts."""
    who = (tenant.name if tenant else "WiFi")[:30]
    data = f", {voucher.data_mb:,} MB" if voucher.data_mb else ""
    return (
        f"{who}: WiFi voucher {voucher.code}. {voucher.plan_name[:24]}{data}, valid "
        f"{validity_text(voucher.validity_minutes)} from first login. Enter it on the WiFi page."
    )


def comment_for(voucher: Voucher) -> str:
    # A stable tag on the router, so reconciliation can tell our users from the provider's own.
    return f"{COMMENT_PREFIX}{voucher.id.hex}"


def user_spec(voucher: Voucher, router: Router) -> UserSpec:
    return UserSpec(
        name=voucher.code,
        password=voucher.code,
        profile=profile_name(voucher.rate_limit, voucher.devices),
        limit_bytes_total=voucher.data_mb * 1_000_000 if voucher.data_mb else None,
        comment=comment_for(voucher),
        server=router.hotspot_server,
    )


def profile_spec(voucher: Voucher) -> ProfileSpec:
    return ProfileSpec(
        name=profile_name(voucher.rate_limit, voucher.devices),
        rate_limit=voucher.rate_limit,
        shared_users=voucher.devices,
    )


@job("hotspot.provision_voucher", max_retries=12, min_backoff_ms=2_000, max_backoff_ms=5 * 60_000)
async def provision_voucher(voucher_id: str, resend: bool = False) -> None:
    """`resend` (support) writes a voucher that is already on its router again, unchanged in status."""
    rt = runtime()
    vid = uuid.UUID(voucher_id)
    wanted = (
        (VoucherStatus.issued, VoucherStatus.provisioned, VoucherStatus.active)
        if resend
        else (VoucherStatus.issued,)
    )
    async with unit_of_work(readonly=True, scope=FIND_VOUCHER) as session:
        voucher = await _provider_voucher(session, vid)
        if voucher is None or voucher.status not in wanted:
            return
        router = await session.get(Router, voucher.router_id)
        assert router is not None
        if routers.breaker_open(router):
            raise RouterBusy(f"router {router.name} is resting after failures; retrying later")
        address, rid = routers.address(router, box=rt.secrets), router.id
        provider = Scope.tenant(voucher.tenant_id)
        user, profile = user_spec(voucher, router), profile_spec(voucher)
    try:
        # One operation: profile and user on one connection (kept for the next voucher on this router).
        await RouterClient(address).provision(profile, user)
    except RouterError as exc:
        # A failure the job retries does not finish it: its outbox row stays, so `sweep` sees it pending.
        async with unit_of_work(ends_job=not exc.retry, scope=provider) as session:
            v = await session.get(Voucher, vid)
            r = await session.get(Router, rid)
            if v is not None:
                v.attempts += 1
                v.last_error = exc.message[:500]
            if r is not None:
                await router_failed(session, r, exc.message)
        if exc.retry:
            raise
        log.warning("voucher %s refused by router: %s", vid, exc.message)
        return
    async with unit_of_work(scope=provider) as session:
        v = await session.get(Voucher, vid, with_for_update=True)
        if v is None:
            return
        r = await session.get(Router, v.router_id)
        if r is not None and routers.worth_recording(r):
            # Not on every voucher: one row that every provisioning job would update is a queue.
            await router_ok(session, r)
        if v.status is VoucherStatus.issued:
            first = v.provisioned_at is None
            v.status, v.provisioned_at, v.last_error = VoucherStatus.provisioned, utcnow(), None
            v.attempts += 1
            if first and v.phone and v.payment_id:
                # Only now: a code sent before the router knows it would not log anyone in.
                tenant = await session.get(Tenant, v.tenant_id)
                await notify.sms(
                    session, tenant=tenant, to=v.phone, kind="hotspot.voucher", body=voucher_sms(v, tenant)
                )
        elif v.status is VoucherStatus.revoked:
            # Revoked while we were provisioning: take it off again.
            await enqueue(session, remove_voucher, voucher_id=voucher_id)


@job("hotspot.remove_voucher", max_retries=12, min_backoff_ms=2_000, max_backoff_ms=5 * 60_000)
async def remove_voucher(voucher_id: str) -> None:
    """Take an expired or revoked voucher off its router (user and session). Idempotent."""
    rt = runtime()
    async with unit_of_work(readonly=True, scope=FIND_VOUCHER) as session:
        voucher = await _provider_voucher(session, uuid.UUID(voucher_id))
        if voucher is None or voucher.status not in (VoucherStatus.expired, VoucherStatus.revoked):
            return
        router = await session.get(Router, voucher.router_id)
        assert router is not None
        address, code = routers.address(router, box=rt.secrets), voucher.code
    await RouterClient(address).remove_user(code)


@job("hotspot.expire_voucher", max_retries=12, min_backoff_ms=2_000, max_backoff_ms=5 * 60_000)
async def expire_voucher(voucher_id: str) -> None:
    """Scheduled for the moment a voucher's validity ends (see reconcile_router): expire it and take
    it off its router. Reconciliation expires any this missed, so a lost timer costs at most a sweep."""
    async with unit_of_work(scope=FIND_VOUCHER) as session:
        v = await _provider_voucher(session, uuid.UUID(voucher_id), lock=True)
        if v is None or v.status is not VoucherStatus.active or v.expires_at is None:
            return
        if v.expires_at > utcnow():
            return  # extended since this was scheduled: a later timer exists
        v.status = VoucherStatus.expired
        await enqueue(session, remove_voucher, voucher_id=voucher_id)


@job("hotspot.reconcile_router", max_retries=0)
async def reconcile_router(router_id: str) -> None:
    rt = runtime()
    rid = uuid.UUID(router_id)
    async with unit_of_work(readonly=True, scope=FIND_ROUTER) as session:
        router = await session.get(Router, rid)
        if router is None or routers.breaker_open(router):
            return
        address, provider = routers.address(router, box=rt.secrets), Scope.tenant(router.tenant_id)
    client = RouterClient(address)
    try:
        info = await client.info()
        users = await client.users(comment_prefix=COMMENT_PREFIX)
        active = await client.active()
    except RouterError as exc:
        async with unit_of_work(scope=provider) as session:
            r = await session.get(Router, rid)
            if r is not None:
                await router_failed(session, r, exc.message)
        return
    on_router = {u.name: u for u in users}
    logged_in = {a.user for a in active}
    now = utcnow()
    to_remove: list[str] = []
    async with unit_of_work(scope=provider) as session:
        r = await session.get(Router, rid)
        if r is None:
            return
        await router_ok(session, r, info)
        r.active_sessions = len(active)
        rows = list(
            await session.scalars(
                select(Voucher).where(
                    Voucher.router_id == rid,
                    Voucher.status.in_(
                        [VoucherStatus.issued, VoucherStatus.provisioned, VoucherStatus.active]
                    ),
                )
            )
        )
        backed = set()
        for v in rows:
            if v.status is VoucherStatus.issued:
                backed.add(v.code)  # its provisioning job is on the way: leave it be
                continue
            if v.status is VoucherStatus.provisioned and v.code in logged_in:
                v.status, v.activated_at = VoucherStatus.active, now
                v.expires_at = now + timedelta(minutes=v.validity_minutes)
                await enqueue_at(session, expire_voucher, v.expires_at, voucher_id=str(v.id))
            if v.expires_at is not None and v.expires_at <= now:
                v.status = VoucherStatus.expired
                to_remove.append(v.code)
                continue
            backed.add(v.code)
            if v.code not in on_router:
                # Lost on the router (reset, manual delete): put it back.
                v.status = VoucherStatus.issued
                await enqueue(session, provision_voucher, voucher_id=str(v.id))
        to_remove += [name for name in on_router if name not in backed and name not in to_remove]
    for name in to_remove:
        try:
            await client.remove_user(name)
        except RouterError as exc:
            log.warning("could not remove %s from router %s: %s", name, rid, exc.message)


async def pending_provisioning(session: AsyncSession) -> set[str]:
    """Voucher ids with a provisioning job still to run or still being retried (its outbox row is
    there and not failed). Filtered by actor in SQL, by argument here: JSON queries differ per backend."""
    rows = await session.scalars(
        select(JobOutbox.kwargs).where(
            JobOutbox.actor == provision_voucher.name, JobOutbox.failed_at.is_(None)
        )
    )
    return {str(kwargs.get("voucher_id")) for kwargs in rows if isinstance(kwargs, dict)}


@job("hotspot.sweep", max_retries=0)
async def sweep() -> None:
    """Periodic: requeue vouchers stuck in `issued` whose provisioning job is gone (done without
    success, or given up by Dramatiq), reconcile every router whose breaker allows."""
    async with unit_of_work(scope=SWEEP) as session:
        stale = list(
            await session.scalars(
                select(Voucher.id).where(
                    Voucher.status == VoucherStatus.issued, Voucher.issued_at < utcnow() - STALE_ISSUED
                )
            )
        )
        pending = await pending_provisioning(session) if stale else set()
        for vid in stale:
            if str(vid) not in pending:  # one job per voucher, however long its router is down
                await enqueue(session, provision_voucher, voucher_id=str(vid))
        for rid in await session.scalars(select(Router.id)):
            await enqueue(session, reconcile_router, router_id=str(rid))


async def check_router(router_id: uuid.UUID) -> tuple[RouterInfo | None, str | None]:
    """Log in now and record the answer (a provider or operator asked: no breaker, no waiting)."""
    rt = runtime()
    async with unit_of_work(readonly=True, scope=FIND_ROUTER) as session:
        router = await session.get(Router, router_id)
        if router is None:
            return None, "No such router."
        address = routers.address(router, box=rt.secrets, timeout=5.0)
        provider = Scope.tenant(router.tenant_id)
    try:
        info, error = await RouterClient(address).info(), None
    except RouterError as exc:
        info, error = None, exc.message
    async with unit_of_work(scope=provider) as session:
        r = await session.get(Router, router_id)
        if r is not None:
            if info is not None:
                await router_ok(session, r, info)
            else:
                await router_failed(session, r, error or "unreachable")
                r.status = RouterStatus.down  # asked now: show the answer now
    return info, error
