"""`train.dask` in the churn train stage: trained through xgboost.dask on a LocalCluster (`train.dask: local`) and
on a cluster given by its address, in a temp copy of the example project, through the stage commands dvc.yaml runs.

What the docs promise, tested as written: the Dask model passes the same quality gates (params.yaml `gates:`, the
absolute ones, and the relative ones against the model trained in one process on the same data), and it is
deterministic for a fixed partitioning and seed (two runs with the same `dask_partitions` and seed save the same
bytes), whichever address runs it. Nothing is promised across partition counts, so nothing is asserted there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.config import load_params
from mlops.files import sha256_file
from mlops.gates import evaluate_gates, metrics_of
from tests.helpers import copy_project

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MLOPS = str(Path(sys.executable).parent / "mlops")
METRICS = ("reports/metrics.json", "reports/checks.json")  # the metrics files dvc.yaml declares the gates read


def stage(root: Path, *args: str) -> str:
    proc = subprocess.run([MLOPS, *args], cwd=root, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, f"mlops {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stderr  # the stage's progress lines


def set_train(root: Path, **values: Any) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in values.items():
        if value is None:
            params["train"].pop(key, None)
        else:
            params["train"][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def train(root: Path) -> str:
    """The train stage as dvc.yaml runs it; the model's sha256 (the stage's report of it checked)."""
    said = stage(root, "stage", "train")
    dask = yaml.safe_load((root / "params.yaml").read_text())["train"].get("dask")
    assert (f"train: on Dask ({dask}), 2 partitions" in said) if dask else ("on Dask" not in said), said
    report = json.loads((root / "reports/train.json").read_text())
    assert report["model_sha256"] == sha256_file(root / "models/model.ubj")
    return str(report["model_sha256"])


def train_and_measure(root: Path) -> tuple[str, dict[str, float]]:
    """train, evaluate and check as dvc.yaml runs them; the model's sha256 and the flat metrics the gates read."""
    sha = train(root)
    stage(root, "stage", "evaluate")
    stage(root, "check", "--model", "models", "--data", "data/prepared/test.csv", "--train",
          "data/prepared/train.csv", "--out", "reports/checks.json")
    files = {p: json.loads((root / p).read_text()) for p in METRICS}
    return sha, metrics_of(files, list(METRICS))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("train-dask") / "project")
    stage(root, "stage", "prepare")
    return root


@pytest.fixture(scope="module")
def one_process(project: Path) -> tuple[str, dict[str, float]]:
    set_train(project, dask=None)
    return train_and_measure(project)


@pytest.fixture(scope="module")
def on_local_cluster(project: Path, one_process: tuple[str, dict[str, float]]) -> tuple[str, dict[str, float]]:
    set_train(project, dask="local", dask_partitions=2)
    return train_and_measure(project)


def test_the_dask_model_passes_the_gates_against_the_one_process_model(
        project: Path, one_process: tuple[str, dict[str, float]],
        on_local_cluster: tuple[str, dict[str, float]]) -> None:
    gates = load_params(project / "params.yaml").gates
    assert gates, "params.yaml declares the gates"
    report = evaluate_gates(gates, on_local_cluster[1], one_process[1], against="one-process model")
    assert report.passed, report.failed
    # Each gate was judged on a value, and the relative rules against a reference value (not skipped).
    assert all(r.value is not None for r in report.rows)
    assert all(r.reference is not None for r in report.rows if r.rule in ("max_drop", "max_rise"))
    assert on_local_cluster[1]["test.roc_auc"] >= 0.83


def test_same_partitioning_and_seed_give_the_same_model(project: Path,
                                                       on_local_cluster: tuple[str, dict[str, float]]) -> None:
    set_train(project, dask="local", dask_partitions=2)
    assert train(project) == on_local_cluster[0]  # the same bytes: evaluate and check would read the same model


def test_a_cluster_given_by_its_address_trains_the_same_model(project: Path,
                                                              on_local_cluster: tuple[str, dict[str, float]]) -> None:
    """What an adopter changes to leave the laptop: the address. Two workers, one thread each, the same 2
    partitions: the same bytes as `local`."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        set_train(project, dask=cluster.scheduler_address, dask_partitions=2)
        sha = train(project)
    assert sha == on_local_cluster[0]
