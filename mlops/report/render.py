"""Render a Report: markdown (GitHub comment, under the size limit), self-contained HTML, JSON with the same facts.

Templates are jinja2 files shipped in `mlops/templates/`; a repo overrides any of them by putting a file of the same
name in `.mlops/templates/`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateError

from mlops.errors import ReportError
from mlops.markdown import OVERRIDE_DIR, template_env
from mlops.report.model import Change, Report

GITHUB_LIMIT = 65_536
# Room kept for what `mlops comment` adds (the sticky marker) and for the line saying the report was cut.
MARKDOWN_BUDGET = GITHUB_LIMIT - 1_536
FOOTER_MARK = "<!-- mlops:footer -->"

ICONS = {"better": "🟢", "worse": "🔴", "unchanged": "⚪", "within noise": "⚪", "new": "🆕", "removed": "➖",
         "n/a": ""}


def fmt(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def change_text(c: Change | None) -> str:
    """'🟢 ▲ +0.0012': the arrow is the sign, the colour is whether that is good for this metric."""
    if c is None or c.verdict == "n/a":
        return "–"
    if c.verdict in ("new", "removed"):
        return f"{ICONS[c.verdict]} {c.verdict}"
    assert c.delta is not None  # narrowed: verdict is better/worse/unchanged/within noise
    if c.verdict == "unchanged":
        return f"{ICONS['unchanged']} = {c.delta:+.4f}" if c.delta else f"{ICONS['unchanged']} ="
    iv = c.interval
    ci = f" [{iv.low:+.4f}, {iv.high:+.4f}]" if iv is not None else ""
    if c.verdict == "within noise" and iv is not None and c.delta == iv.low == iv.high == 0:
        return f"{ICONS['unchanged']} ="  # the same score on every row
    if c.verdict == "within noise":
        return f"{ICONS['within noise']} {c.delta:+.4f}{ci} within noise"
    arrow = "▲" if c.delta > 0 else "▼"
    return f"{ICONS[c.verdict]} {arrow} {c.delta:+.4f}{ci}"


def pct(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _env(root: Path | None, *, html: bool) -> Environment:
    env: Environment = template_env(root, html=html, globals_={"fmt": fmt, "change_text": change_text,
                                                              "icons": ICONS, "pct": pct})
    return env


def _render(root: Path | None, name: str, *, html: bool, **ctx: Any) -> str:
    try:
        return _env(root, html=html).get_template(name).render(**ctx)
    except TemplateError as exc:
        where = f"{OVERRIDE_DIR}/{name}" if root is not None and (root / OVERRIDE_DIR / name).is_file() else name
        raise ReportError(f"report template {where}: {exc}", hint="fix or remove the override template") from None


def fit(markdown: str, limit: int, where: str) -> str:
    """Cut MARKDOWN to LIMIT characters at a block boundary (never inside a code fence), keeping the footer."""
    body, sep, footer = markdown.partition(FOOTER_MARK)
    if len(markdown) <= limit:
        return markdown
    notice = f"\n> ✂️ The rest of this report did not fit in a GitHub comment: see the full report ({where}).\n\n"
    room = limit - len(footer) - len(sep) - len(notice)
    blocks: list[str] = []
    current: list[str] = []
    fenced = False
    for line in body.splitlines(keepends=True):
        current.append(line)
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.strip() == "":
            blocks.append("".join(current))
            current = []
    if current:
        blocks.append("".join(current))
    kept, size = [], 0
    for block in blocks:
        if size + len(block) > room:
            break
        kept.append(block)
        size += len(block)
    return "".join(kept) + notice + sep + footer


def markdown(report: Report, root: Path | None = None, limit: int = MARKDOWN_BUDGET) -> str:
    text = _render(root, "report.md.j2", html=False, r=report)
    return fit(text, limit, report.meta.full_report)


def html(report: Report, out_dir: Path, root: Path | None = None) -> str:
    def image(name: str) -> str:
        data = (out_dir / name).read_bytes() if name and (out_dir / name).is_file() else b""
        return "data:image/png;base64," + base64.b64encode(data).decode() if data else ""

    return _render(root, "report.html.j2", html=True, r=report, image=image)


def as_json(report: Report) -> str:
    data = dataclasses.asdict(report)
    for key in ("gates", "production_gates"):
        gate_report = getattr(report, key)
        if gate_report is not None:
            data[key]["passed"] = gate_report.passed
    for chart in data["charts"]:
        chart.pop("mermaid", None)
    if report.test_score is not None:
        data["test_score"]["sections"] = report.test_score.sections
        data["test_score"]["final"] = report.test_score.final
    for comparison, raw in zip(report.comparisons, data["comparisons"], strict=True):
        raw["metrics"] = comparison.diff.metrics() if comparison.diff is not None else {}
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
