from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import core.models  # noqa: F401  - every model on one metadata
from core.db import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from core.config import load_settings

        settings = load_settings()
        # The schema owner's URL when the application has its own role (core/migrate.py).
        url = settings.MIGRATION_DATABASE_URL or settings.DATABASE_URL
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _for_dialect(name: str):  # type: ignore[no-untyped-def]
    """`alembic check` compares a database with the models: an object the models make on one dialect
    only (`.ddl_if(dialect="postgresql")`, like the customer search's trigram indexes) is not missing
    from another's."""

    def include(obj, _name, _type, reflected, _compare_to) -> bool:  # type: ignore[no-untyped-def]
        cond = getattr(obj, "_ddl_if", None)
        if reflected or cond is None or cond.dialect is None:
            return True
        wanted = cond.dialect if isinstance(cond.dialect, list | tuple) else (cond.dialect,)
        return name in wanted

    return include


def _run_sync(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_for_dialect(connection.dialect.name),
        # SQLite cannot ALTER most things; batch mode rebuilds tables so one migration fits both.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
