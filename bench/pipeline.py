"""Pipeline benchmark: cold pipeline, no-op repro, validate stage, and deepchecks' default suites side by side.

Prints one JSON object. Run: `.venv/bin/python bench/pipeline.py` (or `make bench`).
The validate stage's checks are compared with the three default suites' checks on the same data; both pay the
deepchecks import, which is reported separately.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = ("params.yaml", "dvc.yaml", "data/raw/telco_churn.csv", "data/feedback/README.md", "mlops", ".dvc/config",
         ".dvcignore")


def sh(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    return round(time.perf_counter() - t, 3)


def make_project(root: Path) -> None:
    for rel in FILES:
        src, dst = REPO / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def default_suites(root: Path) -> dict[str, object]:
    """deepchecks' data_integrity, train_test_validation and model_evaluation on the same split."""
    warnings.simplefilter("ignore")
    import logging

    import pandas as pd
    import xgboost as xgb
    from deepchecks.tabular import Dataset
    from deepchecks.tabular.suites import data_integrity, model_evaluation, train_test_validation
    from deepchecks.utils.logger import set_verbosity

    set_verbosity(logging.WARNING)
    train = pd.read_csv(root / "data/prepared/train.csv")
    test = pd.read_csv(root / "data/prepared/test.csv")
    label = "churn"
    # deepchecks needs a model that takes its frames: one-hot encode the categoricals first (DESIGN.md).
    both = pd.get_dummies(pd.concat([train, test], keys=["tr", "te"]).drop(columns=[label]), dtype=float)
    xtr, xte = both.loc["tr"], both.loc["te"]
    ytr, yte = (train[label] == "Yes").astype(int), (test[label] == "Yes").astype(int)
    model = xgb.XGBClassifier(n_estimators=400, max_depth=4, learning_rate=0.03, n_jobs=2, random_state=42)
    model.fit(xtr, ytr)
    dtr = Dataset(xtr.assign(churn=ytr.values), label=label, cat_features=[])
    dte = Dataset(xte.assign(churn=yte.values), label=label, cat_features=[])
    raw = Dataset(pd.read_csv(root / "data/raw/telco_churn.csv"), label=label)
    out: dict[str, object] = {}
    total = 0.0
    for name, run in (("data_integrity", lambda: data_integrity().run(raw)),
                      ("train_test_validation", lambda: train_test_validation().run(dtr, dte)),
                      ("model_evaluation", lambda: model_evaluation().run(dtr, dte, model))):
        t = time.perf_counter()
        result = run()
        dt = time.perf_counter() - t
        total += dt
        out[name] = {"seconds": round(dt, 2), "passed": bool(result.passed(fail_if_check_not_run=True))}
    out["checks_seconds"] = round(total, 2)
    return out


def ours(root: Path) -> dict[str, object]:
    """The validate stage's checks in-process: without and with the HTML export."""
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(root))
    from mlops.config import load_params
    from mlops.stages.data import load_prepared, read_raw
    from mlops.stages.validate import run_checks

    params = load_params(root / "params.yaml")
    raw = read_raw(root / params.data.raw)
    train = load_prepared(root / "data/prepared/train.csv", params.data)
    test = load_prepared(root / "data/prepared/test.csv", params.data)
    run_checks(raw, train, test, params.data, params.validate_)  # warm-up: lazy imports inside deepchecks
    t = time.perf_counter()
    report = run_checks(raw, train, test, params.data, params.validate_)
    checks = time.perf_counter() - t
    t = time.perf_counter()
    run_checks(raw, train, test, params.data, params.validate_, html=root / "bench-validation.html")
    with_html = time.perf_counter() - t
    return {"checks_seconds": round(checks, 3), "checks_with_html_seconds": round(with_html, 3),
            "passed": report.passed, "checks": len(report.checks)}


def main() -> None:
    os.environ["DVC_NO_ANALYTICS"] = "1"
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        make_project(root)
        cold = sh([py, "-m", "dvc", "repro"], root)
        noop = sh([py, "-m", "dvc", "repro"], root)
        validate_stage = min(sh([py, "-m", "mlops", "stage", "validate"], root) for _ in range(3))
        python_startup = min(sh([py, "-c", "pass"], root) for _ in range(3))
        import_deepchecks = min(sh([py, "-W", "ignore", "-c", "import deepchecks.tabular"], root) for _ in range(3))
        import_pandas_sklearn = min(sh([py, "-c", "import pandas, sklearn.model_selection"], root)
                                    for _ in range(3))
        our = ours(root)
        defaults = default_suites(root)
    # Like for like: both sides run their checks with displays computed and export no HTML; our HTML export
    # (which the default suites would pay too) is reported beside it.
    ratio = float(our["checks_seconds"]) / float(defaults["checks_seconds"])  # type: ignore[arg-type]
    ratio_html = float(our["checks_with_html_seconds"]) / float(defaults["checks_seconds"])  # type: ignore[arg-type]
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "cold_pipeline_seconds": cold,
        "noop_repro_seconds": noop,
        "validate_stage_seconds": validate_stage,
        "import_seconds": {"python": python_startup, "pandas+sklearn": import_pandas_sklearn,
                           "deepchecks.tabular (incl. pandas, sklearn)": import_deepchecks},
        "validate_checks": our,
        "default_suites": defaults,
        "checks_ratio_ours_over_default": round(ratio, 4),
        "checks_plus_our_html_export_ratio": round(ratio_html, 4),
        "targets": {"checks_ratio_max": 0.1, "validate_stage_max_seconds": 10,
                    "checks_ratio_met": ratio <= 0.1, "validate_stage_met": validate_stage < 10},
    }, indent=2))


if __name__ == "__main__":
    main()
