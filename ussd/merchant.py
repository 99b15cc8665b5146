"""The merchant's menu, behind the USSD PIN: request a payment, recent payments, today, wallet,
export customers, change PIN, and money out (the M-Pesa balance and a payout, ussd.payouts) once the
business has a channel with an M-Pesa initiator."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from core.access.actor import Actor, Via
from core.access.permissions import Permission
from core.auth.models import Role, User
from core.auth.pins import (
    locked,
    needs_rehash,
    upgrade_pin_hash,
    validate_new_pin,
)
from core.auth.use_cases import change_ussd_pin
from core.auth.ussd_access import check_ussd_pin
from core.billing.use_cases import request_topup, view_wallet
from core.db import Scope, utcnow
from core.errors import InvalidInput
from core.exports.use_cases import email_customer_book_to
from core.money import format_cents, format_kes, stk_max_amount
from core.notify.texts import local_phone
from core.payments.models import PaymentStatus
from core.payments.service import TransactionFilter
from core.payments.use_cases import list_payments, payment_summary, request_payment
from core.payouts.channels import payout_channels
from core.phones import normalize_msisdn
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from ussd.engine import Ctx, Tree
from ussd.screens import Action, End, EndSession, Invalid, Menu, Option, Prompt, short

log = logging.getLogger(__name__)

NAIROBI = ZoneInfo("Africa/Nairobi")
STATUS_WORD = {
    PaymentStatus.pending: "Waiting",
    PaymentStatus.success: "Paid",
    PaymentStatus.failed: "Failed",
    PaymentStatus.cancelled: "Cancelled",
    PaymentStatus.timeout: "No reply",
    PaymentStatus.expired: "Expired",
    PaymentStatus.reversed: "Reversed",
}


def actor_of(ctx: Ctx) -> Actor:
    """The signed-in user as core sees them: the same actor the API, the bot and the panel build."""
    return Actor.for_user(
        user_id=uuid.UUID(ctx.data["uid"]),
        tenant_id=_tid(ctx),
        role=Role(ctx.data["role"]),
        via=Via.ussd,
        tenant_name=ctx.data.get("tname"),
    )


def allowed(permission: Permission) -> Callable[[Ctx], bool]:
    """A menu option shown only to those core lets do it."""
    return lambda ctx: "role" in ctx.data and actor_of(ctx).can(permission)


def money_out(permission: Permission) -> Callable[[Ctx], bool]:
    """A money-out option: shown once the business has a channel with an M-Pesa initiator (what M-Pesa
    is asked through), to those core lets, paying out also to staff the owner allowed to (core checks
    the grant again when they pay)."""

    def allow(ctx: Ctx) -> bool:
        if "role" not in ctx.data or not ctx.data.get("mo"):
            return False
        granted = permission is Permission.payouts_request and bool(ctx.data.get("grant"))
        return granted or actor_of(ctx).can(permission)

    return allow


async def signed_in_user(ctx: Ctx) -> User:
    """The signed-in user, re-read on every use: a removed phone or user ends the session."""
    async with unit_of_work(readonly=True, scope=Scope.tenant(_tid(ctx))) as session:
        return await _still_registered(ctx, session)


async def _still_registered(ctx: Ctx, session: AsyncSession) -> User:
    user = await session.get(User, uuid.UUID(ctx.data["uid"]))
    if (
        user is None
        or user.ussd_phone != ctx.msisdn
        or user.tenant_id != _tid(ctx)
        or user.disabled_at is not None
    ):
        raise EndSession("This phone is no longer registered for lipapush USSD.")
    session.expunge(user)
    return user


def _tid(ctx: Ctx) -> uuid.UUID:
    return uuid.UUID(ctx.data["tid"])


def lock_message(until: datetime) -> str:
    at = until.astimezone(NAIROBI).strftime("%H:%M")
    return f"Too many wrong PINs. USSD is locked until {at}. Your business owner has been told."


async def check_pin(ctx: Ctx, value: str) -> None:
    # One read for the PIN hop: the user again (a lock, a new PIN or a removed phone since the dial counts),
    # and what the menu behind the PIN shows (the business, whether it can pay out).
    async with unit_of_work(readonly=True, scope=Scope.tenant(_tid(ctx))) as session:
        user = await _still_registered(ctx, session)
        tenant = await tenants.get(session, _tid(ctx))
        initiators = any(c.initiator_name for c in await payout_channels(session, tenant_id=tenant.id))
    until = locked(user)
    if until is not None:
        raise EndSession(lock_message(until))
    if not value.isdigit() or len(value) != 4:
        raise Invalid("The PIN is 4 digits.")
    result = await check_ussd_pin(user=user, pin=value, phone=ctx.msisdn)
    if result.ok:
        if user.ussd_pin_hash is not None and needs_rehash(user.ussd_pin_hash):
            await _upgrade_pin(ctx, user, value, user.ussd_pin_hash)
        ctx.data.update(
            role=user.role.value,
            tname=tenant.name,
            temail=tenant.email,
            mo=initiators,  # money out: what the 8 and 9 options need
            grant=user.may_pay_out,
            auth=True,
        )
        return
    if result.locked_until is not None:
        raise EndSession(lock_message(result.locked_until))
    if not result.ok:
        tries = "1 try" if result.remaining == 1 else f"{result.remaining} tries"
        raise Invalid(f"Wrong PIN. {tries} left.")
    ctx.data["auth"] = True


async def _upgrade_pin(ctx: Ctx, user: User, pin: str, seen_hash: str) -> None:
    """A correct PIN kept the old way (argon2, or an older key) is stored the current way
    (core.auth.pins). Best effort: a failure here must not refuse a right PIN; the next login retries."""
    try:
        async with unit_of_work(scope=Scope.tenant(_tid(ctx))) as session:
            await upgrade_pin_hash(session, user_id=user.id, pin=pin, seen_hash=seen_hash)
    except Exception:
        log.warning("ussd: storing the PIN of user %s in the new form failed", user.id, exc_info=True)


async def home_title(ctx: Ctx) -> str:
    return short(ctx.data.get("tname", "lipapush"), 40)


# --- request a payment ---------------------------------------------------------------------------


async def parse_phone(ctx: Ctx, value: str) -> None:
    try:
        ctx.data["phone"] = normalize_msisdn(value)
    except InvalidInput:
        raise Invalid("Not a Kenyan mobile number. Use 07XXXXXXXX or 01XXXXXXXX.") from None


def parse_amount(key: str) -> Callable[[Ctx, str], Awaitable[None]]:
    async def parse(ctx: Ctx, value: str) -> None:
        # Keypads type digits only; anything else (cents, letters) came from a forged request.
        if not value.isdigit() or len(value) > 9:
            raise Invalid("Enter whole shillings, like 150.")
        amount = int(value)
        limit = stk_max_amount()
        if not 1 <= amount <= limit:
            raise Invalid(f"Amount must be 1 to {limit:,}.")
        ctx.data[key] = amount

    return parse


async def request_confirm(ctx: Ctx) -> str:
    return f"Request {format_kes(ctx.data['amount'])} from {local_phone(ctx.data['phone'])}?"


async def send_request(ctx: Ctx) -> End:
    await signed_in_user(ctx)
    p = await request_payment(
        actor_of(ctx),
        phone=ctx.data["phone"],
        amount=ctx.data["amount"],
        notify_phone=ctx.msisdn,
        # A gateway repeat of the confirming hop must not prompt the customer twice.
        idempotency_key=f"ussd:{ctx.session_id}",
        defer=True,
    )
    return End(
        f"Request sent: {format_kes(p.amount)} to {local_phone(p.phone)}. "
        "You will get an SMS with the result."
    )


# --- information screens -------------------------------------------------------------------------


async def recent_text(ctx: Ctx) -> str:
    await signed_in_user(ctx)
    page = await list_payments(actor_of(ctx), filters=TransactionFilter(customer_only=True), limit=5)
    if not page.items:
        return "No payments yet."
    lines = ["Last payments:"]
    for p in page.items:
        phone = local_phone(p.phone)
        lines.append(f"{p.amount:,} {phone[:4]}**{phone[-3:]} {STATUS_WORD.get(p.status, p.status.value)}")
    return "\n".join(lines)


def today_start(now: datetime | None = None) -> datetime:
    local = (now or utcnow()).astimezone(NAIROBI)
    return datetime.combine(local.date(), time(0), tzinfo=NAIROBI)


async def today_text(ctx: Ctx) -> str:
    await signed_in_user(ctx)
    start = today_start()
    s = await payment_summary(actor_of(ctx), since=start)
    rate = "-" if s.success_rate is None else f"{round(s.success_rate * 100)}%"
    return (
        f"Today {start.strftime('%d %b')}\nReceived: {format_kes(s.total_processed)}\n"
        f"Paid: {s.paid} of {s.transactions}\nSuccess rate: {rate}"
        + (f"\nWaiting: {s.pending}" if s.pending else "")
    )


# --- wallet ----------------------------------------------------------------------------------------


async def wallet_title(ctx: Ctx) -> str:
    await signed_in_user(ctx)
    w = await view_wallet(actor_of(ctx))
    text = f"Wallet: {format_cents(w.balance_cents)}\nAvailable: {format_cents(w.available_cents)}"
    if w.owed_on_invoice_cents:
        text += f"\nOwed: {format_cents(w.owed_on_invoice_cents)}"
    return text


async def topup_confirm(ctx: Ctx) -> str:
    return f"Top up wallet with {format_kes(ctx.data['topup'])} from {local_phone(ctx.msisdn)}?"


async def send_topup(ctx: Ctx) -> End:
    await signed_in_user(ctx)
    await request_topup(
        actor_of(ctx),
        amount=ctx.data["topup"],
        phone=ctx.msisdn,
        notify_phone=ctx.msisdn,
        idempotency_key=f"ussd:{ctx.session_id}",
        defer=True,
    )
    return End(
        f"Check this phone: enter your M-Pesa PIN to pay {format_kes(ctx.data['topup'])} "
        "to your lipapush wallet. You will get an SMS."
    )


# --- export ----------------------------------------------------------------------------------------


async def export_confirm(ctx: Ctx) -> str:
    from core.exports.jobs import mask_email

    return f"Email the customer list to {mask_email(ctx.data.get('temail', ''))} and SMS you a link?"


async def send_export(ctx: Ctx) -> End:
    await signed_in_user(ctx)
    # One export per phone per 10 minutes: each costs an email, an SMS and a file build.
    if await ctx.store.hit(f"export:{ctx.msisdn}", 600) > 1:
        return End("An export was requested a few minutes ago. Check your SMS and email.")
    await email_customer_book_to(actor_of(ctx), phone=ctx.msisdn)
    return End("Preparing your customer list. You will get an SMS with a download link shortly.")


# --- change PIN --------------------------------------------------------------------------------------


def _pin_digest(ctx: Ctx, pin: str) -> str:
    """What the session keeps of a new PIN awaiting confirmation: keyed with SECRET_KEY, so the 10,000
    possible PINs cannot be tried against a session store dump."""
    key = f"ussd-new-pin:{runtime().settings.SECRET_KEY}".encode()
    return hmac.new(key, f"{ctx.session_id}:{pin}".encode(), hashlib.sha256).hexdigest()


async def parse_new_pin(ctx: Ctx, value: str) -> None:
    try:
        ctx.data["newpin"] = _pin_digest(ctx, validate_new_pin(value))
    except InvalidInput as exc:
        raise Invalid(exc.message) from None


async def confirm_new_pin(ctx: Ctx, value: str) -> None:
    if not hmac.compare_digest(_pin_digest(ctx, value.strip()), str(ctx.data.get("newpin", ""))):
        raise Invalid("The PINs did not match. Enter the new PIN again.")
    ctx.data["newpin_ok"] = value.strip()  # not stored: actions run in the same hop


async def save_pin(ctx: Ctx) -> End:
    pin = ctx.data.pop("newpin_ok")
    await signed_in_user(ctx)
    await change_ussd_pin(actor_of(ctx), pin)
    return End("PIN changed. Use the new PIN next time you dial.")


async def cancelled(ctx: Ctx) -> End:
    return End("Cancelled. Nothing was sent.")


def build(tree: Tree) -> None:
    tree.add(
        Prompt("m.pin", "Welcome to lipapush.\nEnter your 4-digit PIN:", check_pin, "m.home", gate=True),
        Menu(
            "m.home",
            home_title,
            [
                Option("1", "Request payment", "m.req.phone"),
                Option("2", "Last 5 payments", "m.recent"),
                Option("3", "Today", "m.today", allow=allowed(Permission.dashboard_read)),
                Option("4", "Wallet", "m.wallet", allow=allowed(Permission.wallet_read)),
                Option("5", "Export customers", "m.export", allow=allowed(Permission.exports)),
                Option("6", "Change PIN", "m.newpin"),
                Option("7", "Pay a business", "p.code"),
                Option("8", "M-Pesa balance", "m.bal", allow=money_out(Permission.balance_read)),
                Option("9", "Pay out", "m.po", allow=money_out(Permission.payouts_request)),
            ],
        ),
        Prompt("m.req.phone", "Customer phone number:", parse_phone, "m.req.amount"),
        Prompt("m.req.amount", "Amount in KES:", parse_amount("amount"), "m.req.confirm"),
        Menu(
            "m.req.confirm",
            request_confirm,
            [Option("1", "Send", "m.req.send"), Option("2", "Cancel", "m.cancel")],
        ),
        Action("m.req.send", send_request),
        Action("m.cancel", cancelled),
        Menu("m.recent", recent_text),
        Menu("m.today", today_text),
        Menu("m.wallet", wallet_title, [Option("1", "Top up", "m.topup.amount")]),
        Prompt("m.topup.amount", "Top-up amount in KES:", parse_amount("topup"), "m.topup.confirm"),
        Menu(
            "m.topup.confirm",
            topup_confirm,
            [Option("1", "Pay", "m.topup.send"), Option("2", "Cancel", "m.cancel")],
        ),
        Action("m.topup.send", send_topup),
        Menu(
            "m.export",
            export_confirm,
            [Option("1", "Send", "m.export.send"), Option("2", "Cancel", "m.cancel")],
        ),
        Action("m.export.send", send_export),
        Prompt("m.newpin", "Enter a new 4-digit PIN:", parse_new_pin, "m.newpin.again"),
        Prompt("m.newpin.again", "Enter the new PIN again:", confirm_new_pin, "m.newpin.save"),
        Action("m.newpin.save", save_pin),
    )


def signed_in_root(ctx: Ctx, user: User) -> str | End:
    """Where a registered phone starts: the PIN, unless USSD is locked for it. The business, the role
    and the rest the menu needs are read with the PIN (check_pin), once the phone has proven whose it is."""
    until = locked(user)
    if until is not None:
        return End(lock_message(until))
    if user.ussd_pin_hash is None:
        return End("Set a USSD PIN first: in the lipapush Telegram bot, Settings > USSD PIN.")
    if user.tenant_id is None:
        return End("This phone is not registered to a business.")
    ctx.data.update(uid=str(user.id), tid=str(user.tenant_id))
    return "m.pin"
