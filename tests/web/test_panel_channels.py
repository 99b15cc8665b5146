"""Settings → Channels in the panel over HTTP: a business's several M-Pesa channels listed, added (with
its KES 1 test, verified when the simulator approves it), renamed, re-tested, given new credentials
and made primary; the name and role refusals; another business's channel unknown; and the apps pages
choosing and changing an app's channel (refused across modes while the app has keys)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from core.apps.models import App
from core.audit.models import AuditLog
from core.auth.models import Role
from core.config import SANDBOX_PASSKEY, SANDBOX_SHORT_CODE
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.runtime import unit_of_work
from core.tenants.models import ChannelKind, Environment, MpesaChannel, Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import business_client, csrf_of, text_of
from tests.support.waiting import wait_until

LIST = "/app/settings/channels"
NOT_FOR_YOU = "This is for the owner of"


def sandbox(name: str, **over: str) -> dict[str, str]:
    """The add form filled in for a channel the test server's Daraja stand-ins accept (any app, the
    public sandbox passkey); production goes to a stand-in of its own too (tests/conftest.py)."""
    return {
        "name": name,
        "environment": "sandbox",
        "kind": "paybill",
        "business_short_code": SANDBOX_SHORT_CODE,
        "till_number": "",
        "consumer_key": "ck-" + uuid.uuid4().hex,
        "consumer_secret": "cs-" + uuid.uuid4().hex,
        "passkey": SANDBOX_PASSKEY,
        **over,
    }


async def channels_of(tenant: Tenant) -> list[tuple[str, Environment, bool, bool]]:
    """(name, environment, primary, verified) of each of the business's channels, oldest first."""
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(MpesaChannel)
            .where(MpesaChannel.tenant_id == tenant.id)
            .order_by(MpesaChannel.created_at, MpesaChannel.id)
        )
        return [(c.name, c.environment, c.is_primary, c.verified_at is not None) for c in rows]


async def channel_named(tenant: Tenant, name: str) -> MpesaChannel:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(
            select(MpesaChannel).where(MpesaChannel.tenant_id == tenant.id, MpesaChannel.name == name)
        )
        assert row is not None, name
        return row


async def app_named(tenant: Tenant, name: str) -> App:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(App).where(App.tenant_id == tenant.id, App.name == name))
        assert row is not None, name
        return row


async def audits(tenant: Tenant, prefix: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(action, target, detail) of the business's audit rows whose action starts with `prefix`."""
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.tenant_id == tenant.id, AuditLog.action.like(f"{prefix}%"))
            .order_by(AuditLog.id)
        )
        return [(a.action, a.target, dict(a.detail or {})) for a in rows]


async def latest_test_settled(channel_id: uuid.UUID, *, before: uuid.UUID | None) -> bool:
    """Whether the channel's latest KES 1 test (a newer one than `before`) has left pending."""
    async with unit_of_work(readonly=True) as session:
        channel = await session.get(MpesaChannel, channel_id)
        assert channel is not None
        if channel.verification_payment_id in (None, before):
            return False
        payment = await session.get(Payment, channel.verification_payment_id)
        return payment is not None and payment.status is not PaymentStatus.pending


def channel_ids(page: str) -> list[str]:
    return re.findall(r'<tr id="channel-([0-9a-f-]{36})">', page)


async def post(panel: httpx.AsyncClient, action: str, data: dict[str, str] | None = None) -> httpx.Response:
    """Submit a form with the session's CSRF token (the same on every page of the session)."""
    page = await panel.get("/app/settings")
    assert page.status_code == 200
    return await panel.post(action, data={**(data or {}), "csrf_token": csrf_of(page.text)})


async def wait_verified(panel: httpx.AsyncClient, channel_id: uuid.UUID) -> None:
    """Until the simulator's callback has verified the channel, read as the page's poll reads it."""

    async def verified() -> bool:
        frag = await panel.get(f"{LIST}/{channel_id}/verification")
        assert frag.status_code == 200
        return text_of(frag.text, "verification-state") == "verified"

    await wait_until(verified)


class TestList:
    async def test_the_primary_channel_is_listed_and_linked_from_settings(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        main = await channel_named(tenant, "Main")
        panel = await business_client(server.url, owner)
        try:
            settings = await panel.get("/app/settings")
            assert '<a href="/app/settings/channels">Channels</a>' in settings.text
            page = await panel.get(LIST)
            assert page.status_code == 200
            assert channel_ids(page.text) == [str(main.id)]
            assert text_of(page.text, f"channel-{main.id}") == (
                "Main primary Paybill 174379 simulator test verified 0"
            )
            assert 'action="/app/settings/channels"' in page.text
            # the page's own nav entry is the current one, not the primary channel's page beside it
            assert '<a href="/app/settings/channels" aria-current="page">Channels</a>' in page.text
            assert '<a href="/app/settings/channel">M-Pesa channel</a>' in page.text

            one = await panel.get(f"{LIST}/{main.id}")
            assert one.status_code == 200
            assert text_of(one.text, "channel-title") == "Main"
            assert text_of(one.text, "ch-primary").startswith("primary")
            assert text_of(one.text, "verification-state") == "verified"
            assert text_of(one.text, "primary-state").startswith("This is the primary channel.")
        finally:
            await panel.aclose()


class TestAdd:
    async def test_a_sandbox_channel_is_added_unverified_then_verified(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(environment=Environment.production)
        form = sandbox("Test keys")
        panel = await business_client(server.url, owner)
        try:
            r = await post(panel, LIST, form)
            assert r.status_code == 303
            added = await channel_named(tenant, "Test keys")
            assert r.headers["location"] == f"{LIST}/{added.id}?done=added"
            assert (added.is_primary, added.environment, added.business_short_code) == (
                False,
                Environment.sandbox,
                SANDBOX_SHORT_CODE,
            )
            async with unit_of_work(readonly=True) as session:
                test = await session.get(Payment, added.verification_payment_id)
            assert test is not None
            assert (test.channel_id, test.amount, test.source, test.phone) == (
                added.id,
                1,
                PaymentSource.onboarding,
                "254712345678",
            )

            page = await panel.get(r.headers["location"])
            assert text_of(page.text, "done").startswith("Channel added. A KES 1 test prompt went to")
            # waiting for the owner's phone, or already approved: the simulator answers in 0.2 s
            state = text_of(page.text, "verification-state")
            assert state in ("waiting", "verified")
            if state == "waiting":
                assert f'data-poll="{LIST}/{added.id}/verification"' in page.text
            for clear in (form["consumer_key"], form["consumer_secret"], form["passkey"]):
                assert clear not in page.text
            await wait_verified(panel, added.id)

            listed = await panel.get(LIST)
            main = await channel_named(tenant, "Main")
            assert channel_ids(listed.text) == [str(main.id), str(added.id)]
            assert text_of(listed.text, f"channel-{added.id}") == (
                "Test keys Paybill 174379 sandbox test verified 0"
            )
        finally:
            await panel.aclose()
        assert await channels_of(tenant) == [
            ("Main", Environment.production, True, True),
            ("Test keys", Environment.sandbox, False, True),
        ]
        assert await audits(tenant, "channel.added") == [
            (
                "channel.added",
                str(added.id),
                {
                    "via": "panel",
                    "channel": "Test keys",
                    "environment": "sandbox",
                    "kind": "paybill",
                    "short_code": "174379",
                },
            )
        ]
        main = await channel_named(tenant, "Main")
        assert [(a, t) for a, t, _ in await audits(tenant, "channel.verified")] == [
            ("channel.verified", str(main.id)),  # make_tenant
            ("channel.verified", str(added.id)),
        ]

    async def test_a_taken_name_or_bad_fields_are_shown_and_nothing_is_added(
        self, server: LiveServer
    ) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        typed_secret = "typed-but-refused-" + uuid.uuid4().hex
        panel = await business_client(server.url, owner)
        try:
            taken = await post(panel, LIST, sandbox("  main ", consumer_secret=typed_secret))
            assert taken.status_code == 409
            assert text_of(taken.text, "name-error") == (
                "This business already has a channel named “main”: choose another name, or rename that one."
            )
            assert 'value="  main "' in taken.text  # what was typed stays, so it can be fixed
            assert typed_secret not in taken.text  # but a secret is never written back

            bad = await post(
                panel, LIST, sandbox("", business_short_code="12ab", consumer_key="", consumer_secret="")
            )
            assert bad.status_code == 422  # every complaint at once, each beside its field
            assert text_of(bad.text, "name-error") == (
                "A channel's name is 1 to 60 characters, like “Westlands till”."
            )
            assert text_of(bad.text, "business_short_code-error") == "The short code must be 5 to 7 digits."
            till = await post(panel, LIST, sandbox("Branch", environment="production", kind="till"))
            assert till.status_code == 422
            assert text_of(till.text, "till_number-error") == (
                "The till number is required for a Till channel (the short code is the Store/HO number)."
            )
        finally:
            await panel.aclose()
        assert await channels_of(tenant) == [("Main", Environment.simulator, True, True)]
        assert await audits(tenant, "channel.added") == []

    async def test_a_refused_test_push_is_said_then_new_credentials_verify_it_and_it_becomes_primary(
        self, server: LiveServer
    ) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        main = await channel_named(tenant, "Main")
        wrong = "not-the-passkey-" + uuid.uuid4().hex
        panel = await business_client(server.url, owner)
        try:
            # Daraja refuses the push itself (the simulator checks the password made with the passkey):
            # the channel is saved, and the reason is on the page
            r = await post(panel, LIST, sandbox("Westlands", passkey=wrong))
            assert r.status_code == 201
            westlands = await channel_named(tenant, "Westlands")
            assert text_of(r.text, "channel-title") == "Westlands"
            assert text_of(r.text, "not-sent").startswith(
                "Saved, but the KES 1 test prompt could not be sent: "
            )
            assert text_of(r.text, "verification-state") == "not verified"
            assert wrong not in r.text
            assert 'action="/app/settings/channels/' + str(westlands.id) + '/primary"' not in r.text
            assert text_of(r.text, "primary-state") == (
                "Only a verified channel can be the primary one: approve its KES 1 test payment first."
            )

            # a stale page posting "make primary" anyway is told why, beside the section
            refused = await post(panel, f"{LIST}/{westlands.id}/primary")
            assert refused.status_code == 409
            assert text_of(refused.text, "primary-error") == (
                "The channel “Westlands” is not verified yet, and the bot, USSD and the panel push "
                "through the primary channel: approve its KES 1 test payment first (POST "
                f"/api/channels/{westlands.id}/verify resends it), then make it the primary channel."
            )

            # the same wrong passkey again: the resend is refused the same way, said on the page
            again = await post(panel, f"{LIST}/{westlands.id}/verify")
            assert again.status_code == 502
            assert text_of(again.text, "not-sent").startswith("Saved, but the KES 1 test prompt could not")

            fixed = await post(
                panel,
                f"{LIST}/{westlands.id}/credentials",
                {k: v for k, v in sandbox("").items() if k != "name"},
            )
            assert (fixed.status_code, fixed.headers["location"]) == (
                303,
                f"{LIST}/{westlands.id}?done=replaced",
            )
            await wait_verified(panel, westlands.id)
            page = await panel.get(f"{LIST}/{westlands.id}")
            assert f'action="{LIST}/{westlands.id}/primary"' in page.text
            assert 'data-confirm="Make “Westlands” the primary channel?' in page.text

            made = await post(panel, f"{LIST}/{westlands.id}/primary")
            assert (made.status_code, made.headers["location"]) == (
                303,
                f"{LIST}/{westlands.id}?done=primary",
            )
            page = await panel.get(made.headers["location"])
            assert text_of(page.text, "done").startswith("This is now the primary channel")
            assert text_of(page.text, "ch-primary").startswith("primary")
            listed = await panel.get(LIST)
            assert channel_ids(listed.text) == [str(westlands.id), str(main.id)]  # the primary first

            # a verified channel's test sent again goes out (the simulator approves it again)
            before = (await channel_named(tenant, "Westlands")).verification_payment_id
            resent = await post(panel, f"{LIST}/{westlands.id}/verify")
            assert (resent.status_code, resent.headers["location"]) == (
                303,
                f"{LIST}/{westlands.id}?done=resent",
            )
            await wait_until(lambda: latest_test_settled(westlands.id, before=before))
        finally:
            await panel.aclose()
        assert await channels_of(tenant) == [
            ("Main", Environment.simulator, False, True),
            ("Westlands", Environment.sandbox, True, True),
        ]
        rows = await audits(tenant, "channel.")
        # Each push Daraja refused (on adding, then the resend) is recorded as failed once, by the failed
        # payment's event.
        assert [t for a, t, _ in rows if a == "channel.verification_failed"] == [str(westlands.id)] * 2
        assert [(a, t) for a, t, _ in rows if a != "channel.verification_failed"] == [
            ("channel.credentials_changed", str(main.id)),  # make_tenant
            ("channel.verified", str(main.id)),  # make_tenant
            ("channel.added", str(westlands.id)),
            ("channel.credentials_changed", str(westlands.id)),
            ("channel.verified", str(westlands.id)),
            ("channel.primary_changed", str(westlands.id)),
            ("channel.verified", str(westlands.id)),  # the test sent again
        ]
        [(_, _, detail)] = await audits(tenant, "channel.primary_changed")
        assert detail == {"via": "panel", "name": "Westlands", "previous": "Main", "activated": False}


class TestRename:
    async def test_rename_and_its_refusals(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        main = await channel_named(tenant, "Main")
        panel = await business_client(server.url, owner)
        try:
            r = await post(panel, LIST, sandbox("Sandbox"))
            assert r.status_code == 303
            renamed = await post(panel, f"{LIST}/{main.id}/name", {"name": "  Westlands   till "})
            assert (renamed.status_code, renamed.headers["location"]) == (
                303,
                f"{LIST}/{main.id}?done=renamed",
            )
            page = await panel.get(renamed.headers["location"])
            assert text_of(page.text, "channel-title") == "Westlands till"
            assert text_of(page.text, "done") == "Channel renamed."

            taken = await post(panel, f"{LIST}/{main.id}/name", {"name": "SANDBOX"})
            assert taken.status_code == 409
            assert text_of(taken.text, "name-error") == (
                "This business already has a channel named “SANDBOX”: choose another name, or rename that "
                "one."
            )
            assert 'value="SANDBOX"' in taken.text
            blank = await post(panel, f"{LIST}/{main.id}/name", {"name": "   "})
            assert blank.status_code == 422
            assert text_of(blank.text, "name-error") == (
                "A channel's name is 1 to 60 characters, like “Westlands till”."
            )
        finally:
            await panel.aclose()
        assert [name for name, *_ in await channels_of(tenant)] == ["Westlands till", "Sandbox"]
        assert await audits(tenant, "channel.renamed") == [
            ("channel.renamed", str(main.id), {"via": "panel", "old_name": "Main", "name": "Westlands till"})
        ]


class TestRefusals:
    async def test_a_manager_reads_and_a_cashier_does_not_and_neither_changes(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant(environment=Environment.simulator)
        main = await channel_named(tenant, "Main")
        manager = await make_user(tenant=tenant, role=Role.manager)
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        writes = (
            (LIST, sandbox("Mine")),
            (f"{LIST}/{main.id}/name", {"name": "Mine"}),
            (f"{LIST}/{main.id}/verify", {}),
            (f"{LIST}/{main.id}/primary", {}),
            (f"{LIST}/{main.id}/credentials", {"environment": "simulator"}),
        )
        panel = await business_client(server.url, manager)
        try:
            page = await panel.get(LIST)
            assert page.status_code == 200 and channel_ids(page.text) == [str(main.id)]
            assert "Add a channel" not in page.text
            assert "The owner adds channels and changes them." in page.text
            one = await panel.get(f"{LIST}/{main.id}")
            assert one.status_code == 200 and "/credentials" not in one.text and "/verify" not in one.text
            for action, data in writes:
                r = await post(panel, action, data)
                assert r.status_code == 403, action
                assert NOT_FOR_YOU in r.text, action
        finally:
            await panel.aclose()
        panel = await business_client(server.url, cashier)
        try:
            settings = await panel.get("/app/settings")
            assert 'href="/app/settings/channels"' not in settings.text
            for path in (LIST, f"{LIST}/{main.id}", f"{LIST}/{main.id}/verification"):
                assert (await panel.get(path)).status_code == 403, path
            for action, data in writes:
                r = await post(panel, action, data)
                assert r.status_code == 403, action
                assert NOT_FOR_YOU in r.text, action
        finally:
            await panel.aclose()
        assert await channels_of(tenant) == [("Main", Environment.simulator, True, True)]
        assert [a for a, *_ in await audits(tenant, "channel.")] == [
            "channel.credentials_changed",
            "channel.verified",
        ]  # make_tenant's

    async def test_a_form_without_its_csrf_token_is_refused(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        panel = await business_client(server.url, owner)
        try:
            r = await panel.post(LIST, data=sandbox("Forged"))
            assert r.status_code == 403
            assert "This form has expired or did not come from lipapush" in r.text
        finally:
            await panel.aclose()
        assert [name for name, *_ in await channels_of(tenant)] == ["Main"]

    async def test_another_business_channel_is_not_found(self, server: LiveServer) -> None:
        other, _ = await make_tenant(environment=Environment.simulator)
        theirs = await channel_named(other, "Main")
        _, owner = await make_tenant(environment=Environment.simulator)
        panel = await business_client(server.url, owner)
        try:
            for path in (f"{LIST}/{theirs.id}", f"{LIST}/{theirs.id}/verification"):
                r = await panel.get(path)
                assert r.status_code == 404, path
                assert "No such channel." in r.text
            for action, data in (
                (f"{LIST}/{theirs.id}/name", {"name": "Mine now"}),
                (f"{LIST}/{theirs.id}/verify", {}),
                (f"{LIST}/{theirs.id}/primary", {}),
                (f"{LIST}/{theirs.id}/credentials", {"environment": "simulator"}),
                (
                    "/app/settings/apps",
                    {"name": "Sneaky", "callback_hosts": "", "channel_id": str(theirs.id)},
                ),
            ):
                r = await post(panel, action, data)
                assert r.status_code == 404, action
                assert "No such channel." in r.text, action
        finally:
            await panel.aclose()
        after = await channel_named(other, "Main")
        assert (after.name, after.verification_payment_id, after.consumer_key_enc) == (
            "Main",
            theirs.verification_payment_id,
            theirs.consumer_key_enc,
        )
        assert [a for a, *_ in await audits(other, "channel.")] == [
            "channel.credentials_changed",
            "channel.verified",
        ]


class TestApps:
    async def test_an_app_created_on_the_new_channel_shows_it(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        main = await channel_named(tenant, "Main")
        panel = await business_client(server.url, owner)
        try:
            r = await post(panel, LIST, sandbox("Test keys", kind="till", till_number="5123456"))
            assert r.status_code == 303
            added = await channel_named(tenant, "Test keys")
            assert added.kind is ChannelKind.till
            apps = await panel.get("/app/settings/apps")
            # the primary channel is chosen unless another is
            primary = f'<option value="{main.id}" selected>Main: Paybill 174379 (simulator) · test (primary)'
            assert primary + "</option>" in apps.text
            assert f'<option value="{added.id}">Test keys: Till 5123456 (sandbox) · test' in apps.text

            bad = await post(
                panel, "/app/settings/apps", {"name": "Branch", "callback_hosts": "", "channel_id": "nope"}
            )
            assert bad.status_code == 422
            assert text_of(bad.text, "channel-error") == "Choose a channel from the list."
            made = await post(
                panel,
                "/app/settings/apps",
                {"name": "Branch", "callback_hosts": "", "channel_id": str(added.id)},
            )
            assert (made.status_code, made.headers["location"]) == (303, "/app/settings/apps?done=created")
            branch = await app_named(tenant, "Branch")
            assert branch.channel_id == added.id
            listed = await panel.get(made.headers["location"])
            assert text_of(listed.text, f"app-{branch.id}").startswith(
                "Branch test Test keys: Till 5123456 (sandbox) 0 0 none"
            )
            one = await panel.get(f"/app/settings/apps/{branch.id}")
            assert text_of(one.text, "app-channel-label").startswith("Test keys: Till 5123456 (sandbox)")
            assert f'<option value="{added.id}" selected>' in one.text

            # no channel chosen (a form from before channels): the primary one
            plain = await post(panel, "/app/settings/apps", {"name": "Plain", "callback_hosts": ""})
            assert plain.status_code == 303
            assert (await app_named(tenant, "Plain")).channel_id == main.id
            channels = await panel.get(LIST)
            assert text_of(channels.text, f"channel-{added.id}").endswith(" 1")  # Branch uses it
        finally:
            await panel.aclose()
        created = [(t, d["name"], d["channel_id"]) for _, t, d in await audits(tenant, "app.created")]
        assert created == [
            (str(branch.id), "Branch", str(added.id)),
            (str((await app_named(tenant, "Plain")).id), "Plain", str(main.id)),
        ]

    async def test_an_app_with_keys_does_not_move_to_the_other_mode(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        main = await channel_named(tenant, "Main")
        await make_api_key(tenant=tenant)  # the Default app's test key
        default = await app_named(tenant, "Default app")
        panel = await business_client(server.url, owner)
        try:
            one = await panel.get(f"/app/settings/apps/{default.id}")
            assert "The business has one M-Pesa channel." in text_of(one.text, "one-channel")
            r = await post(panel, LIST, sandbox("Live till", environment="production"))
            assert r.status_code == 303
            live = await channel_named(tenant, "Live till")

            refused = await post(
                panel, f"/app/settings/apps/{default.id}/channel", {"channel_id": str(live.id)}
            )
            assert refused.status_code == 409
            assert text_of(refused.text, "channel-error") == (
                "“Default app” is a test app with 1 working API key(s), and “Live till” is a production "
                "channel (live mode): a key's mode never changes. Create a new app on that channel (its "
                "keys will be live keys), or revoke this app's keys first."
            )
            assert f'<option value="{live.id}" selected>' in refused.text  # the choice stays

            # an app without keys moves, and its page says where it is now
            made = await post(panel, "/app/settings/apps", {"name": "Shop", "channel_id": str(main.id)})
            assert made.status_code == 303
            shop = await app_named(tenant, "Shop")
            moved = await post(panel, f"/app/settings/apps/{shop.id}/channel", {"channel_id": str(live.id)})
            assert (moved.status_code, moved.headers["location"]) == (
                303,
                f"/app/settings/apps/{shop.id}?done=channel",
            )
            page = await panel.get(moved.headers["location"])
            assert (
                text_of(page.text, "done")
                == "Channel changed: this app's payments go through it from now on."
            )
            assert text_of(page.text, "app-channel-label").startswith(
                "Live till: Paybill 174379 (production)"
            )
        finally:
            await panel.aclose()
        assert (await app_named(tenant, "Default app")).channel_id == main.id
        assert (await app_named(tenant, "Shop")).channel_id == live.id
        changed = await audits(tenant, "app.channel_changed")
        assert changed == [
            (
                "app.channel_changed",
                str(shop.id),
                {"via": "panel", "old": str(main.id), "channel_id": str(live.id), "channel": "Live till"},
            )
        ]

    async def test_a_manager_cannot_move_an_app(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(environment=Environment.simulator)
        main = await channel_named(tenant, "Main")
        await make_api_key(tenant=tenant)
        default = await app_named(tenant, "Default app")
        manager = await make_user(tenant=tenant, role=Role.manager)
        panel = await business_client(server.url, manager)
        try:
            one = await panel.get(f"/app/settings/apps/{default.id}")
            assert one.status_code == 200
            assert f'action="/app/settings/apps/{default.id}/channel"' not in one.text
            assert text_of(one.text, "app-channel-label").startswith("Main: Paybill 174379 (simulator)")
            r = await post(panel, f"/app/settings/apps/{default.id}/channel", {"channel_id": "nope"})
            assert r.status_code == 403 and NOT_FOR_YOU in r.text
        finally:
            await panel.aclose()
        assert (await app_named(tenant, "Default app")).channel_id == main.id
        assert await audits(tenant, "app.channel_changed") == []
