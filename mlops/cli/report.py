"""Report commands (`mlops report`, `mlops gate`, `mlops comment`): registered on `app` on import."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli import app, ci_context, echo, handled, progress

if TYPE_CHECKING:  # the jobs are imported when a command runs: `mlops --help` stays fast
    from mlops.jobs.report import ReportResult


class Against(StrEnum):
    base = "base"
    production = "production"


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def print_report(result: ReportResult) -> None:
    r = result.report
    row = r.headline_row
    if row is not None:
        vs = f" (main {_fmt(row.vs_base.reference)}" + (f", production {_fmt(row.vs_production.reference)}"
                                                         if row.vs_production else "") + ")"
        echo(f"headline: {row.name} {_fmt(row.head)}{vs}")
    if r.pipeline is not None:
        echo(f"pipeline: FAILED ({r.pipeline.error})")
    if r.gates is None or not r.gates.rows:
        echo("gates: none configured" if r.pipeline is None else "gates: not checked (the pipeline failed)")
    else:
        failed = ", ".join(f"{g.metric} {g.rule}" for g in r.gates.failed())
        unchecked = ", ".join(f"{g.metric} {g.rule}" for g in r.gates.not_evaluated())
        verdict = "passed" if r.gates.passed else f"FAILED: {failed}" if failed else f"NOT EVALUATED: {unchecked}"
        echo(f"gates: {verdict}")
    echo(f"report: {', '.join(str(p) for p in result.files[:3])}")


@app.command("report")
@handled
def report_cmd(
    base: str = typer.Option(None, "--base", help="Git ref to compare with (default: the merge-base of HEAD with "
                             "the main branch)."),
    production: str = typer.Option("auto", "--production", help="auto (the commit of the newest NAME#production#N "
                                   "tag), a git ref, or none."),
    out: str = typer.Option(None, "--out", help="Folder for report.md, report.html and report.json "
                             "(default: reports/)."),
) -> None:
    """Build the pull-request report: metrics, params, data, validation and plots vs main and production."""
    from mlops.jobs.report import build

    result = build(Path("."), base=base, production=production, out=Path(out) if out else None,
                   progress=progress, ci=ci_context())
    print_report(result)


@app.command("gate")
@handled
def gate_cmd(
    against: Annotated[Against, typer.Option("--against", help="Compare relative gates (max_drop, max_rise) "
                                             "with the base branch or with production.")] = Against.base,
    base: str = typer.Option(None, "--base", help="Git ref used as base (default: merge-base with main)."),
) -> None:
    """Check the gates of params.yaml; exit 1 when one fails, with a table of all of them either way."""
    from mlops.gates import render_table
    from mlops.jobs.gate import gate

    echo(render_table(gate(Path("."), against=against.value, base=base, progress=progress)))


@app.command("comment")
@handled
def comment_cmd(
    report: str = typer.Option(None, "--report", help="Markdown report to post (default: reports/report.md)."),
    target: str = typer.Option("auto", "--target", help="auto (the PR of the Actions event or of the commit, else "
                               "a commit comment), pr/N or commit/SHA."),
    watermark_title: str = typer.Option("", "--watermark-title", help="Label of the sticky marker (CML's "
                                        "--watermark-title); comments with another label are left alone."),
    author: str = typer.Option(None, "--author", envvar="MLOPS_COMMENT_AUTHOR",
                               help="Login that posts the comment: only its comments are edited (default: the "
                                    "token's user from GET /user, else any bot account such as "
                                    "github-actions[bot])."),
) -> None:
    """Create or update the one sticky report comment; also write the job summary when in Actions."""
    from mlops.jobs.comment import comment

    result = comment(Path("."), report_file=Path(report) if report else None, target=target,
                     label=watermark_title, author=author, progress=progress, ci=ci_context())
    if result.posted is not None:
        echo(f"comment {result.posted.action} on {result.posted.target}: {result.posted.url}")
