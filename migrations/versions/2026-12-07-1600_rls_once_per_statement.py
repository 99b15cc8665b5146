"""row-level security reads the request's scope once per statement, not once per row (Postgres)

Every `tenant_isolation` policy said `current_setting('app.scope', true) = 'platform' OR tenant_id =
nullif(current_setting('app.tenant_id', true), '')::uuid`. Postgres evaluates that per row it reads:
two `current_setting` calls a row. A search that reads 18 000 customers spent half its time there (a
name-sorted search at a million customers: 80 ms as the application's role, 34 ms as a superuser,
which row-level security does not bind). Each call wrapped in a scalar subquery is an init plan: run
once per statement, its result compared per row as a parameter. Same rule, same answers: a setting
cannot change while a statement runs.

Rewritten in place (ALTER POLICY) on every table that has the policy, from the rule as pg_policies
shows it; a rule already rewritten is left alone. A later migration creating a policy should write the
wrapped form itself (`RULE` below).

Revision ID: f6b2d4e8a135
Revises: e5a1c3d7f968
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "f6b2d4e8a135"
down_revision: str | None = "e5a1c3d7f968"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
# pg_policies shows the rule as Postgres deparses it; these are the two calls in that form.
SCOPE = "current_setting('app.scope'::text, true)"
TENANT = "(NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid"
RULE = (
    "(SELECT current_setting('app.scope', true)) = 'platform' "
    "OR tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid)"
)
REWRITES = ((SCOPE, f"( SELECT {SCOPE} AS current_setting)"), (TENANT, f"( SELECT {TENANT} AS \"nullif\")"))


def _policies() -> list[tuple[str, str | None, str | None]]:
    rows = op.get_bind().execute(
        text(
            "SELECT tablename, qual, with_check FROM pg_policies "
            "WHERE schemaname = current_schema() AND policyname = :p ORDER BY tablename"
        ),
        {"p": POLICY},
    )
    return [(r[0], r[1], r[2]) for r in rows]


def _rewrite(rule: str | None, *, wrap: bool) -> str | None:
    if rule is None:
        return None
    for plain, wrapped in REWRITES:
        if wrap:
            if wrapped not in rule:
                rule = rule.replace(plain, wrapped)
        else:
            rule = rule.replace(wrapped, plain)
    return rule


def _alter(*, wrap: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, qual, check in _policies():
        new_qual, new_check = _rewrite(qual, wrap=wrap), _rewrite(check, wrap=wrap)
        if (new_qual, new_check) == (qual, check):
            continue
        clauses = []
        if new_qual is not None:
            clauses.append(f"USING ({new_qual})")
        if new_check is not None:
            clauses.append(f"WITH CHECK ({new_check})")
        op.execute(f'ALTER POLICY {POLICY} ON "{table}" {" ".join(clauses)}')


def upgrade() -> None:
    _alter(wrap=True)


def downgrade() -> None:
    _alter(wrap=False)
