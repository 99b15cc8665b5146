from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from core.auth.models import Role, User
from core.auth.pins import new_pin_hash, register_ussd
from core.phones import Msisdn
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from sim.africastalking import UssdGateway
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user

PIN = "4826"


def merchant_phone() -> str:
    """A fresh phone per test (a USSD phone opens one account); X555 is no simulator outcome code."""
    return f"07{random.randint(10_000, 99_999)}555"


def intl(phone: str) -> str:
    return "+254" + phone[1:]


@dataclass
class Merchant:
    tenant: Tenant
    user: User
    phone: str  # 07…

    @property
    def msisdn(self) -> str:
        return "254" + self.phone[1:]


async def make_merchant(
    *, role: Role = Role.owner, name: str = "Mama Mboga", pin: str = PIN, email: str | None = None
) -> Merchant:
    tenant, owner = await make_tenant(name=name, phone=merchant_phone(), email=email)
    user = owner if role is Role.owner else await make_user(tenant=tenant, role=role)
    phone = merchant_phone()
    async with unit_of_work() as session:
        row = await session.get(User, user.id)
        assert row is not None
        await register_ussd(
            session, user=row, phone=Msisdn("254" + phone[1:]), pin_hash=await new_pin_hash(pin)
        )
    return Merchant(tenant=tenant, user=user, phone=phone)


@pytest.fixture
async def gateway(server: LiveServer) -> AsyncIterator[UssdGateway]:
    # 160, not the bearer's 182: our own budget for carriers that cut early (ussd.screens.MAX_SCREEN).
    async with UssdGateway(f"{server.url}/ussd", max_chars=160, timeout=10.0) as gw:
        yield gw


@pytest.fixture
async def at(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The Africa's Talking stand-in's control API."""
    async with httpx.AsyncClient(base_url=server.at_url, timeout=10) as c:
        yield c


async def sms_to(at: httpx.AsyncClient, phone: str) -> list[dict]:
    r = await at.get("/_sim/messages", params={"to": intl(phone)})
    r.raise_for_status()
    return list(r.json())
