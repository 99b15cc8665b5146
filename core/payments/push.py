"""The STK push use case, shared by the API, the bot, USSD and onboarding.

It spans two transactions on purpose: the pending payment is committed *before* Daraja is called, so
a crash or a callback racing our reply can never lose the record; the Daraja answer is written in a
second transaction. Holding a transaction open across an HTTP call would also block SQLite writers.

Each of those transactions touches only the database, so each is run again when Postgres aborts it as
a deadlock victim (`core.retry.retrying`); the Daraja call between them never is: a push has no
idempotency key, and a second call would prompt the customer twice.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.apps.service import apps
from core.audit.service import record
from core.billing.platform import platform_channel
from core.daraja.errors import DarajaError, DarajaModeError, DarajaTransientError
from core.daraja.schemas import DarajaCredentials, StkPushRequest
from core.db import Scope, narrow_scope, utcnow
from core.errors import DarajaRejected, DarajaUnavailable, NotFound
from core.jobs.registry import enqueue, job
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.payments.schemas import PaymentOut
from core.payments.service import payments
from core.plans.service import plans
from core.retry import retrying
from core.runtime import runtime, unit_of_work
from core.tenants import modes
from core.tenants.models import Mode, MpesaChannel, Tenant, TenantKind, TenantStatus
from core.tenants.service import tenants
from core.webhooks.service import webhooks

log = logging.getLogger(__name__)
TOPUP_SCOPE = Scope.platform("wallet top-up through the platform channel")
# A deferred push's job carries only the payment's id: whose it is, is what its first read finds out.
FIND_PUSH = Scope.platform("payments.send_push: the business of a deferred push")

UNKNOWN_OUTCOME_RECHECK = timedelta(seconds=30)
# Busy after Daraja was called: the payment is recorded (pending) and reconciliation settles it.
SETTLED_LATER = (
    "M-Pesa answered, but saving its answer collided with other changes. This payment's result will be "
    "settled automatically: check it in a few minutes before asking the customer again."
)

# What the first transaction hands to the Daraja call: the payment as recorded and, unless there is
# nothing to send now (a repeated Idempotency-Key, a deferred push), the credentials and the request.
Recorded = tuple[PaymentOut, tuple[DarajaCredentials, StkPushRequest] | None]


async def _record_then_send(
    record: Callable[[], Awaitable[Recorded]], what: str, *, scope: Scope
) -> PaymentOut:
    out, push = await retrying(record, what=what)
    return out if push is None else await _send(out, *push, scope=scope)


async def request_stk_push(
    *,
    tenant_id: uuid.UUID,
    phone: str,
    amount: int,
    source: PaymentSource,
    name: str | None = None,
    reference: str | None = None,
    description: str | None = None,
    initiated_by: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    notify_phone: str | None = None,
    defer: bool = False,
    on_created: Callable[[AsyncSession, Payment], Awaitable[None]] | None = None,
    app_id: uuid.UUID | None = None,
    key_mode: Mode | None = None,
    callback_url: str | None = None,
    channel_id: uuid.UUID | None = None,
) -> PaymentOut:
    """Validate, record, push. `phone` and `amount` must already be normalised (core.phones,
    core.money). Raises DarajaRejected (payment recorded as failed) or DarajaUnavailable (payment
    left pending for reconciliation) after recording.

    `defer` hands the Daraja call to a job and returns the pending payment at once: USSD must answer
    within seconds whatever M-Pesa is doing. `notify_phone` gets the result by SMS. `on_created` runs
    in the transaction that records the payment (a hotspot order is written with it), and again if
    Postgres aborts that transaction as a deadlock victim: it should only write to the database.

    `app_id` and `key_mode` come with an API key: the push goes through the app's channel, and a key
    whose mode is not the channel's (or a live key on an unverified channel) is refused before anything
    is written. The payment takes the channel's mode either way. `callback_url` (an app's key only)
    must be on a host the app allows; the payment's events go there too (core.webhooks).
    `channel_id` (a payer who named one of the business's tills): that channel rather than the primary
    one; without an app or a channel, the business's primary channel."""
    rt = runtime()

    async def record() -> Recorded:
        async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
            tenant = await tenants.get(session, tenant_id)
            app = await apps.get(session, tenant_id=tenant_id, app_id=app_id) if app_id is not None else None
            if app is not None:
                found = await apps.channel_of(session, app)
            else:
                found = await tenants.channel_or_primary(session, tenant_id, channel_id)
            hook_url = (
                webhooks.check_callback_url(app, callback_url, box=rt.secrets, settings=rt.settings)
                if callback_url
                else None
            )
            if key_mode is not None and tenant.status is not TenantStatus.suspended:
                modes.ensure_push_mode(found, key_mode)
            channel = tenants.ensure_can_collect(tenant, found)
            payment, created = await payments.create_pending(
                session,
                settings=rt.settings,
                tenant=tenant,
                channel=channel,
                phone=phone,
                amount=amount,
                source=source,
                name=name,
                reference=reference,
                description=description,
                initiated_by=initiated_by,
                idempotency_key=idempotency_key,
                app_id=app_id,
                notify_phone=notify_phone,
                callback_url=hook_url,
                first_check_after=first_check_after(),
                pushed=not defer,
            )
            if not created:
                return PaymentOut.model_validate(payment), None
            if payment.mode is Mode.live and tenant.kind is TenantKind.business:
                # The business's monthly live-push quota (core.plans): over it, this raises and the
                # payment and its count roll back together. Test pushes never count; a hotspot
                # provider's WiFi sales are paid for by its subscription (core.billing.subscriptions).
                await plans.count_live_push(session, tenant)
            if on_created is not None:
                await on_created(session, payment)
            return await _ready_to_send(session, payment, channel, defer=defer)

    return await _record_then_send(record, "record an STK push", scope=Scope.tenant(tenant_id))


async def send_verification_push(
    *, tenant_id: uuid.UUID, by: uuid.UUID | None = None, channel_id: uuid.UUID | None = None
) -> PaymentOut:
    """The channel's test: KES 1 to the owner's phone through the channel (`channel_id`, default the
    primary one). Its success callback verifies the channel, and the primary channel's activates the
    business (core.tenants.subscribers)."""
    rt = runtime()
    async with unit_of_work(scope=Scope.tenant(tenant_id)) as session:
        tenant = await tenants.get(session, tenant_id)
        channel = await tenants.channel_or_primary(session, tenant_id, channel_id)
        if channel is None:
            raise NotFound("This business has no M-Pesa channel yet.")
        payment, _ = await payments.create_pending(
            session,
            settings=rt.settings,
            tenant=tenant,
            channel=channel,
            phone=tenant.phone,
            amount=1,
            source=PaymentSource.onboarding,
            description="Verification",
            initiated_by=by,
        )
        channel.verification_payment_id = payment.id
        channel.verification_error = None
        _schedule_first_check(payment)
        payment.pushed_at = utcnow()
        out = PaymentOut.model_validate(payment)
        request = _push_request(payment, channel)
        creds = tenants.credentials(channel, box=rt.secrets, settings=rt.settings, mode=payment.mode)
    # A refusal fails the payment, and its PaymentFinalised marks the channel's test failed with the
    # reason (core.tenants.subscribers): nothing more to record here.
    return await _send(out, creds, request, scope=Scope.tenant(tenant_id))


async def request_wallet_topup(
    *,
    tenant_id: uuid.UUID,
    amount: int,
    phone: str | None = None,
    initiated_by: uuid.UUID | None = None,
    notify_phone: str | None = None,
    defer: bool = False,
    idempotency_key: str | None = None,
    audit_detail: dict[str, Any] | None = None,
    description: str = "Wallet top-up",
    on_created: Callable[[AsyncSession, Tenant, Payment], Awaitable[None]] | None = None,
) -> PaymentOut:
    """An STK push to the merchant's phone through the platform's own Daraja app; its success
    credits the wallet once (payments.finalize → topups.credit_wallet). Works even for a business
    on billing hold or still onboarding: topping up is how they get out of it. With `audit_detail`
    (an admin acting for the business) a `wallet.topup_requested` audit row is written with it.
    `on_created` runs in the transaction that records the new payment (a plan paid by M-Pesa marks
    the business's plan as waiting for it, core.plans)."""
    rt = runtime()

    async def record_topup() -> Recorded:
        # The business's payment through the platform's own channel (another tenant's row).
        async with unit_of_work(scope=TOPUP_SCOPE) as session:
            tenant = await tenants.get(session, tenant_id)
            if tenant.status is TenantStatus.suspended:
                tenants.ensure_can_collect(tenant, None)  # raises with the suspension reason
            channel = await platform_channel(session, settings=rt.settings, box=rt.secrets)
            payment, created = await payments.create_pending(
                session,
                settings=rt.settings,
                tenant=tenant,
                channel=channel,
                phone=phone or tenant.phone,
                amount=amount,
                source=PaymentSource.topup,
                reference="TOPUP",
                description=description,
                initiated_by=initiated_by,
                idempotency_key=idempotency_key,
                notify_phone=notify_phone,
                first_check_after=first_check_after(),
                pushed=not defer,
            )
            if not created:
                return PaymentOut.model_validate(payment), None
            if on_created is not None:
                await on_created(session, tenant, payment)
            if audit_detail is not None:
                await record(
                    session,
                    action="wallet.topup_requested",
                    tenant_id=tenant_id,
                    user_id=initiated_by,
                    target=str(payment.id),
                    detail={"amount": amount, **audit_detail},
                )
            return await _ready_to_send(session, payment, channel, defer=defer)

    return await _record_then_send(record_topup, "record a wallet top-up push", scope=TOPUP_SCOPE)


@job("payments.send_push", max_retries=0)
async def send_push(payment_id: str) -> None:
    """The deferred half of a push: at most once. `pushed_at` is committed before Daraja is called, so
    a redelivered job (worker died mid-call) finds it set and leaves the payment to reconciliation
    instead of prompting the customer a second time. Daraja's refusals are recorded on the payment
    (and so reach the merchant) by `_send`."""
    rt = runtime()
    async with unit_of_work(scope=FIND_PUSH) as session:
        payment = await session.get(Payment, uuid.UUID(payment_id), with_for_update=True)
        if payment is None or payment.status.is_final or payment.pushed_at is not None:
            return
        if payment.source is PaymentSource.topup:
            # The business's payment through the platform's channel: another tenant's row.
            scope = TOPUP_SCOPE
        else:
            scope = Scope.tenant(payment.tenant_id)
            await narrow_scope(session, payment.tenant_id)
        channel = await session.get(MpesaChannel, payment.channel_id)
        assert channel is not None
        payment.pushed_at = utcnow()
        out = PaymentOut.model_validate(payment)
        request = _push_request(payment, channel)
        # The payment's own mode, not the channel's as it is now: if the owner switched the channel
        # between test and live since this push was recorded, the Daraja client refuses to send it
        # (a test payment never becomes a real prompt, nor a live one a sandbox prompt).
        creds = tenants.credentials(channel, box=rt.secrets, settings=rt.settings, mode=payment.mode)
        moved = channel_changed(payment.mode) if channel.mode is not payment.mode else None
    with contextlib.suppress(DarajaRejected, DarajaUnavailable):
        await _send(out, creds, request, scope=scope, mode_refusal=moved)


async def _ready_to_send(
    session: AsyncSession, payment: Payment, channel: MpesaChannel, *, defer: bool
) -> Recorded:
    """The end of a push's first transaction: its first check is due, and either a job will send it
    (`defer`) or `pushed_at` is committed with it before this process calls Daraja."""
    rt = runtime()
    if payment.next_check_at is None:
        _schedule_first_check(payment)
    if defer:
        await enqueue(session, send_push, payment_id=str(payment.id))
        return PaymentOut.model_validate(payment), None
    if payment.pushed_at is None:
        payment.pushed_at = utcnow()
    out = PaymentOut.model_validate(payment)
    request = _push_request(payment, channel)
    creds = tenants.credentials(channel, box=rt.secrets, settings=rt.settings, mode=payment.mode)
    return out, (creds, request)


def first_check_after() -> timedelta:
    # Set before Daraja is called: even if this process dies mid-call, reconciliation finds it.
    return timedelta(seconds=runtime().settings.RECONCILE_AFTER_SECONDS)


def _schedule_first_check(payment: Payment) -> None:
    payment.next_check_at = payment.created_at + first_check_after()


def _push_request(payment: Payment, channel: MpesaChannel) -> StkPushRequest:
    settings = runtime().settings
    return StkPushRequest(
        phone=payment.phone,
        amount=payment.amount,
        callback_url=tenants.callback_url(channel, settings=settings),
        account_reference=payment.account_reference,
        description=payment.description,
    )


def channel_changed(mode: Mode) -> str:
    """Why a deferred push of a `mode` payment was not sent: its channel is of the other mode now."""
    if mode is Mode.test:
        return (
            "Not sent: this business's M-Pesa channel changed from test to live after this push was "
            "recorded, and a test payment never reaches real money. Send it again: it goes through the "
            "live channel as a live payment."
        )
    return (
        "Not sent: this business's M-Pesa channel changed from live to test after this push was "
        "recorded, and a live payment never goes to a simulator or the sandbox. Send it again once "
        "the production channel is back, or as a test payment."
    )


async def _send(
    out: PaymentOut,
    creds: DarajaCredentials,
    request: StkPushRequest,
    *,
    scope: Scope,
    mode_refusal: str | None = None,
) -> PaymentOut:
    """Call Daraja and record its answer on the payment, in `scope`: the transaction that recorded the
    payment's (its business's, or the platform's for a top-up through the platform channel).
    `mode_refusal`: what the payment says if the client refuses the call for its mode (a channel that
    changed mode since the push was recorded); nothing was sent, so it is failed, not left pending."""
    rt = runtime()
    try:
        accepted = await rt.daraja().stk_push(creds, request)
    except DarajaTransientError as exc:
        unknown = exc.outcome_unknown

        async def record_unreachable() -> None:
            async with unit_of_work(scope=scope) as session:
                if unknown:
                    await payments.record_outcome_unknown(
                        session, payment_id=out.id, delay=UNKNOWN_OUTCOME_RECHECK
                    )
                else:
                    await _fail(
                        session, out.id, "M-Pesa could not be reached, so no prompt was sent. Try again."
                    )

        await retrying(
            record_unreachable, what="record that M-Pesa did not answer", busy_message=SETTLED_LATER
        )
        if exc.outcome_unknown:
            raise DarajaUnavailable(
                "M-Pesa did not answer in time. The customer may still get the prompt: the result "
                "will be recorded automatically, so do not resend yet.",
                payment_id=str(out.id),
            ) from None
        raise DarajaUnavailable(
            "M-Pesa could not be reached, so no prompt was sent. Try again in a minute.",
            payment_id=str(out.id),
        ) from None
    except DarajaError as exc:
        log.info("daraja refused push %s: %s %s", out.id, exc.kind, exc.error_code)
        refused, code = f"M-Pesa refused the request: {exc.message}", exc.error_code
        if isinstance(exc, DarajaModeError):  # refused here, before anything reached M-Pesa
            refused = mode_refusal or f"Not sent to M-Pesa: {exc.message}"

        async def record_refusal() -> None:
            async with unit_of_work(scope=scope) as session:
                await _fail(session, out.id, refused, code)

        await retrying(record_refusal, what="record M-Pesa's refusal of a push", busy_message=SETTLED_LATER)
        raise DarajaRejected(refused, payment_id=str(out.id)) from None

    async def record_accepted() -> PaymentOut:
        async with unit_of_work(scope=scope) as session:
            payment = await payments.record_accepted(
                session,
                payment_id=out.id,
                merchant_request_id=accepted.merchant_request_id,
                checkout_request_id=accepted.checkout_request_id,
                check_after=timedelta(seconds=rt.settings.RECONCILE_AFTER_SECONDS),
            )
            return PaymentOut.model_validate(payment)

    return await retrying(
        record_accepted, what="record M-Pesa's acceptance of a push", busy_message=SETTLED_LATER
    )


async def _fail(session: AsyncSession, payment_id: uuid.UUID, message: str, code: str | None = None) -> None:
    payment = await session.get(Payment, payment_id)
    if payment is not None:
        await payments.finalize(
            session,
            payment=payment,
            status=PaymentStatus.failed,
            settings=runtime().settings,
            result_code=code,
            result_desc=message,
        )
