"""`mlops score`: registered on `app` on import (mlops.cli registers this module)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlops.cli import app, echo, handled, progress


@app.command("score")
@handled
def score_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the per-test table, section sums and final score "
                                 "as JSON."),
    root: str = typer.Option(".", "--root", help="The project to assess (default: the current directory)."),
) -> None:
    """The ML Test Score of this project (Breck et al. 2017): 28 tests, 0 / 0.5 / 1 each, with the evidence."""
    from mlops.jobs.score import as_dict, score

    result = score(Path(root), progress=progress)
    if as_json:
        echo(json.dumps(as_dict(result), indent=2))
        return
    for section in ("data", "model", "infrastructure", "monitoring"):
        echo(f"{section}: {result.section_sum(section):g} / 7")
        for t in result.tests:
            if t.section == section:
                echo(f"  {t.number}. {t.points:>3g}  {t.title}: {t.evidence}")
    echo(f"ML Test Score: {result.final:g} (the minimum of the four section sums)")
