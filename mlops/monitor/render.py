"""reports/monitor.{md,html,json}: the same findings three ways, plots drawn once (PNG, inlined in the HTML).

Text from traffic (unseen category values) and from the project (feature and segment names) is untrusted: the
markdown, which may become a pull request's body, escapes it inert (no HTML, no links, no mentions); jinja2
autoescapes the HTML. Plots use matplotlib's object API (no pyplot: no global state, no GUI backend).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment

from mlops.markdown import template_env
from mlops.monitor.result import MonitorResult, Plot
from mlops.monitor.sources import MonitorInputError

PLOTS_DIR = "monitor-plots"
COLORS = {"reference": "#8c8c8c", "current": "#1f6feb", "drifted": "#cf222e"}
def fmt(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v * 100:.{digits}f}%"


def pval(v: float | None) -> str:
    if v is None:
        return "–"
    return "<1e-12" if v < 1e-12 else (f"{v:.2g}" if v < 0.01 else f"{v:.2f}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "feature"


# --- plots -------------------------------------------------------------------------------------------------------


def draw(plot: Plot, title: str, alarmed: bool, path: Path) -> Path:
    """One feature, reference (grey) against the window (blue), as a small PNG; a red title when it alarmed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6, 2.2), dpi=80)
    ax = fig.add_subplot()
    bottom = 0.12
    if plot.kind == "hist":
        edges = list(plot.edges)
        widths = [b - a for a, b in itertools.pairwise(edges)]
        ref = [v / w if w > 0 else 0.0 for v, w in zip(plot.reference, widths, strict=True)]
        cur = [v / w if w > 0 else 0.0 for v, w in zip(plot.current, widths, strict=True)]
        ax.stairs(ref, edges, fill=True, color=COLORS["reference"], alpha=0.45, label="reference")
        ax.stairs(cur, edges, color=COLORS["current"], linewidth=1.6, label="window")
        ax.set_yticks([])
    else:
        xs = list(range(len(plot.labels)))
        turn = len(plot.labels) > 3
        ax.bar([x - 0.2 for x in xs], plot.reference, width=0.4, color=COLORS["reference"], label="reference")
        ax.bar([x + 0.2 for x in xs], plot.current, width=0.4, color=COLORS["current"], label="window")
        ax.set_xticks(xs, [t if len(t) <= 14 else t[:13] + "…" for t in plot.labels], rotation=30 if turn else 0,
                      ha="right" if turn else "center", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        bottom = 0.34 if turn else 0.12
    ax.set_title(title, fontsize=9, color=COLORS["drifted"] if alarmed else "#1f2328")
    ax.tick_params(axis="x", labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=6, frameon=False)
    # Fixed margins: tight_layout draws every figure twice (it doubled the time of the report's plots).
    fig.subplots_adjust(left=0.12 if plot.kind == "bars" else 0.04, right=0.98, top=0.88, bottom=bottom)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def draw_all(result: MonitorResult, out_dir: Path) -> dict[str, Path]:
    """Every feature's picture (and the prediction's); name -> PNG path."""
    pics: dict[str, Path] = {}
    plots_dir = out_dir / PLOTS_DIR
    if plots_dir.is_dir():
        for old in plots_dir.glob("*.png"):
            old.unlink()
    alarmed = {a.subject for a in result.alarms}
    if result.prediction is not None and result.prediction.plot is not None:
        title = {"multiclass": "prediction (predicted class)", "regression": "prediction (predicted value)"}.get(
            result.prediction.task, "prediction (model score)")
        pics["prediction"] = draw(result.prediction.plot, title, "prediction" in alarmed, plots_dir / "prediction.png")
    used: set[str] = {"prediction"}
    for f in result.features:
        if f.plot is None:
            continue
        slug = _slug(f.name)
        while slug in used:
            slug += "-"
        used.add(slug)
        title = f.name if not f.missing_share else f"{f.name} (missing {f.missing_share:.0%})"
        pics[f.name] = draw(f.plot, title, f.name in alarmed, plots_dir / f"{slug}.png")
    return pics


# --- documents ---------------------------------------------------------------------------------------------------


def _env(root: Path | None, *, html: bool) -> Environment:
    env: Environment = template_env(root, html=html, globals_={
        "fmt": fmt, "pct": pct, "pval": pval})
    return env


Delivery = Sequence[tuple[str, str]]  # (figure, value as text): the registry's delivery section, from the job


def markdown(result: MonitorResult, pics: dict[str, Path], out_dir: Path, root: Path | None = None,
             delivery: Delivery = ()) -> str:
    # Only the pictures of what alarmed: the markdown is read on GitHub, the HTML shows every feature.
    alarmed = {a.subject for a in result.alarms}
    rel = {k: p.relative_to(out_dir).as_posix() if p.is_relative_to(out_dir) else p.as_posix()
           for k, p in pics.items() if k in alarmed}
    return _env(root, html=False).get_template("monitor.md.j2").render(r=result, pics=rel, delivery=delivery)


def html(result: MonitorResult, pics: dict[str, Path], root: Path | None = None, delivery: Delivery = ()) -> str:
    def image(name: str) -> str:
        p = pics.get(name)
        if p is None or not p.is_file():
            return ""
        return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")

    return _env(root, html=True).get_template("monitor.html.j2").render(r=result, image=image, delivery=delivery)


def write_reports(result: MonitorResult, out_dir: Path, *, plots: bool = True,
                  root: Path | None = None, delivery: Delivery = ()) -> tuple[Path, ...]:
    """reports/monitor.md, monitor.html and monitor.json (and the PNGs); the paths written, md first. DELIVERY: the
    registry's delivery figures as (figure, value) rows, a short section of md and html."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MonitorInputError(f"--out {out_dir}: cannot create it ({exc.strerror or type(exc).__name__})",
                                hint="pass a writable folder") from None
    pics = draw_all(result, out_dir) if plots else {}
    files = []
    documents = (("monitor.md", markdown(result, pics, out_dir, root, delivery)),
                 ("monitor.html", html(result, pics, root, delivery)),
                 ("monitor.json", json.dumps(result.as_json(), indent=2, allow_nan=False) + "\n"))
    for name, text in documents:
        path = out_dir / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        files.append(path)
    return tuple(files)
