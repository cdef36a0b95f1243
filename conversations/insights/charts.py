"""Charts as plain geometry for the dashboard's SVG templates: bars per day (side by side or
stacked) and lines per day, with their axes, legend and the table a screen reader reads
instead. Drawn on the server, so the page needs no JavaScript and nothing from outside."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 44
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
Y_TICKS = 4
# Tick steps for durations, in seconds: whole seconds, minutes and hours rather than "1.7 min".
DURATION_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400]
# The stylesheet's colours (series-0 ...): charts with more series group the rest.
SERIES_MAX = 6
# Every fifth day is labelled: thirty labels would overlap.
X_LABEL_EVERY = 5


@dataclass(frozen=True)
class Series:
    label: str
    # One value per day, None where there is nothing to show (a line then has a gap).
    values: list[float | None]


@dataclass(frozen=True)
class Mark:
    """A bar (x, y, width, height) or a line's point (x, y), with its tooltip."""

    series: int
    x: float
    y: float
    title: str
    width: float = 0
    height: float = 0


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    legend: list[tuple[int, str]]
    table_head: list[str]
    table_rows: list[list[str]]
    empty: bool
    bars: list[Mark] = field(default_factory=list)
    points: list[Mark] = field(default_factory=list)
    # Per line: (series, "x,y x,y ...") for each unbroken run of days.
    lines: list[tuple[int, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    # One sentence of totals, read before the chart (and by screen readers instead of it).
    summary: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_right: int = LEFT + PLOT_WIDTH
    plot_bottom: int = TOP + PLOT_HEIGHT
    x_label_x: float = LEFT + PLOT_WIDTH / 2
    y_label_y: float = TOP + PLOT_HEIGHT / 2


def chart_bars(
    *,
    title: str,
    days: list[date],
    series: list[Series],
    y_label: str,
    summary: str,
    stacked: bool = False,
    value_format: Callable[[float], str] = lambda value: f"{value:,.0f}",
) -> Chart:
    """Bars per day: one beside the other per series, or stacked into one bar per day."""
    chart = _chart_base(
        title=title, days=days, series=series, y_label=y_label, summary=summary, value_format=value_format
    )
    totals = [sum(s.values[index] or 0 for s in series) for index in range(len(days))]
    peaks = (
        totals
        if stacked
        else [max((s.values[index] or 0 for s in series), default=0) for index in range(len(days))]
    )
    top = _axis_top(max(peaks, default=0))
    chart.y_ticks = _y_ticks(top=top, value_format=value_format)
    slot = PLOT_WIDTH / len(days)
    bar_width = slot * 0.8 / (1 if stacked else len(series))
    for index, day in enumerate(days):
        base = TOP + PLOT_HEIGHT
        for number, one in enumerate(series):
            value = one.values[index] or 0
            if not value:
                continue
            height = value / top * PLOT_HEIGHT
            x = LEFT + slot * index + slot * 0.1 + (0 if stacked else bar_width * number)
            y = base - height
            chart.bars.append(
                Mark(
                    number,
                    round(x, 1),
                    round(y, 1),
                    f"{day_text(day)}: {one.label} {value_format(value)}",
                    width=round(bar_width, 1),
                    height=round(height, 1),
                )
            )
            if stacked:
                base = y
    return chart


def chart_lines(
    *,
    title: str,
    days: list[date],
    series: list[Series],
    y_label: str,
    summary: str,
    value_format: Callable[[float], str],
    steps: list[float] | None = None,
) -> Chart:
    """A line per series over the days, broken where a day has no value; `steps` are the tick
    steps to choose from (else 1, 2 or 5 times a power of ten)."""
    chart = _chart_base(
        title=title, days=days, series=series, y_label=y_label, summary=summary, value_format=value_format
    )
    top = _axis_top(max((v for s in series for v in s.values if v is not None), default=0), steps=steps)
    chart.y_ticks = _y_ticks(top=top, value_format=value_format)
    slot = PLOT_WIDTH / len(days)
    for number, one in enumerate(series):
        run = []
        for index, value in enumerate([*one.values, None]):
            if value is None:
                if run:
                    chart.lines.append((number, " ".join(f"{x},{y}" for x, y in run)))
                run = []
                continue
            x, y = (
                round(LEFT + slot * (index + 0.5), 1),
                round(TOP + PLOT_HEIGHT - value / top * PLOT_HEIGHT, 1),
            )
            run.append((x, y))
            chart.points.append(
                Mark(number, x, y, f"{day_text(days[index])}: {one.label} {value_format(value)}")
            )
    return chart


def _chart_base(
    *,
    title: str,
    days: list[date],
    series: list[Series],
    y_label: str,
    summary: str,
    value_format: Callable[[float], str],
) -> Chart:
    slot = PLOT_WIDTH / len(days)
    return Chart(
        title=title,
        x_label="Day",
        y_label=y_label,
        summary=summary,
        legend=list(enumerate(s.label for s in series)),
        table_head=["Day", *(s.label for s in series)],
        table_rows=[
            [
                day_text(day),
                *("–" if s.values[index] is None else value_format(s.values[index]) for s in series),
            ]
            for index, day in enumerate(days)
        ],
        empty=not any(v for s in series for v in s.values),
        x_ticks=[
            (round(LEFT + slot * (index + 0.5), 1), day_text(day))
            for index, day in enumerate(days)
            if (len(days) - 1 - index) % X_LABEL_EVERY == 0
        ],
    )


def _axis_top(peak: float, steps: list[float] | None = None) -> float:
    """Y_TICKS times the smallest round step (from `steps`, else 1, 2 or 5 times a power of ten)
    that reaches `peak`."""
    if peak <= 0:
        return Y_TICKS
    raw_step = peak / Y_TICKS
    magnitude = 10 ** math.floor(math.log10(raw_step))
    candidates = [*(steps or []), *(m * magnitude for m in (1, 2, 5, 10))]
    return next(step for step in candidates if step >= raw_step) * Y_TICKS


def _y_ticks(*, top: float, value_format: Callable[[float], str]) -> list[tuple[float, str]]:
    return [
        (round(TOP + PLOT_HEIGHT - PLOT_HEIGHT * n / Y_TICKS, 1), value_format(top * n / Y_TICKS))
        for n in range(Y_TICKS + 1)
    ]


def day_text(day: date) -> str:
    return f"{day:%b} {day.day}"


def duration_text(seconds: float) -> str:
    """Seconds as people say them: 42 s, 3.5 min, 2.1 h."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min".replace(".0 ", " ")
    return f"{seconds / 3600:.1f} h".replace(".0 ", " ")
