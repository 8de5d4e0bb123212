"""`mlops package` from files: read the held-out table, then write the package through mlops.packaging.

The writing itself (interface, classes, golden records, reference profile, the staged move) is the kernel's
`write_package`, which this repo's churn train stage calls too: one code path for every package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlops.config import PackageParams
from mlops.formats.manifest import RuntimeName, Task
from mlops.packaging import PackageResult, PackageSpec, infer_runtime, read_table, write_package
from mlops.progress import Progress, silent


@dataclass(frozen=True)
class PackageRequest:
    """What `mlops package` is asked to do; paths relative to the project root."""

    model: Path
    data: Path
    target: str
    task: Task
    runtime: RuntimeName | None = None
    out: Path | None = None
    code: str | None = None  # python runtime: FILE.py:CLASS
    params: PackageParams = field(default_factory=PackageParams)


def package_model(req: PackageRequest, progress: Progress = silent) -> PackageResult:
    """Write the package of REQ's model (see mlops.packaging); nothing is written when anything fails."""
    frame = read_table(req.data)
    return write_package(PackageSpec(model=req.model, frame=frame, source=req.data.as_posix(), target=req.target,
                                     task=req.task, runtime=req.runtime, out=req.out, code=req.code,
                                     params=req.params), progress)


__all__ = ["PackageRequest", "PackageResult", "infer_runtime", "package_model", "read_table"]
