"""The owner's payout grant (core/auth/use_cases_payout_grant.py) and PATCH /api/staff/{id}/payout-grant:
only the owner sets it, only for an active manager or cashier of the business (anyone else is not
found), every change is audited once, and a key needs payouts:write as well as business:write."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from core.access.actor import Actor, Via
from core.access.permissions import ApiScope
from core.audit.models import AuditLog
from core.auth import use_cases as people
from core.auth.models import Role, User
from core.auth.use_cases_payout_grant import NO_SUCH_STAFF, PayoutGrantOut, set_payout_grant
from core.errors import NotFound, PermissionDenied
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.web.test_usage_api import login


def person(tenant: Tenant, user: User) -> Actor:
    return Actor.for_user(
        user_id=user.id, tenant_id=tenant.id, role=user.role, via=Via.api, tenant_name=tenant.name
    )


async def granted(user_id: uuid.UUID) -> bool:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(User, user_id)
        assert row is not None
        return row.may_pay_out


async def grant_rows(tenant_id: uuid.UUID) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant_id, AuditLog.action == "staff.payout_grant")
                .order_by(AuditLog.id)
            )
        )


class TestTheUseCase:
    async def test_the_owner_allows_and_stops_a_manager_each_change_audited_once(
        self, server: LiveServer
    ) -> None:
        tenant, owner = await make_tenant(name="Grant Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        out = await set_payout_grant(person(tenant, owner), manager.id, allowed=True)
        assert out == PayoutGrantOut(user_id=manager.id, role=Role.manager, may_pay_out=True)
        assert await granted(manager.id)
        again = await set_payout_grant(person(tenant, owner), manager.id, allowed=True)
        assert again == out
        [row] = await grant_rows(tenant.id)  # the repeat changed nothing and wrote nothing
        assert (row.user_id, row.target) == (owner.id, str(manager.id))
        assert (row.detail["allowed"], row.detail["role"], row.detail["email"], row.detail["via"]) == (
            True,
            "manager",
            manager.email,
            "api",
        )
        stopped = await set_payout_grant(person(tenant, owner), manager.id, allowed=False)
        assert stopped.may_pay_out is False and not await granted(manager.id)
        assert [r.detail["allowed"] for r in await grant_rows(tenant.id)] == [True, False]

    async def test_only_a_manager_or_cashier_of_the_business(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Grant Who Duka")
        other, _ = await make_tenant(name="Grant Other Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        stranger = await make_user(tenant=other, role=Role.manager)
        removed = await make_user(tenant=tenant, role=Role.manager)
        actor = person(tenant, owner)
        await people.remove_member(actor, removed.id)
        assert (await set_payout_grant(actor, cashier.id, allowed=True)).may_pay_out is True
        for user_id in (owner.id, stranger.id, removed.id, uuid.uuid4()):
            with pytest.raises(NotFound) as refused:
                await set_payout_grant(actor, user_id, allowed=True)
            assert refused.value.message == NO_SUCH_STAFF
        assert not await granted(stranger.id) and not await granted(removed.id)

    async def test_staff_and_a_read_only_admin_cannot(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Grant Refused Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        with pytest.raises(PermissionDenied):
            await set_payout_grant(person(tenant, manager), cashier.id, allowed=True)
        with pytest.raises(PermissionDenied):
            await set_payout_grant(person(tenant, manager), manager.id, allowed=True)
        viewer = Actor.impersonating(admin_id=uuid.uuid4(), tenant_id=tenant.id, writes=False)
        with pytest.raises(PermissionDenied, match="read-only"):
            await set_payout_grant(viewer, cashier.id, allowed=True)
        assert not await granted(cashier.id) and not await granted(manager.id)
        assert await grant_rows(tenant.id) == []


class TestTheApi:
    async def test_patch_sets_the_grant_and_refuses_as_core_says(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Grant Api Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        url = f"/api/staff/{manager.id}/payout-grant"
        as_owner = await login(client, owner.email)
        r = await client.patch(url, json={"allowed": True}, headers=as_owner)
        assert (r.status_code, r.json()) == (
            200,
            {"user_id": str(manager.id), "role": "manager", "may_pay_out": True},
        )
        assert await granted(manager.id)

        r = await client.patch(url, json={"allowed": "maybe"}, headers=as_owner)
        assert r.status_code == 422
        r = await client.patch(url, json={"allowed": False, "extra": 1}, headers=as_owner)
        assert r.status_code == 422
        r = await client.patch(
            f"/api/staff/{owner.id}/payout-grant", json={"allowed": True}, headers=as_owner
        )
        assert (r.status_code, r.json()) == (404, {"error": "not_found", "detail": NO_SUCH_STAFF})

        r = await client.patch(url, json={"allowed": False}, headers=await login(client, manager.email))
        assert (r.status_code, r.json()["error"]) == (403, "permission_denied")
        _, stranger = await make_tenant(name="Grant Api Stranger Duka")
        r = await client.patch(url, json={"allowed": False}, headers=await login(client, stranger.email))
        assert r.status_code == 404
        assert await granted(manager.id)

    async def test_a_key_needs_payouts_write_too(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant(name="Grant Key Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        url = f"/api/staff/{cashier.id}/payout-grant"
        business_only = await make_api_key(tenant=tenant, scopes=[ApiScope.business_write])
        r = await client.patch(
            url, json={"allowed": True}, headers={"Authorization": f"Bearer {business_only}"}
        )
        assert r.status_code == 403
        assert r.json()["detail"].startswith("This API key lacks the payouts:write scope.")
        assert not await granted(cashier.id)
        both = await make_api_key(tenant=tenant, scopes=[ApiScope.business_write, ApiScope.payouts_write])
        r = await client.patch(url, json={"allowed": True}, headers={"Authorization": f"Bearer {both}"})
        assert (r.status_code, r.json()["may_pay_out"]) == (200, True)
