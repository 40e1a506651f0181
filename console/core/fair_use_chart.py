"""A customer's fair-use standing, month by month: the figures and the chart the console shows (issue 19).

Pure: rows in (as `fairline fair-use report` stored them in fair_use_results), an SVG string and plain
words out. The SVG is drawn here, on the server: no script, nothing fetched, so it works offline and
under the console's Content-Security-Policy. Every text in it is escaped.
"""

from __future__ import annotations

import calendar
import dataclasses
from datetime import date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

FLOOR_CALLS_PER_WEEK = 20  # the policy's floor, as rating/core/fair_use.py applies it
MONTHS = 6  # the policy looks back six months

# What each status means for the bill, in the policy's words.
MEANING = {
    "ok": "Within fair use: calls on your local and national numbers are free this month.",
    "above": ("Above the standard this month. Once, or for a few months, is fine: calls stay free. "
              "Much more often, and we will call you to talk about it."),
    "contact": ("Above the standard in many of the last six months: we will call you. If we agree you are a "
                "heavy user, calls on local and national numbers are charged: EUR 0.04 per call set-up plus "
                "EUR 0.07 a minute daytime and EUR 0.05 off-peak, the rates of 0800 and 0900 numbers."),
}

WIDTH, HEIGHT = 640, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 16, 40


@dataclasses.dataclass(frozen=True, slots=True)
class Standing:
    """One month of one customer, as fair_use_results holds it."""

    month: date  # first day
    calls: int  # the customer's eligible handled calls
    platform_average: Decimal  # the platform's handled calls per customer that month
    allowance: Decimal  # the standard the calls are held to: the average, at least 20 calls a week
    status: str  # ok, above, contact
    computed_at: datetime

    @property
    def floor(self) -> Decimal:
        """20 calls a week over the month's days: the standard is never below it."""
        return Decimal(FLOOR_CALLS_PER_WEEK * calendar.monthrange(self.month.year, self.month.month)[1]) / 7

    @property
    def meaning(self) -> str:
        return MEANING.get(self.status, "")


def svg(months: list[Standing]) -> str:
    """Bars of the calls per month (oldest left), the standard of each month as a line across its bar."""
    if not months:
        return ""
    top = max(max(float(m.calls), float(m.allowance)) for m in months) * 1.15 or 1.0
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = plot_w / len(months)

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - value / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" role="img" aria-label="Handled calls per month against the fair-use standard">',
             f'<line x1="{_LEFT}" y1="{y(0):.1f}" x2="{WIDTH - _RIGHT}" y2="{y(0):.1f}" stroke="#444"/>',
             f'<text x="{_LEFT - 6}" y="{y(top / 1.15):.1f}" text-anchor="end" font-size="11">'
             f'{escape(_whole(top / 1.15))}</text>']
    for i, m in enumerate(months):
        x = _LEFT + i * slot + slot * 0.2
        w = slot * 0.6
        colour = {"ok": "#3a7d44", "above": "#d9a400"}.get(m.status, "#b3261e")
        label = escape(f"{m.month:%b %Y}: {m.calls} calls, standard {_whole(float(m.allowance))} ({m.status})")
        parts += [
            f'<rect x="{x:.1f}" y="{y(m.calls):.1f}" width="{w:.1f}" height="{y(0) - y(m.calls):.1f}" '
            f'fill="{colour}"><title>{label}</title></rect>',
            f'<line x1="{x - 4:.1f}" y1="{y(float(m.allowance)):.1f}" x2="{x + w + 4:.1f}" '
            f'y2="{y(float(m.allowance)):.1f}" stroke="#000" stroke-width="2" stroke-dasharray="6 3"/>',
            f'<text x="{x + w / 2:.1f}" y="{HEIGHT - _BOTTOM + 16}" text-anchor="middle" font-size="11">'
            f'{escape(f"{m.month:%b %Y}")}</text>',
            f'<text x="{x + w / 2:.1f}" y="{max(_TOP + 10, y(m.calls) - 4):.1f}" text-anchor="middle" '
            f'font-size="11">{m.calls}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def _whole(value: float) -> str:
    return f"{value:.0f}"
