"""Reversals wait for the owner's second factor: statuses `unconfirmed` and `cancelled`, the code's hash,
its expiry and tries, when it was confirmed and when M-Pesa accepted the request

Revision ID: a1c7e9b3d524
Revises: f4b0d2e6a813
Create Date: 2026-12-07 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c7e9b3d524"
down_revision: str | None = "f4b0d2e6a813"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("pending", "success", "failed", "timeout")
AFTER = ("unconfirmed", "pending", "success", "failed", "timeout", "cancelled")


def _status_check(values: Sequence[str]) -> None:
    check = f"status IN ({', '.join(repr(v) for v in values)})"
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE reversals DROP CONSTRAINT ck_reversals_reversal_status")
        op.execute(f"ALTER TABLE reversals ADD CONSTRAINT ck_reversals_reversal_status CHECK ({check})")
    else:  # SQLite cannot alter a CHECK: the batch copies the table under the new one
        with op.batch_alter_table("reversals", recreate="always") as batch_op:
            batch_op.drop_constraint(batch_op.f("ck_reversals_reversal_status"), type_="check")
            batch_op.create_check_constraint(batch_op.f("ck_reversals_reversal_status"), sa.text(check))


def upgrade() -> None:
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirm_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("confirm_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("confirm_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("send_attempts", sa.Integer(), server_default="0", nullable=False))
    _status_check(AFTER)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    # Never sent to M-Pesa: nothing is lost by dropping them.
    conn.execute(sa.text("DELETE FROM reversals WHERE status IN ('unconfirmed', 'cancelled')"))
    _status_check(BEFORE)
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.drop_column("send_attempts")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("confirm_attempts")
        batch_op.drop_column("confirm_expires_at")
        batch_op.drop_column("confirm_code_hash")
