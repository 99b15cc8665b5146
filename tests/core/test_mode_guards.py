"""What an API key may do to keys and apps, and a payment acting in its own mode after its channel changed.

- A key manages keys of its own mode only: a test key made in the simulator or sandbox phase (every
  scope, keys:write included) cannot mint, roll or revoke live keys once the business is live, nor
  see them listed.
- A key stays in its own app: it makes keys there only (another app is "not found"), rolls and
  revokes its app's keys only, changes only its own app, and never makes an app.
- A deferred push, and a status query, carry the payment's mode, not the channel's as it is now: a
  test payment never reaches production after the owner went live, nor a live one the sandbox.
- The Daraja client tells the production host by name and port, whatever the case, a trailing dot,
  the scheme or a default port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from core.access.actor import Actor, Via
from core.access.permissions import ALL_SCOPES, ApiScope
from core.apps import use_cases as app_cases
from core.auth import use_cases as people
from core.auth.models import ApiKey, Role, User
from core.auth.service import auth
from core.auth.tokens import hash_api_key
from core.config import SANDBOX_PASSKEY
from core.daraja import DarajaClient, DarajaCredentials, DarajaModeError, MemoryTokenStore, StkPushRequest
from core.daraja.client import check_mode
from core.daraja.schemas import StkQueryResult
from core.db import utcnow
from core.errors import NotFound, PermissionDenied
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.payments.push import channel_changed, send_push
from core.payments.reconcile import resolve_payment
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment, Mode, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import _channel_for, make_api_key, make_tenant

TEST_KEY_CREATES = (
    "This is a test key (lp_test_…), and a test key manages test keys only: create live keys signed in "
    "as the owner (panel: Settings → API keys; CLI: `lipapush apikey`) or with a live key."
)
TEST_KEY_ROLLS = (
    "This is a test key (lp_test_…), and a test key manages test keys only: roll or revoke live keys "
    "signed in as the owner (panel: Settings → API keys; CLI: `lipapush apikey`) or with a live key."
)
OTHER_APPS_KEY = (
    "This key belongs to another app, and an API key manages the keys of its own app only: roll or "
    "revoke it signed in as the owner (panel: Settings → API keys; CLI: `lipapush apikey`) or with a key "
    "of its app."
)
NO_APPS_BY_KEY = (
    "Apps are created by the owner: panel Settings → Apps, `lipapush app create`, or with a login token "
    "(POST /api/login), not with an API key."
)


# -- helpers ----------------------------------------------------------------------------------------
def owner_of(tenant: Tenant, owner: User) -> Actor:
    return Actor.for_user(
        user_id=owner.id, tenant_id=tenant.id, role=Role.owner, via=Via.api, tenant_name=tenant.name
    )


async def as_key(key: str, scopes: list[ApiScope] | None = None) -> Actor:
    """The actor a request with `key` becomes (its app and mode included)."""
    async with unit_of_work() as session:
        who = await auth.principal_from_api_key(session, key)
    assert who.tenant_id is not None and who.api_key_id is not None
    return Actor.for_api_key(
        api_key_id=who.api_key_id,
        tenant_id=who.tenant_id,
        scopes=ALL_SCOPES if scopes is None else scopes,
        app_id=who.app_id,
        mode=who.mode,
    )


async def key_row(key: str) -> ApiKey:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
    assert row is not None
    return row


async def keys_of(tenant: Tenant) -> list[tuple[str, Mode, uuid.UUID | None, bool]]:
    """(name, mode, app, revoked) of every key of the business, oldest first."""
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.created_at, ApiKey.id)
        )
        return [(r.name, r.mode, r.app_id, r.revoked_at is not None) for r in rows]


async def switch_channel(tenant: Tenant, environment: Environment) -> None:
    """The owner saves channel settings of another environment (verified, as after the KES 1 push)."""
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        channel = await tenants.save_channel(
            session,
            tenant=row,
            data=_channel_for(environment, ChannelKind.paybill),
            box=runtime().secrets,
            by=None,
        )
        await tenants.mark_verified(session, channel=channel)


def unique_phone() -> str:
    return f"2547{uuid.uuid4().int % 10**4:04d}5555"


async def pushes_to(url: str, phone: str) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{url}/_sim/requests")
    r.raise_for_status()
    return sum(1 for body in r.json() if body.get("PhoneNumber") == phone)


async def pending_payment(tenant: Tenant, phone: str, *, checkout: str | None = None) -> uuid.UUID:
    """A pending payment as a push records it, in its channel's mode (a USSD push: sent by a job)."""
    async with unit_of_work() as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        p = Payment(
            tenant_id=tenant.id,
            channel_id=channel.id,
            mode=channel.mode,
            source=PaymentSource.ussd,
            status=PaymentStatus.pending,
            amount=10,
            phone=phone,
            account_reference="REF",
            description="USSD",
            commission_cents=0,
            reserved_cents=0,
            checkout_request_id=checkout,
            pushed_at=utcnow() if checkout else None,
        )
        session.add(p)
        await session.flush()
        return p.id


async def payment(pid: uuid.UUID) -> Payment:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Payment, pid)
    assert row is not None
    return row


# -- 5: a key manages keys of its own mode only -------------------------------------------------------
async def test_a_test_key_cannot_mint_roll_revoke_or_list_live_keys_after_going_live(
    server: LiveServer,
) -> None:
    tenant, owner = await make_tenant(environment=Environment.sandbox)
    test_key = await make_api_key(tenant=tenant)  # every scope, as a key made without choosing
    assert test_key.startswith("lp_test_")
    actor = await as_key(test_key)
    await switch_channel(tenant, Environment.production)
    live_key = await make_api_key(tenant=tenant)  # the owner's, once live
    live = await key_row(live_key)

    for mode in (None, "live"):  # left out, it would be the app's mode: live now
        with pytest.raises(PermissionDenied) as refused:
            await people.create_api_key(actor, name="minted", mode=mode)
        assert refused.value.message == TEST_KEY_CREATES
    with pytest.raises(PermissionDenied) as refused:
        await people.roll_api_key(actor, live.id, overlap_seconds=0)
    assert refused.value.message == TEST_KEY_ROLLS
    with pytest.raises(PermissionDenied) as refused:
        await people.revoke_api_key(actor, live.id)
    assert refused.value.message == TEST_KEY_ROLLS

    assert [k.prefix for k in await people.list_api_keys(actor)] == [test_key[:12]]
    assert await keys_of(tenant) == [
        ("default", Mode.test, live.app_id, False),
        ("default", Mode.live, live.app_id, False),
    ]
    # the owner sees both and still makes live keys; a live key makes live keys
    mine = owner_of(tenant, owner)
    assert {k.mode for k in await people.list_api_keys(mine)} == {Mode.test, Mode.live}
    assert (await people.create_api_key(mine, name="by owner")).key.startswith("lp_live_")
    live_actor = await as_key(live_key)
    assert (await people.create_api_key(live_actor, name="by live key")).key.startswith("lp_live_")
    assert {k.mode for k in await people.list_api_keys(live_actor)} == {Mode.live}


async def test_a_test_key_still_manages_test_keys(server: LiveServer) -> None:
    tenant, _ = await make_tenant(environment=Environment.simulator)
    actor = await as_key(await make_api_key(tenant=tenant))
    made = await people.create_api_key(actor, name="ci")
    assert made.key.startswith("lp_test_") and made.mode is Mode.test
    rolled = await people.roll_api_key(actor, made.id, overlap_seconds=0)
    assert rolled.mode is Mode.test
    assert (await people.revoke_api_key(actor, rolled.id)).revoked_at is not None
    # a live key is refused as a test key would be told, before the channel is even asked
    with pytest.raises(PermissionDenied) as refused:
        await people.create_api_key(actor, name="live", mode="live")
    assert refused.value.message == TEST_KEY_CREATES


# -- 6: a key stays in its own app --------------------------------------------------------------------
async def test_an_apps_key_makes_keys_in_its_own_app_only(server: LiveServer) -> None:
    tenant, owner = await make_tenant()
    mine = owner_of(tenant, owner)
    default = await app_cases.create_app(mine, name="Default")
    a = await app_cases.create_app(mine, name="Team A")
    b = await app_cases.create_app(mine, name="Team B")
    async with unit_of_work() as session:
        _, key_a = await auth.create_api_key(session, tenant_id=tenant.id, created_by=None, app_id=a.id)
        row_b, _ = await auth.create_api_key(session, tenant_id=tenant.id, created_by=None, app_id=b.id)
    actor = await as_key(key_a)

    with pytest.raises(NotFound) as unknown:
        await people.create_api_key(actor, name="into B", app_id=b.id)
    assert unknown.value.message == "No such app. List this business's apps with GET /api/apps."
    # without an app, a key's new key is in its own app (not the business's default app)
    made = await people.create_api_key(actor, name="own")
    same = await people.create_api_key(actor, name="own again", app_id=a.id)
    for attempt in (
        people.roll_api_key(actor, row_b.id),
        people.revoke_api_key(actor, row_b.id),
    ):
        with pytest.raises(PermissionDenied) as refused:
            await attempt
        assert refused.value.message == OTHER_APPS_KEY
    rolled = await people.roll_api_key(actor, made.id, overlap_seconds=0)
    await people.revoke_api_key(actor, same.id)

    assert sorted((n, app, revoked) for n, _, app, revoked in await keys_of(tenant)) == sorted(
        [
            ("default", a.id, False),  # key_a
            ("default", b.id, False),  # B's key, untouched
            ("own", a.id, True),  # rolled with no overlap
            ("own", a.id, False),  # what replaced it
            ("own again", a.id, True),
        ]
    )
    assert rolled.name == "own" and default.id not in {app for *_, app, _ in await keys_of(tenant)}
    # the owner still makes keys in any app
    await people.create_api_key(mine, name="for B", app_id=b.id)


async def test_an_apps_key_changes_only_its_own_app_and_makes_none(server: LiveServer) -> None:
    tenant, owner = await make_tenant()
    mine = owner_of(tenant, owner)
    a = await app_cases.create_app(mine, name="Team A")
    b = await app_cases.create_app(mine, name="Team B", callback_hosts=["b.example.com"])
    async with unit_of_work() as session:
        _, key_a = await auth.create_api_key(session, tenant_id=tenant.id, created_by=None, app_id=a.id)
    writer = await as_key(key_a, [ApiScope.keys_write, ApiScope.keys_read])

    with pytest.raises(PermissionDenied) as refused:
        await app_cases.create_app(writer, name="Team C")
    assert refused.value.message == NO_APPS_BY_KEY
    for doing, attempt in (
        ("rename", app_cases.rename_app(writer, b.id, name="Mine now")),
        (
            "change the callback hosts of",
            app_cases.set_callback_hosts(writer, b.id, hosts=["evil.example.com"]),
        ),
        ("archive", app_cases.archive_app(writer, b.id)),
    ):
        with pytest.raises(PermissionDenied) as refused:
            await attempt
        assert refused.value.message == (
            "An API key changes only its own app, and “Team B” is another app of this business: "
            f"{doing} it in the panel (Settings → Apps), with `lipapush app`, or with a login token."
        )
    # its own app it renames and points elsewhere; every app it still lists
    assert (await app_cases.rename_app(writer, a.id, name="Team A web")).name == "Team A web"
    assert (await app_cases.set_callback_hosts(writer, a.id, hosts=["a.example.com"])).callback_hosts == [
        "a.example.com"
    ]
    listed = await app_cases.list_apps(writer)
    assert [(x.name, x.callback_hosts) for x in listed] == [
        ("Team A web", ["a.example.com"]),
        ("Team B", ["b.example.com"]),
    ]


# -- 9: a payment acts in its own mode ----------------------------------------------------------------
async def test_a_deferred_test_push_is_not_sent_after_the_channel_went_live(server: LiveServer) -> None:
    tenant, _ = await make_tenant(environment=Environment.sandbox)
    phone = unique_phone()
    pid = await pending_payment(tenant, phone)
    await switch_channel(tenant, Environment.production)  # before the send_push job runs
    await send_push.fn(payment_id=str(pid))
    assert await pushes_to(server.production_url, phone) == 0
    assert await pushes_to(server.sandbox_url, phone) == 0
    row = await payment(pid)
    assert (row.status, row.mode, row.commission_cents) == (PaymentStatus.failed, Mode.test, 0)
    assert row.result_desc == channel_changed(Mode.test)
    assert row.result_desc == (
        "Not sent: this business's M-Pesa channel changed from test to live after this push was "
        "recorded, and a test payment never reaches real money. Send it again: it goes through the "
        "live channel as a live payment."
    )
    # a redelivered job changes nothing
    await send_push.fn(payment_id=str(pid))
    assert (await payment(pid)).status is PaymentStatus.failed
    assert await pushes_to(server.production_url, phone) == 0


async def test_a_deferred_live_push_is_not_sent_to_the_sandbox(server: LiveServer) -> None:
    tenant, _ = await make_tenant(environment=Environment.production)
    phone = unique_phone()
    pid = await pending_payment(tenant, phone)
    await switch_channel(tenant, Environment.sandbox)
    await send_push.fn(payment_id=str(pid))
    assert await pushes_to(server.sandbox_url, phone) == 0
    assert await pushes_to(server.production_url, phone) == 0
    row = await payment(pid)
    assert (row.status, row.mode) == (PaymentStatus.failed, Mode.live)
    assert row.result_desc == (
        "Not sent: this business's M-Pesa channel changed from live to test after this push was "
        "recorded, and a live payment never goes to a simulator or the sandbox. Send it again once the "
        "production channel is back, or as a test payment."
    )


async def test_a_deferred_push_on_an_unchanged_channel_is_sent(server: LiveServer) -> None:
    tenant, _ = await make_tenant(environment=Environment.sandbox)
    phone = unique_phone()
    pid = await pending_payment(tenant, phone)
    await send_push.fn(payment_id=str(pid))
    assert await pushes_to(server.sandbox_url, phone) == 1
    assert (await payment(pid)).checkout_request_id is not None


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str | None, str]]]:
    """Every STK query the app makes: (the mode it acted in, what came of it)."""
    seen: list[tuple[str | None, str]] = []
    original = DarajaClient.stk_query

    async def stk_query(self: DarajaClient, creds: DarajaCredentials, checkout: str) -> StkQueryResult:
        try:
            result = await original(self, creds, checkout)
        except Exception as exc:
            seen.append((creds.mode, type(exc).__name__))
            raise
        seen.append((creds.mode, "answered"))
        return result

    monkeypatch.setattr(DarajaClient, "stk_query", stk_query)
    yield seen


@pytest.mark.parametrize(
    ("before", "after", "ending"),
    [
        (Environment.sandbox, Environment.production, "It was a test payment: no money moved."),
        (
            Environment.production,
            Environment.sandbox,
            "If the customer was charged, the receipt will show in your M-Pesa statement.",
        ),
    ],
)
async def test_a_status_query_keeps_the_payments_mode_and_it_expires(
    server: LiveServer,
    queries: list[tuple[str | None, str]],
    before: Environment,
    after: Environment,
    ending: str,
) -> None:
    tenant, _ = await make_tenant(environment=before)
    pid = await pending_payment(tenant, unique_phone(), checkout=f"ws_CO_{uuid.uuid4().hex[:12]}")
    mode = (await payment(pid)).mode
    await switch_channel(tenant, after)

    assert await resolve_payment(pid) is PaymentStatus.pending  # nothing raised, nothing sent
    row = await payment(pid)
    assert row.query_attempts == 1
    assert row.next_check_at is not None and row.next_check_at >= utcnow() + timedelta(seconds=25)
    assert queries == [(mode.value, "DarajaModeError")]

    # past its expiry it expires, saying why it could not be checked
    async with unit_of_work() as session:
        await session.execute(
            update(Payment)
            .where(Payment.id == pid)
            .values(created_at=utcnow() - timedelta(seconds=runtime().settings.EXPIRE_AFTER_SECONDS + 5))
        )
    assert await resolve_payment(pid) is PaymentStatus.expired
    now = "live" if mode is Mode.test else "test"
    assert (await payment(pid)).result_desc == (
        f"This business's M-Pesa channel changed from {mode.value} to {now} after this {mode.value} "
        f"payment was sent, so its status could not be checked with M-Pesa, and no final answer came in "
        f"time: it expired. {ending}"
    )
    assert queries == [(mode.value, "DarajaModeError")] * 2


# -- the production host, however it is written -------------------------------------------------------
PRODUCTION = "https://api.safaricom.co.ke"


def creds(mode: str, base_url: str, production_url: str = PRODUCTION) -> DarajaCredentials:
    return DarajaCredentials(
        base_url=base_url,
        consumer_key="key",
        consumer_secret=SecretStr("secret"),
        passkey=SecretStr(SANDBOX_PASSKEY),
        business_short_code="174379",
        party_b="174379",
        transaction_type="CustomerPayBillOnline",
        mode=mode,  # type: ignore[arg-type]
        production_url=production_url,
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.safaricom.co.ke.",
        "http://api.safaricom.co.ke",
        "https://API.Safaricom.co.ke",
        "https://api.safaricom.co.ke:443",
        "http://api.safaricom.co.ke:80/",
        "https://user@api.safaricom.co.ke./mpesa",
    ],
)
async def test_test_mode_never_reaches_production_however_it_is_written(base_url: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    with pytest.raises(DarajaModeError) as refused:
        check_mode(creds("test", base_url))
    assert refused.value.message.startswith(
        "Refused to send a test-mode request to the production M-Pesa host (api.safaricom.co.ke)"
    )
    check_mode(creds("live", base_url))  # the same host: live may go there
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = DarajaClient(http=http, tokens=MemoryTokenStore(), retry_backoff=())
        push = StkPushRequest(
            phone="254722005555",
            amount=10,
            callback_url="https://example.com/callbacks/daraja/x",
            account_reference="REF",
            description="Payment",
        )
        with pytest.raises(DarajaModeError):
            await client.stk_push(creds("test", base_url), push)
    assert sent == []


@pytest.mark.parametrize(
    ("base_url", "production_url", "test_allowed"),
    [
        ("https://sandbox.safaricom.co.ke", PRODUCTION, True),
        ("https://api.safaricom.co.ke.evil.example", PRODUCTION, True),
        # stand-ins on one machine differ by port (the test server runs them so)
        ("http://127.0.0.1:8001", "http://127.0.0.1:8002", True),
        ("http://127.0.0.1:8002/", "http://127.0.0.1:8002", False),
        ("https://127.0.0.1", "http://127.0.0.1:443", False),
    ],
)
def test_other_hosts_and_ports_are_not_production(
    base_url: str, production_url: str, test_allowed: bool
) -> None:
    if test_allowed:
        check_mode(creds("test", base_url, production_url))
        with pytest.raises(DarajaModeError):
            check_mode(creds("live", base_url, production_url))
    else:
        with pytest.raises(DarajaModeError):
            check_mode(creds("test", base_url, production_url))
        check_mode(creds("live", base_url, production_url))
