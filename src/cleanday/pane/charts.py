"""The Pane's charts as geometry: bars and ticks in a fixed view box, computed here and drawn
as inline SVG by the templates (no chart library, nothing for the browser to run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from cleanday.pane.behavior import Day

WIDTH = 720
HEIGHT = 160
LEFT = 36  # room for the y axis labels
BOTTOM = 22  # room for the date labels
TOP = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # the CSS class: clean, broken, idle, open, before, spend
    title: str  # what a pointer or a screen reader gets


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM
    line: float | None = None  # a horizontal line (the candidacy threshold), in y
    line_label: str = ""


def _scale(top_value: float) -> float:
    return (HEIGHT - BOTTOM - TOP) / top_value if top_value > 0 else 0.0


def _x_ticks(days: Sequence[date], step: float) -> list[Tick]:
    every = max(1, len(days) // 6)
    return [
        Tick(min(LEFT + i * step + step / 2, WIDTH - 18), f"{d:%b} {d.day}")
        for i, d in enumerate(days)
        if (len(days) - 1 - i) % every == 0
    ]


def streak_chart(days: Sequence[Day], threshold: int | None) -> Chart:
    """One bar per day, as high as the clean-day count at its end; a broken day shows as a
    short red mark at the baseline (its count went back to zero)."""
    top = max([d.clean_days or 0 for d in days] + [threshold or 0, 1])
    k = _scale(top)
    step = (WIDTH - LEFT) / max(len(days), 1)
    base = HEIGHT - BOTTOM
    bars = []
    for i, d in enumerate(days):
        value = d.clean_days or 0
        h = max(value * k, 3.0 if d.kind in ("broken", "idle", "open") else 0.0)
        runs = f", {d.runs} run{'s' if d.runs != 1 else ''}" if d.kind != "before" else ""
        what = {"before": "not registered yet", "open": "today (open)"}.get(d.kind, d.kind)
        bars.append(
            Bar(
                LEFT + i * step + 1,
                base - h,
                max(step - 2, 1),
                h,
                d.kind,
                f"{d.on.isoformat()}: {what}{runs}; {value} clean day{'s' if value != 1 else ''}",
            )
        )
    ticks = sorted({0, top // 2, top})
    line = base - threshold * k if threshold else None
    return Chart(
        bars,
        [Tick(base - t * k, str(t)) for t in ticks],
        _x_ticks([d.on for d in days], step),
        line=line,
        line_label=f"candidate at {threshold}" if threshold else "",
    )


def spend_chart(days: Sequence[tuple[date, float]]) -> Chart:
    """One bar per day, as high as what the day's calls cost."""
    top = max([usd for _, usd in days] + [0.0])
    k = _scale(top)
    step = (WIDTH - LEFT) / max(len(days), 1)
    base = HEIGHT - BOTTOM
    bars = [
        Bar(
            LEFT + i * step + 1,
            base - usd * k,
            max(step - 2, 1),
            usd * k,
            "spend",
            f"{d.isoformat()}: ${usd:.4f}",
        )
        for i, (d, usd) in enumerate(days)
    ]
    y = [Tick(base, "$0")] if top == 0 else [Tick(base, "$0"), Tick(base - top * k, f"${top:.2f}")]
    return Chart(bars, y, _x_ticks([d for d, _ in days], step))
