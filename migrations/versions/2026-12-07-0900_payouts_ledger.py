"""Payouts: the ledger's memorandum accounts of money out, and when a payout was last POSTed

- `ledger_accounts.kind` takes `b2c_out` and `payees` (core/ledger/payouts.py): every live payout
  M-Pesa paid is one transfer b2c_out → payees keyed by its OriginatorConversationID, which
  `lipapush ledger check` proves.
- `payouts.last_attempt_at`: when the B2C request was last sent (core/payouts/reconcile.py trusts a
  "no such transaction" status answer only well after it).

The account-kind CHECK is replaced by a wider one as 2026-12-07-0800_money_out_foundation.py does
(NOT VALID, then validated, on Postgres; a table copy on SQLite). The downgrade refuses while a
payout account exists: the narrower CHECK cannot hold it, and deleting it would lose the record of
money sent.

Revision ID: e3a9c1d5f702
Revises: d1e5a7c90b31
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3a9c1d5f702"
down_revision: str | None = "d1e5a7c90b31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("wallet", "receivable", "revenue", "cash", "adjustments")
AFTER = (*BEFORE, "b2c_out", "payees")


def _check(values: Sequence[str]) -> str:
    return f"kind IN ({', '.join(repr(v) for v in values)})"


def _set_check(values: Sequence[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_accounts DROP CONSTRAINT ck_ledger_accounts_account_kind")
        op.execute(
            "ALTER TABLE ledger_accounts ADD CONSTRAINT ck_ledger_accounts_account_kind "
            f"CHECK ({_check(values)}) NOT VALID"
        )
        op.execute("ALTER TABLE ledger_accounts VALIDATE CONSTRAINT ck_ledger_accounts_account_kind")
    else:  # SQLite cannot alter a CHECK: the batch copies the table under the new one
        with op.batch_alter_table("ledger_accounts", schema=None, recreate="always") as batch_op:
            batch_op.drop_constraint(batch_op.f("ck_ledger_accounts_account_kind"), type_="check")
            batch_op.create_check_constraint(
                batch_op.f("ck_ledger_accounts_account_kind"), sa.text(_check(values))
            )


def upgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True))
    _set_check(AFTER)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    held = conn.execute(
        sa.text("SELECT count(*) FROM ledger_accounts WHERE kind IN ('b2c_out', 'payees')")
    ).scalar_one()
    if held:
        raise RuntimeError(
            f"Cannot downgrade below the payouts ledger: the database holds {held} payout ledger "
            "accounts, which the older schema cannot store. Restore a backup taken before the upgrade "
            "instead."
        )
    _set_check(BEFORE)
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_column("last_attempt_at")
