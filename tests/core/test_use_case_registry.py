"""Every use case checks a permission first and leaves its record, whatever entry point calls it.

The registry (core/access/use_case.py) knows every use case; these tests walk all of them, so a new
one that forgets its permission or its audit row fails here before any front end calls it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import uuid

import pytest
from sqlalchemy import select

import core
from core.access.actor import Actor, ActorKind, Via
from core.access.permissions import ROLE_PERMISSIONS, WRITES, Permission
from core.access.use_case import REGISTRY, UseCaseDefect, UseCaseSpec, unit_of_work, use_case
from core.audit.models import AuditLog
from core.auth.models import Role
from core.errors import PermissionDenied
from core.runtime import unit_of_work as transaction
from core.tenants.models import Tenant
from tests.support.factories import make_tenant


def _load_every_use_case() -> dict[str, UseCaseSpec]:
    for info in pkgutil.walk_packages(core.__path__, "core."):
        if info.name.rsplit(".", 1)[-1].startswith("use_cases"):
            importlib.import_module(info.name)
    return dict(REGISTRY)


SPECS = _load_every_use_case()
NOBODY = Actor(ActorKind.user, Via.api, tenant_id=uuid.uuid4(), user_id=uuid.uuid4(), role=Role.cashier)


def test_the_registry_sees_the_use_cases() -> None:
    # A floor, so a discovery that silently finds nothing cannot pass the tests below.
    assert len(SPECS) >= 40, sorted(SPECS)
    for expected in (
        "payments.request_payment",
        "billing.change_wallet_settings",
        "auth.invite_staff",
        "exports.export_customers",
        "hotspot.export_voucher_batch",
    ):
        assert expected in SPECS


@pytest.mark.parametrize("name", sorted(SPECS))
def test_declares_a_permission_and_its_record(name: str) -> None:
    spec = SPECS[name]
    assert isinstance(spec.permission, Permission)
    assert sum((spec.audit is not None, spec.recorded_by is not None, spec.query)) == 1
    assert re.fullmatch(r"core\.[a-z0-9_]+\.use_cases(_[a-z_]+)?", spec.fn.__module__), spec.fn.__module__
    first = next(iter(inspect.signature(spec.fn).parameters.values()))
    assert first.name == "actor", "a use case takes the actor first"


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if s.audit))
def test_an_audited_command_writes_its_declared_action(name: str) -> None:
    spec = SPECS[name]
    assert spec.audit is not None and re.fullmatch(r"[a-z_0-9]+\.[a-z_0-9.]+", spec.audit)
    # The action is written by the body itself (the unit of work refuses to commit without it).
    assert f'"{spec.audit}"' in inspect.getsource(spec.fn), f"{name} never names {spec.audit!r}"


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if s.query))
def test_a_query_changes_nothing(name: str) -> None:
    source = inspect.getsource(SPECS[name].fn)
    assert "uow.audit(" not in source
    assert "unit_of_work(actor)" not in source, "a query opens read-only units of work only"


@pytest.mark.parametrize("name", sorted(SPECS))
async def test_the_permission_is_checked_before_the_body_runs(name: str) -> None:
    # No arguments at all: had the body run first it would fail with a TypeError, not a refusal.
    with pytest.raises(PermissionDenied):
        await SPECS[name].entry(NOBODY)


def test_read_only_impersonation_holds_no_write() -> None:
    viewer = Actor.impersonating(admin_id=uuid.uuid4(), tenant_id=uuid.uuid4(), writes=False)
    assert not viewer.permissions & WRITES
    assert viewer.permissions == ROLE_PERMISSIONS[Role.owner] - WRITES
    writer = Actor.impersonating(admin_id=uuid.uuid4(), tenant_id=uuid.uuid4(), writes=True)
    assert writer.permissions == ROLE_PERMISSIONS[Role.owner]
    with pytest.raises(PermissionDenied, match="read-only"):
        viewer.require(Permission.wallet_settings)


class TestTheFrame:
    """The unit of work of an audited use case refuses to commit a change without its audit row."""

    async def test_a_command_that_forgets_its_audit_row_commits_nothing(self, server) -> None:  # type: ignore[no-untyped-def]
        tenant, _ = await make_tenant()

        async def forgetful(actor: Actor, *, name: str) -> None:
            async with unit_of_work(actor) as uow:
                row = await uow.session.get(Tenant, actor.tenant_id)
                assert row is not None
                row.name = name

        forgetful.__module__ = "core.tests_only.use_cases"
        entry = use_case(Permission.channel_manage, audit="tenant.renamed")(forgetful)
        try:
            owner = Actor.for_user(user_id=uuid.uuid4(), tenant_id=tenant.id, role=Role.owner, via=Via.api)
            with pytest.raises(
                UseCaseDefect, match=re.escape("did not write its audit row 'tenant.renamed'")
            ):
                await entry(owner, name="Renamed without a trace")
        finally:
            REGISTRY.pop("tests_only.forgetful", None)
        async with transaction(readonly=True) as session:
            assert (await session.get(Tenant, tenant.id)).name == tenant.name  # type: ignore[union-attr]

    async def test_the_audit_row_names_the_actor_and_its_entry_point(self, server) -> None:  # type: ignore[no-untyped-def]
        tenant, _ = await make_tenant()
        admin = uuid.uuid4()
        actor = Actor.impersonating(admin_id=admin, tenant_id=tenant.id, writes=True)

        async def rename(actor: Actor, *, name: str) -> None:
            async with unit_of_work(actor) as uow:
                row = await uow.session.get(Tenant, actor.tenant_id)
                assert row is not None
                row.name = name
                await uow.audit("tenant.renamed", target=str(row.id), name=name)

        rename.__module__ = "core.tests_only.use_cases"
        entry = use_case(Permission.channel_manage, audit="tenant.renamed")(rename)
        try:
            await entry(actor, name="Renamed in the open")
        finally:
            REGISTRY.pop("tests_only.rename", None)
        async with transaction(readonly=True) as session:
            rows = list(
                await session.scalars(
                    select(AuditLog).where(
                        AuditLog.tenant_id == tenant.id, AuditLog.action == "tenant.renamed"
                    )
                )
            )
            renamed = await session.get(Tenant, tenant.id)
        [row] = rows
        assert renamed is not None and renamed.name == "Renamed in the open"
        assert row.user_id == admin and row.target == str(tenant.id)
        assert row.detail == {"via": "panel", "impersonating": True, "name": "Renamed in the open"}
