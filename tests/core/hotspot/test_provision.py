"""Vouchers onto routers and off them again, through the real worker, against the RouterOS stand-in
driven by our client over TCP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import utcnow
from core.hotspot.models import Plan, PlanKind, Router, RouterStatus, Voucher, VoucherStatus, profile_name
from core.hotspot.provision import reconcile_router, sweep
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.hotspot.vouchers import vouchers
from core.jobs.models import JobOutbox
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from sim.routeros import RouterSim
from sim.routeros.state import USER
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="lipapush-api", password="s3cret-api") as s:
        yield s


async def setup(sim: RouterSim) -> tuple[Tenant, Router, Plan]:
    tenant, owner = await make_tenant(name="Kangemi WiFi")
    async with unit_of_work() as session:
        router = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(
                name="stall-42",
                host="127.0.0.1",
                port=sim.port,
                username="lipapush-api",
                password="s3cret-api",
            ),
            box=runtime().secrets,
            by=owner.id,
        )
        plan = Plan(
            tenant_id=tenant.id,
            name="1 hour",
            kind=PlanKind.time,
            price=20,
            validity_minutes=60,
            rate_limit="2M/5M",
            devices=1,
        )
        session.add(plan)
    return tenant, router, plan


async def issue(tenant: Tenant, router: Router, plan: Plan) -> Voucher:
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        r = await session.get(Router, router.id)
        p = await session.get(Plan, plan.id)
        assert t and r and p
        return await vouchers.issue(session, tenant=t, router=r, plan=p, phone="254712345678")


async def status(voucher_id) -> Voucher:  # type: ignore[no-untyped-def]
    async with unit_of_work(readonly=True) as session:
        v = await session.get(Voucher, voucher_id)
    assert v is not None
    return v


async def reached(voucher_id, wanted: VoucherStatus) -> None:  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return (await status(voucher_id)).status is wanted

    await wait_until(check)


async def test_issued_voucher_is_provisioned_only_after_the_router_acknowledges(
    server: LiveServer, sim: RouterSim
) -> None:
    tenant, router, plan = await setup(sim)
    v = await issue(tenant, router, plan)
    assert v.status is VoucherStatus.issued and len(v.code) == 8
    await reached(v.id, VoucherStatus.provisioned)
    users = {str(u["name"]): u for u in sim.users()}
    assert set(users) == {v.code}
    user = users[v.code]
    assert (user["password"], user["profile"], user["comment"]) == (
        v.code,
        profile_name("2M/5M", 1),
        f"lp:{v.id.hex}",
    )
    profiles = {p["name"]: p for p in sim.profiles()}
    assert profiles[profile_name("2M/5M", 1)]["rate-limit"] == "2M/5M"
    async with unit_of_work(readonly=True) as session:
        r = await session.get(Router, router.id)
    assert r is not None and r.status is RouterStatus.up and r.failures == 0


async def test_router_down_keeps_the_voucher_issued_until_it_returns(
    server: LiveServer, sim: RouterSim
) -> None:
    tenant, router, plan = await setup(sim)
    await sim.set_down(True)
    v = await issue(tenant, router, plan)

    async def tried() -> bool:
        return (await status(v.id)).attempts >= 1

    await wait_until(tried)
    failed = await status(v.id)
    assert failed.status is VoucherStatus.issued  # never reported usable without the router's word
    assert failed.last_error  # says why, for the provider and support
    assert sim.users() == []
    # The job is being retried, so its outbox row stays: a sweep, however often, adds no second job.
    async with unit_of_work() as session:
        row = await session.get(Voucher, v.id)
        assert row is not None
        row.issued_at = utcnow() - timedelta(minutes=5)
    [first] = await provisioning_jobs(v.id)
    assert first.failed_at is None
    await sweep()
    await sweep()
    assert [j.id for j in await provisioning_jobs(v.id)] == [first.id]
    # Its retries run out (Dramatiq's last word marks the row failed): the next sweep queues one new
    # job, and the sweep after it no other. The router rests meanwhile, so the new job waits.
    await rest(router.id, timedelta(minutes=10))
    await runtime().jobs.mark_failed(first.id, "retries exhausted")
    await sweep()
    await sweep()
    jobs = await provisioning_jobs(v.id)
    assert [(j.id == first.id, j.failed_at is None) for j in jobs] == [(True, False), (False, True)]
    await sim.set_down(False)
    await rest(router.id, None)
    await reached(v.id, VoucherStatus.provisioned)
    assert [str(u["name"]) for u in sim.users()] == [v.code]


async def provisioning_jobs(voucher_id) -> list[JobOutbox]:  # type: ignore[no-untyped-def]
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(JobOutbox).where(JobOutbox.actor == "hotspot.provision_voucher").order_by(JobOutbox.id)
        )
        return [r for r in rows if r.kwargs.get("voucher_id") == str(voucher_id)]


async def rest(router_id, how_long: timedelta | None) -> None:  # type: ignore[no-untyped-def]
    """Open (or close) the router's breaker, as failures would."""
    async with unit_of_work() as session:
        r = await session.get(Router, router_id)
        assert r is not None
        r.retry_after = utcnow() + how_long if how_long is not None else None


def test_a_router_that_answers_is_written_only_when_something_changes() -> None:
    now = utcnow()
    fine = Router(status=RouterStatus.up, failures=0, retry_after=None, last_error=None, last_seen_at=now)
    assert routers.worth_recording(fine) is False  # the busy path: one more voucher on a healthy router
    stale = [
        {"status": RouterStatus.down},
        {"status": RouterStatus.unknown},
        {"failures": 1},
        {"retry_after": now},
        {"last_error": "refused"},
        {"last_seen_at": None},
        {"last_seen_at": now - timedelta(seconds=31)},
    ]
    for change in stale:
        r = Router(
            **{
                "status": RouterStatus.up,
                "failures": 0,
                "retry_after": None,
                "last_error": None,
                "last_seen_at": now,
                **change,  # type: ignore[dict-item]
            }
        )
        assert routers.worth_recording(r) is True, change
    assert routers.mark_up(Router(status=RouterStatus.down, failures=4, last_seen_at=None)) is True


async def test_reconcile_first_login_expiry_and_drift(server: LiveServer, sim: RouterSim) -> None:
    tenant, router, plan = await setup(sim)
    a = await issue(tenant, router, plan)
    b = await issue(tenant, router, plan)
    await reached(a.id, VoucherStatus.provisioned)
    await reached(b.id, VoucherStatus.provisioned)
    sim.simulate_login(a.code, password=a.code, address="10.5.50.23", mac_address="AA:BB:CC:DD:EE:01")
    await reconcile_router(router_id=str(router.id))
    va = await status(a.id)
    assert va.status is VoucherStatus.active and va.activated_at is not None
    assert va.expires_at is not None and va.expires_at - va.activated_at == timedelta(minutes=60)
    assert (await status(b.id)).status is VoucherStatus.provisioned  # no login yet: clock not started

    # Drift: b vanished from the router (a reset); a stranger lipapush user appeared; a's time is up.
    lost = next(u for u in sim.users() if str(u["name"]) == b.code)
    sim.state.remove(sim.state.tables[USER], {".id": lost[".id"]})
    async with unit_of_work() as session:
        row = await session.get(Voucher, a.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    await reconcile_router(router_id=str(router.id))
    assert (await status(a.id)).status is VoucherStatus.expired
    names = {str(u["name"]) for u in sim.users()}
    assert a.code not in names  # removed, with its session
    assert [s for s in sim.active() if str(s["user"]) == a.code] == []
    await reached(b.id, VoucherStatus.provisioned)  # put back by a provisioning job
    assert b.code in {str(u["name"]) for u in sim.users()}


async def test_a_job_finds_its_provider_then_works_in_its_scope(
    server: LiveServer, sim: RouterSim, caplog: pytest.LogCaptureFixture
) -> None:
    """A job carries only a router's id: finding whose it is looks across providers (platform scope,
    logged with its reason); the rest is the provider's own work, in its scope (row-level security:
    Postgres only, where the platform scope is logged)."""
    if runtime().db.is_sqlite:
        pytest.skip("scopes are stated and logged on Postgres only")
    tenant, router, plan = await setup(sim)
    v = await issue(tenant, router, plan)
    await reached(v.id, VoucherStatus.provisioned)
    sim.simulate_login(v.code, password=v.code, address="10.5.50.25", mac_address="AA:BB:CC:DD:EE:03")
    with caplog.at_level(logging.DEBUG, logger="lipapush.scope"):
        await reconcile_router(router_id=str(router.id))
    wide = [r.getMessage() for r in caplog.records if r.name == "lipapush.scope"]
    assert [line for line in wide if "router" in line] == [
        "platform scope: hotspot job: the provider of a router"
    ]
    assert (await status(v.id)).status is VoucherStatus.active  # written in the provider's scope


async def test_batch_codes_are_unique_and_all_provisioned(server: LiveServer, sim: RouterSim) -> None:
    tenant, router, plan = await setup(sim)
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        r = await session.get(Router, router.id)
        p = await session.get(Plan, plan.id)
        assert t and r and p
        batch, made = await vouchers.issue_batch(session, tenant=t, router=r, plan=p, count=25)
    codes = [v.code for v in made]
    assert len(set(codes)) == 25 and all(len(c) == 8 for c in codes)

    async def all_on_router() -> bool:
        async with unit_of_work(readonly=True) as session:
            rows = list(await session.scalars(select(Voucher.status).where(Voucher.batch_id == batch)))
        return rows.count(VoucherStatus.provisioned) == 25

    await wait_until(all_on_router, timeout=60)
    assert {str(u["name"]) for u in sim.users()} == set(codes)


async def test_router_down_and_back_are_told_once(server: LiveServer, sim: RouterSim) -> None:
    from core.notify.models import Notification

    tenant, router, _ = await setup(sim)
    await sim.set_down(True)
    for _ in range(5):
        async with unit_of_work() as session:
            r = await session.get(Router, router.id)
            assert r is not None
            r.retry_after = None  # let every check through the breaker
        await reconcile_router(router_id=str(router.id))
    async with unit_of_work(readonly=True) as session:
        r = await session.get(Router, router.id)
        notes = list(
            await session.scalars(
                select(Notification).where(Notification.tenant_id == tenant.id).order_by(Notification.id)
            )
        )
    assert r is not None and r.status is RouterStatus.down and r.failures == 5
    assert [n.kind for n in notes] == ["router.down"]
    assert notes[0].body.startswith("Router stall-42 is not answering: ")
    await sim.set_down(False)
    async with unit_of_work() as session:
        r = await session.get(Router, router.id)
        assert r is not None
        r.retry_after = None
    await reconcile_router(router_id=str(router.id))
    async with unit_of_work(readonly=True) as session:
        r = await session.get(Router, router.id)
        notes = list(
            await session.scalars(
                select(Notification).where(Notification.tenant_id == tenant.id).order_by(Notification.id)
            )
        )
    assert r is not None and r.status is RouterStatus.up and r.failures == 0
    assert [n.kind for n in notes] == ["router.down", "router.up"]


async def test_expiry_is_a_timer_set_at_first_login(server: LiveServer, sim: RouterSim) -> None:
    from core.jobs.models import JobOutbox

    tenant, router, plan = await setup(sim)
    v = await issue(tenant, router, plan)
    await reached(v.id, VoucherStatus.provisioned)
    sim.simulate_login(v.code, password=v.code, address="10.5.50.24", mac_address="AA:BB:CC:DD:EE:02")
    await reconcile_router(router_id=str(router.id))
    active = await status(v.id)
    assert active.status is VoucherStatus.active and active.expires_at is not None
    async with unit_of_work(readonly=True) as session:
        timers = list(
            await session.scalars(select(JobOutbox).where(JobOutbox.actor == "hotspot.expire_voucher"))
        )
    timers = [t for t in timers if t.kwargs == {"voucher_id": str(v.id)}]
    assert [(t.not_before, t.sent_at) for t in timers] == [(active.expires_at, None)]
    await runtime().jobs.relay()
    async with unit_of_work(readonly=True) as session:
        waiting = await session.get(JobOutbox, timers[0].id)
    assert waiting is not None and waiting.sent_at is None  # not due: the relay leaves it waiting
    assert (await status(v.id)).status is VoucherStatus.active

    async with unit_of_work() as session:  # the hour is up
        row = await session.get(Voucher, v.id)
        timer = await session.get(JobOutbox, timers[0].id)
        assert row is not None and timer is not None
        row.expires_at = timer.not_before = utcnow() - timedelta(seconds=1)
    await runtime().jobs.relay()
    await reached(v.id, VoucherStatus.expired)

    async def off_router() -> bool:  # the user removed and its session ended: two calls, in turn
        gone = v.code not in {str(u["name"]) for u in sim.users()}
        return gone and not [s for s in sim.active() if str(s["user"]) == v.code]

    await wait_until(off_router)
