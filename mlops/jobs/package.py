"""`mlops package`: read `package:` of params.yaml once, then write the model package (mlops.package)."""

from __future__ import annotations

from pathlib import Path

from mlops.config import PARAMS_FILE, read_params
from mlops.formats.manifest import RuntimeName, Task
from mlops.package import PackageRequest, PackageResult, package_model
from mlops.progress import Progress, silent


def package(model: Path, data: Path, target: str, task: Task, *, runtime: RuntimeName | None = None,
            out: Path | None = None, code: str | None = None, root: Path = Path("."),
            params_file: Path | None = None, progress: Progress = silent) -> PackageResult:
    """Package MODEL (paths relative to ROOT's working directory) with the overrides of params.yaml."""
    params = read_params(params_file if params_file is not None else root / PARAMS_FILE).package
    return package_model(PackageRequest(model=model, data=data, target=target, task=task, runtime=runtime,
                                        out=out, code=code, params=params), progress)
