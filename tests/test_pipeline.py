"""The example pipeline end to end on real DVC and real xgboost (slow: it trains)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops import dvc as mdvc
from mlops.errors import ModelInvalid
from mlops.files import sha256_file
from mlops.stages import train as train_mod
from tests.helpers import dvc, git

pytestmark = pytest.mark.slow


def _mlops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlops", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)


def test_trained_model_meets_the_bar(trained_project: Path) -> None:
    metrics = json.loads((trained_project / "reports/metrics.json").read_text())
    assert metrics["test"]["roc_auc"] >= 0.83
    assert set(metrics["test"]) == {"roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss"}
    assert set(metrics["train"]) == set(metrics["test"])
    model = (trained_project / "models/model.ubj").read_bytes()
    assert model[:1] == b"{"  # UBJSON object marker, not a pickle (b"\x80")
    schema = json.loads((trained_project / "models/feature_schema.json").read_text())
    assert [f["name"] for f in schema["features"]][:2] == ["female", "senior_citizen"]
    contract = next(f for f in schema["features"] if f["name"] == "contract")
    assert contract["categories"] == ["Month-to-month", "One year", "Two year"]
    trained = json.loads((trained_project / "reports/train.json").read_text())
    assert trained["requested_device"] == "auto"
    assert trained["device"] == ("cuda" if train_mod.gpu_available() else "cpu")
    assert trained["model_sha256"] == sha256_file(trained_project / "models/model.ubj")
    segments = json.loads((trained_project / "reports/segments.json").read_text())
    assert set(segments) == {"contract", "senior_citizen"}
    assert set(segments["contract"]) == {"Month-to-month", "One year", "Two year"}
    assert sum(s["rows"] for s in segments["contract"].values()) == 1409
    card = (trained_project / "reports/model_card.md").read_text()
    assert "## Intended use" in card and "863e369c3a03cea2" in card and trained["model_sha256"] in card
    for plot in ("roc.json", "pr.json", "confusion.json", "importance.json"):
        assert json.loads((trained_project / "reports/plots" / plot).read_text())


def test_dvc_declares_the_model_artifact(trained_project: Path) -> None:
    arts = mdvc.artifacts(trained_project)
    assert arts["churn-model"].path == "models" and arts["churn-model"].type == "model"
    lock = mdvc.read_lock(trained_project)
    assert str(mdvc.output_hash(lock, "models")).endswith(".dir")


def test_noop_repro_runs_nothing_and_one_param_reruns_train_and_evaluate(trained_project: Path) -> None:
    proc = _mlops(trained_project, "run")
    assert proc.returncode == 0, proc.stderr
    assert "stages run: none (all up to date)" in proc.stdout
    params = yaml.safe_load((trained_project / "params.yaml").read_text())
    params["train"]["max_depth"] = 3
    (trained_project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = mdvc.repro(trained_project).ran
    assert ran == ["train", "evaluate", "check"]


def test_retraining_from_scratch_gives_identical_model_bytes(trained_project: Path, project: Path) -> None:
    for stage in ("prepare", "train"):
        proc = _mlops(project, "stage", stage)
        assert proc.returncode == 0, proc.stderr
    assert (project / "models/model.ubj").read_bytes() == (trained_project / "models/model.ubj").read_bytes()


def test_push_and_pull_with_run_cache(trained_project: Path, tmp_path: Path) -> None:
    dvc(trained_project, "push", "--run-cache")
    store = trained_project / ".dvcstore"
    assert store.is_dir() and any(store.rglob("*"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(trained_project), str(clone))
    # The default remote is a folder beside each checkout; point the clone at the first one's.
    dvc(clone, "remote", "modify", "--local", "local", "url", str(store))
    dvc(clone, "pull", "--run-cache")
    assert (clone / "models/model.ubj").read_bytes() == (trained_project / "models/model.ubj").read_bytes()
    assert mdvc.repro(clone).ran == []


def test_run_cache_restores_a_previous_params_state(trained_project: Path) -> None:
    original = (trained_project / "models/model.ubj").read_bytes()
    params_path = trained_project / "params.yaml"
    before = params_path.read_text()
    params_path.write_text(before.replace("n_estimators: 400", "n_estimators: 50"))
    assert mdvc.repro(trained_project).ran == ["train", "evaluate", "check"]
    params_path.write_text(before)
    # Back to the committed params: DVC restores train and evaluate from its run cache instead of rerunning.
    assert mdvc.repro(trained_project).ran == []
    assert (trained_project / "models/model.ubj").read_bytes() == original


def test_cuda_requested_without_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_mod, "gpu_available", lambda: False)
    with pytest.raises(ModelInvalid, match=r"train\.device' is 'cuda' but no CUDA GPU"):
        train_mod.resolve_device("cuda")
    assert train_mod.resolve_device("auto") == "cpu"
    assert train_mod.resolve_device("cpu") == "cpu"


def test_failed_validation_stops_the_pipeline_before_training(project: Path) -> None:
    raw = project / "data/raw/telco_churn.csv"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines + lines[1:500]))  # a duplicated block of 499 rows
    proc = _mlops(project, "run")
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert any(line.startswith("error: dvc repro failed: validation failed: check 'Data Duplicates'")
               for line in err), proc.stderr
    assert not (project / "models/model.ubj").exists()
    assert json.loads((project / "reports/validation.json").read_text())["passed"] is False


def test_the_venvs_mlops_runs_the_whole_pipeline_without_the_venv_on_path(project: Path) -> None:
    """`.venv/bin/mlops run` (or a pipx install) with its scripts directory not on PATH: the stage commands in
    dvc.yaml (`mlops stage ...`) must still find this toolkit, not fail with `mlops: command not found`."""
    import os
    import shutil

    entry = Path(sys.executable).parent / "mlops"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if Path(p).is_dir())
    assert shutil.which("mlops", path=env["PATH"]) is None  # nothing else could answer for it
    proc = subprocess.run([str(entry), "run", "--base", "main"], cwd=project, capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stages run: prepare, validate, train, evaluate, check" in proc.stdout
    lead = next(line for line in proc.stdout.splitlines() if line.startswith("headline: "))
    assert lead.startswith("headline: test.roc_auc = 0.8"), lead  # the first metric of reports/metrics.json
    assert "outputs: data/prepared" in proc.stdout and "models" in proc.stdout
    assert (project / "models/model.ubj").is_file() and (project / "reports/report.md").is_file()
