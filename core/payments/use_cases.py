"""What a person can do with payments, from any entry point: request one, list, read, summarise.

"A cashier sees only the payments they started" lives here, once (`_scoped`), for every front end.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, func
from sqlalchemy.ext.asyncio import AsyncSession

from core import ratelimit
from core.access.actor import Actor, ActorKind, Via
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.billing.commission import CommissionSplit
from core.billing.schemas import WalletOut
from core.billing.wallet import wallets
from core.customers.schemas import CustomerOut
from core.customers.service import customers
from core.errors import TooManyRequests
from core.money import parse_shillings
from core.payments.models import Payment, PaymentSource
from core.payments.push import request_stk_push
from core.payments.reports import DayTotal, reports
from core.payments.schemas import PaymentOut, PaymentPage
from core.payments.service import PaymentSummary, TransactionFilter, payments
from core.phones import mask_msisdn
from core.plans.service import plans
from core.runtime import runtime
from core.tenants.channels import channels
from core.tenants.models import Mode, Tenant, TenantKind
from core.tenants.service import primary_mode_sql, tenants

# Where a payment came from, by entry point. The panel has no source of its own yet: a push
# requested on the web is the business's own request, like the API's.
SOURCE_BY_VIA: dict[Via, PaymentSource] = {
    Via.api: PaymentSource.api,
    Via.mcp: PaymentSource.api,
    Via.panel: PaymentSource.api,
    Via.cli: PaymentSource.api,
    Via.telegram: PaymentSource.telegram,
    Via.ussd: PaymentSource.ussd,
}


# A person (not an integration, whose limits come with its plan) may start this many pushes a
# minute, whatever the entry point: a fat finger must not spam a customer's phone.
PERSON_PUSHES_PER_MINUTE = 10


async def _within_person_limit(actor: Actor) -> None:
    if actor.kind not in (ActorKind.user, ActorKind.impersonation) or actor.user_id is None:
        return
    if await ratelimit.hit(f"pushes:{actor.user_id}", 60) > PERSON_PUSHES_PER_MINUTE:
        raise TooManyRequests("Too many payment requests in a minute. Wait a little and try again.")


def _refused(limit: ratelimit.Limit, retry_after: int, message: str) -> TooManyRequests:
    resets_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=retry_after)
    return TooManyRequests(
        f"{message} Try again in {retry_after} second{'s' if retry_after != 1 else ''}.",
        limit=limit.name,
        allowed=limit.amount,
        window_seconds=limit.window,
        retry_after=retry_after,
        resets_at=resets_at.isoformat().replace("+00:00", "Z"),
    )


async def _within_flood_limits(actor: Actor, session: AsyncSession, payment: Payment) -> None:
    """Each accepted push is a prompt on someone's phone: an API key may start its business's plan's
    pushes a minute (`STK_PUSHES_PER_KEY_PER_MINUTE` when the plan sets none, core.plans), and one
    business may prompt one phone `STK_PUSHES_PER_PHONE_PER_MINUTE` times, whoever asks (key, panel,
    bot, merchant USSD).

    Counted only for a push that is really new (an Idempotency-Key replay sends no prompt) and checked
    inside the transaction that records it, so a refusal leaves no row. The phone is counted per
    business: a platform-wide count would let one business (or one leaked key) block every other
    business from billing that customer, and a leaked key is one business's. The captive portal and
    the USSD payer menu push through their own per-phone limits (core.hotspot.orders, ussd.payer)."""
    settings = runtime().settings
    if actor.api_key_id is not None:
        tenant = await session.get(Tenant, payment.tenant_id)
        assert tenant is not None
        # A hotspot provider is on no plan (core.plans.use_cases): the platform's rate.
        rate = None
        if tenant.kind is TenantKind.business:
            rate = (await plans.plans_of(session, tenant))[1].pushes_per_key_per_minute
        per_key = ratelimit.Limit("per_key", rate or settings.STK_PUSHES_PER_KEY_PER_MINUTE, 60)
        if (wait := await ratelimit.acquire(per_key, str(actor.api_key_id))) is not None:
            raise _refused(
                per_key,
                wait,
                f"This API key has started {per_key.amount} payment requests in the last minute, "
                "the most it may.",
            )
    per_phone = ratelimit.Limit("per_phone", settings.STK_PUSHES_PER_PHONE_PER_MINUTE, 60)
    if (wait := await ratelimit.acquire(per_phone, str(payment.tenant_id), payment.phone)) is not None:
        raise _refused(
            per_phone,
            wait,
            f"{mask_msisdn(payment.phone)} has had {per_phone.amount} payment prompts from this business "
            "in the last minute, the most one phone may get.",
        )


def _scoped(actor: Actor, filters: TransactionFilter) -> TransactionFilter:
    """The filter a front end asked for, narrowed to what this actor may see: a cashier their own
    payments, an API key the payments of its mode (a test key never sees a live payment, nor a live
    key a test one; people see both and may filter by mode)."""
    own = actor.own_payments_only
    if own is not None:
        filters = dataclasses.replace(filters, initiated_by=own)
    if actor.mode is not None:
        filters = dataclasses.replace(filters, mode=actor.mode)
    return filters


@use_case(
    Permission.payments_request,
    recorded_by="the payment row itself: initiated_by, source, idempotency key and every state change",
)
async def request_payment(
    actor: Actor,
    *,
    phone: str,
    amount: int,
    name: str | None = None,
    reference: str | None = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    notify_phone: str | None = None,
    defer: bool = False,
    on_created: Callable[[AsyncSession, Payment], Awaitable[None]] | None = None,
    callback_url: str | None = None,
) -> PaymentOut:
    """An STK push to a customer. `phone` must be normalised (core.phones); the amount is checked
    against the one push limit (`STK_MAX_AMOUNT`) here whatever the front end checked before.

    An API key pushes through its app's channel, and only in its own mode: a test key through a
    simulator or sandbox channel, a live key through a verified production one (refused otherwise,
    before anything is written). The payment records the app and the channel's mode."""
    amount = parse_shillings(amount)
    await _within_person_limit(actor)

    async def created(session: AsyncSession, payment: Payment) -> None:
        await _within_flood_limits(actor, session, payment)
        if on_created is not None:
            await on_created(session, payment)

    return await request_stk_push(
        tenant_id=actor.require_tenant(),
        phone=phone,
        amount=amount,
        source=SOURCE_BY_VIA.get(actor.via, PaymentSource.api),
        name=name,
        reference=reference,
        description=description,
        initiated_by=actor.user_id,
        idempotency_key=idempotency_key,
        notify_phone=notify_phone,
        defer=defer,
        on_created=created,
        app_id=actor.app_id,
        key_mode=actor.mode,
        callback_url=callback_url,
    )


async def check_channel(session: AsyncSession, actor: Actor, channel_id: uuid.UUID | None) -> None:
    """A channel a list, a dashboard or an export is filtered by must be the business's own: another
    business's (or a made-up id) is 404 "No such channel…", never an empty answer that looks like a
    quiet till."""
    if channel_id is not None:
        await channels.get(session, tenant_id=actor.require_tenant(), channel_id=channel_id)


@dataclass(frozen=True)
class ChannelChoice:
    id: uuid.UUID
    name: str
    mode: Mode


@use_case(Permission.payments_read, query=True)
async def channel_choices(actor: Actor, *, book_only: bool = False) -> list[ChannelChoice]:
    """The business's channels a page may filter by, the primary first. Every one for a list of
    payments (a person sees both modes there); with `book_only`, those of the mode the dashboard and the
    customer book add up (`book_mode`), since another mode's channel adds nothing there. An API key
    gets its own mode's only. A page offers the choice when there is more than one."""
    async with unit_of_work(actor, readonly=True) as uow:
        rows = await channels.all(uow.session, tenant_id=actor.require_tenant())
        mode = await book_mode(uow.session, actor) if book_only else actor.mode
        return [ChannelChoice(c.id, c.name, c.mode) for c in rows if mode is None or c.mode is mode]


@use_case(Permission.payments_read, query=True)
async def list_payments(
    actor: Actor, *, filters: TransactionFilter, cursor: str | None = None, limit: int = 50
) -> PaymentPage:
    """Newest first; `filters.channel_id`, when set, must be the business's channel (404 otherwise)."""
    async with unit_of_work(actor, readonly=True) as uow:
        await check_channel(uow.session, actor, filters.channel_id)
        return await payments.list_page(
            uow.session,
            tenant_id=actor.require_tenant(),
            filters=_scoped(actor, filters),
            cursor=cursor,
            limit=limit,
        )


@use_case(Permission.payments_read, query=True)
async def payments_page(
    actor: Actor, *, filters: TransactionFilter, page: int, per_page: int
) -> tuple[list[PaymentOut], bool]:
    """A numbered page (chat screens, where a cursor does not fit in a button)."""
    async with unit_of_work(actor, readonly=True) as uow:
        await check_channel(uow.session, actor, filters.channel_id)
        rows, more = await payments.page(
            uow.session,
            tenant_id=actor.require_tenant(),
            filters=_scoped(actor, filters),
            page=page,
            per_page=per_page,
        )
        return [PaymentOut.model_validate(r) for r in rows], more


@use_case(Permission.payments_read, query=True)
async def get_payment(actor: Actor, payment_id: uuid.UUID) -> PaymentOut:
    """One payment; another business's id, or another cashier's payment, is 404."""
    async with unit_of_work(actor, readonly=True) as uow:
        payment = await payments.get(
            uow.session,
            tenant_id=actor.require_tenant(),
            payment_id=payment_id,
            initiated_by=actor.own_payments_only,
            mode=actor.mode,
        )
        return PaymentOut.model_validate(payment)


@dataclass(frozen=True)
class PaymentDetail:
    payment: PaymentOut
    commission_cents: int | None
    commission_bps: int | None


@use_case(Permission.payments_read, query=True)
async def get_payment_detail(actor: Actor, payment_id: uuid.UUID) -> PaymentDetail:
    """One payment with the commission it carries (the panel's detail page)."""
    async with unit_of_work(actor, readonly=True) as uow:
        p = await payments.get(
            uow.session,
            tenant_id=actor.require_tenant(),
            payment_id=payment_id,
            initiated_by=actor.own_payments_only,
            mode=actor.mode,
        )
        return PaymentDetail(PaymentOut.model_validate(p), p.commission_cents, p.commission_bps)


async def figures_mode(session: AsyncSession, actor: Actor) -> Mode | None:
    """Whose figures a dashboard adds up: an API key's own mode; for a person, the mode of the
    business's primary channel now (a business that tried the simulator, then went live, sees live figures),
    none before it has a channel. A read that has the primary channel's mode already (read with the
    business) passes it to `figures_mode_given`."""
    if actor.mode is not None:  # no read needed
        return actor.mode
    return figures_mode_given(actor, await tenants.primary_mode(session, actor.require_tenant()))


def figures_mode_given(actor: Actor, primary_mode: Mode | None) -> Mode | None:
    """`figures_mode` when the business's primary channel's mode is known (read with the business,
    core.tenants.service.get_with_mode)."""
    return actor.mode if actor.mode is not None else primary_mode


async def book_mode(session: AsyncSession, actor: Actor) -> Mode:
    """Which customer book (test or live) an actor reads, the one rule for every front end: the mode
    `figures_mode` adds up (an API key's own; a person, the business's current channel's, so a
    business that tried the simulator and went live sees its live book only). A business with no
    channel yet has only its test book, which is empty: nothing is pushed without a channel.
    `book_mode_sql` is the same rule inside a statement that reads the book."""
    return await figures_mode(session, actor) or Mode.test


def book_mode_given(actor: Actor, primary_mode: Mode | None) -> Mode:
    """`book_mode` when the business's primary channel's mode is known."""
    return figures_mode_given(actor, primary_mode) or Mode.test


# `book_mode` of a person, as an SQL expression of the statement's `tenant_id` parameter: built once.
_PERSON_BOOK_MODE = func.coalesce(primary_mode_sql(bindparam("tenant_id")), Mode.test.value)


def book_mode_sql(actor: Actor) -> Mode | ColumnElement[str]:
    """`book_mode` for a read of the book that finds it in the same statement: an API key's own mode
    as it is, a person's as an SQL expression of the statement's `tenant_id` parameter (bindparam), the
    business whose book it reads (core.customers.service.recent and get take either as `mode`)."""
    return actor.mode if actor.mode is not None else _PERSON_BOOK_MODE


@use_case(Permission.payments_read, query=True)
async def payment_summary(actor: Actor, *, since: datetime | None = None) -> PaymentSummary:
    async with unit_of_work(actor, readonly=True) as uow:
        return await payments.summary(
            uow.session,
            tenant_id=actor.require_tenant(),
            since=since,
            initiated_by=actor.own_payments_only,
            mode=await figures_mode(uow.session, actor),
        )


def scoped_filter(actor: Actor, filters: TransactionFilter) -> TransactionFilter:
    """For queries that run inside a bigger read (dashboards, exports): the actor's narrowing. The
    caller checks a `channel_id` in it (`check_channel`)."""
    actor.require(Permission.payments_read)
    return _scoped(actor, filters)


@dataclass(frozen=True)
class HomeView:
    """What a person's dashboard shows. Parts the actor may not see are None: a cashier gets their
    own figures and requests; the wallet, commission and customer book are for those who may read them.

    Of one channel when asked (`channel_id`): the summary, the chart, the recent payments and the recent
    customers (those asked to pay through it, with their whole book's figures). The wallet and the
    commission stay the business's: one wallet pays for every channel."""

    tenant: Tenant
    summary: PaymentSummary
    days: list[DayTotal]
    commission: CommissionSplit | None
    wallet: WalletOut | None
    recent_customers: list[CustomerOut] | None
    recent_payments: list[PaymentOut] | None


async def _home(
    actor: Actor, *, chart_days: int, recent: int, channel_id: uuid.UUID | None = None
) -> HomeView:
    own = actor.own_payments_only
    async with unit_of_work(actor, readonly=True) as uow:
        session = uow.session
        # the business and its primary channel's mode in one read: the figures' and the book's mode
        tenant, primary_mode = await tenants.get_with_mode(session, actor.require_tenant())
        await check_channel(session, actor, channel_id)
        manages = actor.can(Permission.wallet_read)
        mode = figures_mode_given(actor, primary_mode)
        days = (
            await reports.daily_totals(
                session,
                tenant_id=tenant.id,
                days=chart_days,
                initiated_by=own,
                mode=mode,
                channel_id=channel_id,
            )
            if chart_days
            else []
        )
        summary = await payments.summary(
            session, tenant_id=tenant.id, initiated_by=own, mode=mode, channel_id=channel_id
        )
        wallet: WalletOut | None = None
        commission: CommissionSplit | None = None
        if manages:  # the wallet and the commission split from one read of the ledger
            wallet, commission = await wallets.view_and_split(
                session, tenant=tenant, settings=runtime().settings
            )
        return HomeView(
            tenant=tenant,
            summary=summary,
            days=days,
            commission=commission,
            wallet=wallet,
            recent_customers=(
                await customers.recent(
                    session,
                    tenant_id=tenant.id,
                    mode=book_mode_given(actor, primary_mode),
                    limit=recent,
                    channel_id=channel_id,
                )
                if actor.can(Permission.customers_read)
                else None
            ),
            recent_payments=None
            if own is None
            else (
                await payments.list_page(
                    session,
                    tenant_id=tenant.id,
                    filters=TransactionFilter(initiated_by=own, channel_id=channel_id),
                    limit=recent,
                )
            ).items,
        )


@use_case(Permission.dashboard_read, query=True)
async def home_view(
    actor: Actor, *, chart_days: int = 30, recent: int = 5, channel_id: uuid.UUID | None = None
) -> HomeView:
    """A person's dashboard (the panel's /app, the bot's Home); `chart_days=0` leaves the chart out;
    `channel_id`: one of the business's channels only (404 for any other)."""
    return await _home(actor, chart_days=chart_days, recent=recent, channel_id=channel_id)


@use_case(Permission.wallet_read, query=True)
async def business_dashboard(actor: Actor, *, channel_id: uuid.UUID | None = None) -> HomeView:
    """The business's figures for GET /api/dashboard: the same view as the panel's, without the chart,
    for those who may read the wallet; of one of its channels with `channel_id`."""
    return await _home(actor, chart_days=0, recent=5, channel_id=channel_id)


@dataclass(frozen=True)
class PayeeSuggestion:
    phone: str
    name: str | None


@use_case(Permission.payments_read, query=True)
async def payee_suggestions(actor: Actor, *, limit: int = 5) -> list[PayeeSuggestion]:
    """People to request a payment from, one tap away: the customer book's most recent for those who
    may read the book; for a cashier, the people of their own recent requests (the book is not theirs).
    Both from the mode of `book_mode` only: a business gone live is not offered its simulator payees."""
    async with unit_of_work(actor, readonly=True) as uow:
        if actor.can(Permission.customers_read):  # the book and its mode in one statement
            recent = await customers.recent(
                uow.session, tenant_id=actor.require_tenant(), mode=book_mode_sql(actor), limit=limit
            )
            return [PayeeSuggestion(c.phone, c.name) for c in recent]
        mode = await book_mode(uow.session, actor)
        page = await payments.list_page(
            uow.session,
            tenant_id=actor.require_tenant(),
            filters=_scoped(actor, TransactionFilter(customer_only=True, mode=mode)),
            limit=limit * 4,
        )
    seen: dict[str, str | None] = {}
    for p in page.items:
        seen.setdefault(p.phone, p.customer_name)
    return [PayeeSuggestion(phone, name) for phone, name in list(seen.items())[:limit]]


@use_case(Permission.payments_read, query=True)
async def payee_name(actor: Actor, phone: str) -> str | None:
    """The name a payer is known by, to fill in when their number is typed again: from the customer
    book for those who may read it, else from the actor's own earlier requests; in the mode of
    `book_mode` either way."""
    async with unit_of_work(actor, readonly=True) as uow:
        tenant_id = actor.require_tenant()
        if actor.can(Permission.customers_read):  # the book and its mode in one statement
            known = await customers.get(
                uow.session, tenant_id=tenant_id, mode=book_mode_sql(actor), phone=phone
            )
            return known.name if known else None
        mode = await book_mode(uow.session, actor)
        page = await payments.list_page(
            uow.session,
            tenant_id=tenant_id,
            filters=_scoped(actor, TransactionFilter(customer_only=True, phone=phone, mode=mode)),
            limit=5,
        )
    return next((p.customer_name for p in page.items if p.phone == phone and p.customer_name), None)


@use_case(Permission.dashboard_read, query=True)
async def payment_days(actor: Actor, *, days: int = 30) -> list[DayTotal]:
    """Customer payments per EAT day over the last `days` (the dashboard chart), the actor's own for
    a cashier."""
    async with unit_of_work(actor, readonly=True) as uow:
        return await reports.daily_totals(
            uow.session,
            tenant_id=actor.require_tenant(),
            days=days,
            initiated_by=actor.own_payments_only,
            mode=await figures_mode(uow.session, actor),
        )
