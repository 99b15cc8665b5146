"""📈 The dashboard chart: paid KES per day (bars) and the success rate (line), last 30 days in EAT.

The data is one read of the business's customer payments; the picture is drawn by matplotlib's
object API on the Agg canvas (no display, no pyplot global state) in a worker thread, so a chart
never blocks the bot's event loop.
"""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass
from datetime import date

from core.payments.reports import DayTotal

DAYS = 30
_draw_lock = threading.Lock()  # matplotlib's font cache and text layout are not thread-safe


@dataclass(frozen=True)
class Day:
    day: date  # East Africa Time
    paid_kes: int  # sum of successful payments
    paid: int  # successful payments
    unpaid: int  # failed, cancelled, timed out, expired (pending ones are not counted yet)

    @property
    def success_rate(self) -> float | None:
        done = self.paid + self.unpaid
        return 100 * self.paid / done if done else None


@dataclass(frozen=True)
class Chart:
    days: list[Day]

    @property
    def paid_kes(self) -> int:
        return sum(d.paid_kes for d in self.days)

    @property
    def paid(self) -> int:
        return sum(d.paid for d in self.days)

    @property
    def finished(self) -> int:
        return sum(d.paid + d.unpaid for d in self.days)

    @property
    def empty(self) -> bool:
        return self.finished == 0


def chart_of(totals: list[DayTotal]) -> Chart:
    """The dashboard's daily series (core.payments.use_cases.payment_days) as the chart draws it."""
    return Chart([Day(t.day, t.paid_kes, t.paid, t.unpaid) for t in totals])


def render_png(chart: Chart, *, title: str) -> bytes:
    """A 1000×500 PNG. Blocking (CPU): call it through `chart_png`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    xs = list(range(len(chart.days)))
    rates = [d.success_rate for d in chart.days]
    with _draw_lock:
        fig = Figure(figsize=(10, 5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.bar(xs, [d.paid_kes for d in chart.days], color="#2e9e4f", label="Paid (KES)")
        ax.set_ylabel("Paid (KES)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.set_ylim(bottom=0)
        step = 5
        ax.set_xticks(xs[::step], [d.day.strftime("%d %b") for d in chart.days][::step])
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        rate_ax = ax.twinx()
        points = [(x, r) for x, r in zip(xs, rates, strict=True) if r is not None]
        rate_ax.plot(
            [x for x, _ in points],
            [r for _, r in points],
            color="#1f5fbf",
            marker="o",
            markersize=3,
            linewidth=1.5,
            label="Success rate (%)",
        )
        rate_ax.set_ylim(0, 105)
        rate_ax.set_ylabel("Success rate (%)")
        # parse_math=False: a business called "Duka $5" must not be read as TeX
        ax.set_title(title, parse_math=False)
        handles = ax.get_legend_handles_labels()[0] + rate_ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
    return out.getvalue()


async def chart_png(chart: Chart, *, business: str) -> bytes:
    first, last = chart.days[0].day, chart.days[-1].day
    title = f"{business}: {first:%d %b} – {last:%d %b %Y} (EAT)"
    return await asyncio.to_thread(render_png, chart, title=title)
