"""Buy WiFi on USSD: after a hotspot provider's number, pick where you are (its routers), a plan,
pay by M-Pesa on this phone; the voucher comes by SMS once the router has it."""

from __future__ import annotations

import uuid

from core.access.actor import Actor, Via
from core.hotspot.provision import validity_text
from core.hotspot.use_cases_portal import buy_wifi, plans_for_sale, routers_for_sale
from core.money import format_kes
from core.notify.texts import local_phone
from core.payments.models import PaymentSource
from core.tenants.models import TenantKind
from ussd.engine import Ctx, Tree
from ussd.payer import register_payee_flow
from ussd.screens import Action, End, Menu, Option, short

MAX_OPTIONS = 6  # what fits a 160-character screen with a title


async def where_title(ctx: Ctx) -> str:
    return f"Buy WiFi: {short(ctx.data['payee_name'], 30)}\nWhere are you?"


def _buyer(ctx: Ctx) -> Actor:
    """The caller buys anonymously: the platform acts for the provider whose number they dialled."""
    return Actor.system(via=Via.ussd).acting_for(uuid.UUID(ctx.data["payee"]))


async def where_options(ctx: Ctx) -> list[Option]:
    rows = await routers_for_sale(_buyer(ctx))
    return [
        Option(str(i), short(r.name, 20), "w.plan", value=str(r.id))
        for i, r in enumerate(rows[:MAX_OPTIONS], 1)
    ]


async def plan_options(ctx: Ctx) -> list[Option]:
    on_sale = await plans_for_sale(_buyer(ctx), uuid.UUID(ctx.data["router"]))
    ctx.data["plans"] = {str(p.id): [p.name, p.price, p.validity_minutes] for p in on_sale[:MAX_OPTIONS]}
    return [
        Option(str(i), f"{short(p.name, 14)} {format_kes(p.price)}", "w.confirm", value=str(p.id))
        for i, p in enumerate(on_sale[:MAX_OPTIONS], 1)
    ]


async def plan_title(ctx: Ctx) -> str:
    return "Pick a WiFi plan:"


async def confirm_title(ctx: Ctx) -> str:
    name, price, minutes = ctx.data["plans"][ctx.data["plan"]]
    return (
        f"Pay {format_kes(price)} for {short(name, 20)} ({validity_text(minutes)}) "
        f"from {local_phone(ctx.msisdn)}?"
    )


async def send(ctx: Ctx) -> End:
    p = await buy_wifi(
        _buyer(ctx),
        router_id=uuid.UUID(ctx.data["router"]),
        plan_id=uuid.UUID(ctx.data["plan"]),
        phone=ctx.msisdn,
        source=PaymentSource.ussd,
        defer=True,
    )
    return End(
        f"Check your phone: enter your M-Pesa PIN to pay {format_kes(p.amount)}. The voucher comes by SMS."
    )


async def cancel(ctx: Ctx) -> End:
    return End("Cancelled. Nothing was sent.")


def build(tree: Tree) -> None:
    tree.add(
        Menu("w.router", where_title, where_options, keep="router"),
        Menu("w.plan", plan_title, plan_options, keep="plan"),
        Menu("w.confirm", confirm_title, [Option("1", "Pay", "w.send"), Option("2", "Cancel", "w.cancel")]),
        Action("w.send", send),
        Action("w.cancel", cancel),
    )
    register_payee_flow(TenantKind.hotspot, "w.router")
