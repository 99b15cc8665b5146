"""API keys: scopes, rolling with an overlap, the network of last use

Keys made before scopes existed had the owner's rights; they get every scope, so no integration
stops working. The list is fixed here (the scopes at this revision), so the migration does the same
everywhere it runs, whatever the vocabulary grows to later.

Revision ID: 5e8a4c1f2b7d
Revises: 7c1e5a0d9b42
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e8a4c1f2b7d"
down_revision: str | None = "7c1e5a0d9b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPES_AT_THIS_REVISION = [
    "payments:read",
    "payments:write",
    "customers:read",
    "exports",
    "webhooks",
    "dashboard:read",
    "wallet:read",
    "wallet:write",
    "hotspot:read",
    "hotspot:write",
    "business:read",
    "business:write",
    "keys:read",
    "keys:write",
]


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_network", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rolled_to_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_rolled_to_id_api_keys"),
            "api_keys",
            ["rolled_to_id"],
            ["id"],
            ondelete="SET NULL",
        )

    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        # Every business's keys: row-level security lets a platform-scope transaction see them all.
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    keys = sa.table("api_keys", sa.column("scopes", sa.JSON()))
    conn.execute(sa.update(keys).values(scopes=SCOPES_AT_THIS_REVISION))

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("scopes", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_rolled_to_id_api_keys"), type_="foreignkey")
        batch_op.drop_column("rolled_to_id")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scopes")
        batch_op.drop_column("last_used_network")
