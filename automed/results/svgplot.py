"""Small inline-SVG charts for the HTML report: no plotting library, no external files.

Each function returns one ``<svg>`` element as a string, sized in CSS pixels, with axes, ticks
and a legend; text is escaped. Enough for lines, points, bars and a heat map, nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
W, H = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * step)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def _pad(lo: float, hi: float) -> tuple[float, float]:
    """A range around one value (one point, or all at one value): a little either side, not
    below 0 for values that are not (QA: +-0.5 drew negative minutes, and accuracy up to 1.2)."""
    if hi != lo:
        return lo, hi
    pad = 0.05 * max(abs(lo), 1.0)
    return (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad


class _Frame:
    """Maps data to pixels and draws the axes, so every chart shares one look."""

    def __init__(self, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
        self.x0, self.x1 = _pad(*xlim)
        self.y0, self.y1 = _pad(*ylim)

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return H - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)

    def axes(self, title: str, xlabel: str, ylabel: str, xticks: bool = True) -> list[str]:
        out = [f'<text x="{W / 2}" y="16" class="t">{escape(title)}</text>',
               f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
               'class="ax"/>',
               f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" class="ax"/>',
               f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" class="l">{escape(xlabel)}</text>',
               f'<text x="14" y="{(TOP + H - BOTTOM) / 2}" class="l" '
               f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2})">{escape(ylabel)}</text>']
        for v in _ticks(self.y0, self.y1):
            y = self.y(v)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" '
                       'class="g"/>')
            out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" class="yt">{_label(v)}</text>')
        if xticks:
            for v in _ticks(self.x0, self.x1):
                out.append(f'<text x="{self.x(v):.1f}" y="{H - BOTTOM + 14}" class="xt">'
                           f'{_label(v)}</text>')
        return out


def _svg(parts: list[str], label: str) -> str:
    return (f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{escape(label)}">' + "".join(parts) + "</svg>")


def _legend(names: Sequence[str], colors: Sequence[str]) -> list[str]:
    out = []
    for i, (name, color) in enumerate(zip(names, colors)):
        y = TOP + 6 + 14 * i
        out.append(f'<rect x="{W - RIGHT - 150}" y="{y - 8}" width="10" height="10" '
                   f'fill="{color}"/><text x="{W - RIGHT - 136}" y="{y + 1}" class="lg">'
                   f"{escape(name)}</text>")
    return out


def xy_chart(series: list[dict], *, title: str, xlabel: str, ylabel: str,
             xlim: tuple[float, float] | None = None,
             ylim: tuple[float, float] | None = None) -> str:
    """Points and lines. Each series: ``name``, ``points`` [(x, y)], ``kind`` (``"points"``,
    ``"line"`` or ``"step"``), optional ``color`` and ``dash``. A step series marks its points
    (where it steps up) and, with ``until``, holds its last value to that x."""
    xs = [p[0] for s in series for p in s["points"]] or [0.0]
    ys = [p[1] for s in series for p in s["points"]] or [0.0]
    f = _Frame(xlim or (min(xs), max(xs)), ylim or (min(ys), max(ys)))
    parts = f.axes(title, xlabel, ylabel)
    colors = [s.get("color") or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    for s, color in zip(series, colors):
        pts = s["points"]
        if s.get("kind", "points") == "points":
            parts += [f'<circle cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="3" fill="{color}" '
                      f'fill-opacity="0.75"/>' for x, y in pts]
            continue
        if s["kind"] == "step":
            # the points themselves, so a series of one point shows (QA: blank anytime chart)
            parts += [f'<circle cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="3" fill="{color}"/>'
                      for x, y in pts]
            stepped = []
            for (x, y), nxt in zip(pts, [*pts[1:], None]):
                stepped.append((x, y))
                if nxt is not None:
                    stepped.append((nxt[0], y))
            if pts and s.get("until") is not None and s["until"] > pts[-1][0]:
                stepped.append((s["until"], pts[-1][1]))
            pts = stepped
        path = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="4 3"' if s.get("dash") else ""
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                     f'stroke-width="2"{dash}/>')
    parts += _legend([s["name"] for s in series], colors)
    return _svg(parts, title)


def bar_chart(values: dict[str, float], *, title: str, xlabel: str) -> str:
    """Horizontal bars, largest first (parameter importances)."""
    items = sorted(values.items(), key=lambda kv: -kv[1])[:14]
    height = TOP + 22 * len(items) + BOTTOM
    top = max([v for _, v in items] + [1e-12])
    left = 190
    parts = [f'<text x="{W / 2}" y="16" class="t">{escape(title)}</text>']
    for i, (name, v) in enumerate(items):
        y = TOP + 22 * i
        width = (W - left - RIGHT - 50) * v / top
        parts.append(f'<text x="{left - 6}" y="{y + 14}" class="yt">{escape(name)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{width:.1f}" height="15" '
                     f'fill="{PALETTE[0]}"/><text x="{left + width + 4:.1f}" y="{y + 14}" '
                     f'class="lg">{v:.3f}</text>')
    parts.append(f'<text x="{(left + W) / 2}" y="{height - 12}" class="l">{escape(xlabel)}'
                 "</text>")
    return (f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" '
            f'aria-label="{escape(title)}">' + "".join(parts) + "</svg>")


def strip_chart(groups: dict[str, list[float]], *, title: str, ylabel: str) -> str:
    """One column of points per group with its median as a bar (per-family comparison)."""
    names = list(groups)
    ys = [v for vals in groups.values() for v in vals] or [0.0]
    f = _Frame((-0.5, len(names) - 0.5), (min(ys), max(ys)))
    parts = f.axes(title, "architecture family", ylabel, xticks=False)
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        vals = sorted(groups[name])
        parts.append(f'<text x="{f.x(i):.1f}" y="{H - BOTTOM + 14}" class="xt">'
                     f"{escape(name)} (n={len(vals)})</text>")
        for j, v in enumerate(vals):
            jitter = ((j * 37) % 11 - 5) / 40  # deterministic spread so points do not overlap
            parts.append(f'<circle cx="{f.x(i + jitter):.1f}" cy="{f.y(v):.1f}" r="3" '
                         f'fill="{color}" fill-opacity="0.6"/>')
        if vals:
            med = vals[len(vals) // 2] if len(vals) % 2 else \
                (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]) / 2
            parts.append(f'<line x1="{f.x(i - 0.3):.1f}" x2="{f.x(i + 0.3):.1f}" '
                         f'y1="{f.y(med):.1f}" y2="{f.y(med):.1f}" stroke="#222" '
                         'stroke-width="2"/>')
    return _svg(parts, title)


def heatmap(matrix: list[list[int]], labels: list[str], *, title: str) -> str:
    """A confusion matrix: rows are true classes, columns predicted, counts in the cells."""
    n = max(len(labels), 1)
    cell = min(60, (H - TOP - BOTTOM) // n)
    left, top = 120, TOP + 20
    size = cell * n
    width, height = max(W, left + size + 20), top + size + 50
    peak = max([v for row in matrix for v in row] + [1])
    parts = [f'<text x="{width / 2}" y="16" class="t">{escape(title)}</text>',
             f'<text x="{left + size / 2}" y="{top - 6}" class="l">predicted</text>',
             f'<text x="{left - 70}" y="{top + size / 2}" class="l">true</text>']
    for i, row in enumerate(matrix):
        parts.append(f'<text x="{left - 6}" y="{top + cell * i + cell / 2 + 4}" class="yt">'
                     f"{escape(labels[i])}</text>")
        for j, v in enumerate(row):
            shade = 0.1 + 0.9 * v / peak
            ink = "#fff" if shade > 0.55 else "#000"
            parts.append(f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell}" '
                         f'height="{cell}" fill="{PALETTE[0]}" fill-opacity="{shade:.2f}" '
                         f'stroke="#fff"/><text x="{left + cell * j + cell / 2}" '
                         f'y="{top + cell * i + cell / 2 + 4}" class="xt" fill="{ink}">{v}'
                         "</text>")
    for j, name in enumerate(labels):
        parts.append(f'<text x="{left + cell * j + cell / 2}" y="{top + size + 14}" '
                     f'class="xt">{escape(name)}</text>')
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{escape(title)}">' + "".join(parts) + "</svg>")
