"""`mlops stage NAME`: one of the built-in tabular stages, in this process (what this repo's dvc.yaml calls)."""

from __future__ import annotations

from pathlib import Path

from mlops import extras
from mlops.config import PARAMS_FILE, load_params
from mlops.errors import MlopsError
from mlops.progress import Progress, silent
from mlops.stages import STAGES


def run_stage(name: str, root: Path = Path("."), progress: Progress = silent) -> None:
    """Run one stage. The pipeline extra is checked first: without it, the missing install is the one error."""
    if name not in STAGES:
        raise MlopsError(f"unknown stage '{name}'", hint=f"one of: {', '.join(STAGES)}")
    extras.require("pipeline", f"`mlops stage {name}`")
    params = load_params(root / PARAMS_FILE)
    if name == "prepare":
        from mlops.stages.prepare import prepare

        prepare(params, root, progress)
    elif name == "validate":
        from mlops.stages.validate import validate

        validate(params, root, progress)
    elif name == "train":
        from mlops.stages.train import train

        train(params, root, progress)
    else:
        from mlops.stages.evaluate import evaluate

        evaluate(params, root, progress)
