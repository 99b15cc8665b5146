"""Several M-Pesa channels per business

A business may now hold more than one channel (a till per branch, a paybill and a till, a sandbox
channel beside the production one for test keys). `mpesa_channels` loses UNIQUE (tenant_id) and gains:

- `name`: how the business tells its channels apart, unique within it; every existing channel is
  "Main";
- `is_primary`: the channel the bot, USSD and the panel push through and whose verification activates
  the business; at most one per business (a partial unique index). Every existing channel, each its
  business's only one, is its primary channel, so nothing anyone does changes.

The downgrade keeps each business's primary channel and refuses to run while a business holds more
than one (payments point at the others; deleting them would delete those payments).

Revision ID: 7b2d5e8f1a04
Revises: 3c7e1a9d5b42
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b2d5e8f1a04"
down_revision: str | None = "3c7e1a9d5b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mpesa_channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=60), nullable=False, server_default="Main"))
        batch_op.add_column(sa.Column("is_primary", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.drop_constraint("uq_mpesa_channels_tenant_id", type_="unique")
        batch_op.create_index(batch_op.f("ix_mpesa_channels_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_mpesa_channels_tenant_id_name"), ["tenant_id", "name"]
        )
    with op.batch_alter_table("mpesa_channels", schema=None) as batch_op:
        # The model sets both on every new row; the server defaults only served the existing ones.
        batch_op.alter_column("name", server_default=None)
        batch_op.alter_column("is_primary", server_default=None)
        batch_op.create_index(
            "uq_mpesa_channels_primary",
            ["tenant_id"],
            unique=True,
            postgresql_where=sa.text("is_primary"),
            sqlite_where=sa.text("is_primary"),
        )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    several = conn.execute(
        sa.text("SELECT tenant_id FROM mpesa_channels GROUP BY tenant_id HAVING COUNT(*) > 1 LIMIT 1")
    ).first()
    if several is not None:
        raise RuntimeError(
            f"Business {several[0]} holds more than one M-Pesa channel and its payments point at them; "
            "this downgrade would lose them. Upgrade again, or move those payments first."
        )
    with op.batch_alter_table("mpesa_channels", schema=None) as batch_op:
        batch_op.drop_index("uq_mpesa_channels_primary")
        batch_op.drop_constraint(batch_op.f("uq_mpesa_channels_tenant_id_name"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_mpesa_channels_tenant_id"))
        batch_op.create_unique_constraint("uq_mpesa_channels_tenant_id", ["tenant_id"])
        batch_op.drop_column("is_primary")
        batch_op.drop_column("name")
