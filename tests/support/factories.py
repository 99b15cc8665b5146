"""Plain async factories with keyword defaults; every one goes through the real services."""

from __future__ import annotations

import itertools
import uuid

from pydantic import SecretStr

from core.auth.models import Role, User
from core.auth.service import auth
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment, Tenant, TenantStatus
from core.tenants.onboarding import signup
from core.tenants.schemas import ChannelIn
from core.tenants.service import tenants

_seq = itertools.count(1)


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
) -> tuple[Tenant, User]:
    """A business with a simulator channel. verified=True marks it verified directly (the onboarding
    push itself is tested separately) so payment tests start from an active business."""
    rt = runtime()
    async with unit_of_work() as session:
        tenant, owner = await signup(
            session, business_name=name, email=email or unique_email(), password=password, phone=phone
        )
        if with_channel:
            channel = await tenants.save_channel(
                session,
                tenant=tenant,
                data=ChannelIn(environment=Environment.simulator, kind=kind),
                box=rt.secrets,
                by=owner.id,
            )
            if verified:
                await tenants.mark_verified(session, channel=channel)
        await session.refresh(tenant)
    assert not verified or not with_channel or tenant.status is TenantStatus.active
    return tenant, owner


async def make_user(*, tenant: Tenant, role: Role, password: str = "secret-pass-1") -> User:
    async with unit_of_work() as session:
        return await auth.create_user(
            session, email=unique_email(role.value), password=password, role=role, tenant_id=tenant.id
        )


async def make_api_key(*, tenant: Tenant) -> str:
    async with unit_of_work() as session:
        _, key = await auth.create_api_key(session, tenant_id=tenant.id, created_by=None)
    return key


def channel_in(**kw: object) -> ChannelIn:
    data: dict[str, object] = {"environment": Environment.simulator}
    data.update(kw)
    for k in ("consumer_key", "consumer_secret", "passkey"):
        if isinstance(data.get(k), str):
            data[k] = SecretStr(str(data[k]))
    return ChannelIn(**data)  # type: ignore[arg-type]
