"""`mlops score`: the project's ML Test Score (Breck et al. 2017), assessed from its files (mlops.mltestscore)."""

from __future__ import annotations

from pathlib import Path

from mlops.mltestscore import Score, assess, read_facts
from mlops.progress import Progress, silent


def score(root: Path = Path("."), *, progress: Progress = silent) -> Score:
    """Read dvc.yaml, params.yaml, the workflows and the tests folder of ROOT, and score the 28 tests."""
    progress("score: reading dvc.yaml, params.yaml, .github/workflows and the tests")
    return assess(read_facts(root))


def as_dict(result: Score) -> dict[str, object]:
    """The score as JSON-ready data: the per-test table, the section sums and the final score."""
    return {
        "final": result.final,
        "sections": result.sections,
        "tests": [{"section": t.section, "number": t.number, "title": t.title, "points": t.points,
                   "evidence": t.evidence} for t in result.tests],
    }
