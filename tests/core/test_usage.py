"""core/usage: Nairobi months, networks, the figures read from log rows (the same percentiles on both
backends), the recorder's batches, the prune, and the three alerts with their exact notification rows:
a key used from a new network, a burst of refused keys, a credential or key changed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from core.audit.models import AuditLog
from core.auth.models import ApiKey
from core.auth.tokens import hash_api_key
from core.db import Scope, utcnow
from core.jobs.models import JobOutbox
from core.notify.models import Notification
from core.notify.sms import to_gsm_text
from core.runtime import unit_of_work
from core.tenants.models import Environment, Mode, Tenant
from core.usage.alerts import ALERT_CHANGES_JOB
from core.usage.jobs import prune_usage
from core.usage.models import ApiKeyNetwork, ApiRequest
from core.usage.networks import network_of
from core.usage.recorder import Caller, RequestFacts, UsageRecorder
from core.usage.service import NAIROBI as EAT
from core.usage.service import interpolated, month_label, month_start, usage
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_until

EAT_FORMAT = "%d %b %Y %H:%M EAT"


def bearer(token: str, ip: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if ip is not None:
        headers["X-Forwarded-For"] = ip  # the test server trusts its own loopback proxy (uvicorn)
    return headers


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


async def flush(server: LiveServer) -> None:
    await server.app.state.usage_recorder.flush()


async def notes(tenant: Tenant, kind: str) -> list[tuple[str, str, str]]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.tenant_id == tenant.id, Notification.kind == kind)
            .order_by(Notification.id)
        )
        return [(n.channel.value, n.recipient, n.body) for n in rows]


async def key_of(tenant: Tenant, key: str) -> ApiKey:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
    assert row is not None and row.tenant_id == tenant.id
    return row


class TestNairobiMonthsAndNetworks:
    def test_the_month_starts_at_midnight_eat_on_the_first(self) -> None:
        # 23:59:59 EAT on 30 November is still November; a second later it is December
        assert month_start(datetime(2026, 11, 30, 20, 59, 59, tzinfo=UTC)) == datetime(
            2026, 10, 31, 21, 0, tzinfo=UTC
        )
        assert month_start(datetime(2026, 11, 30, 21, 0, tzinfo=UTC)) == datetime(
            2026, 11, 30, 21, 0, tzinfo=UTC
        )
        assert month_label(datetime(2026, 11, 30, 21, 0, tzinfo=UTC)) == "2026-12"
        assert month_label(datetime(2026, 11, 30, 20, 59, tzinfo=UTC)) == "2026-11"
        # UTC+3 in July as in January: no daylight saving
        assert month_start(datetime(2026, 7, 15, 12, tzinfo=UTC)) == datetime(2026, 6, 30, 21, 0, tzinfo=UTC)

    def test_networks(self) -> None:
        assert network_of("41.90.12.7") == "41.90.12.0/24"
        assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
        assert network_of("::ffff:10.1.2.3") == "10.1.2.0/24"
        assert network_of(None) is None and network_of("testclient") is None

    def test_percentiles_are_postgres_s_percentile_cont(self) -> None:
        assert interpolated([10, 20, 30, 40], 0.5) == 25.0
        assert interpolated([10, 20, 30, 40], 0.95) == 38.5
        assert interpolated([7], 0.95) == 7 and interpolated([], 0.5) == 0.0


async def add_rows(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    async with unit_of_work(scope=Scope.tenant(tenant.id)) as session:
        await session.execute(
            insert(ApiRequest),
            [
                {
                    "tenant_id": tenant.id,
                    "api_key_id": None,
                    "app_id": None,
                    "mode": None,
                    "method": "GET",
                    "route": "/api/transactions",
                    "status_code": 200,
                    "latency_ms": 10,
                    "request_id": None,
                    "network": None,
                    **r,
                }
                for r in rows
            ],
        )


class TestFigures:
    async def test_periods_counts_and_percentiles_from_the_log(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Figures Duka", environment=Environment.simulator)
        key = await key_of(tenant, await make_api_key(tenant=tenant))
        boundary = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # 00:00 EAT, 1 December
        now = boundary + timedelta(hours=2)
        mine = {"api_key_id": key.id, "app_id": key.app_id, "mode": Mode.test}
        await add_rows(
            tenant,
            [
                # November (EAT): in the last 24 hours, not in this month
                {**mine, "created_at": boundary - timedelta(seconds=1), "latency_ms": 1000},
                # more than 24 hours ago: in neither
                {**mine, "created_at": now - timedelta(hours=25), "status_code": 500},
                # December
                *(
                    {**mine, "created_at": boundary + timedelta(minutes=i), "latency_ms": ms}
                    for i, ms in enumerate((10, 20, 30, 40))
                ),
                {
                    **mine,
                    "created_at": boundary,
                    "method": "POST",
                    "route": "/api/stk-push",
                    "status_code": 201,
                },
                {
                    **mine,
                    "created_at": boundary,
                    "method": "POST",
                    "route": "/api/stk-push",
                    "status_code": 409,
                },
                {**mine, "created_at": boundary, "status_code": 304},
                {"created_at": boundary, "status_code": 401},  # a login token's
            ],
        )
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant.id)) as session:
            out = await usage.figures(session, tenant_id=tenant.id, now=now)
        assert out.month == "2026-12"
        assert (out.this_month.start, out.last_24h.start) == (boundary, now - timedelta(hours=24))
        month, day = out.this_month, out.last_24h
        assert month.totals.model_dump() == {"requests": 8, "pushes": 1, "successes": 6, "failures": 2}
        assert day.totals.model_dump() == {"requests": 9, "pushes": 1, "successes": 7, "failures": 2}
        [key_fig] = month.keys
        assert (key_fig.key_id, key_fig.requests, key_fig.failures) == (key.id, 7, 1)
        assert [(a.name, a.requests) for a in month.apps] == [
            ("Default app", 7),
            ("Signed-in people (login tokens)", 1),
        ]
        lists = next(e for e in month.endpoints if e.route == "/api/transactions")
        # 10, 20, 30, 40 and the 304 and the 401 at 10 ms: 10, 10, 10, 20, 30, 40
        assert (lists.requests, lists.failures, lists.p50_ms, lists.p95_ms, lists.avg_ms) == (
            6,
            1,
            15.0,
            37.5,
            20.0,
        )
        assert [(e.method, e.route, e.requests) for e in month.endpoints] == [
            ("GET", "/api/transactions", 6),
            ("POST", "/api/stk-push", 2),
        ]
        # one key, one app
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant.id)) as session:
            only = await usage.figures(session, tenant_id=tenant.id, key_id=key.id, now=now)
        assert only.this_month.totals.requests == 7
        assert [a.name for a in only.this_month.apps] == ["Default app"]


class TestRecorder:
    async def test_a_batch_keeps_what_it_can_attribute(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Batch Duka", environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        recorder = UsageRecorder(flush_every=60)
        at = utcnow()

        def facts(caller: Caller, status: int = 200) -> RequestFacts:
            return RequestFacts(caller, "GET", "/api/transactions", status, 3, "rid", "41.90.12.0/24", at)

        recorder.record(facts(Caller(key_hash=hash_api_key(key), key_prefix=key[:12])))
        recorder.record(facts(Caller(tenant_id=tenant.id)))
        recorder.record(facts(Caller(tenant_id=uuid.uuid4())))  # a login token of a deleted business
        recorder.record(facts(Caller(key_hash="0" * 64, key_prefix="lp_test_zzzz"), 401))  # nobody's key
        assert recorder.pending == 4
        assert await recorder.flush() == 2
        assert recorder.pending == 0 and await recorder.flush() == 0
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant.id)) as session:
            rows = (
                await session.execute(
                    select(ApiRequest.api_key_id, ApiRequest.mode, ApiRequest.network)
                    .where(ApiRequest.tenant_id == tenant.id)
                    .order_by(ApiRequest.id)
                )
            ).all()
        row = await key_of(tenant, key)
        assert rows == [(row.id, Mode.test, "41.90.12.0/24"), (None, None, "41.90.12.0/24")]
        await recorder.close()

    async def test_the_buffer_is_bounded(self) -> None:
        recorder = UsageRecorder(flush_every=60, max_buffered=3)
        for i in range(5):
            recorder.record(
                RequestFacts(Caller(tenant_id=uuid.uuid4()), "GET", f"/api/{i}", 200, 1, None, None, utcnow())
            )
        assert (recorder.pending, recorder.dropped) == (3, 2)
        recorder._pending.clear()  # nothing of ours to write
        await recorder.close()

    async def test_prune_deletes_rows_past_the_retention(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Prune Duka", environment=Environment.simulator)
        days = server.settings.USAGE_RETENTION_DAYS
        await add_rows(
            tenant,
            [
                {"created_at": utcnow() - timedelta(days=days, minutes=1), "route": "/old"},
                {"created_at": utcnow() - timedelta(days=days - 1), "route": "/kept"},
            ],
        )
        await prune_usage()
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant.id)) as session:
            left = list(
                await session.scalars(select(ApiRequest.route).where(ApiRequest.tenant_id == tenant.id))
            )
        assert left == ["/kept"]


class TestNewNetworkAlert:
    async def test_a_key_used_from_a_new_network_is_told_once(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Network Duka", environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        row = await key_of(tenant, key)
        # the first network ever is where the key's system lives: not news
        assert (await client.get("/api/transactions", headers=bearer(key, "41.90.12.7"))).status_code == 200
        await flush(server)
        assert await notes(tenant, "security.new_network") == []
        # the same /24 again, and a refused request from elsewhere: still nothing
        assert (await client.get("/api/transactions", headers=bearer(key, "41.90.12.99"))).status_code == 200
        bad = key[:12] + "x" * 40
        assert (await client.get("/api/transactions", headers=bearer(bad, "102.0.0.1"))).status_code == 401
        await flush(server)
        assert await notes(tenant, "security.new_network") == []

        assert (await client.get("/api/transactions", headers=bearer(key, "197.248.5.6"))).status_code == 200
        assert (await client.get("/api/customers", headers=bearer(key, "197.248.5.200"))).status_code == 200
        await flush(server)
        async with unit_of_work(readonly=True, scope=Scope.tenant(tenant.id)) as session:
            first = await session.scalar(
                select(ApiRequest.created_at).where(
                    ApiRequest.api_key_id == row.id, ApiRequest.network == "197.248.5.0/24"
                )
            )
            networks = set(
                await session.scalars(select(ApiKeyNetwork.network).where(ApiKeyNetwork.api_key_id == row.id))
            )
        assert first is not None
        assert networks == {"41.90.12.0/24", "197.248.5.0/24"}
        body = (
            f"The test API key {key[:12]}… (“default”) of Network Duka was used from a new network, "
            f"197.248.5.0/24, at {first.astimezone(EAT).strftime(EAT_FORMAT)}: if that was not your own "
            "system, revoke the key in the panel (Settings > API keys) or with DELETE /api/api-keys/{id} and "
            "give your system a new one."
        )
        assert await notes(tenant, "security.new_network") == [
            ("sms", "254712345678", to_gsm_text(body)),
            ("email", owner.email, body),
        ]
        # known now: no second alert
        assert (await client.get("/api/transactions", headers=bearer(key, "197.248.5.7"))).status_code == 200
        await flush(server)
        assert len(await notes(tenant, "security.new_network")) == 2


class TestRefusedKeysAlert:
    async def test_twenty_refusals_in_five_minutes_are_told_once_per_half_hour(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Refused Duka", environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        row = await key_of(tenant, key)
        as_owner = await login(client, owner.email)
        assert (await client.delete(f"/api/api-keys/{row.id}", headers=as_owner)).status_code == 200
        for _ in range(19):
            assert (
                await client.get("/api/transactions", headers=bearer(key, "102.68.1.9"))
            ).status_code == 401
        await flush(server)
        assert await notes(tenant, "security.refused_keys") == []
        assert (await client.get("/api/transactions", headers=bearer(key, "102.68.1.9"))).status_code == 401
        await flush(server)
        body = (
            f"20 requests to the lipapush API with keys of Refused Duka were refused in the last 5 minutes, "
            f"most with the test API key {key[:12]}… (“default”) from 102.68.1.0/24: a system is using a "
            "revoked, expired or mistyped key, or someone is guessing; if the key is yours and may have "
            "leaked, revoke it in the panel (Settings > API keys) or with DELETE /api/api-keys/{id}."
        )
        assert await notes(tenant, "security.refused_keys") == [
            ("sms", "254712345678", to_gsm_text(body)),
            ("email", owner.email, body),
        ]
        for _ in range(5):
            assert (await client.get("/api/transactions", headers=bearer(key))).status_code == 401
        await flush(server)
        assert len(await notes(tenant, "security.refused_keys")) == 2


async def alert_jobs(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(select(JobOutbox.kwargs).where(JobOutbox.actor == ALERT_CHANGES_JOB))
        return sum(1 for kw in rows if kw.get("tenant_id") == str(tenant.id))


async def told_changes(tenant: Tenant) -> list[tuple[str, str, str]]:
    """The change alerts, once the jobs that write them have run."""

    async def done() -> bool:
        return await alert_jobs(tenant) == 0

    await wait_until(done)
    return await notes(tenant, "security.change")


async def audit_time(tenant: Tenant, action: str) -> str:
    async with unit_of_work(readonly=True) as session:
        at = await session.scalar(
            select(func.max(AuditLog.created_at)).where(
                AuditLog.tenant_id == tenant.id, AuditLog.action == action
            )
        )
    assert at is not None
    return at.astimezone(EAT).strftime(EAT_FORMAT)


class TestChangeAlerts:
    async def test_keys_made_rolled_and_revoked_by_a_person_are_told(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Change Duka", environment=Environment.simulator)
        # lipapush's own changes (the factories, like the operator's CLI) are not told, nor queued
        await make_api_key(tenant=tenant)
        assert await alert_jobs(tenant) == 0
        as_owner = await login(client, owner.email)
        r = await client.post("/api/api-keys", json={"name": "Till system"}, headers=as_owner)
        assert r.status_code == 201, r.text
        made = r.json()
        assert await alert_jobs(tenant) == 1  # written with the key, in its transaction
        who = f"{owner.email} (owner) through the API"
        created = (
            f"A new test API key {made['prefix']}… (“Till system”) was created for Change Duka by {who} at "
            f"{await audit_time(tenant, 'apikey.created')}: if that was not you, revoke any key you did not "
            "make in the panel (Settings > API keys) or with DELETE /api/api-keys/{id} and change your "
            "password."
        )
        assert await told_changes(tenant) == [
            ("sms", "254712345678", to_gsm_text(created)),
            ("email", owner.email, created),
        ]

        r = await client.post(
            f"/api/api-keys/{made['id']}/roll", json={"overlap_seconds": 0}, headers=as_owner
        )
        assert r.status_code == 201, r.text
        rolled = (
            f"The API key {made['prefix']}… of Change Duka was rolled to the new key {r.json()['prefix']}… "
            f"by {who} at {await audit_time(tenant, 'apikey.rolled')}: if that was not you, revoke any key "
            "you did not make in the panel (Settings > API keys) or with DELETE /api/api-keys/{id} and "
            "change your password."
        )
        told = await told_changes(tenant)
        assert told[2:] == [("sms", "254712345678", to_gsm_text(rolled)), ("email", owner.email, rolled)]

        r = await client.delete(f"/api/api-keys/{r.json()['id']}", headers=as_owner)
        assert r.status_code == 200, r.text
        revoked = (
            f"The API key {r.json()['prefix']}… of Change Duka was revoked by {who} at "
            f"{await audit_time(tenant, 'apikey.revoked')}: if that was not you, change your password and "
            "check your keys in the panel (Settings > API keys)."
        )
        assert (await told_changes(tenant))[4:] == [
            ("sms", "254712345678", to_gsm_text(revoked)),
            ("email", owner.email, revoked),
        ]

    async def test_channel_credentials_and_webhook_secrets(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Channel Duka", with_channel=False)
        as_owner = await login(client, owner.email)
        # the business's first channel is setting up, not a change
        r = await client.post("/api/settings", json={"environment": "simulator"}, headers=as_owner)
        assert r.status_code == 200, r.text
        assert await told_changes(tenant) == []

        [channel] = (await client.get("/api/channels", headers=as_owner)).json()
        r = await client.put(
            f"/api/channels/{channel['id']}",
            json={"environment": "simulator", "business_short_code": "600100"},
            headers=as_owner,
        )
        assert r.status_code == 200, r.text
        changed = (
            "The M-Pesa credentials of the channel “Main” of Channel Duka were changed (short code 600100) "
            f"by {owner.email} (owner) through the API at "
            f"{await audit_time(tenant, 'channel.credentials_changed')}: if that was not you, change your "
            "password, revoke your API keys in the panel (Settings > API keys) or with DELETE "
            "/api/api-keys/{id} and put your own credentials back (Settings > Channels)."
        )
        assert await told_changes(tenant) == [
            ("sms", "254712345678", to_gsm_text(changed)),
            ("email", owner.email, changed),
        ]

        r = await client.post(
            "/api/webhook-endpoints", json={"url": "http://127.0.0.1:9/hooks"}, headers=as_owner
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            f"/api/webhook-endpoints/{r.json()['id']}/secret/rotate",
            json={"overlap_seconds": 0},
            headers=as_owner,
        )
        assert r.status_code == 200, r.text
        rotated = (
            f"The signing secret of a webhook endpoint of Channel Duka was rotated by {owner.email} (owner) "
            f"through the API at {await audit_time(tenant, 'webhook.secret_rotated')}: if that was not you, "
            "change your password, check the endpoint's URL in the panel (Settings > Webhooks) and revoke "
            "your API keys in the panel (Settings > API keys) or with DELETE /api/api-keys/{id}."
        )
        assert (await told_changes(tenant))[2:] == [
            ("sms", "254712345678", to_gsm_text(rotated)),
            ("email", owner.email, rotated),
        ]
