"""The console's fair-use chart: bars as tall as the calls, the standard drawn across each, text escaped."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from console.core.fair_use_chart import MEANING, Standing, svg

AT = datetime(2026, 12, 1, 6, tzinfo=UTC)


def month(m: int, calls: int, allowance: str = "90", status: str = "ok") -> Standing:
    return Standing(date(2026, m, 1), calls, Decimal("40"), Decimal(allowance), status, AT)


def bar_heights(drawing: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', drawing)]


def test_bars_are_as_tall_as_the_calls_oldest_first() -> None:
    heights = bar_heights(svg([month(10, 50), month(11, 100)]))

    assert len(heights) == 2 and abs(heights[1] - 2 * heights[0]) < 0.2


def test_each_months_standard_is_a_line_at_its_height_with_the_status_in_its_colour() -> None:
    drawing = svg([month(10, 90, "90", "ok"), month(11, 120, "90", "contact")])

    # The dashed line of a month whose calls equal its standard is level with the top of its bar.
    bar_top = float(re.findall(r'<rect x="[0-9.]+" y="([0-9.]+)"', drawing)[0])
    line_y = float(re.findall(r'<line x1="[0-9.]+" y1="([0-9.]+)"[^>]*stroke-dasharray', drawing)[0])
    assert abs(bar_top - line_y) < 0.2
    assert 'fill="#3a7d44"' in drawing and 'fill="#b3261e"' in drawing


def test_no_month_no_chart() -> None:
    assert svg([]) == ""


def test_text_in_the_drawing_is_escaped() -> None:
    drawing = svg([month(11, 5, status="<script>")])

    assert "<script>" not in drawing and "&lt;script&gt;" in drawing


def test_the_floor_is_20_calls_a_week_of_the_months_days() -> None:
    assert (month(2, 0).floor, month(12, 0).floor) == (Decimal(80), Decimal(20 * 31) / 7)


def test_every_status_says_what_it_means_for_the_bill() -> None:
    assert set(MEANING) == {"ok", "above", "contact"}
    assert "free" in MEANING["ok"] and "EUR 0.04" in MEANING["contact"]
