"""The menu for everyone else: pay a business by its number, or learn how to sign up.

After the business is found, what comes next depends on its kind: `PAYEE_FLOWS` maps a tenant kind to
the node that takes over (a business asks for an amount; hotspot providers will list their plans).
"""

from __future__ import annotations

import uuid

from core.db import Scope
from core.errors import LipapushError, TooManyRequests
from core.money import format_kes
from core.notify.texts import local_phone
from core.payments.models import PaymentSource
from core.payments.push import request_stk_push
from core.plans.service import QUOTA_LIMIT
from core.runtime import runtime, unit_of_work
from core.tenants.models import TenantKind
from core.tenants.service import tenants
from ussd.engine import Ctx, Tree
from ussd.merchant import parse_amount
from ussd.screens import Action, End, Invalid, Menu, Option, Prompt, short

# Pushes a payer may start from one phone in a window: anyone can type any number into a USSD
# gateway request, so this caps the prompts a forged request can send to someone else's phone.
PUSHES_PER_WINDOW = 5
PUSH_WINDOW_SECONDS = 600
# And per business, across phones: a forger rotating phone numbers still cannot flood one till.
PAYEE_PUSHES_PER_WINDOW = 100

PAYEE_FLOWS: dict[TenantKind, str] = {TenantKind.business: "p.amount"}


def register_payee_flow(kind: TenantKind, node_id: str) -> None:
    """Let a tenant kind (hotspot plans) take over after its business number is entered."""
    PAYEE_FLOWS[kind] = node_id


# A payer types a business number, or a till or paybill: which business it is, is asked of all of them.
FIND_PAYEE = Scope.platform("USSD payer: the business of a number")


async def parse_code(ctx: Ctx, value: str) -> None:
    async with unit_of_work(readonly=True, scope=FIND_PAYEE) as session:
        try:
            payee = await tenants.find_payee(session, value)
        except LipapushError as exc:
            raise Invalid(exc.message) from None
    tenant = payee.tenant
    if tenant.kind not in PAYEE_FLOWS:
        raise Invalid(f"{short(tenant.name, 30)} does not take payments here.")
    ctx.data.update(payee=str(tenant.id), payee_name=tenant.name, payee_kind=tenant.kind.value)
    # The till the payer typed, when it was one of the business's: the money lands there.
    ctx.data["payee_channel"] = str(payee.channel_id) if payee.channel_id else None


def after_code(ctx: Ctx) -> str:
    return PAYEE_FLOWS[TenantKind(ctx.data["payee_kind"])]


async def amount_text(ctx: Ctx) -> str:
    return f"Pay {short(ctx.data['payee_name'], 40)}\nAmount in KES:"


async def pay_confirm(ctx: Ctx) -> str:
    return (
        f"Pay {format_kes(ctx.data['pay_amount'])} to {short(ctx.data['payee_name'], 40)} "
        f"from {local_phone(ctx.msisdn)}?"
    )


async def send_payment(ctx: Ctx) -> End:
    if await ctx.store.hit(f"payer:{ctx.msisdn}", PUSH_WINDOW_SECONDS) > PUSHES_PER_WINDOW:
        return End("Too many payment requests from this phone. Wait 10 minutes and try again.")
    if await ctx.store.hit(f"payee:{ctx.data['payee']}", PUSH_WINDOW_SECONDS) > PAYEE_PUSHES_PER_WINDOW:
        return End(
            f"{short(ctx.data['payee_name'], 40)} is getting too many USSD payments right now. "
            "Try again in a few minutes."
        )
    try:
        p = await request_stk_push(
            tenant_id=uuid.UUID(ctx.data["payee"]),
            phone=ctx.msisdn,
            amount=ctx.data["pay_amount"],
            source=PaymentSource.ussd,
            idempotency_key=f"ussd:{ctx.session_id}",
            defer=True,
            channel_id=uuid.UUID(ctx.data["payee_channel"]) if ctx.data.get("payee_channel") else None,
        )
    except TooManyRequests as exc:
        if exc.fields.get("limit") != QUOTA_LIMIT:
            raise
        # The quota's own sentence is for the merchant; a payer only needs to know to pay another way.
        return End(
            f"{short(ctx.data['payee_name'], 40)} cannot take more M-Pesa payments through lipapush this "
            "month. Pay them another way."
        )
    return End(
        f"Check your phone: enter your M-Pesa PIN to pay {format_kes(p.amount)} to "
        f"{short(ctx.data['payee_name'], 40)}."
    )


async def signup_info(ctx: Ctx) -> End:
    return End(
        f"To collect M-Pesa payments with lipapush, sign up at {runtime().settings.base_url} "
        "or in our Telegram bot, then set a USSD PIN in Settings."
    )


async def _cancel(ctx: Ctx) -> End:
    return End("Cancelled. Nothing was sent.")


def build(tree: Tree) -> None:
    tree.add(
        Menu(
            "p.home",
            "Welcome to lipapush",
            [Option("1", "Pay a business", "p.code"), Option("2", "Sign up as a merchant", "p.signup")],
        ),
        Action("p.signup", signup_info),
        Prompt("p.code", "Enter the business number:", parse_code, after_code),
        Prompt("p.amount", amount_text, parse_amount("pay_amount"), "p.confirm"),
        Menu("p.confirm", pay_confirm, [Option("1", "Pay", "p.send"), Option("2", "Cancel", "p.cancel")]),
        Action("p.send", send_payment),
        Action("p.cancel", _cancel),
    )
