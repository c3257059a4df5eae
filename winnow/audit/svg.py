"""Hand-written inline SVG charts for the HTML report: bars, lines, scatter.

Why not matplotlib: it would be a new dependency and a slow import for four chart types.
Every data mark carries ``class="mark"`` and ``data-*`` attributes, so the report can be
checked in a browser's DOM (and read by a person with the inspector).  All text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bar_chart", "line_chart", "scatter_chart"]

PALETTE = ("#3b6fb6", "#e07b39", "#3a9d5d", "#b8434e", "#7d5ba6", "#8c6d3f")
W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 40, 52


def _frame(
    title: str, legend: Sequence[str], body: list[str], y_max: float, y_label: str = "", y_min: float = 0.0
) -> str:
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    plot_h = H - TOP - BOTTOM
    for i in range(5):  # horizontal grid and y ticks
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        out.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{_tick(y_min + (y_max - y_min) * i / 4)}</text>"
        )
    if y_label:
        out.append(
            f'<text x="12" y="{TOP + plot_h / 2}" font-size="10" transform="rotate(-90 12 '
            f'{TOP + plot_h / 2})" text-anchor="middle">{escape(y_label)}</text>'
        )
    out += body
    x = float(LEFT)  # legend: one row under the title, left to right
    for i, name in enumerate(legend):
        out.append(f'<rect x="{x:.0f}" y="22" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 13:.0f}" y="31" font-size="11">{escape(name[:40])}</text>')
        x += 28 + 6.5 * min(len(name), 40)
    out.append("</svg>")
    return "\n".join(out)


def _tick(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.2g}"


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    y_label: str = "rows",
    horizontal_labels: bool = True,
) -> str:
    """Grouped bars: one group per label, one bar per series (side by side)."""
    y_max = max([max(v, default=0) for v in series.values()] + [1]) * 1.1
    n, k = max(1, len(labels)), max(1, len(series))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    group = plot_w / n
    bar = max(1.0, group * 0.8 / k)
    body = []
    for s, (name, values) in enumerate(series.items()):
        for i, value in enumerate(values):
            h = plot_h * value / y_max
            x = LEFT + group * i + group * 0.1 + bar * s
            body.append(
                f'<rect class="mark bar" data-series="{escape(name)}" data-label="{escape(labels[i])}" '
                f'data-value="{value:g}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(name)} '
                f"{escape(labels[i])}: {value:g}</title></rect>"
            )
    step = max(1, n // 16)
    for i, label in enumerate(labels):
        if i % step:
            continue
        x = LEFT + group * (i + 0.5)
        y = TOP + plot_h + 14
        rot = "" if horizontal_labels else f' transform="rotate(35 {x:.1f} {y})"'
        anchor = "middle" if horizontal_labels else "start"
        out_label = escape(label[:28])
        body.append(
            f'<text x="{x:.1f}" y="{y}" font-size="10" text-anchor="{anchor}"{rot}>{out_label}</text>'
        )
    return _frame(title, list(series) if len(series) > 1 else [], body, y_max, y_label)


def line_chart(
    title: str, series: Mapping[str, Sequence[tuple[float, float]]], x_label: str = "", y_label: str = ""
) -> str:
    """Polylines with a dot per point (thinned to at most ~200 dots per series)."""
    xs = [x for pts in series.values() for x, _ in pts] or [1.0]
    y_max = max([y for pts in series.values() for _, y in pts] + [1e-9]) * 1.05
    x_max = max(xs) or 1.0
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    body = []
    for s, (name, pts) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        coords = [(LEFT + plot_w * x / x_max, TOP + plot_h - plot_h * y / y_max) for x, y in pts]
        if coords:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        step = max(1, len(pts) // 200)
        for (x, y), (cx, cy) in list(zip(pts, coords, strict=True))[::step]:
            body.append(
                f'<circle class="mark point" data-series="{escape(name)}" data-x="{x:g}" data-y="{y:g}" '
                f'cx="{cx:.1f}" cy="{cy:.1f}" r="2" fill="{color}"/>'
            )
    body.append(
        f'<text x="{LEFT + plot_w / 2}" y="{H - 8}" font-size="10" text-anchor="middle">'
        f"{escape(x_label)} (0 to {x_max:g})</text>"
    )
    return _frame(title, list(series), body, y_max, y_label)


def scatter_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_label: str,
    y_label: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
) -> str:
    """Points per series over fixed axes (the judges' scales), translucent so dense regions read darker."""
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    (x0, x1), (y0, y1) = x_range, y_range
    body = []
    for s, (name, pts) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        for x, y in pts:
            cx = LEFT + plot_w * (x - x0) / ((x1 - x0) or 1)
            cy = TOP + plot_h - plot_h * (y - y0) / ((y1 - y0) or 1)
            body.append(
                f'<circle class="mark point" data-series="{escape(name)}" data-x="{x:g}" data-y="{y:g}" '
                f'cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{color}" fill-opacity="0.55"/>'
            )
    for i in range(5):
        v = x0 + (x1 - x0) * i / 4
        body.append(
            f'<text x="{LEFT + plot_w * i / 4:.1f}" y="{TOP + plot_h + 14}" font-size="10" '
            f'text-anchor="middle">{_tick(v)}</text>'
        )
    body.append(
        f'<text x="{LEFT + plot_w / 2}" y="{H - 8}" font-size="10" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    return _frame(title, list(series), body, y1, y_label, y_min=y0)
