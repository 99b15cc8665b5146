"""Run Alembic migrations from code (`lipapush db upgrade`, and `serve` on first run), and tell the
other commands whether the database is there and migrated before they touch it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
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


def upgrade(database_url: str, revision: str = "head") -> None:
    path = sqlite_file(database_url)
    if path is not None:
        # SQLite creates the file but not its folder (the data directory on a first run).
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


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
