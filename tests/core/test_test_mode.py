"""Test mode never touches money, and the Daraja client refuses to cross between test and production.

A test payment (simulator or sandbox channel) earns no commission, holds nothing on the wallet, is not
refused for an empty wallet or a billing hold, and posts nothing to the ledger; the same push on a live
(production) business does all of that, to the cent. The client's own check is proven with a transport
that records every request: a refused call sends none, not even the token request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from core.access.actor import Actor
from core.access.permissions import ALL_SCOPES
from core.config import SANDBOX_PASSKEY
from core.daraja import DarajaClient, DarajaCredentials, DarajaModeError, MemoryTokenStore, StkPushRequest
from core.ledger.models import AccountKind, Transfer
from core.payments.models import Payment, PaymentStatus
from core.payments.use_cases import request_payment
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, Environment, Mode, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import (
    account_balance,
    fund_wallet,
    make_api_key,
    make_tenant,
    set_billing,
    wallet_state,
)
from tests.support.waiting import wait_until

PRODUCTION = "https://api.safaricom.co.ke"
SANDBOX = "https://sandbox.safaricom.co.ke"


async def key_actor(tenant: Tenant) -> Actor:
    """The actor an API key of the business's default app becomes (its app and mode included)."""
    from core.auth.service import auth

    key = await make_api_key(tenant=tenant)
    async with unit_of_work() as session:
        who = await auth.principal_from_api_key(session, key)
    return Actor.for_api_key(
        api_key_id=who.api_key_id,  # type: ignore[arg-type]
        tenant_id=tenant.id,
        scopes=ALL_SCOPES,
        app_id=who.app_id,
        mode=who.mode,
    )


async def final(payment_id: uuid.UUID) -> Payment:
    async def done() -> bool:
        async with unit_of_work(readonly=True) as session:
            p = await session.get(Payment, payment_id)
            return p is not None and p.status is not PaymentStatus.pending

    await wait_until(done)
    async with unit_of_work(readonly=True) as session:
        p = await session.get(Payment, payment_id)
        assert p is not None
        return p


async def transfers_of(payment_id: uuid.UUID) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(
            await session.scalar(select(func.count(Transfer.id)).where(Transfer.payment_id == payment_id))
            or 0
        )


@pytest.mark.parametrize("environment", [Environment.simulator, Environment.sandbox])
async def test_a_test_payment_never_touches_money(server: LiveServer, environment: Environment) -> None:
    """Wallet billing, an empty wallet, even a billing hold: a test push goes through and succeeds, and
    the wallet, the receivable and the revenue all stay at zero."""
    tenant, _ = await make_tenant(environment=environment)
    await set_billing(tenant, mode=BillingMode.wallet, bps=250)
    async with unit_of_work() as session:
        (await tenants.get(session, tenant.id)).billing_hold = "Invoice INV-1 is overdue."
    actor = await key_actor(tenant)
    assert actor.mode is Mode.test

    out = await request_payment(actor, phone="254722005555", amount=1_000)
    assert out.mode is Mode.test
    p = await final(out.id)
    assert (p.status, p.mode, p.app_id) == (PaymentStatus.success, Mode.test, actor.app_id)
    assert (p.commission_bps, p.commission_cents, p.reserved_cents) == (None, 0, 0)
    assert await wallet_state(tenant) == (0, 0)
    assert await account_balance(tenant, AccountKind.receivable) == 0
    assert await account_balance(tenant, AccountKind.revenue) == 0
    assert await transfers_of(p.id) == 0


async def test_the_same_push_live_earns_its_commission(server: LiveServer) -> None:
    """The live counterpart, to the cent: KES 1 000 at 2.5 % is 2 500 cents, taken from the wallet."""
    tenant, _ = await make_tenant()
    await set_billing(tenant, mode=BillingMode.wallet, bps=250)
    await fund_wallet(tenant, 10_000)
    actor = await key_actor(tenant)
    assert actor.mode is Mode.live

    out = await request_payment(actor, phone="254722005555", amount=1_000)
    assert out.mode is Mode.live
    assert await wallet_state(tenant) == (10_000, 2_500)  # held while the prompt is open
    p = await final(out.id)
    assert (p.status, p.mode, p.commission_bps, p.commission_cents) == (
        PaymentStatus.success,
        Mode.live,
        250,
        2_500,
    )
    assert await wallet_state(tenant) == (7_500, 0)
    assert await account_balance(tenant, AccountKind.revenue) == 2_500
    assert await transfers_of(p.id) == 1


async def test_credentials_carry_the_channel_mode(server: LiveServer) -> None:
    settings = runtime().settings
    seen = {}
    for environment in Environment:
        tenant, _ = await make_tenant(environment=environment)
        async with unit_of_work(readonly=True) as session:
            channel = await tenants.get_channel(session, tenant.id)
            assert channel is not None
            seen[environment] = tenants.credentials(channel, box=runtime().secrets, settings=settings)
    assert {env: (c.mode, c.base_url, c.production_url) for env, c in seen.items()} == {
        Environment.simulator: ("test", settings.simulator_url, server.production_url),
        Environment.sandbox: ("test", server.sandbox_url, server.production_url),
        Environment.production: ("live", server.production_url, server.production_url),
    }


@pytest.fixture
def recorded() -> Iterator[list[httpx.Request]]:
    yield []


def creds(mode: str, base_url: str) -> DarajaCredentials:
    return DarajaCredentials(
        base_url=base_url,
        consumer_key="key",
        consumer_secret=SecretStr("secret"),
        passkey=SecretStr(SANDBOX_PASSKEY),
        business_short_code="174379",
        party_b="174379",
        transaction_type="CustomerPayBillOnline",
        mode=mode,  # type: ignore[arg-type]
        production_url=PRODUCTION,
    )


PUSH = StkPushRequest(
    phone="254722005555",
    amount=10,
    callback_url="https://example.com/callbacks/daraja/x",
    account_reference="REF",
    description="Payment",
)


@pytest.mark.parametrize(
    ("mode", "base_url", "message"),
    [
        (
            "test",
            PRODUCTION,
            "Refused to send a test-mode request to the production M-Pesa host (api.safaricom.co.ke): test "
            "mode reaches only the simulator or the sandbox. Check that DARAJA_SANDBOX_URL and "
            "DARAJA_SIMULATOR_URL do not point at production.",
        ),
        (
            "test",
            PRODUCTION + "/",
            "Refused to send a test-mode request to the production M-Pesa host (api.safaricom.co.ke)",
        ),
        (
            "live",
            SANDBOX,
            "Refused to send a live request to sandbox.safaricom.co.ke, which is not the production M-Pesa "
            "host (api.safaricom.co.ke, DARAJA_PRODUCTION_URL): live mode never reaches a simulator or the "
            "sandbox.",
        ),
        ("live", "http://127.0.0.1:8000/sim/daraja", "Refused to send a live request to 127.0.0.1"),
    ],
)
async def test_the_client_refuses_to_cross_modes_before_sending_anything(
    recorded: list[httpx.Request], mode: str, base_url: str, message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        recorded.append(request)
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=())
        with pytest.raises(DarajaModeError) as refused:
            await client.stk_push(creds(mode, base_url), PUSH)
        assert refused.value.message.startswith(message)
        with pytest.raises(DarajaModeError):
            await client.stk_query(creds(mode, base_url), "ws_CO_1")
    assert recorded == []


async def test_the_client_sends_each_mode_where_it_belongs(recorded: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        recorded.append(request)
        if request.url.path.startswith("/oauth"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": "3599"})
        return httpx.Response(
            200,
            json={
                "MerchantRequestID": "m",
                "CheckoutRequestID": "ws_CO_1",
                "ResponseCode": "0",
                "ResponseDescription": "Success. Request accepted for processing",
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=())
        await client.stk_push(creds("test", SANDBOX), PUSH)
        await client.stk_push(creds("live", PRODUCTION), PUSH)
    assert [(r.url.host, r.url.path) for r in recorded] == [
        ("sandbox.safaricom.co.ke", "/oauth/v1/generate"),
        ("sandbox.safaricom.co.ke", "/mpesa/stkpush/v1/processrequest"),
        ("api.safaricom.co.ke", "/oauth/v1/generate"),
        ("api.safaricom.co.ke", "/mpesa/stkpush/v1/processrequest"),
    ]
