"""The monthly live-push quota on USSD: the merchant who requests a payment reads the quota's sentence;
a payer paying the business is told to pay another way; nothing is recorded either way."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from core.access.actor import Actor, Via
from core.auth.models import Role
from core.payments.models import Payment
from core.payments.use_cases import request_payment
from core.plans import use_cases_admin
from core.plans.schemas import PlanIn
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from sim.africastalking import UssdGateway
from tests.support.factories import letters_token, make_tenant
from tests.ussd.conftest import PIN, intl, make_merchant

ADMIN = Actor.system(via=Via.cli)


async def no_quota_left(tenant: Tenant) -> None:
    code = f"z-{letters_token()}"
    await use_cases_admin.save_plan(
        ADMIN, PlanIn(code=code, name="Zero", monthly_fee_cents=0, live_pushes_per_month=0)
    )
    await use_cases_admin.assign_plan(ADMIN, tenant.id, code=code)


async def payments_of(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).where(Payment.tenant_id == tenant.id)) or 0)


async def test_the_merchant_reads_the_quota_sentence(gateway: UssdGateway) -> None:
    m = await make_merchant(name="Quota Kiosk")
    await no_quota_left(m.tenant)
    s = gateway.dial(intl(m.phone))
    await s.start()
    await s.send(PIN)
    await s.send("1")
    await s.send("0712345678")
    await s.send("150")
    end = await s.send("1")
    assert end.kind == "END"
    assert end.text.startswith("This business has used its 0 live payment requests for ")
    assert await payments_of(m.tenant) == 0


async def test_a_payer_is_told_to_pay_another_way(gateway: UssdGateway) -> None:
    tenant, _ = await make_tenant(name="Quota Duka")
    await no_quota_left(tenant)
    s = gateway.dial(intl(f"07{random.randint(10_000, 99_999)}678"))
    await s.start()
    await s.send("1")
    await s.send(str(tenant.business_number))
    await s.send("100")
    end = await s.send("1")
    assert (end.kind, end.text) == (
        "END",
        "Quota Duka cannot take more M-Pesa payments through lipapush this month. Pay them another way.",
    )
    assert await payments_of(tenant) == 0


async def test_the_phone_limit_is_one_sentence_too(gateway: UssdGateway) -> None:
    """Over-rate as over-quota: the business has prompted one phone 5 times this minute (from anywhere:
    the limit is the business's, whoever asks), so the merchant's sixth from USSD is refused plainly."""
    m = await make_merchant(name="Rate Kiosk")
    person = Actor.for_user(user_id=m.user.id, tenant_id=m.tenant.id, role=Role.owner, via=Via.api)
    for _ in range(5):
        await request_payment(person, phone="254722400111", amount=10)
    s = gateway.dial(intl(m.phone))
    await s.start()
    await s.send(PIN)
    await s.send("1")
    await s.send("0722400111")
    await s.send("150")
    end = await s.send("1")
    assert end.kind == "END"
    assert end.text.startswith(
        "2547****0111 has had 5 payment prompts from this business in the last minute, the most one "
        "phone may get. Try again in "
    )
    assert await payments_of(m.tenant) == 5
