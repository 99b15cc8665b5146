"""Buying WiFi through the captive portal's API: M-Pesa (Daraja simulator) → voucher → router
(RouterOS stand-in) → SMS (Africa's Talking stand-in)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from core.hotspot.models import Plan, PlanKind, Voucher
from core.runtime import runtime, unit_of_work
from sim.routeros import RouterSim
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until
from tests.ussd.conftest import sms_to


@pytest.fixture(autouse=True)
def own_network(client: httpx.AsyncClient) -> None:
    """Each test buys from a WiFi network of its own (the router's public address, as a reverse proxy
    reports it): the portal's limits count per network, and the live server is shared by every test,
    so requests from 127.0.0.1 would count against whichever test ran after others that used it."""
    client.headers["X-Forwarded-For"] = f"198.18.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


async def provider(sim: RouterSim) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]:
    from core.hotspot.routers import routers
    from core.hotspot.schemas import RouterIn

    tenant, owner = await make_tenant(name="Kangemi WiFi")
    async with unit_of_work() as session:
        r = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(name="gate", host="127.0.0.1", port=sim.port, username="api", password="router-pw"),
            box=runtime().secrets,
            by=owner.id,
        )
        plan = Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        session.add(plan)
        await session.flush()
        return tenant.id, r.id, plan.id, tenant.slug


def unique_ip() -> str:
    """The buyer's hotspot address: distinct per purchase, so the per-device limit never trips here."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def buyer(last4: str = "5678") -> str:
    return f"07{random.randint(10_000, 99_999)}{last4[1:]}"[:6] + last4


async def test_pay_get_voucher_on_router_and_by_sms(
    client: httpx.AsyncClient, server: LiveServer, sim: RouterSim
) -> None:
    tid, rid, pid, slug = await provider(sim)
    page = await client.get(
        f"/portal/{slug}/{rid}", params={"mac": "AA:BB:CC:DD:EE:FF", "login": "http://10.5.50.1/login"}
    )
    assert page.status_code == 200
    assert "<h1>Kangemi WiFi</h1>" in page.text and "1 hour" in page.text and "KES 20" in page.text
    assert "http://10.5.50.1/login" in page.text
    phone = buyer()
    r = await client.post(
        f"/api/captive/{tid}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": phone, "mac": "AA:BB:CC:DD:EE:FF"},
    )
    assert r.status_code == 201, r.text
    started = r.json()
    assert (started["amount"], started["status"]) == (20, "pending")

    async def usable() -> dict | None:
        s = (await client.get(started["status_url"])).json()
        return s if s.get("voucher") and s["voucher"]["usable"] else None

    await wait_until(usable)
    status = (await client.get(started["status_url"])).json()
    code = status["voucher"]["code"]
    assert status["payment_status"] == "success" and status["voucher"]["status"] == "provisioned"
    assert code in {str(u["name"]) for u in sim.users()}
    async with httpx.AsyncClient(base_url=server.at_url) as at:

        async def texted() -> bool:
            return bool(await sms_to(at, phone))

        await wait_until(texted)
        [sms] = await sms_to(at, phone)
    assert sms["message"] == (
        f"Kangemi WiFi: WiFi voucher {code}. 1 hour, valid 1 hour from first login. "
        "Enter it on the WiFi page."
    )
    assert sms["segments"] == 1
    ticket = await client.get(f"/api/tickets/{code.lower()}/status", params={"provider_id": str(tid)})
    assert ticket.status_code == 200 and ticket.json()["usable"] is True
    # "Already paid?" by the M-Pesa receipt.
    async with unit_of_work(readonly=True) as session:
        from core.payments.models import Payment

        receipt = (await session.get(Payment, uuid.UUID(started["payment_id"]))).receipt  # type: ignore[union-attr]
    rec = await client.post(f"/api/captive/{tid}/recover", json={"receipt": receipt})
    assert rec.status_code == 200 and [v["code"] for v in rec.json()["vouchers"]] == [code]


async def test_cancelled_payment_gives_no_voucher(client: httpx.AsyncClient, sim: RouterSim) -> None:
    tid, rid, pid, _ = await provider(sim)
    r = await client.post(
        f"/api/captive/{tid}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": buyer("1032")},
    )
    assert r.status_code == 201

    async def ended() -> dict | None:
        s = (await client.get(r.json()["status_url"])).json()
        return s if s["payment_status"] != "pending" else None

    final = await wait_until_value(ended)
    assert final["payment_status"] == "cancelled" and final["voucher"] is None
    async with unit_of_work(readonly=True) as session:
        assert list(await session.scalars(select(Voucher).where(Voucher.tenant_id == tid))) == []
    assert sim.users() == []


async def wait_until_value(probe):  # type: ignore[no-untyped-def]
    box: list = []

    async def check() -> bool:
        value = await probe()
        if value:
            box.append(value)
        return bool(value)

    await wait_until(check)
    return box[-1]


async def test_bad_requests(client: httpx.AsyncClient, sim: RouterSim) -> None:
    tid, rid, pid, slug = await provider(sim)
    _, other_rid, _, _ = await provider(sim)
    cases = [
        ({"router_id": str(rid), "plan_id": str(pid), "phone": "12345"}, 422),
        ({"router_id": str(other_rid), "plan_id": str(pid), "phone": buyer()}, 404),
        ({"router_id": str(rid), "plan_id": str(uuid.uuid4()), "phone": buyer()}, 404),
        ({"router_id": str(rid), "plan_id": str(pid), "phone": buyer(), "mac": "<script>"}, 422),
    ]
    for body, status in cases:
        r = await client.post(f"/api/captive/{tid}/initiate-mpesa", json=body)
        assert r.status_code == status, (body, r.text)
    page = await client.get(f"/portal/{slug}/{rid}", params={"login": "javascript:alert(1)"})
    assert "javascript:" not in page.text.split("application/json")[1]
    assert (await client.get(f"/portal/{slug}/{other_rid}")).status_code == 404
    phone = buyer()
    codes = []
    for _ in range(4):
        r = await client.post(
            f"/api/captive/{tid}/initiate-mpesa",
            json={"router_id": str(rid), "plan_id": str(pid), "phone": phone},
        )
        codes.append(r.status_code)
    assert codes == [201, 201, 201, 429]


async def test_device_and_network_limits(client: httpx.AsyncClient, sim: RouterSim) -> None:
    """The portal reports each buyer's hotspot address; all of them reach us from the router's public
    address (here a reverse proxy's X-Forwarded-For, as in production). A made-up device address does
    not get anyone past the network's limit, which is ten devices' worth."""
    from core.hotspot.orders import PER_CLIENT, PER_NETWORK

    tid, rid, pid, _ = await provider(sim)
    network = {"X-Forwarded-For": f"203.0.{random.randint(0, 255)}.{random.randint(1, 254)}"}
    base = random.randint(10_000, 99_999)
    phones = (f"07{base}{n:03d}" for n in range(1000))
    # A plan that is not on sale: each request is refused after it is counted, so no push goes out.
    unknown = str(uuid.uuid4())

    async def initiate(ip: str, headers: dict[str, str], plan_id: str = unknown) -> httpx.Response:
        body = {"router_id": str(rid), "plan_id": plan_id, "phone": next(phones), "ip": ip}
        return await client.post(f"/api/captive/{tid}/initiate-mpesa", json=body, headers=headers)

    device = unique_ip()
    codes = [(await initiate(device, network)).status_code for _ in range(PER_CLIENT[0] + 1)]
    assert codes == [404] * PER_CLIENT[0] + [429]
    refused = await initiate(device, network)
    assert refused.json()["detail"] == (
        "Too many payment requests from this device. Wait 5 minutes and try again."
    )
    # Other devices on the same WiFi go on, up to the network's own limit.
    sent = len(codes) + 1
    codes = [(await initiate(unique_ip(), network)).status_code for _ in range(PER_NETWORK[0] - sent)]
    assert set(codes) == {404}
    refused = await initiate(unique_ip(), network)
    assert refused.status_code == 429
    assert refused.json()["detail"] == (
        "Too many payment requests from this WiFi network. Wait 5 minutes and try again."
    )
    # Another WiFi is not held back by this one (a cancelled payment: no voucher to provision).
    elsewhere = {"X-Forwarded-For": f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"}
    r = await client.post(
        f"/api/captive/{tid}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": buyer("1032"), "ip": unique_ip()},
        headers=elsewhere,
    )
    assert r.status_code == 201, r.text


async def test_lapsed_provider_stops_selling_but_sold_vouchers_work(
    client: httpx.AsyncClient, sim: RouterSim
) -> None:
    from datetime import timedelta

    from core.db import utcnow
    from core.tenants.models import BillingMode, Tenant

    tid, rid, pid, slug = await provider(sim)
    r = await client.post(
        f"/api/captive/{tid}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": buyer(), "ip": unique_ip()},
    )
    status_url = r.json()["status_url"]

    async def usable() -> bool:
        s = (await client.get(status_url)).json()
        return bool(s.get("voucher") and s["voucher"]["usable"])

    await wait_until(usable)
    async with unit_of_work() as session:
        t = await session.get(Tenant, tid)
        assert t is not None
        t.billing_mode, t.subscription_until = BillingMode.subscription, utcnow() - timedelta(minutes=1)
    page = await client.get(f"/portal/{slug}/{rid}")
    assert page.status_code == 503 and "Vouchers already bought still work" in page.text
    refused = await client.post(
        f"/api/captive/{tid}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": buyer(), "ip": unique_ip()},
    )
    assert refused.status_code == 403 and "already bought still work" in refused.json()["detail"]
    sold = (await client.get(status_url)).json()["voucher"]
    assert sold["usable"] is True and sold["code"] in {str(u["name"]) for u in sim.users()}


async def test_voucher_keeps_the_terms_paid_for_when_the_plan_changes_meanwhile(
    client: httpx.AsyncClient, server: LiveServer, sim: RouterSim
) -> None:
    """The buyer pays for "1 hour, KES 20"; before M-Pesa's answer arrives the provider raises the
    price, doubles the time and then deletes the plan. The voucher is still issued, with what was paid for."""
    from core.hotspot.models import VoucherStatus
    from core.payments.models import PaymentStatus
    from core.payments.reconcile import resolve_payment

    tid, rid, pid, _ = await provider(sim)
    # A phone ending 9999: the simulator sends no callback, so the payment waits for an STK query.
    r = await client.post(
        f"/api/captive/{tid}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": buyer("9999"), "ip": unique_ip()},
    )
    assert r.status_code == 201, r.text
    payment_id = uuid.UUID(r.json()["payment_id"])
    async with unit_of_work() as session:
        plan = await session.get(Plan, pid)
        assert plan is not None
        plan.price, plan.validity_minutes, plan.rate_limit = 50, 120, "10M/10M"
    async with unit_of_work() as session:
        plan = await session.get(Plan, pid)
        await session.delete(plan)

    async def confirmed() -> bool:  # the simulator answers "being processed" for a moment first
        return await resolve_payment(payment_id) is PaymentStatus.success

    await wait_until(confirmed)

    async def issued() -> Voucher | None:
        async with unit_of_work(readonly=True) as session:
            return await session.scalar(select(Voucher).where(Voucher.payment_id == payment_id))

    voucher = await wait_until_value(issued)
    assert (voucher.plan_name, voucher.price, voucher.validity_minutes, voucher.rate_limit) == (
        "1 hour",
        20,
        60,
        None,
    )

    async def provisioned() -> bool:
        v = await issued()
        return v is not None and v.status is VoucherStatus.provisioned

    await wait_until(provisioned)
    assert voucher.code in {str(u["name"]) for u in sim.users()}


async def test_duplicate_callback_gives_one_voucher(
    client: httpx.AsyncClient, server: LiveServer, sim: RouterSim
) -> None:
    """M-Pesa delivers the success callback twice (a phone ending 9998 in the simulator): one voucher,
    one hotspot user, one SMS."""
    from core.payments.models import CallbackInbox, Payment

    tid, rid, pid, _ = await provider(sim)
    phone = buyer("9998")
    r = await client.post(
        f"/api/captive/{tid}/initiate-mpesa",
        json={"router_id": str(rid), "plan_id": str(pid), "phone": phone, "ip": unique_ip()},
    )
    assert r.status_code == 201, r.text
    payment_id = uuid.UUID(r.json()["payment_id"])
    async with unit_of_work(readonly=True) as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None
        checkout = payment.checkout_request_id

    async def both_processed() -> bool:
        async with unit_of_work(readonly=True) as session:
            rows = list(
                await session.scalars(
                    select(CallbackInbox.processed_at).where(CallbackInbox.checkout_request_id == checkout)
                )
            )
        return len(rows) == 2 and all(rows)

    await wait_until(both_processed)

    async def provisioned() -> bool:
        async with unit_of_work(readonly=True) as session:
            v = await session.scalar(select(Voucher).where(Voucher.payment_id == payment_id))
        return v is not None and v.provisioned_at is not None

    await wait_until(provisioned)
    async with unit_of_work(readonly=True) as session:
        made = list(await session.scalars(select(Voucher).where(Voucher.tenant_id == tid)))
    assert len(made) == 1
    assert [str(u["name"]) for u in sim.users()] == [made[0].code]
    async with httpx.AsyncClient(base_url=server.at_url) as at:

        async def texted() -> bool:
            return bool(await sms_to(at, phone))

        await wait_until(texted)
        assert len(await sms_to(at, phone)) == 1
