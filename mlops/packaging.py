"""Write a model package: manifest, golden records and reference profile beside the model file(s), for any model.

The one code path that writes a package: `mlops package` (mlops.package, from files) and this repo's churn train
stage (mlops.stages.train, from its held-out frame) both call `write_package`, so the two cannot drift. From a
trained model file, held-out rows (a DataFrame with the target column), the target and the task:
1. the runtime (from the file's suffix unless given) and the interface: the inputs are the model's own column
   names where it records them (scikit-learn's `feature_names_in_`, a booster's feature names), else every column
   but the target; each input's type, categories, range and nullability come from the data, and `package:` in
   params.yaml overrides them (mlops.config.PackageParams);
2. the classes (classifiers): the model's (scikit-learn's `classes_`), else the target's sorted values, unless
   `package.classes` says; binary: [negative, positive], the positive class `package.positive` or the second;
3. everything is staged in a temporary directory beside the output and the model is loaded from there through
   its runtime, as deploy and serve will load it: the model's predictions on every row give the reference profile
   (mlops.profile, for the task, per `package.segments`), and on `package.golden_rows` rows (a seeded sample, or
   spread evenly over the data with `package.golden_spread`) the golden records (mlops.formats.golden);
4. then the files move into the output directory (the model file's directory by default; the model file is
   copied there when it is another). A failure before that leaves the output as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlops.config import PackageParams
from mlops.errors import DataInvalid, ModelInvalid
from mlops.features import interface_of, records_from_frame
from mlops.files import sha256_file
from mlops.formats.golden import Golden, write_golden
from mlops.formats.manifest import (
    MANIFEST_FILE,
    RUNTIMES,
    TASKS,
    Input,
    InputType,
    Interface,
    Manifest,
    ModelFile,
    RuntimeName,
    Task,
    feature_schema_json,
    outputs_for,
    write_manifest,
)
from mlops.formats.profile import write_profile
from mlops.profile import build_profile
from mlops.progress import Progress, silent
from mlops.runtimes import Predictions, load_runtime

if TYPE_CHECKING:
    import pandas as pd

SUFFIX_RUNTIMES: dict[str, RuntimeName] = {
    ".ubj": "xgboost", ".bst": "xgboost", ".skops": "sklearn", ".joblib": "sklearn", ".pkl": "sklearn",
    ".pickle": "sklearn", ".onnx": "onnx", ".lgb": "lightgbm",
}
BATCH_ROWS = 20_000  # rows per prediction call while profiling (memory stays flat on large held-out sets)


@dataclass(frozen=True, eq=False)
class PackageSpec:
    """What to package: MODEL (a file), FRAME (held-out rows with the TARGET column), SOURCE (where the rows come
    from, as golden.json records it: a path relative to the project root)."""

    model: Path
    frame: pd.DataFrame
    source: str
    target: str
    task: Task
    runtime: RuntimeName | None = None
    out: Path | None = None
    code: str | None = None  # python runtime: FILE.py:CLASS
    params: PackageParams = field(default_factory=PackageParams)


@dataclass(frozen=True)
class PackageResult:
    directory: Path
    manifest: Manifest
    written: tuple[Path, ...]
    rows: int  # held-out rows profiled
    golden_rows: int
    metrics: dict[str, Any]


def infer_runtime(model: Path, code: str | None) -> RuntimeName:
    """The runtime a model file's suffix names (a python entrypoint means the python runtime)."""
    if code is not None:
        return "python"
    found = SUFFIX_RUNTIMES.get(model.suffix.lower())
    if found is None:
        raise ModelInvalid(f"{model}: cannot tell the runtime from the suffix '{model.suffix}'",
                           hint=f"pass --runtime (one of {', '.join(RUNTIMES)})")
    return found


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; DataInvalid naming the file."""
    import pandas as pd

    if not path.is_file():
        raise DataInvalid(f"{path}: data file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(path)
    except ImportError as exc:
        raise DataInvalid(f"{path}: reading it needs {exc.name or 'pyarrow'}",
                          hint='pip install pyarrow (Parquet support)') from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataInvalid(f"{path}: not a readable {suffix[1:]} file: {str(exc).splitlines()[0]}") from None
    raise DataInvalid(f"{path}: expected a .csv or .parquet file")


def model_columns(runtime: RuntimeName, path: Path, trusted: Sequence[str]) -> tuple[list[str] | None, Any]:
    """The input names the model records (None when it records none), and the loaded estimator (sklearn) whose
    classes decide the class order."""
    if runtime == "sklearn":
        from mlops.runtimes.sklearn import load_estimator

        est = load_estimator(path, tuple(trusted))
        names = getattr(est, "feature_names_in_", None)
        return ([str(n) for n in names] if names is not None else None), est
    if runtime == "xgboost":
        import xgboost as xgb

        b = xgb.Booster()
        b.load_model(str(path))
        return (list(b.feature_names) if b.feature_names else None), None
    if runtime == "lightgbm":
        import lightgbm as lgb

        names = list(lgb.Booster(model_file=str(path)).feature_name())
        return (None if all(n.startswith("Column_") for n in names) else names), None
    return None, None


def _infer_input(name: str, col: pd.Series[Any], params: PackageParams, source: str) -> Input:
    import pandas as pd

    over = params.overrides.get(name)
    nullable = bool(col.isna().any())
    kind: InputType
    if over is not None and over.type is not None:
        kind = over.type
    elif pd.api.types.is_bool_dtype(col):
        kind = "bool"
    elif pd.api.types.is_integer_dtype(col):
        kind = "int"
    elif pd.api.types.is_float_dtype(col):
        kind = "float"
    else:
        values = col.dropna()
        if not all(isinstance(v, str) for v in values.tolist()):
            raise DataInvalid(f"{source}: column '{name}' mixes text with other values",
                              hint=f"set its type under package.overrides.{name} in params.yaml")
        kind = "category" if values.nunique() <= params.max_categories else "string"
    categories: tuple[str, ...] | None = None
    range_: tuple[float, float] | None = None
    if kind == "category":
        if over is not None and over.categories is not None:
            categories = over.categories
        elif isinstance(col.dtype, pd.CategoricalDtype):
            categories = tuple(str(c) for c in col.cat.categories)
        else:
            categories = tuple(sorted({str(v) for v in col.dropna().tolist()}))
        if not categories:
            raise DataInvalid(f"{source}: column '{name}' has no values to take its categories from",
                              hint=f"list them under package.overrides.{name}.categories")
    elif kind in ("int", "float"):
        values_f = pd.to_numeric(col, errors="coerce").dropna()
        if len(values_f):
            range_ = (float(values_f.min()), float(values_f.max()))
    if over is not None and over.nullable is not None:
        nullable = over.nullable or nullable
    return Input(name, kind, categories, range_, nullable)


def _classes(req: PackageSpec, y: pd.Series[Any], estimator: Any) -> tuple[str, ...] | None:
    if req.task == "regression":
        return None
    p = req.params
    if p.classes is not None:
        classes = list(p.classes)
    elif estimator is not None and hasattr(estimator, "classes_"):
        classes = [str(c) for c in estimator.classes_]
    else:
        classes = sorted({str(v) for v in y.tolist()}, key=_natural)
    if req.task == "binary":
        if len(classes) != 2:
            raise DataInvalid(f"{req.source}: column '{req.target}' has {len(classes)} classes "
                              f"({', '.join(classes[:5])}), a binary model has 2", hint="use --task multiclass")
        positive = p.positive if p.positive is not None else classes[1]
        if positive not in classes:
            raise DataInvalid(f"params.yaml: key 'package.positive' is {positive!r}, not a class of column "
                              f"'{req.target}' ({', '.join(classes)})")
        classes = [c for c in classes if c != positive] + [positive]
    elif len(classes) < 2:
        raise DataInvalid(f"{req.source}: column '{req.target}' has fewer than 2 classes")
    return tuple(classes)


def _natural(v: str) -> tuple[int, float, str]:
    """Numbers in numeric order (0, 1, 2, 10), then text."""
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def _labels(req: PackageSpec, y: pd.Series[Any], classes: tuple[str, ...] | None) -> Any:
    import numpy as np
    import pandas as pd

    if classes is None:
        values = pd.to_numeric(y, errors="coerce")
        if values.isna().any():
            raise DataInvalid(f"{req.source}: column '{req.target}' must be numeric for a regression model")
        return values.to_numpy(dtype=np.float64)
    index = {c: k for k, c in enumerate(classes)}
    out = np.empty(len(y), dtype=np.int64)
    for i, v in enumerate(y.tolist()):
        k = index.get(str(v))
        if k is None:
            raise DataInvalid(f"{req.source}: column '{req.target}' row {i}: {v!r} is not one of the classes "
                              f"{', '.join(classes)}")
        out[i] = k
    if req.task == "binary":
        return out  # 1 = the positive class (the second)
    return out


def _predict_all(runtime: Any, records: list[dict[str, Any]]) -> Predictions:
    import numpy as np

    parts = [runtime.predict_records(records[i:i + BATCH_ROWS]) for i in range(0, len(records), BATCH_ROWS)]
    first = parts[0]
    return Predictions(first.task, np.concatenate([p.values for p in parts]), first.classes, first.threshold)


def golden_rows(n: int, params: PackageParams) -> list[int]:
    """The positions of the golden records among N rows: `golden_rows` of them, spread evenly (the first, the last
    and evenly between: every part of a split ordered by time or id is covered) or a sample seeded by `seed`."""
    import numpy as np

    k = min(params.golden_rows, n)
    if params.golden_spread:
        return [int(i) for i in np.unique(np.linspace(0, n - 1, k).round().astype(int))]
    rng = np.random.default_rng(params.seed)
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def _stage_file(src: Path, stage: Path, name: str) -> ModelFile:
    dest = stage / name
    shutil.copyfile(src, dest)
    return ModelFile(name, sha256_file(dest))


def write_package(req: PackageSpec, progress: Progress = silent) -> PackageResult:
    """Write the package of REQ's model (see the module docstring); nothing is written when anything fails."""
    import numpy as np

    if req.task not in TASKS:
        raise ModelInvalid(f"unknown task {req.task!r}", hint=f"one of {', '.join(TASKS)}")
    if not req.model.is_file():
        raise ModelInvalid(f"{req.model}: model file not found")
    runtime_name = req.runtime or infer_runtime(req.model, req.code)
    if runtime_name not in RUNTIMES:
        raise ModelInvalid(f"unknown runtime {runtime_name!r}", hint=f"one of {', '.join(RUNTIMES)}")
    if runtime_name == "python" and req.code is None:
        raise ModelInvalid("the python runtime needs --code FILE.py:CLASS (the class that loads and predicts)")
    code_file: Path | None = None
    code_class = ""
    if req.code is not None:
        file_part, _, code_class = req.code.rpartition(":")
        code_file = Path(file_part)
        if not file_part.endswith(".py") or not code_class.isidentifier():
            raise ModelInvalid(f"--code: expected FILE.py:CLASS, got {req.code!r}")
        if not code_file.is_file():
            raise ModelInvalid(f"{code_file}: not found (--code)")
    frame = req.frame
    if req.target not in frame.columns:
        raise DataInvalid(f"{req.source}: column '{req.target}' (the target) is not in the data "
                          f"(columns: {', '.join(map(str, frame.columns[:8]))}...)")
    frame = frame.reset_index(drop=True)
    if frame[req.target].isna().any():
        row = int(np.flatnonzero(frame[req.target].isna().to_numpy())[0])
        raise DataInvalid(f"{req.source}: column '{req.target}' row {row}: the target is missing")
    if len(frame) == 0:
        raise DataInvalid(f"{req.source}: no rows")
    p = req.params
    progress(f"package: {req.model} ({runtime_name}, {req.task}), {len(frame)} held-out rows from {req.source}")
    names, estimator = model_columns(runtime_name, req.model, p.trusted)
    columns = list(p.inputs) if p.inputs is not None else names or [
        str(c) for c in frame.columns if c != req.target and c not in p.exclude]
    for c in columns:
        if c not in frame.columns:
            raise DataInvalid(f"{req.source}: column '{c}' (an input of the model) is not in the data")
        if c == req.target:
            raise DataInvalid(f"{req.source}: column '{c}' is the target and cannot be an input")
    unknown = [k for k in p.overrides if k not in columns]
    if unknown:
        raise DataInvalid(f"params.yaml: key 'package.overrides.{unknown[0]}' is not an input of the model")
    inputs = tuple(_infer_input(c, frame[c], p, req.source) for c in columns)
    classes = _classes(req, frame[req.target], estimator)
    labels = _labels(req, frame[req.target], classes)
    out = req.out if req.out is not None else req.model.parent
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".mlops-package-", dir=out))
    try:
        files = [_stage_file(req.model, stage, req.model.name)]
        entrypoint = None
        if code_file is not None:
            if code_file.name == req.model.name:
                raise ModelInvalid(f"{code_file}: the code file and the model file have the same name")
            files.append(_stage_file(code_file, stage, code_file.name))
            entrypoint = f"{code_file.name}:{code_class}"
        threshold = p.threshold if req.task == "binary" else None
        manifest = Manifest(runtime=runtime_name, files=tuple(files), task=req.task,
                            interface=Interface(inputs, outputs_for(req.task, classes)), classes=classes,
                            threshold=threshold, target=req.target, entrypoint=entrypoint,
                            trusted=tuple(p.trusted) if runtime_name == "sklearn" else ())
        write_manifest(stage, manifest)
        # The packager trusts its own model file: these are the hashes it just wrote into the manifest.
        runtime = load_runtime(stage, sha256={f.path: f.sha256 for f in files if f.sha256})
        iface = interface_of(manifest.interface, manifest.output_description())
        records = records_from_frame(iface, frame)
        preds = _predict_all(runtime, records)
        progress(f"package: profiling {len(records)} rows")
        legacy_doc = feature_schema_json([i for i in inputs if i.type != "string"] or inputs,
                                         manifest.output_description())
        profile = build_profile(frame, legacy_doc, preds.values, labels, p.segments, task=req.task,
                                classes=classes, threshold=manifest.decision_threshold)
        write_profile(stage / manifest.reference, profile)
        picked = golden_rows(len(records), p)
        golden_records = [records[i] for i in picked]
        golden_preds = runtime.predict_records(golden_records)
        golden = Golden(records=tuple(golden_records), predictions=tuple(
            tuple(r) if isinstance(r, list) else r for r in golden_preds.rows()),
            task=req.task, classes=classes if req.task == "multiclass" else None,
            model_sha256=files[0].sha256, source=req.source, rows=tuple(picked))
        write_golden(stage / manifest.golden, golden)
        written: list[Path] = []
        for name in [f.path for f in files] + [manifest.golden, manifest.reference, MANIFEST_FILE]:
            dest = out / name
            src = stage / name
            if dest.exists() and dest.is_file() and name in {f.path for f in files} \
                    and sha256_file(dest) == sha256_file(src):
                written.append(dest)  # the model file itself, when packaging in place
                continue
            os.replace(src, dest)
            written.append(dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return PackageResult(directory=out, manifest=manifest, written=tuple(written), rows=len(records),
                         golden_rows=len(golden_records), metrics=dict(cast(dict[str, Any], profile["metrics"])))


__all__ = ["PackageResult", "PackageSpec", "golden_rows", "infer_runtime", "read_table", "write_package"]
