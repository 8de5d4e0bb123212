"""Two renderings of each chart: mermaid `xychart-beta` for GitHub markdown, PNG (matplotlib) for HTML/artifacts."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from mlops.markdown import mermaid as m_text
from mlops.report.model import Chart

COLORS = {"base": "#8c8c8c", "head": "#1f6feb", "production": "#d97706"}
GRID = 21


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _resample(x: Sequence[float], y: Sequence[float], grid: Sequence[float]) -> list[float]:
    import numpy as np

    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    xs, ys = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    return [float(v) for v in np.interp(np.asarray(grid, dtype=float), xs, ys)]


def _header(title: str, roles: Sequence[str]) -> list[str]:
    palette = ", ".join(COLORS.get(r, "#444444") for r in roles)
    return ['%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + palette + '"}}}}%%',
            "xychart-beta", f'    title "{m_text(title)}"']


def mermaid(chart: Chart) -> str:
    """The chart as mermaid xychart-beta source ("" for kinds mermaid cannot draw, such as confusion matrices)."""
    if chart.kind == "line" and chart.series:
        lo = min(min(s.x) for s in chart.series)
        hi = max(max(s.x) for s in chart.series)
        if hi <= lo:
            hi = lo + 1
        grid = [lo + (hi - lo) * i / (GRID - 1) for i in range(GRID)]
        ys = [_resample(s.x, s.y, grid) for s in chart.series]
        y_lo = min(min(v) for v in ys)
        y_hi = max(max(v) for v in ys)
        lines = _header(chart.title, [s.role for s in chart.series])
        lines.append(f'    x-axis "{m_text(chart.x_label)}" {_fmt(lo)} --> {_fmt(hi)}')
        lines.append(f'    y-axis "{m_text(chart.y_label)}" {_fmt(min(0.0, y_lo))} --> {_fmt(y_hi if y_hi > 0 else 1)}')
        lines += [f"    line [{', '.join(_fmt(v) for v in vals)}]" for vals in ys]
        return "\n".join(lines)
    if chart.kind == "bar" and chart.bars:
        roles = [r for r in ("head", "base") if r in chart.bars]
        cats = ", ".join(f'"{m_text(c, 24)}"' for c in chart.categories)
        top = max(max(v, default=0.0) for v in chart.bars.values()) or 1.0
        lines = _header(chart.title, roles)
        lines.append(f"    x-axis [{cats}]")
        lines.append(f'    y-axis "{m_text(chart.x_label)}" 0 --> {_fmt(top * 1.05)}')
        lines.append(f"    bar [{', '.join(_fmt(v) for v in chart.bars[roles[0]])}]")
        lines += [f"    line [{', '.join(_fmt(v) for v in chart.bars[r])}]" for r in roles[1:]]
        return "\n".join(lines)
    return ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "plot"


def render_png(chart: Chart, out_dir: Path, names: dict[str, str]) -> str:
    """Write the chart as a PNG under OUT_DIR; returns its file name. NAMES maps roles to legend labels."""
    # The object API without pyplot: no global state, no GUI backend, and pyplot's import alone costs ~1 s.
    from matplotlib.figure import Figure

    fname = f"{_slug(chart.id)}.png"
    if chart.kind == "confusion":
        roles = [r for r in ("base", "head") if r in chart.matrices]
        fig = Figure(figsize=(4.2 * len(roles), 3.6))
        axes = fig.subplots(1, len(roles), squeeze=False)
        for ax, role in zip(axes[0], roles, strict=True):
            m = chart.matrices[role]
            ax.imshow(m, cmap="Blues")
            for i, row in enumerate(m):
                for j, v in enumerate(row):
                    ax.text(j, i, str(v), ha="center", va="center")
            ax.set_xticks(range(len(chart.categories)), chart.categories)
            ax.set_yticks(range(len(chart.categories)), chart.categories)
            ax.set_xlabel(chart.x_label)
            ax.set_ylabel(chart.y_label)
            ax.set_title(names.get(role, role))
    elif chart.kind == "bar":
        fig = Figure(figsize=(7, 0.3 * len(chart.categories) + 1.5))
        ax = fig.subplots()
        roles = [r for r in ("base", "head") if r in chart.bars]
        height = 0.8 / len(roles)
        for k, role in enumerate(roles):
            pos = [i + k * height for i in range(len(chart.categories))]
            ax.barh(pos, chart.bars[role], height=height, color=COLORS[role], label=names.get(role, role))
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(chart.categories))], chart.categories)
        ax.invert_yaxis()
        ax.set_xlabel(chart.x_label)
        ax.legend()
    else:
        fig = Figure(figsize=(5.5, 4.2))
        ax = fig.subplots()
        for s in chart.series:
            ax.plot(s.x, s.y, color=COLORS.get(s.role), label=s.name, linewidth=1.6)
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(chart.title)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / fname, dpi=90)
    return fname


def with_renderings(charts: Sequence[Chart], out_dir: Path | None, names: dict[str, str]) -> tuple[Chart, ...]:
    """Charts with their mermaid source and (when OUT_DIR is given) PNG file names filled in."""
    return tuple(dataclasses.replace(c, mermaid=mermaid(c),
                                     png=render_png(c, out_dir, names) if out_dir is not None else "")
                 for c in charts)
