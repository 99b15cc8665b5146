"""Database engines, sessions and the unit of work.

Engines are kept per event loop: the web server, the Dramatiq async worker and tests each run their
own loop, and an asyncpg/aiosqlite connection must never cross loops.

Tenant isolation has two walls. The first is the service layer: every query of tenant data says
`where tenant_id = …`. The second, on Postgres, is row-level security: every table with a
`tenant_id` column has a policy (migrations/versions/…_row_level_security.py) that shows a
transaction only the rows of the tenant its `Scope` names, so a query that forgets its filter finds
nothing rather than another business's rows, and an insert for another tenant is refused. Each
transaction states its scope at its start (`set_config(..., true)`: transaction-local, gone at
commit, so a pooled connection never carries it to the next user): one tenant (`app.tenant_id`), the
platform (`app.scope = 'platform'`: cross-tenant work, logged with its reason) or neither (tenant
tables look empty). The policies bind only a role that is not a superuser and lacks BYPASSRLS, which
is why the application connects as its own role (see core/migrate.py). SQLite has no row-level
security: there the filters are the only wall, and the scope is not sent anywhere.

SQLite (the embedded default) allows one writer at a time. Write units of work start with
`BEGIN IMMEDIATE` so two writers queue instead of failing half-way with "database is locked": in one
process on the writer engine's single connection, across processes on the busy timeout; read-only
units (exports, listings) use a plain deferred BEGIN and never block writers under WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, TypeDecorator, event, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction
from sqlalchemy.pool import AsyncAdaptedQueuePool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN below is the only BEGIN.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 20,
        max_overflow: int = 10,
        pre_ping: bool = False,
    ) -> None:
        self.url = url
        self.echo = echo
        self.pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_pre_ping": pre_ping}
        self.is_sqlite = url.startswith("sqlite")
        self._engines: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncEngine, AsyncEngine]
        ] = weakref.WeakKeyDictionary()

    def _make(self, *, readonly: bool) -> AsyncEngine:
        if self.is_sqlite:
            # SQLite lets one transaction write at a time, so the writer engine has one connection: writers
            # queue for it in the pool, first come first served, and the next starts the moment the last
            # commits. With the default 5 + 10, up to 15 writers waited inside SQLite's busy handler, which
            # sleeps 1, 2, 5 ... 100 ms between tries and lets newcomers overtake: measured with 50 tasks
            # writing at once (and 50 polling readers), the same throughput but p99 0.8 s and a max of
            # 1.6 s per transaction, against 0.15 s for both with one connection. Readers keep the
            # default 5 + 10: under WAL they never wait for the writer, and more of them did not read
            # faster (one process's event loop is the limit).
            pool = {"pool_size": 5, "max_overflow": 10} if readonly else {"pool_size": 1, "max_overflow": 0}
            engine = create_async_engine(
                self.url, echo=self.echo, poolclass=AsyncAdaptedQueuePool, pool_timeout=30, **pool
            )
            _sqlite_pragmas(engine, immediate=not readonly)
            return engine
        engine = create_async_engine(
            self.url,
            echo=self.echo,
            pool_recycle=1800,
            connect_args={"connection_class": ScopeCarryingConnection},
            **self.pool,  # type: ignore[arg-type]
        )
        event.listen(engine.sync_engine, "checkin", _forget_scope)
        return engine

    def engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        loop = asyncio.get_running_loop()
        pair = self._engines.get(loop)
        if pair is None:
            write = self._make(readonly=False)
            # Postgres: the same pool, but a read-only unit of work sees one snapshot for all its
            # statements (REPEATABLE READ), so a page never mixes states from before and after a
            # concurrent commit (e.g. a verified channel beside a not-yet-active business).
            read = (
                self._make(readonly=True)
                if self.is_sqlite
                else write.execution_options(isolation_level="REPEATABLE READ")
            )
            pair = (write, read)
            self._engines[loop] = pair
        return pair

    @property
    def engine(self) -> AsyncEngine:
        return self.engines()[0]

    def sessionmaker(self, *, readonly: bool = False) -> async_sessionmaker[AsyncSession]:
        write, read = self.engines()
        return async_sessionmaker(
            read if readonly else write, expire_on_commit=False, sync_session_class=ScopedSession
        )

    async def dispose(self) -> None:
        """Dispose the engines of the current loop (others belong to loops that dispose their own)."""
        loop = asyncio.get_running_loop()
        pair = self._engines.pop(loop, None)
        if pair:
            await pair[0].dispose()
            if self.is_sqlite:  # on Postgres the reader shares the writer's pool
                await pair[1].dispose()


scope_log = logging.getLogger("lipapush.scope")

# Settings read by the row-level security policies; the policy text is in the migration.
SCOPE_SETTING = "app.scope"
TENANT_SETTING = "app.tenant_id"
_SCOPE_KEY = "db_scope"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which tenant rows a transaction may see and write on Postgres (row-level security).

    `Scope.tenant(id)`: that business's rows only, whatever a query forgets to filter.
    `Scope.platform(reason)`: every business's rows, for work that spans them or runs before the
    business is known (the admin panel, sweeps, callbacks, sign-in); the reason is logged.
    `Scope.none()`: no tenant rows at all (bookkeeping on platform tables: the job outbox)."""

    tenant_id: uuid.UUID | None = None
    is_platform: bool = False
    reason: str = ""
    by_person: bool = False  # a platform admin looking across businesses, not the machine's own work

    @classmethod
    def tenant(cls, tenant_id: uuid.UUID) -> Scope:
        return cls(tenant_id=tenant_id)

    @classmethod
    def platform(cls, reason: str, *, by_person: bool = False) -> Scope:
        if not reason:
            raise ValueError("a platform scope needs its reason: it is what the log records")
        return cls(is_platform=True, reason=reason, by_person=by_person)

    @classmethod
    def none(cls) -> Scope:
        return cls()

    def settings(self) -> tuple[str, str]:
        """(app.scope, app.tenant_id) as the policies read them; '' is "not set"."""
        kind = "platform" if self.is_platform else "tenant" if self.tenant_id else ""
        return kind, str(self.tenant_id or "")

    def describe(self) -> str:
        if self.is_platform:
            return f"platform ({self.reason})"
        return f"tenant {self.tenant_id}" if self.tenant_id else "no tenant"


class ScopedSession(Session):
    """A session that states its `Scope` at the start of every transaction it begins (the unit of
    work's, and any after a commit inside it), before the first statement."""


def _forget_scope(_dbapi_connection: Any, record: Any) -> None:
    """A connection back in the pool carries no scope to its next user (`_state_scope` also clears
    it, and a BEGIN that never came takes it nowhere: this is the second lock on that door)."""
    driver = record.driver_connection
    if isinstance(driver, ScopeCarryingConnection):
        driver.begin_with = None


class ScopeCarryingConnection(asyncpg.Connection):
    """asyncpg's connection, sending a transaction's scope in the same message as its BEGIN.

    A unit of work states its scope before its first statement. As a statement of its own that was a
    round trip of its own: a quarter of a one-query read's (BEGIN, scope, query, COMMIT), and a socket
    write costs here more than the statement. SQLAlchemy begins the database transaction lazily, with
    the transaction's first statement; `_state_scope` leaves the scope here as `begin_with`, and the
    BEGIN that asyncpg sends for that statement carries it (a simple query may hold several
    statements): BEGIN and scope succeed or fail together, before anything else runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.begin_with: str | None = None

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109 (asyncpg's own signature)
        if self.begin_with is not None and not args and query.startswith("BEGIN"):
            query, self.begin_with = f"{query} {self.begin_with}", None
        return await super().execute(query, *args, timeout=timeout)


_KINDS = frozenset({"platform", "tenant", ""})


def scope_sql(kind: str, tenant: str) -> str:
    # Literals, not parameters (a simple query has none): both are ours, checked here, never input.
    assert kind in _KINDS and (tenant == "" or str(uuid.UUID(tenant)) == tenant)
    return (
        f"SELECT set_config('{SCOPE_SETTING}', '{kind}', true), "
        f"set_config('{TENANT_SETTING}', '{tenant}', true);"
    )


@event.listens_for(ScopedSession, "after_begin")
def _state_scope(session: Session, _transaction: SessionTransaction, connection: Any) -> None:
    if connection.dialect.name != "postgresql":
        return
    scope: Scope | None = session.info.get(_SCOPE_KEY)
    driver = connection.connection.driver_connection
    carrier = driver if isinstance(driver, ScopeCarryingConnection) else None
    if carrier is not None:
        carrier.begin_with = None  # nothing from an earlier session's unused transaction
    if scope is None:
        return
    kind, tenant = scope.settings()
    adapter = connection.connection.dbapi_connection
    # Only while asyncpg's BEGIN is still to come: not in autocommit (no BEGIN), not once begun.
    lazy = (
        getattr(adapter, "_transaction", False) is None
        and getattr(adapter, "isolation_level", None) != "autocommit"
    )
    if carrier is not None and lazy:
        carrier.begin_with = scope_sql(kind, tenant)
        return
    connection.execute(
        text("SELECT set_config(:sk, :scope, true), set_config(:tk, :tenant, true)"),
        {"sk": SCOPE_SETTING, "scope": kind, "tk": TENANT_SETTING, "tenant": tenant},
    )


def set_scope(session: AsyncSession, scope: Scope) -> None:
    """The scope of this session's transactions from the next one on (see `narrow_scope` to change
    the current one)."""
    session.info[_SCOPE_KEY] = scope


def _on_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def _restate(session: AsyncSession, scope: Scope) -> None:
    session.info[_SCOPE_KEY] = scope
    if _on_postgres(session) and session.in_transaction():
        kind, tenant = scope.settings()
        await session.execute(
            text("SELECT set_config(:sk, :scope, true), set_config(:tk, :tenant, true)"),
            {"sk": SCOPE_SETTING, "scope": kind, "tk": TENANT_SETTING, "tenant": tenant},
        )


def log_platform_scope(scope: Scope) -> None:
    """The record of cross-tenant work: one line per platform-scope transaction or step, with its
    reason (a use case's names it, its actor and entry point; other work names itself or its caller).

    A person's (a platform admin's page or command) is logged at INFO: that is the trail of who looked
    across businesses. The machine's own (callbacks, sweeps, jobs, sign-in lookups) happens on every
    request and is logged at DEBUG: `lipapush.scope` at DEBUG shows it."""
    scope_log.log(logging.INFO if scope.by_person else logging.DEBUG, "platform scope: %s", scope.reason)


@asynccontextmanager
async def platform_scope(session: AsyncSession, reason: str) -> AsyncIterator[None]:
    """One step of a tenant's transaction that must look past its business: a uniqueness that is
    global (an email, the phone that opens a USSD menu) or a row that belongs to no business (a
    message from lipapush itself). Logged with its reason; the transaction's own scope comes back
    after it. Pending changes are flushed first, so none of them is written under the wider scope."""
    before = current_scope(session) or Scope.none()
    if before.is_platform:
        yield
        return
    await session.flush()
    wider = Scope.platform(reason)
    if _on_postgres(session):
        log_platform_scope(wider)
    await _restate(session, wider)
    try:
        yield
    finally:
        # After a database error the transaction is aborted (and rolled back by its unit of work):
        # the setting dies with it; only the session's note of its scope needs putting back.
        session.info[_SCOPE_KEY] = before
        if _on_postgres(session) and session.in_transaction():
            with contextlib.suppress(DBAPIError, PendingRollbackError):
                await _restate(session, before)


async def narrow_scope(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """From here on, this transaction (and any the session begins after it) sees only `tenant_id`'s
    rows: for work that starts in platform scope only to find which business it is for."""
    await _restate(session, Scope.tenant(tenant_id))


def current_scope(session: AsyncSession) -> Scope | None:
    return session.info.get(_SCOPE_KEY)


AfterCommit = Callable[[], Any]


@asynccontextmanager
async def session_scope(
    db: Database, *, readonly: bool = False, scope: Scope | None = None
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on any error. Runs `after_commit` hooks
    (registered with `after_commit(session, fn)`) only once the commit has succeeded.

    `scope` is what it may see of tenant data on Postgres; none given, it sees no tenant rows."""
    async with db.sessionmaker(readonly=readonly)() as session:
        session.info[_SCOPE_KEY] = scope or Scope.none()
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            session.info.pop("after_commit", None)
            raise
        hooks: list[AfterCommit] = session.info.pop("after_commit", [])
    for hook in hooks:
        result = hook()
        if asyncio.iscoroutine(result):
            await result


def after_commit(session: AsyncSession, fn: AfterCommit) -> None:
    session.info.setdefault("after_commit", []).append(fn)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use core.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def str_enum(enum_cls: type[StrEnum], name: str) -> SAEnum:
    """Store an enum by value as VARCHAR + CHECK: portable, and readable in a psql session."""
    return SAEnum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


# SQLite only autoincrements an INTEGER PRIMARY KEY; Postgres gets a real BIGINT.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


# A column holding a Fernet token (core.crypto.SecretBox) says so in its `info`:
# `mapped_column(Text, info=encrypted("router password"))`. `lipapush keys rotate` re-encrypts every
# column marked so (`encrypted_columns`), and tests/core/unit/test_key_rotation.py fails on an unmarked
# `*_enc` column. `info` is not part of the schema: marking a column needs no migration.
ENCRYPTED = "encrypted"


def encrypted(kind: str) -> dict[str, Any]:
    """`info=` for an encrypted column; `kind` names its values in the rotation's report ("channel
    secret": three columns of one table may share a kind)."""
    return {ENCRYPTED: kind}


def encrypted_columns(metadata: MetaData | None = None) -> list[Column[Any]]:
    """Every column marked `encrypted(...)` on the metadata (Base's by default), in table dependency
    order then column order. Only the models imported so far are on it: `import core.models` first."""
    tables = (metadata or Base.metadata).sorted_tables
    return [c for t in tables for c in t.columns if ENCRYPTED in c.info]
