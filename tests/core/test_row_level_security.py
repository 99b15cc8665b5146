"""Row-level security, the second wall between businesses (Postgres; SQLite keeps the filters only).

The application connects as a plain role, and every transaction states its scope: a query that
forgets `where tenant_id = …` finds only the scoped business's rows, or none without a scope."""

from __future__ import annotations

import logging
import types
import uuid

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import core.models  # noqa: F401  - every table on the metadata
from core.access.actor import Actor, Via
from core.access.permissions import ALL_SCOPES
from core.access.use_case import scope_of
from core.access.use_case import unit_of_work as use_case_unit
from core.auth.models import Role, User
from core.auth.service import auth
from core.db import Base, Database, Scope, current_scope, set_scope
from core.migrate import ensure_app_role
from core.notify.service import notify
from core.payments.models import Payment, PaymentSource
from core.payments.service import payments
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.services import APP_ROLE, TestDatabase


def needs_postgres() -> None:
    if runtime().db.is_sqlite:
        pytest.skip("row-level security is Postgres-only; on SQLite the tenant_id filters are the wall")


async def tenant_with_payments(n: int, *, name: str) -> Tenant:
    tenant, _ = await make_tenant(name=name)
    async with unit_of_work(scope=Scope.tenant(tenant.id)) as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        for i in range(n):
            await payments.create_pending(
                session,
                tenant=tenant,
                channel=channel,
                phone=f"25472200{i:04d}",
                amount=10 + i,
                source=PaymentSource.api,
                settings=runtime().settings,
            )
    return tenant


UNFILTERED = text("SELECT count(*) FROM payments")  # the bug under test: no tenant_id filter
REFUSED = 'new row violates row-level security policy for table "payments"'


class TestTheForgottenFilter:
    async def test_an_unfiltered_query_sees_only_the_scoped_tenant(self, server: LiveServer) -> None:
        needs_postgres()
        a = await tenant_with_payments(2, name="Duka A")
        b = await tenant_with_payments(3, name="Duka B")

        async with unit_of_work(readonly=True, scope=Scope.tenant(a.id)) as session:
            assert await session.scalar(UNFILTERED) == 2
            assert set(await session.scalars(text("SELECT DISTINCT tenant_id FROM payments"))) == {a.id}
            # the ORM too, and a direct read of the other business's row by its id
            assert await session.scalar(select(func.count()).select_from(Payment)) == 2
            b_payment = await session.scalar(select(Payment.id).where(Payment.tenant_id == b.id))
            assert b_payment is None

        async with unit_of_work(readonly=True, scope=Scope.tenant(b.id)) as session:
            assert await session.scalar(UNFILTERED) == 3

        async with unit_of_work(readonly=True, scope=Scope.none()) as session:
            assert await session.scalar(UNFILTERED) == 0
            assert await session.scalar(text("SELECT count(*) FROM customers")) == 0

        async with unit_of_work(readonly=True, scope=Scope.platform("test: both tenants")) as session:
            both = text("SELECT count(*) FROM payments WHERE tenant_id IN (:a, :b)")
            assert await session.scalar(both, {"a": a.id, "b": b.id}) == 5
            assert await session.scalar(UNFILTERED) >= 5

    async def test_a_use_case_transaction_is_scoped_by_its_actor(self, server: LiveServer) -> None:
        needs_postgres()
        a = await tenant_with_payments(1, name="Duka C")
        await tenant_with_payments(2, name="Duka D")
        owner = Actor.for_user(user_id=uuid.uuid4(), tenant_id=a.id, role=Role.owner, via=Via.api)
        async with use_case_unit(owner, readonly=True) as uow:
            assert await uow.session.scalar(UNFILTERED) == 1
        admin = Actor.for_user(user_id=uuid.uuid4(), tenant_id=None, role=Role.platform_admin, via=Via.panel)
        async with use_case_unit(admin.for_business(a.id), readonly=True) as uow:
            assert await uow.session.scalar(UNFILTERED) == 1  # impersonating: that business only
        async with use_case_unit(Actor.system().acting_for(a.id), readonly=True) as uow:
            assert await uow.session.scalar(UNFILTERED) == 1

    async def test_the_scope_ends_with_its_transaction(self, server: LiveServer) -> None:
        # set_config(..., true) is transaction-local: a pooled connection never carries a tenant on.
        needs_postgres()
        a = await tenant_with_payments(1, name="Duka E")
        async with unit_of_work(scope=Scope.tenant(a.id)) as session:
            assert await session.scalar(UNFILTERED) == 1
            await session.commit()  # a second transaction in the same unit states the scope again
            assert await session.scalar(UNFILTERED) == 1
        for _ in range(3):  # whichever pooled connection comes next
            async with unit_of_work(scope=Scope.none()) as session:
                assert await session.scalar(UNFILTERED) == 0
                leftover = await session.scalar(text("SELECT current_setting('app.tenant_id', true)"))
                assert leftover in ("", None)

    async def test_the_scope_travels_with_begin_and_an_unused_one_goes_nowhere(
        self, server: LiveServer
    ) -> None:
        """The scope is sent in the BEGIN's message (core.db.ScopeCarryingConnection). A unit of work
        that runs no statement sends no BEGIN: its scope must not ride along on the next transaction
        of that pooled connection, whatever that one's scope, or none."""
        needs_postgres()
        a = await tenant_with_payments(1, name="Duka E2")
        # the product's engine (core.db.Database), with one connection: every session below gets it
        db = Database(runtime().settings.DATABASE_URL, pool_size=1, max_overflow=0)
        sent: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
        make = db.sessionmaker()
        try:
            async with make() as session:
                set_scope(session, Scope.tenant(a.id))
                assert await session.scalar(UNFILTERED) == 1
                await session.commit()
            # one statement went through SQLAlchemy: the scope went with asyncpg's BEGIN
            assert [q for q in sent if "set_config" in q] == []
            async with make() as session:  # scoped and begun (a connection taken), no statement: no BEGIN
                set_scope(session, Scope.tenant(a.id))
                await session.connection()
            async with make() as session:  # the same (only) connection, no scope stated
                assert await session.scalar(UNFILTERED) == 0
                assert await session.scalar(text("SELECT current_setting('app.tenant_id', true)")) in (
                    "",
                    None,
                )
                await session.commit()
            async with make() as session:  # a session's next transaction carries its own new scope
                await session.execute(text("SELECT 1"))
                set_scope(session, Scope.none())
                await session.commit()
                assert await session.scalar(UNFILTERED) == 0
        finally:
            await db.dispose()


class TestWrites:
    async def test_inserting_another_tenants_row_is_refused(self, server: LiveServer) -> None:
        needs_postgres()
        a = await tenant_with_payments(0, name="Duka F")
        b, _ = await make_tenant(name="Duka G")
        async with unit_of_work(readonly=True, scope=Scope.tenant(b.id)) as session:
            b_channel = await tenants.get_channel(session, b.id)
            assert b_channel is not None
        with pytest.raises(DBAPIError, match=REFUSED):
            async with unit_of_work(scope=Scope.tenant(a.id)) as session:
                session.add(
                    Payment(
                        tenant_id=b.id,
                        channel_id=b_channel.id,
                        source=PaymentSource.api,
                        amount=5,
                        phone="254722000999",
                        account_reference="X",
                        description="X",
                    )
                )
        async with unit_of_work(readonly=True, scope=Scope.tenant(b.id)) as session:
            assert await session.scalar(UNFILTERED) == 0

    async def test_updating_another_tenants_rows_touches_none(self, server: LiveServer) -> None:
        needs_postgres()
        a = await tenant_with_payments(1, name="Duka H")
        b = await tenant_with_payments(1, name="Duka I")
        async with unit_of_work(scope=Scope.tenant(a.id)) as session:
            result = await session.execute(
                update(Payment).where(Payment.tenant_id == b.id).values(customer_name="Mallory")
            )
            assert result.rowcount == 0  # type: ignore[attr-defined]
        with pytest.raises(DBAPIError, match=REFUSED):
            async with unit_of_work(scope=Scope.tenant(a.id)) as session:
                await session.execute(text("UPDATE payments SET tenant_id = :b"), {"b": b.id})
        async with unit_of_work(readonly=True, scope=Scope.tenant(b.id)) as session:
            assert await session.scalar(UNFILTERED) == 1
            mallory = text("SELECT count(*) FROM payments WHERE customer_name = 'Mallory'")
            assert await session.scalar(mallory) == 0


class TestAStepPastTheBusiness:
    async def test_a_global_lookup_sees_every_business_then_the_scope_comes_back(
        self, server: LiveServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An email is unique across businesses: asking whose it is looks past the caller's business
        (logged), and the tenant's own scope is back for the next statement."""
        needs_postgres()
        a = await tenant_with_payments(1, name="Duka J")
        _, b_owner = await make_tenant(name="Duka K")
        with caplog.at_level(logging.DEBUG, logger="lipapush.scope"):
            async with unit_of_work(scope=Scope.tenant(a.id)) as session:
                assert await session.scalar(select(User.id).where(User.email == b_owner.email)) is None
                found = await auth.get_user_by_email(session, b_owner.email.upper())
                assert found is not None and found.id == b_owner.id
                assert current_scope(session) == Scope.tenant(a.id)
                assert await session.scalar(UNFILTERED) == 1
                # lipapush's own message (no business) written from a business's transaction
                note = await notify.sms(session, tenant=None, to="254722000001", kind="test.own", body="hi")
                assert note.tenant_id is None
                assert await session.scalar(UNFILTERED) == 1
        wanted = [
            "platform scope: account lookup by email",
            "platform scope: lipapush's own test.own message",
        ]
        # The session's scheduler logs its own sweeps meanwhile: keep this transaction's steps only.
        lines = [r.getMessage() for r in caplog.records if r.name == "lipapush.scope"]
        assert [line for line in lines if line in wanted] == wanted


class TestTheWallItself:
    async def test_every_tenant_table_has_forced_row_level_security(self, server: LiveServer) -> None:
        needs_postgres()
        wanted = sorted(t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.columns)
        assert "payments" in wanted and "customers" in wanted
        async with unit_of_work(readonly=True, scope=Scope.none()) as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                        "  (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname "
                        "   AND p.policyname = 'tenant_isolation') AS policies "
                        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND c.relname = ANY(:names)"
                    ),
                    {"names": wanted},
                )
            ).all()
        found = {r.relname: (r.relrowsecurity, r.relforcerowsecurity, r.policies) for r in rows}
        missing = [t for t in wanted if found.get(t) != (True, True, 1)]
        assert not missing, (
            f"tables with tenant_id but no forced row-level security and tenant_isolation policy: {missing} "
            "(add them in a migration: see migrations/versions/2026-12-07-0100_row_level_security.py)"
        )

    async def test_every_policy_reads_the_scope_once_per_statement(self, server: LiveServer) -> None:
        """The settings as init plans (`(SELECT current_setting(…))`), not calls per row read
        (migrations/versions/2026-12-07-1600_rls_once_per_statement.py)."""
        needs_postgres()
        async with unit_of_work(readonly=True, scope=Scope.none()) as session:
            rules = (
                await session.execute(
                    text(
                        "SELECT tablename, qual, with_check FROM pg_policies "
                        "WHERE schemaname = current_schema() AND policyname = 'tenant_isolation'"
                    )
                )
            ).all()
        assert len(rules) >= 16
        per_row = [
            r.tablename
            for r in rules
            for rule in (r.qual, r.with_check)
            if rule.count("current_setting(")
            != rule.count("SELECT current_setting(") + rule.count("SELECT (NULLIF(current_setting(")
        ]
        assert per_row == []

    async def test_the_app_connects_as_a_plain_role(self, server: LiveServer) -> None:
        needs_postgres()
        async with unit_of_work(readonly=True, scope=Scope.none()) as session:
            row = (
                await session.execute(
                    text(
                        "SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles "
                        "WHERE rolname = current_user"
                    )
                )
            ).one()
        assert (row.name, row.rolsuper, row.rolbypassrls) == (APP_ROLE, False, False)

    async def test_platform_scope_is_logged_with_its_reason(
        self, server: LiveServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        needs_postgres()
        with caplog.at_level(logging.DEBUG, logger="lipapush.scope"):
            async with unit_of_work(readonly=True, scope=Scope.platform("nightly sweep of every till")):
                pass
            async with unit_of_work(readonly=True):  # no scope named: the caller is the reason
                pass
        # The machine's own cross-tenant work happens on every request: DEBUG, not INFO.
        assert {r.levelno for r in caplog.records if r.name == "lipapush.scope"} == {logging.DEBUG}
        lines = [r.getMessage() for r in caplog.records if r.name == "lipapush.scope"]
        assert "platform scope: nightly sweep of every till" in lines
        assert (
            "platform scope: unscoped tests.core.test_row_level_security:"
            "test_platform_scope_is_logged_with_its_reason"
        ) in lines
        admin = Actor.for_user(user_id=uuid.uuid4(), tenant_id=None, role=Role.platform_admin, via=Via.panel)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="lipapush.scope"):
            async with use_case_unit(admin, readonly=True):
                pass
        # A person looking across businesses is the trail worth keeping: INFO.
        expected = f"platform scope: no use case by platform_admin {admin.user_id} via panel"
        entries = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "lipapush.scope"]
        assert [e for e in entries if e[1] == expected] == [(logging.INFO, expected)]
        assert {e[0] for e in entries if e[1] != expected} <= {logging.DEBUG}  # background sweeps

    async def test_an_unscoped_unit_of_work_in_the_application_is_a_warning(
        self, server: LiveServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """core, web, bots and ussd name every scope (tests/core/unit/test_explicit_scopes.py); a call
        that check cannot see still runs, in platform scope, and says so at WARNING on either backend.
        Tests and scripts setting up several businesses leave it out quietly (DEBUG, above)."""

        async def opens_one() -> None:
            async with unit_of_work(readonly=True):
                pass

        # The same function, as if it were defined in an application module.
        in_core = types.FunctionType(opens_one.__code__, {**opens_one.__globals__, "__name__": "core.probe"})
        with caplog.at_level(logging.DEBUG, logger="lipapush.scope"):
            await in_core()
            await opens_one()
        scope_lines = [r for r in caplog.records if r.name == "lipapush.scope"]
        warnings = [r.getMessage() for r in scope_lines if r.levelno >= logging.WARNING]
        assert warnings == [
            "unit of work without a scope in core.probe:opens_one: it runs in platform scope (every "
            "business's rows); pass scope=Scope.tenant(id), Scope.platform(why) or Scope.none()"
        ]


class TestTheAppRole:
    async def test_db_upgrade_creates_a_plain_role_and_grants_it_the_tables(
        self, server: LiveServer, database: TestDatabase
    ) -> None:
        """What `lipapush db upgrade` does after migrating, connected as the owner: the role named by
        DATABASE_URL is created (its password quoted by the server, whatever it holds), granted the
        rows but not the migration history; running it again changes nothing."""
        needs_postgres()
        assert database.owner_url is not None
        role = f"lipapush_t_{uuid.uuid4().hex[:8]}"
        app_url = (
            make_url(database.owner_url)
            .set(username=role, password="p'a%:s $1 \\x")
            .render_as_string(hide_password=False)
        )
        engine = create_async_engine(database.owner_url, poolclass=NullPool)
        try:
            assert await ensure_app_role(database.owner_url, app_url) == []
            assert await ensure_app_role(database.owner_url, app_url) == []
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT rolsuper, rolbypassrls, rolcanlogin, rolpassword IS NOT NULL AS pw, "
                            "has_table_privilege(:r, 'payments', 'SELECT, INSERT, UPDATE, DELETE') AS rows, "
                            "  has_table_privilege(:r, 'payments', 'TRUNCATE') AS truncate, "
                            "  has_table_privilege(:r, 'alembic_version', 'SELECT') AS version_read, "
                            "  has_table_privilege(:r, 'alembic_version', 'UPDATE') AS version_write "
                            "FROM pg_authid WHERE rolname = :r"
                        ),
                        {"r": role},
                    )
                ).one()
            assert tuple(row) == (False, False, True, True, True, False, True, False)
            # The owner itself in DATABASE_URL (one URL for both) is a superuser here: a warning.
            [warning] = await ensure_app_role(database.owner_url, database.owner_url)
            assert "row-level security (the second wall between businesses) does not apply" in warning
        finally:
            async with engine.connect() as conn:
                await conn.execute(text(f'DROP OWNED BY "{role}"'))
                await conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
                await conn.commit()
            await engine.dispose()


class TestScopeOfActor:
    """Which scope each kind of actor's transaction gets (both backends: no database needed)."""

    def test_each_kind_of_actor(self) -> None:
        tid, uid = uuid.uuid4(), uuid.uuid4()
        owner = Actor.for_user(user_id=uid, tenant_id=tid, role=Role.cashier, via=Via.telegram)
        assert scope_of(owner) == Scope.tenant(tid)
        key = Actor.for_api_key(api_key_id=uuid.uuid4(), tenant_id=tid, scopes=ALL_SCOPES)
        assert scope_of(key) == Scope.tenant(tid)
        admin = Actor.for_user(user_id=uid, tenant_id=None, role=Role.platform_admin, via=Via.panel)
        assert scope_of(admin).is_platform
        assert scope_of(admin).reason == f"no use case by platform_admin {uid} via panel"
        assert scope_of(Actor.impersonating(admin_id=uid, tenant_id=tid, writes=False)) == Scope.tenant(tid)
        assert scope_of(Actor.system()).is_platform
        assert scope_of(Actor.system().acting_for(tid)) == Scope.tenant(tid)

    def test_a_platform_scope_needs_a_reason(self) -> None:
        with pytest.raises(ValueError, match="needs its reason"):
            Scope.platform("")
