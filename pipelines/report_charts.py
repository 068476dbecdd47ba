"""Inline SVG charts for the run report: no JavaScript, no external library, nothing fetched.

Each function returns one ``<svg>`` element (escaped text, ``<title>`` tooltips) carrying
``data-chart`` so tests find it in the page; colours come from :data:`PALETTE`, fixed per series,
so a screenshot check can look for them.
"""

from __future__ import annotations

import html
import math
from typing import Sequence

PALETTE = {
    # roles
    "customer": "#2563eb", "employee": "#16a34a", "partner": "#d97706", "all": "#7c3aed",
    # channels (Sankey nodes)
    "app": "#0891b2", "web": "#4f46e5", "support": "#db2777", "transactions": "#ca8a04",
    # signs
    "negative": "#dc2626", "positive": "#059669",
}
SERIES = ["#0891b2", "#db2777", "#ca8a04", "#4f46e5", "#65a30d", "#9333ea", "#ea580c", "#0f766e", "#be123c", "#475569"]
FONT = "font-family=\"system-ui, sans-serif\" font-size=\"12\""


def colour(key: str, i: int = 0) -> str:
    return PALETTE.get(key, SERIES[i % len(SERIES)])


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _svg(name: str, width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg class="chart" data-chart="{_e(name)}" role="img" aria-label="{_e(label)}" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" {FONT}>'
            + "".join(body) + "</svg>")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def legend(items: Sequence[tuple[str, str]], x: int, y: int) -> list[str]:
    out = []
    for i, (label, fill) in enumerate(items):
        lx = x + i * 130
        out.append(f'<rect x="{lx}" y="{y - 10}" width="12" height="12" fill="{fill}"/>'
                   f'<text x="{lx + 16}" y="{y}">{_e(label)}</text>')
    return out


def grouped_bars(name: str, categories: Sequence[str], series: dict[str, Sequence[float]], *, label: str,
                 y_label: str = "", tooltips: dict[str, Sequence[str]] | None = None, percent: bool = False) -> str:
    """Bars per category, one per series (e.g. score bands x roles)."""
    width, height, left, bottom, top = 760, 300, 52, 40, 30
    plot_w, plot_h = width - left - 16, height - top - bottom
    top_value = _nice_max(max((v for vals in series.values() for v in vals), default=0))
    body = [f'<text x="{left}" y="16" font-weight="600">{_e(y_label)}</text>']
    for k in range(5):
        v = top_value * k / 4
        y = top + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" x2="{width - 16}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{v:.0f}{"%" if percent else ""}</text>')
    group_w = plot_w / max(len(categories), 1)
    bar_w = max(2.0, (group_w - 8) / max(len(series), 1))
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + 4
        for si, (key, values) in enumerate(series.items()):
            v = values[ci]
            h = plot_h * v / top_value if top_value else 0
            tip = (tooltips or {}).get(key, [""] * len(categories))[ci] or f"{key} {cat}: {v:.1f}"
            body.append(f'<rect x="{gx + si * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                        f'height="{h:.1f}" fill="{colour(key, si)}"><title>{_e(tip)}</title></rect>')
        body.append(f'<text x="{gx + group_w / 2 - 4:.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#374151">{_e(cat)}</text>')
    body += legend([(k, colour(k, i)) for i, k in enumerate(series)], left, height - 6)
    return _svg(name, width, height, body, label)


def lines(name: str, xs: Sequence[str], series: dict[str, Sequence[float | None]], *, label: str, y_min: float = 0,
          y_max: float = 100, y_label: str = "") -> str:
    """One line per series over ordered x labels (e.g. mean score per day and role)."""
    width, height, left, bottom, top = 760, 300, 44, 44, 30
    plot_w, plot_h = width - left - 16, height - top - bottom
    body = [f'<text x="{left}" y="16" font-weight="600">{_e(y_label)}</text>']
    for k in range(5):
        v = y_min + (y_max - y_min) * k / 4
        y = top + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" x2="{width - 16}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{v:.0f}</text>')
    n = len(xs)
    step = plot_w / max(n - 1, 1)
    xpos = lambda i: left + (i * step if n > 1 else plot_w / 2)  # noqa: E731
    ypos = lambda v: top + plot_h - plot_h * (v - y_min) / (y_max - y_min)  # noqa: E731
    every = max(1, n // 8)
    for i, x in enumerate(xs):
        if i % every == 0 or i == n - 1:
            body.append(f'<text x="{xpos(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#374151">{_e(x)}</text>')
    for si, (key, values) in enumerate(series.items()):
        fill = colour(key, si)
        points = [(xpos(i), ypos(v), v, xs[i]) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y, _, _) in enumerate(points))
            body.append(f'<path d="{path}" fill="none" stroke="{fill}" stroke-width="3"/>')
        for x, y, v, day in points:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}"><title>{_e(key)} {_e(day)}: {v:.1f}</title></circle>')
    body += legend([(k, colour(k, i)) for i, k in enumerate(series)], left, height - 6)
    return _svg(name, width, height, body, label)


def hbars(name: str, rows: Sequence[tuple[str, float, str]], *, label: str, signed: bool = False) -> str:
    """Horizontal bars, one per (label, value, tooltip); ``signed`` colours by sign around a centre line."""
    row_h, left, width = 24, 230, 760
    height = 20 + row_h * max(len(rows), 1)
    top_value = max((abs(v) for _, v, _ in rows), default=0) or 1.0
    span = (width - left - 70) / (2 if signed else 1)
    zero = left + (span if signed else 0)
    body = [f'<line x1="{zero}" x2="{zero}" y1="6" y2="{height - 6}" stroke="#9ca3af"/>'] if signed else []
    for i, (text, value, tip) in enumerate(rows):
        y = 10 + i * row_h
        w = max(span * abs(value) / top_value, 1.5)
        left_side = signed and value < 0
        x = zero - w if left_side else zero
        fill = (PALETTE["negative"] if value < 0 else PALETTE["positive"]) if signed else SERIES[i % len(SERIES)]
        value_x, anchor = (x - 6, "end") if left_side else (x + w + 6, "start")
        shown = f"{value:,.2f}" if signed else f"{value:,.0f}"
        body.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="#111827">{_e(text)}</text>'
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{fill}"><title>{_e(tip)}</title></rect>'
                    f'<text x="{value_x:.1f}" y="{y + 15}" text-anchor="{anchor}" fill="#374151">{shown}</text>')
    return _svg(name, width, height, body, label)


def stacked_bars(name: str, groups: Sequence[str], parts: dict[str, dict[str, float]], *, label: str) -> str:
    """One horizontal bar per group, stacked by part (e.g. dead letters per source, by reason)."""
    keys = sorted({k for v in parts.values() for k in v}, key=lambda k: -sum(v.get(k, 0) for v in parts.values()))
    row_h, left, width = 28, 130, 760
    height = 30 + row_h * max(len(groups), 1) + 24 * ((len(keys) + 4) // 5)
    total = max((sum(parts[g].values()) for g in groups), default=0) or 1.0
    span = width - left - 70
    body = []
    for i, group in enumerate(groups):
        y = 10 + i * row_h
        x = float(left)
        body.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" fill="#111827">{_e(group)}</text>')
        for ki, key in enumerate(keys):
            v = parts[group].get(key, 0)
            if not v:
                continue
            w = span * v / total
            body.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{max(w, 1.5):.1f}" height="{row_h - 8}" '
                        f'fill="{colour(key, ki)}"><title>{_e(group)}: {_e(key)} = {v:,.0f}</title></rect>')
            x += w
        body.append(f'<text x="{x + 6:.1f}" y="{y + 17}" fill="#374151">{sum(parts[group].values()):,.0f}</text>')
    ly = 30 + row_h * len(groups)
    for ki, key in enumerate(keys):
        col, line = ki % 5, ki // 5
        lx = left + col * 125
        body.append(f'<rect x="{lx}" y="{ly + line * 24 - 10}" width="12" height="12" fill="{colour(key, ki)}"/>'
                    f'<text x="{lx + 16}" y="{ly + line * 24}">{_e(key)}</text>')
    return _svg(name, width, height, body, label)


def sankey(name: str, links: dict[tuple[int, str, str], float], *, label: str) -> str:
    """Step-indexed Sankey: columns are journey steps (1st channel, 2nd, ...), nodes channels,
    links ``(step, from, to) -> journeys`` between step and step + 1."""
    steps = sorted({s for s, _, _ in links} | {s + 1 for s, _, _ in links})
    width, height, pad, node_w, gap = 760, 340, 20, 16, 10
    col_x = {s: pad + (width - 2 * pad - node_w) * i / max(len(steps) - 1, 1) for i, s in enumerate(steps)}
    size: dict[tuple[int, str], float] = {}
    for (s, a, b), v in links.items():
        size[(s, a)] = size.get((s, a), 0) + v
    for (s, a, b), v in links.items():
        inflow = sum(val for (s2, _, b2), val in links.items() if s2 == s and b2 == b)
        size[(s + 1, b)] = max(size.get((s + 1, b), 0), inflow)
    biggest = max((sum(v for (s, _), v in size.items() if s == st) for st in steps), default=1) or 1
    nodes_per_col = max((sum(1 for (s, _) in size if s == st) for st in steps), default=1)
    scale = (height - 40 - gap * nodes_per_col) / biggest
    pos: dict[tuple[int, str], list[float]] = {}
    body = []
    for st in steps:
        y = 10.0
        for (s, ch) in sorted((k for k in size if k[0] == st), key=lambda k: -size[k]):
            h = max(size[(s, ch)] * scale, 2)
            pos[(s, ch)] = [y, y, y + h]  # top, next outgoing / incoming offset, bottom
            body.append(f'<rect x="{col_x[st]:.1f}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" fill="{colour(ch)}">'
                        f'<title>step {st}: {_e(ch)} ({size[(s, ch)]:,.0f} journeys)</title></rect>'
                        + (f'<text x="{col_x[st] - 4:.1f}" y="{y + min(h, 20) / 2 + 4:.1f}" text-anchor="end" fill="#111827">{_e(ch)}</text>'
                           if st == steps[-1] else
                           f'<text x="{col_x[st] + node_w + 4:.1f}" y="{y + min(h, 20) / 2 + 4:.1f}" fill="#111827">{_e(ch)}</text>'))
            y += h + gap
    incoming: dict[tuple[int, str], float] = {}
    for (s, a, b), v in sorted(links.items(), key=lambda kv: -kv[1]):
        h = v * scale
        src, dst = pos[(s, a)], pos[(s + 1, b)]
        y0 = src[1]
        src[1] += h
        y1 = dst[0] + incoming.get((s + 1, b), 0)
        incoming[(s + 1, b)] = incoming.get((s + 1, b), 0) + h
        x0, x1 = col_x[s] + node_w, col_x[s + 1]
        mid = (x0 + x1) / 2
        body.append(f'<path d="M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f} '
                    f'L{x1:.1f},{y1 + h:.1f} C{mid:.1f},{y1 + h:.1f} {mid:.1f},{y0 + h:.1f} {x0:.1f},{y0 + h:.1f} Z" '
                    f'fill="{colour(a)}" fill-opacity="0.35"><title>{_e(a)} &#8594; {_e(b)} (step {s}&#8594;{s + 1}): '
                    f'{v:,.0f} journeys</title></path>')
    for st in steps:
        body.append(f'<text x="{col_x[st]:.1f}" y="{height - 8}" fill="#6b7280">step {st}</text>')
    return _svg(name, width, height, body, label)


__all__ = ["PALETTE", "SERIES", "grouped_bars", "lines", "hbars", "stacked_bars", "sankey", "colour"]
