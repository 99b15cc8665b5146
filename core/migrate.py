"""Run Alembic migrations from code (`lipapush db upgrade`, and `serve` on first run), and tell the
other commands whether the database is there and migrated before they touch it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

import migrations

FIX = "run `lipapush serve` once or `lipapush db upgrade`"


class DatabaseNotReady(RuntimeError):
    """One line: which database, what is wrong with it and the command that fixes it."""


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(next(iter(migrations.__path__)))))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def sqlite_file(database_url: str) -> Path | None:
    """The file of an SQLite database (absolute), None for a server database or an in-memory one."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().resolve()  # type: ignore[arg-type]


def database_location(database_url: str) -> str:
    """The database as people should see it: the file for SQLite, the URL without its password."""
    path = sqlite_file(database_url)
    if path is not None:
        return str(path)
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return database_url.split("@")[-1]


def upgrade(database_url: str, revision: str = "head", *, migration_url: str | None = None) -> list[str]:
    """Migrate the database, as `migration_url` (the schema's owner) when given, else as
    `database_url`. On Postgres, with an owner URL for another role than the application's, the
    application's role (the user of `database_url`) is then created if missing and granted the
    tables: see `ensure_app_role`. Returns warnings for the operator (empty when all is well)."""
    path = sqlite_file(database_url)
    if path is not None:
        # SQLite creates the file but not its folder (the data directory on a first run).
        path.parent.mkdir(parents=True, exist_ok=True)
    owner_url = migration_url or database_url
    command.upgrade(alembic_config(owner_url), revision)
    if path is not None or make_url(owner_url).get_backend_name() != "postgresql":
        return []
    return asyncio.run(ensure_app_role(owner_url, database_url))


# What the application's role may do: read and write rows, use sequences. Not DDL, not TRUNCATE, not
# the migration history (read-only, so `check_ready` works), and never past the row-level policies.
_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}",
    "REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
    # Tables a later migration creates (as this owner) are granted at once, even before this runs again.
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
)


async def ensure_app_role(owner_url: str, app_url: str) -> list[str]:
    """Make the role the application connects as (the user in DATABASE_URL) ready for it, connected
    as the schema's owner (MIGRATION_DATABASE_URL): created as a plain login role when missing (its
    password from DATABASE_URL; needs CREATEROLE or a superuser), granted the tables and sequences.

    Row-level security binds only a role that is neither a superuser nor BYPASSRLS: such a role in
    DATABASE_URL (or one URL for both, the owner being a superuser) gets a warning back, not an
    error, so an existing single-URL deployment keeps running while its operator splits the URLs."""
    owner, app = make_url(owner_url), make_url(app_url)
    role, password = app.username, app.password
    warnings: list[str] = []
    engine = create_async_engine(owner_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            me = await conn.scalar(text("SELECT current_user"))
            if not role or role == me or (owner.username and role == owner.username):
                row = (await conn.execute(_ROLE_FLAGS, {"r": me})).one()
                if row.rolsuper or row.rolbypassrls:
                    warnings.append(_single_url_warning(me))
                return warnings
            exists = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
            if not exists:
                create = "CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
                if password:
                    create += " PASSWORD %L"
                try:
                    await _execute_formatted(conn, create, role, password)
                    await conn.commit()
                except DBAPIError as exc:
                    await conn.rollback()
                    # Another `db upgrade` (a second database on this server) created it meanwhile.
                    if not await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
                        raise DatabaseNotReady(
                            f"Cannot create the application's database role {role!r} "
                            f"({_first_line(exc)}): create it once as a superuser (CREATE ROLE {role} "
                            "LOGIN PASSWORD '…'), or run `lipapush db upgrade` with a "
                            "MIGRATION_DATABASE_URL whose role has CREATEROLE."
                        ) from None
            elif password:
                await _execute_formatted(conn, "ALTER ROLE %I PASSWORD %L", role, password)
            row = (await conn.execute(_ROLE_FLAGS, {"r": role})).one()
            if row.rolsuper or row.rolbypassrls:
                warnings.append(
                    f"The database role {role!r} in DATABASE_URL is a superuser or has BYPASSRLS: "
                    "row-level security does not apply to it. ALTER ROLE it NOSUPERUSER NOBYPASSRLS."
                )
            quoted = conn.dialect.identifier_preparer.quote(role)
            for grant in _GRANTS:
                await conn.execute(text(grant.format(role=quoted)))
            await conn.commit()
    finally:
        await engine.dispose()
    return warnings


_ROLE_FLAGS = text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r")


async def _execute_formatted(conn: AsyncConnection, template: str, role: str, password: str | None) -> None:
    # Role statements take no bind parameters: the server quotes the name and password (format %I, %L).
    if "%L" in template:
        query, args = "SELECT format(CAST(:t AS text), CAST(:r AS text), CAST(:p AS text))", {"p": password}
    else:
        query, args = "SELECT format(CAST(:t AS text), CAST(:r AS text))", {}
    sql = await conn.scalar(text(query), {"t": template, "r": role, **args})
    await conn.exec_driver_sql(str(sql))


def _first_line(exc: BaseException) -> str:
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return (str(reason).strip().splitlines() or [type(reason).__name__])[0]


def _single_url_warning(role: str) -> str:
    return (
        f"lipapush connects to Postgres as {role!r}, a superuser or BYPASSRLS role: row-level security "
        "(the second wall between businesses) does not apply. Set DATABASE_URL to a plain role "
        "(e.g. lipapush_app) and MIGRATION_DATABASE_URL to the owner; `lipapush db upgrade` creates "
        "the plain role."
    )


def check_ready(database_url: str) -> None:
    """Raise DatabaseNotReady unless the database exists and is migrated to this code's head.

    Commands other than `serve` and `db upgrade` call this first: opening a missing SQLite file would
    create an empty one, and an unmigrated database fails deep inside a query with a long traceback."""
    where = database_location(database_url)
    path = sqlite_file(database_url)
    if path is not None and not path.is_file():
        raise DatabaseNotReady(f"No lipapush database at {where}: {FIX}.")
    try:
        current = asyncio.run(_current_heads(database_url))
    except (OSError, SQLAlchemyError, TimeoutError) as exc:
        reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first_line = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
        raise DatabaseNotReady(
            f"Cannot open the lipapush database at {where} ({first_line}): check DATABASE_URL "
            "and that the database server is running."
        ) from None
    scripts = ScriptDirectory.from_config(alembic_config(database_url))
    heads = set(scripts.get_heads())
    if current == heads:
        return
    if not current:
        raise DatabaseNotReady(f"The lipapush database at {where} is empty (not migrated): {FIX}.")
    known = {rev.revision for rev in scripts.walk_revisions()}
    if current <= known:
        raise DatabaseNotReady(
            f"The lipapush database at {where} is at an older version: run `lipapush db upgrade`."
        )
    raise DatabaseNotReady(
        f"The lipapush database at {where} was migrated by a newer lipapush "
        f"(revision {', '.join(sorted(current - known))}): upgrade lipapush to use it."
    )


async def _current_heads(database_url: str) -> set[str]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with asyncio.timeout(15), engine.connect() as conn:
            heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
            return set(heads)
    finally:
        await engine.dispose()
