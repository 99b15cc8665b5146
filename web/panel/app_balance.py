"""The business's M-Pesa balance on the panel: the page (/app/payouts/balance: per channel with an
initiator, the Utility account payouts draw on and the Working account, each with the time M-Pesa gave
it) and the dashboard's card, both with "Refresh", which asks M-Pesa again (a balance lookup answered
within seconds, which the page then shows by itself: panel.js's data-poll).

core.lookups.use_cases decides who may (balance:read: the owner and managers) and keeps the answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.access.permissions import Permission
from core.errors import LipapushError, NotFound, PermissionDenied
from core.lookups.schemas import BalancesOut
from core.lookups.use_cases import balances, refresh_balance
from web.panel.forms import parse_uuid
from web.panel.money_out import may_pay_out
from web.panel.security import CurrentViewer, Viewer, business, safe_next
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

PAGE = "/app/payouts/balance"
DONE = {"refresh": "Asked M-Pesa for the balance: it shows here within seconds."}


def _ctx(found: BalancesOut) -> dict[str, Any]:
    return {"balances": found.channels, "refreshing": any(c.refreshing for c in found.channels)}


async def _page(
    request: Request, viewer: Viewer, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    business(viewer, Permission.balance_read)
    ctx = _ctx(await balances(viewer.actor))
    ctx.update(
        error=error,
        done=DONE.get(request.query_params.get("done", "")),
        owner=viewer.actor.shows(Permission.channel_manage),
    )
    return render(request, "app/balance.html", ctx, viewer=viewer, status=status)


@router.get(PAGE, response_class=HTMLResponse)
async def balance_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return await _page(request, viewer)


@router.get(PAGE + "/channels", response_class=HTMLResponse)
async def balance_fragment(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    """The page's channels, for data-poll: it keeps polling while an answer is awaited."""
    business(viewer, Permission.balance_read)
    return render(request, "app/balance_channels.html", _ctx(await balances(viewer.actor)), viewer=viewer)


@router.get(PAGE + "/card", response_class=HTMLResponse)
async def balance_card(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    """The dashboard's card, for data-poll."""
    business(viewer, Permission.balance_read)
    ctx = {**_ctx(await balances(viewer.actor)), "pay_out": await may_pay_out(viewer)}
    return render(request, "app/balance_card.html", ctx, viewer=viewer)


@router.post(PAGE + "/refresh", response_model=None)
async def refresh(
    request: Request,
    viewer: CurrentViewer,
    channel: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Ask M-Pesa again, for one channel or every channel with an initiator; back to where it was asked
    (the dashboard's card or this page)."""
    business(viewer, Permission.balance_read)
    errors: dict[str, str] = {}
    channel_id = parse_uuid(channel, "channel", errors, "This refresh button is damaged: reload the page.")
    if errors:
        return await _page(request, viewer, error=errors["channel"], status=422)
    try:
        await refresh_balance(viewer.actor, channel_id=channel_id)
    except (PermissionDenied, NotFound):
        raise  # the error page, as for every other form
    except LipapushError as exc:  # no channel with an initiator, a stale page…
        return await _page(request, viewer, error=exc.message, status=exc.status)
    target = safe_next(next, PAGE)
    if target == PAGE:
        return RedirectResponse(f"{PAGE}?done=refresh", status_code=303)
    return RedirectResponse(f"{target}#balance", status_code=303)


async def dashboard_section(viewer: Viewer) -> dict[str, Any]:
    """The dashboard's money out: the balance card for those who may read the balance, once the
    business has a channel with an initiator, and a "Send a payout" link for whoever may pay out."""
    found = await balances(viewer.actor) if viewer.actor.can(Permission.balance_read) else None
    return {
        "balance": _ctx(found) if found is not None and found.channels else None,
        "pay_out": await may_pay_out(viewer),
    }
