"""API usage: the request log and the networks each key was used from

- `api_requests`: one row per /api request made by a known caller (an API key, a login token, or a
  refused key whose prefix names a business's key): route template, status, latency, request id and
  client network. Kept USAGE_RETENTION_DAYS (pruned daily); the usage figures and the log are read
  from it.
- `api_key_networks`: every network (an IPv4 /24, an IPv6 /64) a key was used from, so a key used from
  a new one can be told to its owner. Seeded from each key's `last_used_network`, so the first use
  after this revision from the usual network is not news.

Both under row-level security on Postgres, like every tenant table.

Revision ID: a4d9c2e7f150
Revises: 7b2d5e8f1a04
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "a4d9c2e7f150"
down_revision: str | None = "7b2d5e8f1a04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TENANT_TABLES = ("api_requests", "api_key_networks")
# The policy of 2026-12-07-0100_row_level_security.py, copied so this file stands alone.
RULE = (
    "current_setting('app.scope', true) = 'platform' "
    "OR tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"
)


def _network(ip: str) -> str | None:
    # core.usage.networks.network_of as of this revision, copied so this file stands alone.
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        else:
            return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(ipaddress.ip_network(f"{addr}/24", strict=False))


def _seed_networks() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    rows = conn.execute(
        sa.text(
            "SELECT id, tenant_id, last_used_network, last_used_at FROM api_keys "
            "WHERE last_used_network IS NOT NULL"
        )
    ).all()
    networks = sa.table(
        "api_key_networks",
        sa.column("api_key_id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("network", sa.String()),
        sa.column("first_seen_at", sa.DateTime(timezone=True)),
        sa.column("last_seen_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    for raw_key, raw_tenant, ip, last_used_at in rows:
        network = _network(str(ip))
        if network is None:
            continue
        # Raw SQL gives ids as the driver stores them (32 hex digits on SQLite): typed from here on.
        seen = last_used_at if isinstance(last_used_at, datetime) else now
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        conn.execute(
            sa.insert(networks).values(
                api_key_id=uuid.UUID(str(raw_key)),
                tenant_id=uuid.UUID(str(raw_tenant)),
                network=network,
                first_seen_at=seen,
                last_seen_at=seen,
            )
        )


def upgrade() -> None:
    op.create_table(
        "api_requests",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("app_id", sa.Uuid(), nullable=True),
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True, length=32),
            nullable=True,
        ),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # No foreign keys to api_keys or apps: a log row outlives the key or app it names, and the
        # batched insert never waits on a key being deleted in the same second.
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_requests_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_requests")),
    )
    with op.batch_alter_table("api_requests", schema=None) as batch_op:
        batch_op.create_index("ix_api_requests_tenant_created", ["tenant_id", "created_at"], unique=False)
        batch_op.create_index("ix_api_requests_key_created", ["api_key_id", "created_at"], unique=False)
        batch_op.create_index("ix_api_requests_app_created", ["app_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_requests_created_at"), ["created_at"], unique=False)

    op.create_table(
        "api_key_networks",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_networks_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_key_networks_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "network", name=op.f("pk_api_key_networks")),
    )
    with op.batch_alter_table("api_key_networks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_networks_tenant_id"), ["tenant_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE})")
    _seed_networks()


def downgrade() -> None:
    with op.batch_alter_table("api_key_networks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_networks_tenant_id"))
    op.drop_table("api_key_networks")
    with op.batch_alter_table("api_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_requests_created_at"))
        batch_op.drop_index("ix_api_requests_app_created")
        batch_op.drop_index("ix_api_requests_key_created")
        batch_op.drop_index("ix_api_requests_tenant_created")
    op.drop_table("api_requests")
