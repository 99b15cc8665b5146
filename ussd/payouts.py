"""Money out on USSD, behind the PIN: the business's M-Pesa balance (owner and manager) and a single
payout (the owner, and staff the owner allowed): phone → amount → "Send KES 1,500 to 0712345678? It
cannot be undone. 1. Yes 2. No". The same use cases as the bot, the API and the panel (core.lookups,
core.payouts); the owner is told when M-Pesa does not pay it (core.payouts, by Telegram or SMS)."""

from __future__ import annotations

import uuid
from datetime import datetime

from core.access.permissions import Permission
from core.auth.models import Role
from core.db import Scope, utcnow
from core.errors import InvalidInput
from core.lookups.use_cases import balances, refresh_balance
from core.money import format_cents, format_kes
from core.notify.texts import local_phone
from core.payouts.channels import choose, ensure_can_pay_out, payout_channels
from core.payouts.schemas import parse_payout_amount
from core.payouts.use_cases import request_payout, with_payout_grant
from core.runtime import unit_of_work
from core.tenants.models import ChannelKind
from ussd.engine import Ctx, Tree
from ussd.merchant import NAIROBI, actor_of, parse_phone, signed_in_user
from ussd.screens import Action, End, Goto, Invalid, Menu, Option, Prompt, short

NAME_WIDTH = 14  # a channel's name on a 160-character screen


def _at(at: datetime) -> str:
    local = at.astimezone(NAIROBI)
    return (
        f"{local:%H:%M}" if local.date() == utcnow().astimezone(NAIROBI).date() else f"{local.day} {local:%b}"
    )


# --- balance -----------------------------------------------------------------------------------------


async def balance_title(ctx: Ctx) -> str:
    await signed_in_user(ctx)
    view = await balances(actor_of(ctx))
    lines = ["M-Pesa balance (Utility):"]
    for c in view.channels:
        name = short(c.channel_name, NAME_WIDTH)
        if c.as_of is None:
            lines.append(f"{name}: not known yet")
        else:
            lines.append(f"{name}: {format_cents(c.utility_cents or 0)} at {_at(c.as_of)}")
    if any(c.refreshing for c in view.channels):
        lines.append("A newer one is on its way.")
    return "\n".join(lines)


async def refresh(ctx: Ctx) -> End:
    await signed_in_user(ctx)
    await refresh_balance(actor_of(ctx))
    return End("Asked M-Pesa for your balance. Dial again in a minute to see it.")


# --- pay out ---------------------------------------------------------------------------------------


async def start_payout(ctx: Ctx) -> Goto:
    """Refused here (END, in core's words) when this person may not pay out or no channel can; else the
    channel core would pick, or a choice when the business has several."""
    await signed_in_user(ctx)
    actor = actor_of(ctx)
    (await with_payout_grant(actor)).require(Permission.payouts_request)
    tenant_id = actor.require_tenant()
    async with unit_of_work(readonly=True, scope=Scope.tenant(tenant_id)) as session:
        try:
            pool = [await choose(session, tenant_id=tenant_id, channel_id=None, mode=None)]
        except InvalidInput:  # several: the person picks one (B2C short codes, else those with an initiator)
            rows = await payout_channels(session, tenant_id=tenant_id)
            pool = [c for c in rows if c.kind is ChannelKind.b2c] or [c for c in rows if c.initiator_name]
        if len(pool) == 1:
            ensure_can_pay_out(pool[0])
    ctx.data["pochs"] = [[str(c.id), c.name] for c in pool]
    ctx.data["poch"] = str(pool[0].id)
    return Goto("m.po.phone" if len(pool) == 1 else "m.po.chan")


async def channel_options(ctx: Ctx) -> list[Option]:
    return [
        Option(str(n), short(name, 30), "m.po.phone", value=cid)
        for n, (cid, name) in enumerate(ctx.data.get("pochs", []), start=1)
    ]


async def parse_amount(ctx: Ctx, value: str) -> None:
    # Keypads type digits only; anything else (cents, letters) came from a forged request.
    if not value.isdigit() or len(value) > 9:
        raise Invalid("Enter whole shillings, like 1500.")
    try:
        ctx.data["poamount"] = parse_payout_amount(int(value))
    except ValueError as exc:  # InvalidInput is one too
        raise Invalid(str(exc)) from None


async def confirm_title(ctx: Ctx) -> str:
    channels = ctx.data.get("pochs", [])
    through = ""
    if len(channels) > 1:
        name = next((n for cid, n in channels if cid == ctx.data.get("poch")), "")
        through = f" from {short(name, NAME_WIDTH)}"
    return (
        f"Send {format_kes(ctx.data['poamount'])} to {local_phone(ctx.data['phone'])}{through}?\n"
        "It cannot be undone."
    )


async def send_payout(ctx: Ctx) -> End:
    await signed_in_user(ctx)
    p = await request_payout(
        actor_of(ctx),
        phone=ctx.data["phone"],
        amount=ctx.data["poamount"],
        channel_id=uuid.UUID(ctx.data["poch"]),
        # a gateway repeat of the confirming hop must not pay twice
        idempotency_key=f"ussd:{ctx.session_id}",
    )
    told = "You will be told" if ctx.data.get("role") == Role.owner.value else "The owner will be told"
    return End(f"Sent to M-Pesa: {format_kes(p.amount)} to {local_phone(p.phone)}. {told} if it is not paid.")


def build(tree: Tree) -> None:
    tree.add(
        Menu("m.bal", balance_title, [Option("1", "Refresh", "m.bal.refresh")]),
        Action("m.bal.refresh", refresh),
        Action("m.po", start_payout),
        Menu("m.po.chan", "Pay out from:", channel_options, keep="poch"),
        Prompt("m.po.phone", "Pay to phone number:", parse_phone, "m.po.amount"),
        Prompt("m.po.amount", "Amount in KES:", parse_amount, "m.po.confirm"),
        Menu(
            "m.po.confirm",
            confirm_title,
            [Option("1", "Yes", "m.po.send"), Option("2", "No", "m.cancel")],
        ),
        Action("m.po.send", send_payout),
    )
