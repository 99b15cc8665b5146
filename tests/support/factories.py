"""Plain async factories with keyword defaults; every one goes through the real services."""

from __future__ import annotations

import itertools
import secrets
import string
import uuid
from collections.abc import Iterable

from pydantic import SecretStr

from core.access.permissions import ApiScope
from core.auth.models import Role, User
from core.auth.service import auth
from core.billing.adjustments import adjust_wallet
from core.config import SANDBOX_PASSKEY, SANDBOX_SHORT_CODE
from core.ledger.models import AccountKind
from core.ledger.service import ledger
from core.plans.service import plans
from core.runtime import runtime, unit_of_work
from core.tenants.models import (
    BillingMode,
    ChannelKind,
    Environment,
    InvoicePeriod,
    Mode,
    Tenant,
    TenantKind,
    TenantStatus,
)
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants

_seq = itertools.count(1)


def letters_token(length: int = 8) -> str:
    """A random search term of letters only: the admin's business search also matches the digits of a
    query against phone numbers ("0712 345" finds 254712345…), so a token with digits in it can match
    other tests' businesses by phone (26^8: no two tests share one)."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length))


def unique_email(prefix: str = "owner") -> str:
    return f"{prefix}-{next(_seq)}-{uuid.uuid4().hex[:6]}@example.com"


async def make_tenant(
    *,
    name: str = "Mama Mboga",
    phone: str = "0712345678",
    password: str = "secret-pass-1",
    email: str | None = None,
    kind: ChannelKind = ChannelKind.paybill,
    verified: bool = True,
    with_channel: bool = True,
    tenant_kind: TenantKind = TenantKind.business,
    environment: Environment = Environment.production,
    plan: str | None = None,
) -> tuple[Tenant, User]:
    """A business with a channel in `environment`. verified=True marks it verified directly (the
    onboarding push itself is tested separately) so payment tests start from an active business.
    tenant_kind=hotspot: a WiFi provider as signing up makes one (on its free trial).

    Production by default, so its payments are live and earn commission, reserve on the wallet and
    post to the ledger as real ones do: the test server points DARAJA_PRODUCTION_URL at a simulator
    of its own (tests/conftest.py), so nothing leaves the machine. Pass Environment.simulator (or
    sandbox) for a test-mode business: its keys are lp_test_ keys and its payments never touch money.
    `plan`: an API plan's code ("founding": no monthly limit, for tests that push more than the Free
    plan's 100 live payments); None leaves the business on the default plan, as signing up does."""
    rt = runtime()
    async with unit_of_work() as session:
        tenant, owner = await signup(
            session,
            business_name=name,
            email=email or unique_email(),
            password=password,
            phone=phone,
            kind=tenant_kind,
        )
        if with_channel:
            channel = await tenants.save_channel(
                session,
                tenant=tenant,
                data=_channel_for(environment, kind),
                box=rt.secrets,
                by=owner.id,
            )
            if verified:
                await tenants.mark_verified(session, channel=channel)
        if plan is not None:
            await plans.choose(session, tenant, await plans.by_code(session, plan))
        await session.refresh(tenant)
    assert not verified or not with_channel or tenant.status is TenantStatus.active
    return tenant, owner


def _channel_for(environment: Environment, kind: ChannelKind) -> ChannelIn:
    if environment is Environment.simulator:
        return ChannelIn(environment=environment, kind=kind)
    # the stand-ins behind the sandbox and production URLs accept any app and the sandbox passkey
    return ChannelIn(
        environment=environment,
        kind=kind,
        business_short_code=SANDBOX_SHORT_CODE,
        till_number=SANDBOX_SHORT_CODE if kind is ChannelKind.till else None,
        consumer_key=SecretStr("test-consumer-key"),
        consumer_secret=SecretStr("test-consumer-secret"),
        passkey=SecretStr(SANDBOX_PASSKEY),
    )


async def make_user(*, tenant: Tenant, role: Role, password: str = "secret-pass-1") -> User:
    async with unit_of_work() as session:
        return await auth.create_user(
            session, email=unique_email(role.value), password=password, role=role, tenant_id=tenant.id
        )


async def make_api_key(
    *, tenant: Tenant, scopes: Iterable[ApiScope] | None = None, mode: Mode | None = None
) -> str:
    """A key with `scopes` (None: every scope, as a key made without choosing), of the business's
    default app, in `mode` (None: the app's, its channel's mode)."""
    async with unit_of_work() as session:
        _, key = await auth.create_api_key(
            session, tenant_id=tenant.id, created_by=None, scopes=scopes, mode=mode
        )
    return key


def channel_in(**kw: object) -> ChannelIn:
    data: dict[str, object] = {"environment": Environment.simulator}
    data.update(kw)
    for k in ("consumer_key", "consumer_secret", "passkey"):
        if isinstance(data.get(k), str):
            data[k] = SecretStr(str(data[k]))
    return ChannelIn(**data)  # type: ignore[arg-type]


async def set_billing(
    tenant: Tenant,
    *,
    mode: BillingMode | None = None,
    bps: int | None = None,
    threshold_cents: int | None = None,
    floor_cents: int | None = None,
    period: InvoicePeriod | None = None,
) -> None:
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        if mode is not None:
            row.billing_mode = mode
        if bps is not None:
            row.commission_bps = bps
        if threshold_cents is not None:
            row.low_balance_threshold_cents = threshold_cents
        if floor_cents is not None:
            row.wallet_floor_cents = floor_cents
        if period is not None:
            row.invoice_period = period


async def fund_wallet(tenant: Tenant, cents: int, reason: str = "test funding") -> None:
    async with unit_of_work() as session:
        await adjust_wallet(
            session,
            tenant_id=tenant.id,
            amount_cents=cents,
            reason=reason,
            by=None,
            settings=runtime().settings,
        )


async def wallet_state(tenant: Tenant) -> tuple[int, int]:
    """(balance, reserved) of the wallet, in cents."""
    async with unit_of_work(readonly=True) as session:
        return await ledger.balance(session, tenant_id=tenant.id, kind=AccountKind.wallet)


async def account_balance(tenant: Tenant, kind: AccountKind) -> int:
    async with unit_of_work(readonly=True) as session:
        return (await ledger.balance(session, tenant_id=tenant.id, kind=kind))[0]


async def make_admin(password: str = "admin-pass-123") -> tuple[str, str]:
    """A platform admin; returns (email, password) to log in with."""
    email = unique_email("admin")
    async with unit_of_work() as session:
        await auth.create_user(
            session, email=email, password=password, role=Role.platform_admin, tenant_id=None
        )
    return email, password


async def emailed_code(email: str) -> str:
    """The newest sign-in code emailed to `email` (from the notification outbox)."""
    import re

    from sqlalchemy import select

    from core.notify.models import Notification

    async with unit_of_work(readonly=True) as session:
        subject = await session.scalar(
            select(Notification.subject)
            .where(Notification.kind == "auth.code", Notification.recipient == email)
            .order_by(Notification.id.desc())
            .limit(1)
        )
    match = re.search(r"\b(\d{6})\b", subject or "")
    assert match, f"no sign-in code was emailed to {email}"
    return match.group(1)


async def make_provider(name: str = "Kangemi WiFi") -> tuple[Tenant, User]:
    """A hotspot provider, active, with a (production) channel, on its free trial (subscription billing)."""
    return await make_tenant(name=name, tenant_kind=TenantKind.hotspot)
