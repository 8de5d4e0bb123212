"""Model runtimes, one module per framework behind one small protocol; heavy imports stay inside each module.

    from mlops.runtimes import load_runtime
    rt = load_runtime("models/")                       # reads mlops-model.yaml, checks the files, loads the model
    rt.predict_records([{"tenure": 3, ...}]).records()  # [{"probability": 0.71, "label": "Yes"}]

`load_runtime` checks every model file against the sha256 the manifest records and against SHA256, the hashes the
caller checked against something it trusts (the registry tag, the model store). Files that run code when they
are loaded (pickle, joblib, the python runtime's module) are loaded only when SHA256 names them. The frameworks
are extras: a missing one is a RuntimeMissing (exit 1) whose hint is the install line.

| runtime  | files                                   | takes                                   | extra   |
| xgboost  | .ubj/.json (Booster.save_model)         | the float32 matrix (category codes)     | xgboost |
| lightgbm | .txt (Booster.save_model)               | the float64 matrix (category codes)     | lightgbm|
| sklearn  | .skops (preferred), .joblib/.pkl        | a DataFrame when fit on one, else float64 matrix | sklearn |
| onnx     | .onnx                                   | one matrix input, or one input per column | onnx  |
| python   | FILE.py with a class: load(dir), predict(records) | checked records                 | -       |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlops.errors import ModelInvalid
from mlops.files import sha256_file
from mlops.formats.manifest import Manifest, read_manifest
from mlops.runtimes.base import BaseRuntime, Predictions, Runtime, RuntimeMissing, UnverifiedModel

__all__ = ["BaseRuntime", "Predictions", "Runtime", "RuntimeMissing", "UnverifiedModel", "code_files",
           "load_runtime", "verify_files"]

# Suffixes whose loading runs code: loaded only after the caller's sha256 check.
CODE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".py")


def code_files(manifest: Manifest) -> list[str]:
    """The package's files that run code when loaded (every file of the python runtime: its module reads them)."""
    if manifest.runtime == "python":
        return [f.path for f in manifest.files]
    return [f.path for f in manifest.files if f.path.lower().endswith(CODE_SUFFIXES)]


def verify_files(directory: Path, manifest: Manifest, sha256: Mapping[str, str] | None = None) -> None:
    """Every file of MANIFEST exists in DIRECTORY and matches the sha256 the manifest records and the one SHA256
    gives (path relative to DIRECTORY -> hex digest); code-running files must be in SHA256."""
    given = {k: v.lower() for k, v in (sha256 or {}).items()}
    for f in manifest.files:
        path = directory / f.path
        if not path.is_file():
            raise ModelInvalid(f"{path}: model file not found (listed in the manifest's 'files')")
        digest = sha256_file(path)
        if f.sha256 is not None and digest != f.sha256:
            raise ModelInvalid(f"{path}: sha256 {digest[:12]}… differs from the manifest's {f.sha256[:12]}…",
                               hint="the model file and mlops-model.yaml are from different packagings: "
                                    "rerun `mlops package`")
        if f.path in given and given[f.path] != digest:
            raise ModelInvalid(f"{path}: sha256 {digest[:12]}… differs from the trusted {given[f.path][:12]}…")
    unchecked = [p for p in code_files(manifest) if p not in given]
    if unchecked:
        raise UnverifiedModel(f"{directory / unchecked[0]}: runs code when loaded, and no trusted sha256 was "
                              "given for it", hint="load it through the registry or the model store (which check "
                              "it against the tag), or pass its sha256")


def load_runtime(directory: Path | str, manifest: Manifest | None = None, *,
                 sha256: Mapping[str, str] | None = None) -> Runtime:
    """The model packaged in DIRECTORY (its mlops-model.yaml unless MANIFEST is given), checked and loaded."""
    d = Path(directory)
    m = manifest if manifest is not None else read_manifest(d)
    verify_files(d, m, sha256)
    runtime: BaseRuntime
    if m.runtime == "xgboost":
        from mlops.runtimes.xgboost import XGBoostRuntime

        runtime = XGBoostRuntime(m, d)
    elif m.runtime == "lightgbm":
        from mlops.runtimes.lightgbm import LightGBMRuntime

        runtime = LightGBMRuntime(m, d)
    elif m.runtime == "sklearn":
        from mlops.runtimes.sklearn import SklearnRuntime

        runtime = SklearnRuntime(m, d)
    elif m.runtime == "onnx":
        from mlops.runtimes.onnx import OnnxRuntime

        runtime = OnnxRuntime(m, d)
    else:
        from mlops.runtimes.python import PythonRuntime

        runtime = PythonRuntime(m, d)
    return runtime  # type: ignore[return-value]  # BaseRuntime subclasses implement the protocol
