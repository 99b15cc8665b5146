from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.service import record
from core.auth.models import Role, User
from core.auth.service import auth, normalize_email
from core.billing.subscriptions import start_trial
from core.phones import normalize_msisdn
from core.runtime import runtime
from core.tenants.models import Tenant, TenantKind
from core.tenants.service import tenants


async def signup(
    session: AsyncSession,
    *,
    business_name: str,
    email: str,
    phone: str,
    password: str | None = None,
    password_hash: str | None = None,
    kind: TenantKind = TenantKind.business,
) -> tuple[Tenant, User]:
    """A new business and its owner. It starts in `onboarding` until its M-Pesa channel is verified.
    A hotspot provider starts on its free trial (HOTSPOT_TRIAL_DAYS), billed by subscription."""
    msisdn = normalize_msisdn(phone)
    email = normalize_email(email)
    tenant = await tenants.create(session, name=business_name, email=email, phone=msisdn, kind=kind)
    detail = None
    if kind is TenantKind.hotspot:
        start_trial(tenant, days=runtime().settings.HOTSPOT_TRIAL_DAYS)
        detail = {"trial_until": tenant.trial_until.isoformat() if tenant.trial_until else None}
    user = await auth.create_user(
        session,
        email=email,
        password=password,
        password_hash=password_hash,
        role=Role.owner,
        tenant_id=tenant.id,
        phone=msisdn,
    )
    await record(
        session,
        action="tenant.created",
        tenant_id=tenant.id,
        user_id=user.id,
        target=tenant.slug,
        detail=detail,
    )
    return tenant, user
