"""`lipapush commission …`, `wallet …`, `ledger check`, `invoices …`, `outbox`."""

from __future__ import annotations

import re
from html import unescape
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from rich.text import Text

from core.billing import use_cases_admin as money
from core.billing.commission import percent_to_bps
from core.errors import LipapushError
from core.money import format_cents
from core.notify.models import NotifyChannel
from core.notify.use_cases_admin import latest_messages
from core.tenants import use_cases_admin as tenant_admin
from web.cli import _fail, _run, app, bootstrap, console, print_table
from web.cli_tenants import OPERATOR, _find_tenant

# Merchants and their customers live in Kenya: times are shown on their clock, and say so.
EAT = ZoneInfo("Africa/Nairobi")

commission_app = typer.Typer(help="Commission rates.", no_args_is_help=True)
wallet_app = typer.Typer(help="Merchant wallets.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
invoices_app = typer.Typer(help="Commission invoices.", no_args_is_help=True)
app.add_typer(commission_app, name="commission")
app.add_typer(wallet_app, name="wallet")
app.add_typer(ledger_app, name="ledger")
app.add_typer(invoices_app, name="invoices")


@commission_app.command("set")
def commission_set(
    percent: Annotated[str, typer.Option(help="Rate in percent, e.g. 1.5 (two decimals at most)")],
    tenant: Annotated[str | None, typer.Option(help="Business (owner email, slug or id)")] = None,
    default: Annotated[bool, typer.Option("--default", help="Set the platform default instead")] = False,
) -> None:
    """Set a business's commission rate, or the platform default. Payments already created keep
    the rate they were created with."""
    if default == (tenant is not None):
        raise _fail("Give either --tenant or --default.")
    rt = bootstrap()

    async def main() -> str:
        percent_to_bps(percent)  # a bad rate is refused before the business is looked up
        if default:
            default_bps = await tenant_admin.set_default_commission(OPERATOR, percent=percent)
            return f"platform default commission is now {default_bps / 100:g}%"
        t = await _find_tenant(tenant or "")
        row = await tenant_admin.set_commission_rate(OPERATOR, t.id, percent=percent)
        return f"{row.name} now pays {(row.commission_bps or 0) / 100:g}% commission"

    try:
        console.print(_run(rt, main()))
    except LipapushError as exc:
        raise _fail(exc.message) from None


@wallet_app.command("adjust")
def wallet_adjust(
    tenant: Annotated[str, typer.Option(help="Business (owner email, slug or id)")],
    amount: Annotated[str, typer.Option(help="KES; negative to debit, e.g. 500 or -120.50")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")],
) -> None:
    """Credit or debit a wallet by hand, with a reason (audited)."""
    from decimal import Decimal, InvalidOperation

    try:
        cents_dec = Decimal(amount) * 100
    except InvalidOperation:
        raise _fail("--amount must be a number of shillings, like 500 or -120.50") from None
    if cents_dec != cents_dec.to_integral_value():
        raise _fail("--amount has more than two decimals")
    rt = bootstrap()

    async def main() -> str:
        t = await _find_tenant(tenant)
        balance = await money.adjust_wallet_by_hand(
            OPERATOR.acting_for(t.id), amount_cents=int(cents_dec), reason=reason
        )
        return f"{t.name}: wallet is now {format_cents(balance)}"

    try:
        console.print(_run(rt, main()))
    except LipapushError as exc:
        raise _fail(exc.message) from None


@ledger_app.command("check")
def ledger_check() -> None:
    """Prove the books: every balance equals its postings, every successful payment carries exactly
    its commission, every wallet hold matches the pushes in flight. Exits 1 and names offenders."""
    rt = bootstrap()

    problems = [f"{p.what}: {p.detail}" for p in _run(rt, money.check_ledger(OPERATOR))]
    if problems:
        for line in problems:
            console.print(f"[red]✗ {line}[/red]", soft_wrap=True)
        raise typer.Exit(1)
    console.print("[green]✓ ledger balanced: balances, commissions and holds all agree[/green]")


@invoices_app.command("issue")
def invoices_issue() -> None:
    """Issue the invoices due now (the scheduler does this too; running it twice issues nothing new)."""
    rt = bootstrap()

    issued = _run(rt, money.issue_due_invoices(OPERATOR))
    lines = [f"{i.number}: {format_cents(i.total_cents)} ({i.line_count} payments)" for i in issued]
    for line in lines:
        console.print(line)
    console.print(f"{len(lines)} invoice(s) issued")


@invoices_app.command("pay")
def invoices_pay(
    number: Annotated[str, typer.Argument(help="Invoice number, e.g. INV-20261101-1A2B3C4D")],
) -> None:
    """Record that an invoice was paid (lifts a billing hold it caused)."""
    rt = bootstrap()

    try:
        _run(rt, money.mark_invoice_paid(OPERATOR, number))
        console.print(f"{number} marked paid")
    except LipapushError as exc:
        raise _fail(exc.message) from None


@app.command()
def outbox(limit: Annotated[int, typer.Option(help="How many, newest first")] = 30) -> None:
    """Messages waiting in (or sent from) the notification outbox: SMS, email, Telegram."""
    rt = bootstrap()

    table = Table("id", "when (EAT)", "kind", "channel", "to", "status", "message")
    for n in _run(rt, latest_messages(OPERATOR, limit=limit)):
        table.add_row(
            str(n.id),
            f"{n.created_at.astimezone(EAT):%Y-%m-%d %H:%M}",
            n.kind,
            n.channel.value,
            n.recipient,
            n.status.value + (f" ({n.delivery_status})" if n.delivery_status else ""),
            Text(terminal_text(n.body, html=n.channel is NotifyChannel.telegram)),
        )
    print_table(table)


_TAG = re.compile(r"<[^>]*>")


def terminal_text(body: str, *, html: bool, limit: int = 80) -> str:
    """A message as one short line for the terminal. Telegram bodies are HTML (parse_mode): their tags
    are for the Telegram app, so they go and the entities they escape come back."""
    if html:
        body = unescape(_TAG.sub("", body))
    line = " ".join(body.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
