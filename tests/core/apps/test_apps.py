"""Apps through their use cases (core/apps/use_cases.py): made on the business's channel, names unique
in the business, callback hosts checked, archived with their keys, and who may do what."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from core.access.actor import Actor, Via
from core.access.permissions import ApiScope
from core.apps import use_cases
from core.apps.models import App
from core.apps.schemas import clean_callback_hosts
from core.apps.service import apps
from core.audit.models import AuditLog
from core.auth.models import ApiKey, ApiKeyMode, Role, User
from core.auth.service import auth
from core.auth.tokens import new_api_key
from core.config import SANDBOX_SHORT_CODE
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.runtime import unit_of_work
from core.tenants.models import ChannelKind, Environment, Mode, Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user


def owner_of(tenant: Tenant, owner: User, via: Via = Via.api) -> Actor:
    return Actor.for_user(
        user_id=owner.id, tenant_id=tenant.id, role=Role.owner, via=via, tenant_name=tenant.name
    )


async def key_in(tenant: Tenant, app_id: uuid.UUID | None, scopes: list[ApiScope] | None = None) -> ApiKey:
    """A key of the business, put in `app_id` (the API key use cases are another helper's)."""
    async with unit_of_work() as session:
        row, _ = await auth.create_api_key(session, tenant_id=tenant.id, created_by=None, scopes=scopes)
        row.app_id = app_id
        await session.flush()
        return row


def key_actor(tenant: Tenant, key: ApiKey, scopes: list[ApiScope]) -> Actor:
    return Actor.for_api_key(api_key_id=key.id, tenant_id=tenant.id, scopes=scopes, app_id=key.app_id)


async def actions(tenant: Tenant) -> list[tuple[str, str | None, dict[str, object]]]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.tenant_id == tenant.id, AuditLog.action.like("app%"))
            .order_by(AuditLog.id)
        )
        return [(r.action, r.target, dict(r.detail or {})) for r in rows]


class TestCreateAndList:
    async def test_an_app_on_the_business_channel_listed_with_its_counts(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Apps Duka", environment=Environment.simulator)
        actor = owner_of(tenant, owner)
        assert await use_cases.list_apps(actor) == []
        made = await use_cases.create_app(
            actor, name="  Shop   website ", callback_hosts=["Shop.Example.com.", "shop.example.com"]
        )
        assert made.name == "Shop website"
        assert made.mode is Mode.test
        assert made.channel is not None
        assert made.channel.label == f"Main: Paybill {made.channel.number} (simulator)"
        assert made.channel.verified is True
        assert made.callback_hosts == ["shop.example.com"]
        assert (made.key_count, made.webhook_endpoint_count, made.archived_at) == (0, 0, None)
        async with unit_of_work(readonly=True) as session:
            row = await session.get(App, made.id)
            channel_id = (await apps.channel_of(session, row)).id  # type: ignore[arg-type,union-attr]
        assert row is not None and row.channel_id == channel_id and row.created_by_id == owner.id

        await key_in(tenant, made.id)
        second = await use_cases.create_app(actor, name="POS")
        listed = await use_cases.list_apps(actor)
        assert [(a.name, a.key_count) for a in listed] == [("Shop website", 1), ("POS", 0)]
        assert (await use_cases.get_app(actor, second.id)).name == "POS"
        assert await actions(tenant) == [
            (
                "app.created",
                str(made.id),
                {
                    "via": "api",
                    "name": "Shop website",
                    "callback_hosts": ["shop.example.com"],
                    "channel_id": str(channel_id),
                },
            ),
            (
                "app.created",
                str(second.id),
                {"via": "api", "name": "POS", "callback_hosts": [], "channel_id": str(channel_id)},
            ),
        ]

    async def test_the_first_app_adopts_keys_made_before_apps(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        async with unit_of_work() as session:  # as keys made before apps existed: in no app
            _, prefix, digest = new_api_key(ApiKeyMode.test)
            orphan = ApiKey(
                tenant_id=tenant.id, name="old", mode=ApiKeyMode.test, prefix=prefix, key_hash=digest
            )
            session.add(orphan)
        made = await use_cases.create_app(owner_of(tenant, owner), name="Website")
        assert made.key_count == 1
        async with unit_of_work(readonly=True) as session:
            assert (await session.get(ApiKey, orphan.id)).app_id == made.id  # type: ignore[union-attr]
        [(_, _, detail)] = await actions(tenant)
        assert detail["keys_adopted"] == 1

    async def test_a_name_the_business_uses_is_a_conflict_whatever_its_case(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        other, other_owner = await make_tenant()
        actor = owner_of(tenant, owner)
        await use_cases.create_app(actor, name="Website")
        with pytest.raises(Conflict) as refused:
            await use_cases.create_app(actor, name="website")
        assert refused.value.message == (
            "This business already has an app named “website”: choose another name, or rename that app."
        )
        # another business may use the name
        assert (await use_cases.create_app(owner_of(other, other_owner), name="Website")).name == "Website"
        assert [a.name for a in await use_cases.list_apps(actor)] == ["Website"]

    async def test_an_app_on_a_production_channel_is_live(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(environment=Environment.production, kind=ChannelKind.till)
        made = await use_cases.create_app(owner_of(tenant, owner), name="Live site")
        assert made.mode is Mode.live
        assert made.channel is not None
        assert made.channel.label == f"Main: Till {SANDBOX_SHORT_CODE} (production)"

    async def test_a_business_without_a_channel_gets_a_test_app_without_one(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(with_channel=False)
        made = await use_cases.create_app(owner_of(tenant, owner), name="Early")
        assert (made.mode, made.channel) == (Mode.test, None)

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("   ", "Give the app a name (1 to 80 characters), e.g. Shop website."),
            ("x" * 81, "An app's name is at most 80 characters; this one has 81."),
        ],
    )
    async def test_a_bad_name_is_refused(self, server: LiveServer, name: str, message: str) -> None:
        tenant, owner = await make_tenant()
        with pytest.raises(InvalidInput) as refused:
            await use_cases.create_app(owner_of(tenant, owner), name=name)
        assert (refused.value.field, refused.value.message) == ("name", message)
        assert await use_cases.list_apps(owner_of(tenant, owner)) == []


class TestCallbackHosts:
    @pytest.mark.parametrize(
        ("host", "message"),
        [
            (
                "https://shop.example.com/cb",
                "'https://shop.example.com/cb' is not a host name: give only the host, e.g. "
                "shop.example.com (no https://, port or path).",
            ),
            (
                "shop.example.com:8443",
                "'shop.example.com:8443' is not a host name: give only the host, e.g. shop.example.com "
                "(no https://, port or path).",
            ),
            (
                "10.0.0.5",
                "'10.0.0.5' is an IP address: give the host name your system answers on, "
                "e.g. shop.example.com.",
            ),
            (
                "shop_example.com",
                "'shop_example.com' is not a valid host name: letters, digits, hyphens and dots only, "
                "e.g. shop.example.com.",
            ),
            (
                "-shop.com",
                "'-shop.com' is not a valid host name: letters, digits, hyphens and dots only, "
                "e.g. shop.example.com.",
            ),
            ("", "A callback host is empty: give a host name, e.g. shop.example.com."),
        ],
    )
    def test_only_host_names(self, host: str, message: str) -> None:
        with pytest.raises(InvalidInput) as refused:
            clean_callback_hosts([host])
        assert (refused.value.field, refused.value.message) == ("callback_hosts", message)

    def test_lower_cased_deduplicated_at_most_twenty(self) -> None:
        assert clean_callback_hosts(["API.Shop.co.ke", "api.shop.co.ke.", "localhost", "bücher.de"]) == [
            "api.shop.co.ke",
            "localhost",
            "xn--bcher-kva.de",
        ]
        assert len(clean_callback_hosts([f"h{i}.example.com" for i in range(20)])) == 20
        with pytest.raises(InvalidInput, match=r"^An app allows at most 20 callback hosts; 21 given\.$"):
            clean_callback_hosts([f"h{i}.example.com" for i in range(21)])

    async def test_set_replaces_the_list_and_is_audited(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        actor = owner_of(tenant, owner)
        made = await use_cases.create_app(actor, name="Web", callback_hosts=["a.example.com"])
        changed = await use_cases.set_callback_hosts(actor, made.id, hosts=["B.example.com", "c.example.com"])
        assert changed.callback_hosts == ["b.example.com", "c.example.com"]
        same = await use_cases.set_callback_hosts(actor, made.id, hosts=["b.example.com", "c.example.com"])
        assert same.callback_hosts == changed.callback_hosts
        cleared = await use_cases.set_callback_hosts(actor, made.id, hosts=[])
        assert cleared.callback_hosts == []
        with pytest.raises(InvalidInput):
            await use_cases.set_callback_hosts(actor, made.id, hosts=["http://x.example.com"])
        assert [(a, d.get("old"), d.get("hosts")) for a, _, d in (await actions(tenant))[1:]] == [
            ("app.callback_hosts", ["a.example.com"], ["b.example.com", "c.example.com"]),
            ("app.callback_hosts", ["b.example.com", "c.example.com"], []),
        ]


class TestRename:
    async def test_rename_conflict_and_same_name(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        actor = owner_of(tenant, owner)
        web = await use_cases.create_app(actor, name="Web")
        await use_cases.create_app(actor, name="POS")
        assert (await use_cases.rename_app(actor, web.id, name="Website")).name == "Website"
        assert (await use_cases.rename_app(actor, web.id, name="Website")).name == "Website"  # nothing to do
        assert (await use_cases.rename_app(actor, web.id, name="WEBSITE")).name == "WEBSITE"  # its own name
        with pytest.raises(Conflict, match="already has an app named “pos”"):
            await use_cases.rename_app(actor, web.id, name="pos")
        renames = [(d["old"], d["name"]) for a, _, d in await actions(tenant) if a == "app.renamed"]
        assert renames == [("Web", "Website"), ("Website", "WEBSITE")]


class TestArchive:
    async def test_archiving_revokes_the_keys_and_frees_the_name(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        actor = owner_of(tenant, owner)
        keep = await use_cases.create_app(actor, name="Keep")
        old = await use_cases.create_app(actor, name="Old site")
        k1 = await key_in(tenant, old.id)
        k2 = await key_in(tenant, old.id)
        kept = await key_in(tenant, keep.id)
        archived = await use_cases.archive_app(actor, old.id)
        assert archived.name == "Old site" and archived.archived_at is not None and archived.key_count == 0
        async with unit_of_work(readonly=True) as session:
            revoked = {
                k.id: k.revoked_at
                for k in await session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant.id))
            }
            row = await session.get(App, old.id)
        assert revoked[k1.id] is not None and revoked[k2.id] is not None and revoked[kept.id] is None
        assert row is not None and row.name == f"Old site (archived {str(old.id)[:8]})"
        assert [a.name for a in await use_cases.list_apps(actor)] == ["Keep"]
        with pytest.raises(NotFound):
            await use_cases.get_app(actor, old.id)
        with pytest.raises(NotFound):
            await use_cases.archive_app(actor, old.id)
        again = await use_cases.create_app(actor, name="Old site")  # the name is free again
        assert again.id != old.id
        async with unit_of_work(readonly=True) as session:
            rows = await session.execute(
                select(AuditLog.action, AuditLog.target)
                .where(AuditLog.tenant_id == tenant.id)
                .order_by(AuditLog.id)
            )
            trail = [tuple(r) for r in rows.all()]
        assert trail[-4:] == [
            ("apikey.revoked", str(k1.id)),
            ("apikey.revoked", str(k2.id)),
            ("app.archived", str(old.id)),
            ("app.created", str(again.id)),
        ]
        archived_row = [d for a, _, d in await actions(tenant) if a == "app.archived"]
        assert archived_row == [{"via": "api", "name": "Old site", "keys_revoked": [k1.prefix, k2.prefix]}]

    async def test_the_last_app_is_kept(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        actor = owner_of(tenant, owner)
        only = await use_cases.create_app(actor, name="Only")
        with pytest.raises(Conflict) as refused:
            await use_cases.archive_app(actor, only.id)
        assert refused.value.message == (
            "“Only” is this business's only app: keys and webhook endpoints need one. Create another app "
            "first, then archive this one."
        )
        assert [a.name for a in await use_cases.list_apps(actor)] == ["Only"]

    async def test_a_key_cannot_archive_its_own_app(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        actor = owner_of(tenant, owner)
        mine = await use_cases.create_app(actor, name="Mine")
        other = await use_cases.create_app(actor, name="Other")
        key = await key_in(tenant, mine.id)
        as_key = key_actor(tenant, key, [ApiScope.keys_write])
        with pytest.raises(Conflict, match=r"^This API key belongs to the app “Mine”"):
            await use_cases.archive_app(as_key, mine.id)
        with pytest.raises(PermissionDenied, match=r"^An API key changes only its own app"):
            await use_cases.archive_app(as_key, other.id)
        assert (await use_cases.archive_app(actor, other.id)).name == "Other"


class TestWhoMay:
    async def test_a_cashier_is_refused_and_a_manager_only_reads(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Roles Duka")
        made = await use_cases.create_app(owner_of(tenant, owner), name="Web")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        manager = await make_user(tenant=tenant, role=Role.manager)
        as_cashier = Actor.for_user(
            user_id=cashier.id, tenant_id=tenant.id, role=Role.cashier, via=Via.api, tenant_name=tenant.name
        )
        as_manager = Actor.for_user(
            user_id=manager.id, tenant_id=tenant.id, role=Role.manager, via=Via.api, tenant_name=tenant.name
        )
        with pytest.raises(PermissionDenied, match=r"^This is for the owner or manager of Roles Duka\.$"):
            await use_cases.list_apps(as_cashier)
        with pytest.raises(PermissionDenied, match=r"^This is for the owner of Roles Duka\.$"):
            await use_cases.create_app(as_cashier, name="Mine")
        assert [a.name for a in await use_cases.list_apps(as_manager)] == ["Web"]
        for attempt in (
            use_cases.create_app(as_manager, name="Mine"),
            use_cases.rename_app(as_manager, made.id, name="Mine"),
            use_cases.set_callback_hosts(as_manager, made.id, hosts=["a.example.com"]),
            use_cases.archive_app(as_manager, made.id),
        ):
            with pytest.raises(PermissionDenied, match=r"^This is for the owner of Roles Duka\.$"):
                await attempt
        assert [a.name for a in await use_cases.list_apps(as_manager)] == ["Web"]

    async def test_another_business_app_is_not_found(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        other, other_owner = await make_tenant()
        theirs = await use_cases.create_app(owner_of(other, other_owner), name="Theirs")
        await use_cases.create_app(owner_of(other, other_owner), name="Theirs too")
        mine = owner_of(tenant, owner)
        for attempt in (
            use_cases.get_app(mine, theirs.id),
            use_cases.rename_app(mine, theirs.id, name="Stolen"),
            use_cases.set_callback_hosts(mine, theirs.id, hosts=["evil.example.com"]),
            use_cases.archive_app(mine, theirs.id),
        ):
            with pytest.raises(
                NotFound, match=r"^No such app\. List this business's apps with GET /api/apps\.$"
            ):
                await attempt
        assert [a.name for a in await use_cases.list_apps(owner_of(other, other_owner))] == [
            "Theirs",
            "Theirs too",
        ]

    async def test_keys_read_lists_every_app_keys_write_changes_its_own(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant()
        actor = owner_of(tenant, owner)
        mine = await use_cases.create_app(actor, name="Mine")
        await use_cases.create_app(actor, name="Other")
        key = await key_in(tenant, mine.id)
        reader = key_actor(tenant, key, [ApiScope.keys_read])
        assert [a.name for a in await use_cases.list_apps(reader)] == ["Mine", "Other"]
        with pytest.raises(PermissionDenied, match="lacks the keys:write scope"):
            await use_cases.create_app(reader, name="Third")
        with pytest.raises(PermissionDenied, match="lacks the keys:read scope"):
            await use_cases.list_apps(key_actor(tenant, key, [ApiScope.payments_write]))
        writer = key_actor(tenant, key, [ApiScope.keys_write])
        renamed = await use_cases.rename_app(writer, mine.id, name="Mine too")  # its own app
        assert renamed.name == "Mine too"
        [(_, _, detail)] = [r for r in await actions(tenant) if r[0] == "app.renamed"]
        assert detail["api_key_id"] == str(key.id)
