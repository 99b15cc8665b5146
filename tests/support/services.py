"""Which real services this test run uses, and throwaway databases on them.

`TEST_DATABASE_URL` (a Postgres server URL) and `TEST_REDIS_URL` switch the suite to real Postgres and
Redis; without them it runs on the embedded defaults (a temporary SQLite file, in-process broker).
`LIPAPUSH_REQUIRE_SERVICES=1` (set by CI) turns "service unreachable" into a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")
REQUIRE = os.environ.get("LIPAPUSH_REQUIRE_SERVICES") == "1"


# The application's own database role on Postgres, as in production: neither superuser nor BYPASSRLS,
# so every test that goes through the app runs under row-level security. `lipapush db upgrade` (run
# as the server's superuser, the owner) creates it once per server and grants it each new database.
# Local connections are trusted (pg_hba), so it has no password here.
APP_ROLE = "lipapush_app"


@dataclass
class TestDatabase:
    __test__ = False  # a fixture value, not a test class

    url: str  # what the app connects with: the app role on Postgres
    drop: str | None  # database name to drop on Postgres
    owner_url: str | None = None  # the superuser that owns the schema (migrations), Postgres only

    @property
    def migration_url(self) -> str:
        return self.owner_url or self.url

    def env(self) -> dict[str, str]:
        """DATABASE_URL and MIGRATION_DATABASE_URL for a lipapush process (serve migrates on start)."""
        env = {"DATABASE_URL": self.url}
        if self.owner_url:
            env["MIGRATION_DATABASE_URL"] = self.owner_url
        return env


def _pg_parts(url: str) -> tuple[str, str]:
    """(server URL for asyncpg without the database, original database name)."""
    base = url.replace("postgresql+asyncpg://", "postgresql://").replace("postgres://", "postgresql://")
    head, _, _db = base.rpartition("/")
    return head, _db


async def _pg_admin(sql: str) -> None:
    import asyncpg

    assert PG_URL
    head, db = _pg_parts(PG_URL)
    conn = await asyncpg.connect(f"{head}/{db or 'postgres'}")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(tag: str) -> TestDatabase:
    """A fresh, empty database for this run (Postgres when configured, else a temp SQLite file)."""
    if PG_URL:
        name = f"lipapush_{tag}_{secrets.token_hex(4)}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        head, _ = _pg_parts(PG_URL)
        owner = f"{head.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        scheme, _, rest = owner.partition("://")
        app = f"{scheme}://{APP_ROLE}@{rest.rpartition('@')[2]}"
        return TestDatabase(url=app, drop=name, owner_url=owner)
    path = Path(tempfile.mkdtemp(prefix="lipapush-")) / f"{tag}.db"
    return TestDatabase(url=f"sqlite+aiosqlite:///{path}", drop=None)


def drop_database(db: TestDatabase) -> None:
    if db.drop:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{db.drop}" WITH (FORCE)'))


def redis_namespace() -> str:
    return f"lipapush-test-{secrets.token_hex(4)}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
