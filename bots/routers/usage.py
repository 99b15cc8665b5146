"""📈 /usage (owner and manager): the business's API usage in one message, the last 24 hours and this
month (Nairobi), requests, pushes and failures in all and per app; the same figures as GET /api/usage
and the panel's Settings → Usage, where the per-key and per-endpoint figures and the log are."""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bots.middlewares import Actor
from bots.routers.plan import quota_line
from bots.tabs import need
from core.access.permissions import Permission
from core.errors import Conflict
from core.plans import use_cases as plan_use_cases
from core.usage import use_cases
from core.usage.schemas import Counts, PeriodUsage

router = Router(name="usage")

PANEL_NOTE = "Per key and per endpoint, and the request log: web panel, Settings → Usage."


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def counts_line(c: Counts) -> str:
    return ", ".join(
        (
            _plural(c.requests, "request", "requests"),
            _plural(c.pushes, "push", "pushes"),
            _plural(c.failures, "failure", "failures"),
        )
    )


def _period(title: str, p: PeriodUsage) -> list[str]:
    lines = [f"<b>{title}</b>: {counts_line(p.totals)}"]
    for app in p.apps:
        mode = f" ({app.mode.value})" if app.mode else ""
        lines.append(f"• {escape(app.name)}{mode}: {counts_line(app)}")
    return lines


@router.message(Command("usage"))
async def show_usage(message: Message, actor: Actor | None) -> None:
    actor = need(actor, Permission.usage_read)
    out = await use_cases.usage_figures(actor.core)
    month = datetime.strptime(out.month, "%Y-%m").strftime("%B %Y")
    lines = [
        f"📈 <b>API usage of {escape(actor.business)}</b>",
        *_period("Last 24 hours", out.last_24h),
        *_period(f"{month} so far", out.this_month),
    ]
    try:  # the quota counts live requests from every entry point, not only the API's
        status = await plan_use_cases.plan_status(actor.core)
        lines += ["", f"📦 {escape(status.effective.name)} plan. {quota_line(status)} /plan"]
    except Conflict:  # a hotspot provider: on no plan
        pass
    lines += ["", PANEL_NOTE]
    await message.answer("\n".join(lines))
