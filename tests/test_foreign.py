"""The toolkit on a project it did not write (tests/foreign.py): a joblib scikit-learn model, dvclive metrics under
eval/, two artifacts with the dataset first, the project's own params, GTO tags whose stage is `prod`."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from mlops.cli import app
from tests.foreign import DATASET, MODEL, MODEL_PATH, make_foreign_project, repro_and_commit, run, set_params
from tests.helpers import runner

pytestmark = pytest.mark.slow  # every test here runs `dvc repro` or reads a reproduced project (seconds)

_BLOCK = re.compile(r"^-----BEGIN MLOPS METADATA-----\s*$(.*?)^-----END MLOPS METADATA-----\s*$",
                    re.MULTILINE | re.DOTALL)


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def said(result: Result) -> str:
    """Everything the command wrote: the runner's output holds stdout and stderr interleaved."""
    return result.output


def git(root: Path, *args: str) -> str:
    return run(root, "git", *args)


def tags(root: Path) -> list[str]:
    return sorted(git(root, "tag", "--list").split())


def metadata(root: Path, tag: str) -> dict[str, Any]:
    """The JSON block of an annotated tag's message (the format is GTO-neutral: a plain annotated message)."""
    message = git(root, "for-each-ref", "--format=%(contents)", f"refs/tags/{tag}")
    m = _BLOCK.search(message)
    assert m is not None, f"{tag} has no metadata block:\n{message}"
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tag_commit(root: Path, tag: str) -> str:
    return git(root, "rev-list", "-n", "1", tag)


def report_json(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "reports/report.json").read_text())
    return data


def metric_rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["metrics"]}


def test_the_project_is_shaped_unlike_ours(tmp_path: Path) -> None:
    root = make_foreign_project(tmp_path / "p")
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    # The dataset comes first under artifacts: the first entry is not the model.
    assert list(dvc_yaml["artifacts"]) == [DATASET, MODEL]
    assert (dvc_yaml["artifacts"][MODEL]["type"], dvc_yaml["artifacts"][MODEL]["path"]) == ("model", MODEL_PATH)
    assert "metrics" not in dvc_yaml["stages"]["train"] and dvc_yaml["metrics"] == ["eval/metrics.json"]
    assert [s["cmd"] for s in dvc_yaml["stages"].values()] == ["python src/featurize.py", "python src/train.py"]
    assert not (root / "model/feature_schema.json").exists()
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert set(params) == {"featurize", "train"}
    metrics = json.loads((root / "eval/metrics.json").read_text())
    assert set(metrics) == {"accuracy", "f1"} and 0.5 < metrics["accuracy"] < 0.99
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "branch", "--show-current") == "main"


def test_report_on_a_branch_compares_dvclive_metrics_with_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p")
    monkeypatch.chdir(root)
    base = json.loads((root / "eval/metrics.json").read_text())
    git(root, "checkout", "-q", "-b", "stronger-regularisation")
    set_params(root, train={"C": 0.05})
    repro_and_commit(root, "train: C 1.0 -> 0.05")
    head = json.loads((root / "eval/metrics.json").read_text())
    assert head != base  # the branch really changed the model

    result = invoke("report", "--base", "main")
    assert result.exit_code == 0, said(result)
    report = report_json(root)
    rows = metric_rows(report)
    for name in ("accuracy", "f1"):
        row = rows[name]
        assert row["head"] == pytest.approx(head[name])
        assert row["vs_base"]["reference"] == pytest.approx(base[name])
        assert row["vs_base"]["delta"] == pytest.approx(head[name] - base[name])
    assert report["headline"] == "accuracy"  # the first metric of the first metrics file, not a churn default
    assert "roc_auc" not in report["headline"]
    assert "not found" not in json.dumps(report["notes"])
    assert report["production"] is None
    assert "no production model" in report["production_note"].lower()


def test_promote_without_a_registry_section_registers_the_model_artifact(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p")
    monkeypatch.chdir(root)
    assert "registry" not in yaml.safe_load((root / "params.yaml").read_text())

    first = invoke("promote", "--no-push")
    assert first.exit_code == 0, said(first)
    assert tags(root) == [f"{MODEL}@v1.0.0"]  # the model artifact, not the dataset listed before it
    assert git(root, "cat-file", "-t", f"{MODEL}@v1.0.0") == "tag"  # annotated, as GTO requires
    v1 = metadata(root, f"{MODEL}@v1.0.0")
    assert v1["model_sha256"] == sha256(root / MODEL_PATH)

    set_params(root, train={"C": 0.3})
    head = repro_and_commit(root, "train: C 1.0 -> 0.3")
    second = invoke("promote", "--no-push")
    assert second.exit_code == 0, said(second)
    assert tags(root) == [f"{MODEL}@v1.0.0", f"{MODEL}@v1.0.1"]
    assert tag_commit(root, f"{MODEL}@v1.0.1") == head
    v2 = metadata(root, f"{MODEL}@v1.0.1")
    assert v2["bump"] == "patch"
    assert "interface" in v2["bump_reason"]  # says why: the model has no interface to compare
    assert v2["model_sha256"] == sha256(root / MODEL_PATH) != v1["model_sha256"]


def test_prod_stage_report_rollback_and_gto_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p", registry={"production_stage": "prod"})
    monkeypatch.chdir(root)
    assert invoke("promote", "--no-push").exit_code == 0
    v1_metrics = json.loads((root / "eval/metrics.json").read_text())
    set_params(root, train={"C": 0.05})
    repro_and_commit(root, "train: C 1.0 -> 0.05")
    assert invoke("promote", "--no-push").exit_code == 0
    assert tags(root) == [f"{MODEL}@v1.0.0", f"{MODEL}@v1.0.1"]

    assigned = invoke("promote", "--ref", f"{MODEL}@v1.0.0", "--stage", "prod", "--no-push")
    assert assigned.exit_code == 0, said(assigned)
    assert f"{MODEL}#prod#1" in tags(root)

    result = invoke("report", "--base", "main", "--production", "auto")
    assert result.exit_code == 0, said(result)
    report = report_json(root)
    production = report["production"]
    assert production is not None, report["production_note"]
    assert MODEL in production["ref"] and "v1.0.0" in production["ref"]
    assert production["commit"] == tag_commit(root, f"{MODEL}@v1.0.0")
    assert metric_rows(report)["accuracy"]["vs_production"]["reference"] == pytest.approx(v1_metrics["accuracy"])

    assert invoke("promote", "--ref", f"{MODEL}@v1.0.1", "--stage", "prod", "--no-push").exit_code == 0
    rolled = invoke("rollback", MODEL, "--no-push")
    assert rolled.exit_code == 0, said(rolled)
    assert f"{MODEL}#prod#3" in tags(root)

    shown = invoke("registry", "show", "--json")
    assert shown.exit_code == 0, said(shown)
    art = json.loads(shown.stdout)["artifacts"][MODEL]
    assert art["stages"] == {"prod": "v1.0.0"}
    assert art["latest"] == "v1.0.1"
    assert {v if isinstance(v, str) else v["version"] for v in art["versions"]} == {"v1.0.0", "v1.0.1"}

    # GTO reads the same tags the same way.
    gto = Path(sys.executable).parent / "gto"
    proc = subprocess.run([str(gto), "show", "--json"], cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    gto_art = json.loads(proc.stdout)[MODEL]
    assert (gto_art["version"], gto_art["stage"]) == ("v1.0.1", {"prod": "v1.0.0"})
    proc = subprocess.run([str(gto), "show", MODEL, "--json"], cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert sorted(v["version"] for v in json.loads(proc.stdout)) == ["v1.0.0", "v1.0.1"]


def test_gate_fails_on_the_projects_own_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p", gates={"accuracy": {"min": 0.99}})
    monkeypatch.chdir(root)
    result = invoke("gate")
    assert result.exit_code == 1, said(result)
    assert "accuracy" in said(result)
    assert "min" in said(result)


def test_an_edited_metrics_file_inside_a_directory_output_is_refused(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """dvclive writes eval/metrics.json inside `outs: [eval]`: promote checks it through eval/'s .dir hash, so
    hand-edited metrics cannot pass the gates (git cannot see the edit: eval/ is a DVC output)."""
    root = make_foreign_project(tmp_path / "p", gates={"accuracy": {"min": 0.5}})
    monkeypatch.chdir(root)
    metrics = root / "eval" / "metrics.json"
    data = json.loads(metrics.read_text())
    data["accuracy"] = 0.999
    metrics.write_text(json.dumps(data))
    result = invoke("promote", "--no-push")
    assert result.exit_code == 1, said(result)
    assert "error: eval/metrics.json does not match dvc.lock: eval/ changed after the pipeline ran" in said(result)
    assert tags(root) == []
    (root / "eval" / "metrics.json").unlink()
    gone = invoke("promote", "--no-push")
    assert gone.exit_code == 1 and "eval/metrics.json: not found in the workspace" in said(gone)


def test_run_summary_comes_from_dvc_yaml_not_from_churn_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p")
    monkeypatch.chdir(root)
    result = invoke("run", "--no-report")
    assert result.exit_code == 0, said(result)
    out = said(result)
    assert "stages run: none (all up to date)" in out
    accuracy = json.loads((root / "eval" / "metrics.json").read_text())["accuracy"]
    assert f"headline: accuracy = {accuracy:.4f}" in out  # the first metric of the first metrics file
    assert "metrics (eval/metrics.json): accuracy=" in out
    outputs = next(line for line in out.splitlines() if line.startswith("outputs: "))
    assert MODEL_PATH in outputs and "eval" in outputs
    assert "reports/metrics.json" not in out and "model.ubj" not in out and "test.roc_auc" not in out
