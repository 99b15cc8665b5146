"""What a platform admin does with businesses and hotspot providers: find them, look one over, suspend
or reactivate it (with a reason, audited, its owner told), and set its commission rate.

The platform's own tenant (kind `platform`) is never listed and answers 404 like an unknown id.
Nothing here commits: the caller's unit of work does, and the owner's messages leave after it.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import AuditLog
from core.auth.auditing import Auditor, recorder
from core.auth.models import User
from core.billing.commission import commissions
from core.billing.invoices import invoices
from core.billing.models import Invoice
from core.billing.schemas import WalletOut
from core.billing.wallet import wallets
from core.config import Settings
from core.crypto import SecretBox
from core.errors import InvalidInput, NotFound
from core.hotspot.models import Router
from core.hotspot.routers import routers
from core.ledger.models import Account, AccountKind
from core.notify.models import Notification, NotifyChannel
from core.notify.service import notify
from core.payments.models import Payment, PaymentStatus
from core.tenants.models import Tenant, TenantKind, TenantStatus
from core.tenants.schemas import ChannelOut
from core.tenants.service import tenants

PER_PAGE = 50
REASON_MIN, REASON_MAX = 5, 300
ERROR_STATUSES = (PaymentStatus.failed, PaymentStatus.timeout)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def clean_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise InvalidInput("reason", f"Give a reason of {REASON_MIN} to {REASON_MAX} characters.")
    return reason


@dataclass
class TenantRow:
    tenant: Tenant
    wallet_balance_cents: int


@dataclass
class TenantPage:
    rows: list[TenantRow]
    page: int
    total: int
    per_page: int = PER_PAGE
    default_bps: int = 0

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass
class TenantDetail:
    tenant: Tenant
    channel: ChannelOut | None
    verification_failed_at: datetime | None
    effective_bps: int
    default_bps: int
    wallet: WalletOut
    invoices: list[Invoice]
    routers: list[Router]
    staff: list[User]
    errors: list[Payment] = field(default_factory=list)


class TenantAdminService:
    async def get(self, session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
        """A business or hotspot provider; the platform's own tenant is not one (404)."""
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None or tenant.kind is TenantKind.platform:
            raise NotFound("No such business.")
        return tenant

    async def search(
        self,
        session: AsyncSession,
        *,
        q: str | None = None,
        status: TenantStatus | None = None,
        kind: TenantKind | None = None,
        page: int = 1,
        per_page: int = PER_PAGE,
        settings: Settings,
    ) -> TenantPage:
        conds = [Tenant.kind != TenantKind.platform]
        q = (q or "").strip()
        if q:
            pattern = f"%{like_escape(q.lower())}%"
            alts = [
                func.lower(col).like(pattern, escape="\\")
                for col in (Tenant.name, Tenant.slug, Tenant.email, Tenant.phone, Tenant.business_number)
            ]
            digits = "".join(ch for ch in q if ch.isdigit())
            if len(digits) >= 4 and digits.startswith("0"):
                # "0712 345" finds 254712345…: phones are stored in international form
                alts.append(Tenant.phone.like(f"%{digits[1:]}%"))
            conds.append(or_(*alts))
        if status is not None:
            conds.append(Tenant.status == status)
        if kind is not None:
            conds.append(Tenant.kind == kind)
        total = int(await session.scalar(select(func.count()).select_from(Tenant).where(*conds)) or 0)
        page = max(1, page)
        stmt = (
            select(Tenant, Account.balance_cents)
            .outerjoin(Account, (Account.tenant_id == Tenant.id) & (Account.kind == AccountKind.wallet))
            .where(*conds)
            .order_by(Tenant.created_at.desc(), Tenant.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
        rows = [TenantRow(t, int(bal or 0)) for t, bal in (await session.execute(stmt)).all()]
        return TenantPage(
            rows=rows,
            page=page,
            total=total,
            per_page=per_page,
            default_bps=await commissions.default_bps(session, settings=settings),
        )

    async def detail(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, box: SecretBox, settings: Settings
    ) -> TenantDetail:
        tenant = await self.get(session, tenant_id)
        channel = await tenants.get_channel(session, tenant.id)
        failed_at = None
        if channel is not None and channel.verification_error:
            failed_at = await session.scalar(
                select(func.max(AuditLog.created_at)).where(
                    AuditLog.tenant_id == tenant.id, AuditLog.action == "channel.verification_failed"
                )
            )
        staff = list(
            await session.scalars(
                # Removed staff (disabled_at) stay as rows for attribution, not as staff.
                select(User)
                .where(User.tenant_id == tenant.id, User.disabled_at.is_(None))
                .order_by(User.created_at)
            )
        )
        return TenantDetail(
            tenant=tenant,
            channel=tenants.channel_out(channel, box=box, settings=settings) if channel else None,
            verification_failed_at=failed_at,
            effective_bps=await commissions.rate_for(session, tenant=tenant, settings=settings),
            default_bps=await commissions.default_bps(session, settings=settings),
            wallet=await wallets.view(session, tenant=tenant, settings=settings),
            invoices=(await invoices.for_tenant(session, tenant_id=tenant.id))[:5],
            routers=await routers.list(session, tenant_id=tenant.id),
            staff=staff,
            errors=await self.recent_errors(session, tenant_id=tenant.id),
        )

    async def recent_errors(
        self, session: AsyncSession, *, tenant_id: uuid.UUID, limit: int = 10
    ) -> list[Payment]:
        """The last failed, timed-out or flagged payments of a tenant, newest first."""
        return list(
            await session.scalars(
                select(Payment)
                .where(
                    Payment.tenant_id == tenant_id,
                    or_(Payment.status.in_(ERROR_STATUSES), Payment.flag.is_not(None)),
                )
                .order_by(Payment.created_at.desc(), Payment.id)
                .limit(limit)
            )
        )

    async def suspend(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        reason: str,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
    ) -> Tenant:
        """No more pushes from any channel (`tenants.ensure_can_collect` says why); the owner is told."""
        reason = clean_reason(reason)
        tenant = await self.get(session, tenant_id)
        if tenant.status is TenantStatus.suspended:
            raise InvalidInput("reason", f"{tenant.name} is already suspended: {tenant.status_reason or ''}")
        previous = tenant.status
        tenant.status, tenant.status_reason = TenantStatus.suspended, reason
        await session.flush()
        write = audit or recorder(session, tenant_id=tenant.id, user_id=by)
        await write("tenant.suspend", target=str(tenant.id), reason=reason, previous_status=previous.value)
        await self._tell_owner(
            session,
            tenant=tenant,
            kind="tenant.suspended",
            subject=f"{tenant.name} is suspended on lipapush",
            body=f"{tenant.name} has been suspended on lipapush and cannot take M-Pesa payments for now. "
            f"Reason: {reason}. Contact lipapush support to resolve it.",
        )
        return tenant

    async def reactivate(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        reason: str,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
    ) -> Tenant:
        """Back to `active`, or to `onboarding` when the M-Pesa channel was never verified."""
        reason = clean_reason(reason)
        tenant = await self.get(session, tenant_id)
        if tenant.status is not TenantStatus.suspended:
            raise InvalidInput("reason", f"{tenant.name} is not suspended (it is {tenant.status.value}).")
        channel = await tenants.get_channel(session, tenant.id)
        verified = channel is not None and channel.verified_at is not None
        tenant.status = TenantStatus.active if verified else TenantStatus.onboarding
        tenant.status_reason = None
        await session.flush()
        write = audit or recorder(session, tenant_id=tenant.id, user_id=by)
        await write("tenant.reactivate", target=str(tenant.id), reason=reason, status=tenant.status.value)
        then = (
            "can take M-Pesa payments again"
            if verified
            else "can finish setting up its M-Pesa channel and then take payments"
        )
        await self._tell_owner(
            session,
            tenant=tenant,
            kind="tenant.reactivated",
            subject=f"{tenant.name} is active on lipapush again",
            body=f"{tenant.name} has been reactivated on lipapush and {then}.",
        )
        return tenant

    async def _tell_owner(
        self, session: AsyncSession, *, tenant: Tenant, kind: str, subject: str, body: str
    ) -> None:
        """Telegram when the owner linked it (else SMS to the business phone), and an email. Outbox rows
        in this transaction; their send jobs go out after commit."""
        await notify.to_owner(session, tenant=tenant, kind=kind, subject=subject, body=body)
        owner = await notify.owner(session, tenant_id=tenant.id)
        email = owner.email if owner is not None and not owner.email.endswith(".invalid") else tenant.email
        if email and not email.endswith(".invalid"):
            await notify.queue(
                session,
                Notification(
                    tenant_id=tenant.id,
                    kind=kind,
                    channel=NotifyChannel.email,
                    recipient=email,
                    subject=subject,
                    body=body,
                ),
            )

    async def set_commission(
        self,
        session: AsyncSession,
        *,
        tenant_id: uuid.UUID,
        percent: str,
        by: uuid.UUID | None,
        audit: Auditor | None = None,
    ) -> Tenant:
        """A business's own rate ("1.5"), or back to the platform default (empty)."""
        tenant = await self.get(session, tenant_id)
        await commissions.set_tenant_rate(session, tenant=tenant, percent=percent, by=by, audit=audit)
        return tenant

    async def find(self, session: AsyncSession, ref: str) -> Tenant:
        """A tenant by its owner's (or a staff member's) email, slug or id: what an operator types."""
        conds = [Tenant.slug == ref, Tenant.email == ref.lower()]
        with contextlib.suppress(ValueError):
            conds.append(Tenant.id == uuid.UUID(ref))
        tenant = await session.scalar(select(Tenant).where(or_(*conds)))
        if tenant is None:
            user = await session.scalar(select(User).where(User.email == ref.strip().lower()))
            if user is not None and user.tenant_id is not None:
                tenant = await session.get(Tenant, user.tenant_id)
        if tenant is None:
            raise NotFound(f"No business matches '{ref}' (give the owner's email, the slug or the id).")
        return tenant

    async def every(self, session: AsyncSession) -> list[Tenant]:
        """Every tenant, oldest first (the operator's list)."""
        return list(await session.scalars(select(Tenant).order_by(Tenant.created_at)))


tenant_admin = TenantAdminService()
