"""The frame every use case runs in: permission first, then the rule, the audit row, one transaction.

A use case is an async function in `core/<domain>/use_cases.py` whose first argument is the `Actor`:

    @use_case(Permission.wallet_settings, audit="wallet.settings_changed")
    async def set_low_balance_alert(actor: Actor, *, threshold: int) -> WalletOut:
        async with unit_of_work(actor) as uow:
            ...                                   # the rule, through domain services
            await uow.audit("wallet.settings_changed", threshold=threshold)

- The decorator checks the permission before the body runs, so no use case can forget it, and records
  the use case in `REGISTRY`, which a test walks.
- A use case that changes something declares the audit action it writes. Its write unit of work refuses
  to commit without that row (`UseCaseDefect`), so an unaudited change can never land; a front end
  cannot skip the audit, because it no longer writes it.
- A command whose record is its own row (a payment remembers who started it and from where) says so
  with `recorded_by=` instead; a query declares `query=True`.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor, ActorKind
from core.access.permissions import Permission
from core.audit.models import AuditLog
from core.audit.service import record
from core.db import Scope
from core.retry import busy, conflict_sqlstate
from core.runtime import unit_of_work as _transaction

P = ParamSpec("P")
R = TypeVar("R")


class UseCaseDefect(RuntimeError):
    """A programming error: a use case broke the frame (no audit row). Never shown to a user as such."""


@dataclass(frozen=True)
class UseCaseSpec:
    name: str
    permission: Permission
    audit: str | None
    recorded_by: str | None
    query: bool
    fn: Callable[..., Awaitable[Any]]  # the body
    entry: Callable[..., Awaitable[Any]]  # what callers call: the permission check, then the body


REGISTRY: dict[str, UseCaseSpec] = {}


@dataclass
class _Run:
    spec: UseCaseSpec
    audited: set[str] = field(default_factory=set)


_running: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("lipapush_use_case", default=None)


def use_case(
    permission: Permission,
    *,
    audit: str | None = None,
    recorded_by: str | None = None,
    query: bool = False,
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    if sum((audit is not None, recorded_by is not None, query)) != 1:
        raise TypeError("a use case is exactly one of: audit=<action>, recorded_by=<why>, query=True")

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        # core.hotspot.use_cases_plans -> hotspot: a domain may split its use cases over modules.
        domain = fn.__module__.removeprefix("core.").split(".")[0]
        name = f"{domain}.{fn.__name__}"
        if name in REGISTRY:
            raise TypeError(f"use case {name} is defined twice")

        @functools.wraps(fn)
        async def run(actor: Actor, /, *args: Any, **kwargs: Any) -> R:
            actor.require(permission)
            token = _running.set(_Run(spec))
            try:
                return await fn(actor, *args, **kwargs)
            except DBAPIError as exc:
                # A deadlock or serialization victim the use case did not retry itself (only it knows
                # whether its body may run twice: an STK push may not) is "busy, try again", not a 500.
                if conflict_sqlstate(exc) is None:
                    raise
                raise busy() from exc
            finally:
                _running.reset(token)

        spec = UseCaseSpec(name, permission, audit, recorded_by, query, fn, run)
        REGISTRY[name] = spec
        run.spec = spec  # type: ignore[attr-defined]
        return run

    return decorate


class UnitOfWork:
    """The session of one use case's transaction, with the actor it runs for."""

    def __init__(self, session: AsyncSession, actor: Actor) -> None:
        self.session = session
        self.actor = actor

    async def audit(self, action: str, *, target: str | None = None, **detail: Any) -> AuditLog:
        """The audit row, in this transaction: it commits or rolls back with the change it records."""
        run = _running.get()
        if run is not None:
            run.audited.add(action)
        return await record(
            self.session,
            action=action,
            tenant_id=self.actor.tenant_id,
            user_id=self.actor.audit_user_id,
            target=target,
            detail={**self.actor.audit_detail(), **detail},
        )


def scope_of(actor: Actor) -> Scope:
    """What of tenant data the actor's transaction may touch (Postgres row-level security): the one
    business it acts for (a user, an API key, an impersonating admin, a system or admin actor narrowed
    with `acting_for`); every business for a platform admin or the system acting for none (the admin
    panel's cross-tenant pages, platform commands: each such transaction is logged with its reason);
    otherwise no business at all."""
    if actor.tenant_id is not None:
        return Scope.tenant(actor.tenant_id)
    if actor.kind in (ActorKind.platform_admin, ActorKind.system):
        run = _running.get()
        what = run.spec.name if run is not None else "no use case"
        who = f"{actor.kind.value} {actor.user_id}" if actor.user_id else actor.kind.value
        return Scope.platform(
            f"{what} by {who} via {actor.via.value}", by_person=actor.kind is ActorKind.platform_admin
        )
    return Scope.none()


@asynccontextmanager
async def unit_of_work(actor: Actor, *, readonly: bool = False) -> AsyncIterator[UnitOfWork]:
    """One transaction for a use case. Jobs and events written inside it go out only after commit; a
    write unit of work of a use case that declares an audit action refuses to commit without it. On
    Postgres it sees only the tenant data its actor may (`scope_of`)."""
    async with _transaction(readonly=readonly, scope=scope_of(actor)) as session:
        session.info["actor"] = actor
        uow = UnitOfWork(session, actor)
        yield uow
        run = _running.get()
        if not readonly and run is not None and run.spec.audit and run.spec.audit not in run.audited:
            raise UseCaseDefect(f"use case {run.spec.name} did not write its audit row {run.spec.audit!r}")
