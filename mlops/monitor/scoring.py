"""Monitoring's scorer for any packaged model: rows of a file with no model outputs, scored through the runtime its
manifest names (mlops.runtimes), as the server scores them.

The accumulator hands a scorer the window's rows as it encodes them for drift (one float column per input, a
category as its code in the interface's categories, NaN where missing). A runtime that takes that matrix gets it in
its own float type; one that takes records (a scikit-learn pipeline on a DataFrame, a python model) gets the rows
decoded back to raw values. The answer is the task's values: P(positive) for binary (what prediction drift and the
performance estimate read), a row per class for multiclass, the value for regression.

Trust: a package in the model store is loaded with the sha256 the store verified; a package in the workspace (the
reference beside the model, `mlops monitor --current`) is the checked-out commit's own files, as trusted as the
code that runs the check, so its files' hashes are taken as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError
from mlops.files import sha256_file
from mlops.formats.manifest import MANIFEST_FILE, Manifest, read_manifest
from mlops.monitor.sources import MonitorInputError

Scorer = Callable[[Any], Any]


def _trusted(directory: Path, manifest: Manifest) -> dict[str, str]:
    from mlops import modelstore

    if (directory / modelstore.META_FILE).is_file():
        try:
            meta = modelstore.get(directory.parent.parent, directory.parent.name, directory.name)
            return meta.files
        except MlopsError:
            pass  # not an installed version after all: the workspace's rule below
    return {f.path: sha256_file(directory / f.path) for f in manifest.files if (directory / f.path).is_file()}


def package_scorer(directory: Path) -> Scorer | None:
    """A scorer by the package in DIRECTORY (loaded on first use), or None when DIRECTORY holds no manifest."""
    if not (directory / MANIFEST_FILE).is_file():
        return None
    loaded: list[Any] = []

    def runtime() -> Any:
        if not loaded:
            from mlops.runtimes import load_runtime

            try:
                manifest = read_manifest(directory)
                loaded.append(load_runtime(directory, manifest, sha256=_trusted(directory, manifest)))
            except MlopsError as exc:
                raise MonitorInputError(f"scoring the file: {exc.message}", hint=exc.hint) from None
        return loaded[0]

    def score(matrix: Any) -> Any:
        import numpy as np

        rt = runtime()
        if rt.takes_matrix:
            return rt.predict_matrix(np.asarray(matrix, dtype=rt.dtype or np.float32)).values
        columns: dict[str, list[Any]] = {}
        for j, f in enumerate(rt.interface.features):
            col: list[Any] = []
            for v in np.asarray(matrix)[:, j].tolist():
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    col.append(None)
                elif f.type == "category":
                    col.append((f.categories or ())[int(v)])
                elif f.type == "int":
                    col.append(int(v))
                elif f.type == "bool":
                    col.append(bool(v))
                else:
                    col.append(float(v))
            columns[f.name] = col
        return rt.predict_columns(columns).values

    return score
