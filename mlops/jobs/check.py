"""`mlops check`: load a model and its held-out rows, run the model checks (mlops.checks), write checks.json.

The model is a package directory (mlops-model.yaml) or a churn-stage model directory (model.ubj and
feature_schema.json, a binary xgboost classifier). checks.json is meant to be declared as a metrics file of a DVC
stage: then the report diffs `checks.*` against main and production and the gates judge it like any metric.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.checks import CheckError, CheckResult, CheckSettings, Heldout, Predict, run_checks, treeshap
from mlops.config import PARAMS_FILE, read_params
from mlops.errors import DataInvalid, ModelInvalid
from mlops.features import encode_columns
from mlops.files import sha256_file
from mlops.formats.manifest import (
    MANIFEST_FILE,
    Manifest,
    ModelFile,
    outputs_for,
    read_feature_schema,
    read_manifest,
)
from mlops.formats.profile import PROFILE_FILE, read_profile
from mlops.progress import Progress, silent
from mlops.runtimes import Runtime, code_files, load_runtime

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray


@dataclass(frozen=True)
class CheckOutcome:
    result: CheckResult
    written: Path


def _manifest(directory: Path) -> Manifest:
    """The package's manifest, or the one of a churn-stage model directory (before packages existed)."""
    if (directory / MANIFEST_FILE).is_file() or not (directory / "feature_schema.json").is_file():
        return read_manifest(directory)
    schema = read_feature_schema(directory / "feature_schema.json")
    positive = str(schema.output.get("positive") or "1")
    label = schema.output.get("label")
    classes = (f"not {positive}", positive)
    threshold = None
    try:  # the decision threshold the train stage recorded (reference.json)
        threshold = read_profile(directory / PROFILE_FILE).threshold
    except ModelInvalid:
        threshold = None
    iface = type(schema.interface)(schema.interface.inputs, outputs_for("binary", classes))
    return Manifest(runtime="xgboost", files=(ModelFile("model.ubj", None),), task="binary", interface=iface,
                    classes=classes, threshold=threshold, target=str(label) if isinstance(label, str) else None)


def _text(v: Any) -> str:
    """A label as the manifest's class names spell it (1.0 read from a CSV is class "1")."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _labels(frame: pd.DataFrame, target: str, m: Manifest, source: Path) -> NDArray[np.float64]:
    import numpy as np

    values = frame[target].tolist()
    if m.task == "regression":
        try:
            return np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataInvalid(f"{source}: column '{target}' must be numeric for a regression model") from None
    classes = list(m.classes or ())
    index = {c: i for i, c in enumerate(classes)}
    if m.task == "binary" and len(classes) == 2:
        # labels kept as numbers or booleans (0/1, False/True) name the negative and the positive class too
        index = {"0": 0, "False": 0, "false": 0, "1": 1, "True": 1, "true": 1, classes[0]: 0, classes[1]: 1}
        if classes[0] == f"not {classes[1]}":  # a churn-stage model: every label but the positive is negative
            return np.asarray([1.0 if _text(v) in (classes[1], "1", "True", "true") else 0.0 for v in values])
    out = np.empty(len(values))
    for i, v in enumerate(values):
        k = index.get(_text(v))
        if k is None:
            raise DataInvalid(f"{source}: row {i + 2}: label {v!r} in column '{target}' is not a class of the model",
                              hint=f"the model's classes: {', '.join(classes)}")
        out[i] = k
    return out


def _heldout(frame: pd.DataFrame, target: str, rt: Runtime, source: Path) -> tuple[Heldout, Predict]:
    import numpy as np

    m = rt.manifest
    names = rt.interface.names
    if target not in frame.columns:
        raise DataInvalid(f"{source}: no target column '{target}'", hint="pass --target COLUMN")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataInvalid(f"{source}: the model's input '{missing[0]}' is not a column",
                          hint="pass the held-out rows the model was evaluated on")
    # JSON-typed values (NaN is None), as an application sends them: the runtimes' own input checks apply
    doc = json.loads(frame.to_json(orient="split", index=False))
    columns = {c: [row[i] for row in doc["data"]] for i, c in enumerate(doc["columns"]) if c != target}
    raw = {c: np.asarray(v, dtype=object) for c, v in columns.items()}
    predict: Predict
    if rt.takes_matrix:
        x: NDArray[Any] = encode_columns(rt.interface, {n: columns[n] for n in names}, getattr(rt, "dtype", None))

        def predict(mat: NDArray[Any]) -> NDArray[np.float64]:
            return rt.predict_matrix(mat).values
    else:
        x = np.empty((len(frame), len(names)), dtype=object)
        for j, n in enumerate(names):
            x[:, j] = raw[n]

        def predict(mat: NDArray[Any]) -> NDArray[np.float64]:
            return rt.predict_columns({n: mat[:, j].tolist() for j, n in enumerate(names)}).values
    h = Heldout(task=m.task, features=tuple(names), x=x, y=_labels(frame, target, m, source), columns=raw,
                classes=tuple(m.classes or ()), threshold=m.decision_threshold)
    return h, predict


def check(model: Path, data: Path, *, target: str | None = None, train: Path | None = None,
          out: Path = Path("reports/checks.json"), root: Path = Path("."), params_file: Path | None = None,
          progress: Progress = silent) -> CheckOutcome:
    """Run the model checks of the model in MODEL (a directory) on the held-out rows DATA (CSV or Parquet, with the
    target column) and, when given, the training rows TRAIN (the train-test gap); write OUT (nothing on error)."""
    from mlops.package import read_table

    params, sensitive = read_params(params_file if params_file is not None else root / PARAMS_FILE).checks
    settings = CheckSettings(sensitive=sensitive, **params.model_dump())
    m = _manifest(model)
    # The person running the check points at these files (as `mlops serve --model-dir`): code-running files are
    # trusted by that choice, and their sha256 is still checked against the manifest's.
    trusted = {p: sha256_file(model / p) for p in code_files(m) if (model / p).is_file()}
    progress(f"check: loading the {m.runtime} model in {model}")
    rt = load_runtime(model, m, sha256=trusted)
    label = target or m.target
    if not label:
        raise CheckError(f"{model}: the manifest names no target column", hint="pass --target COLUMN")
    frame = read_table(data)
    h, predict = _heldout(frame, label, rt, data)
    train_rows = None
    if train is not None:
        train_frame = read_table(train)
        train_rows, _ = _heldout(train_frame, label, rt, train)
    progress(f"check: {len(h)} held-out rows, {len(h.features)} inputs, sensitive: {', '.join(sensitive) or '-'}")
    result = run_checks(h, predict, settings, contributions=treeshap(rt), train=train_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)  # whole or not at all
    return CheckOutcome(result, out)
