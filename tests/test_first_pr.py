"""The first pull request of an adopting project: outputs never pushed, a remote that lacks main's or production's
outputs, a dvclive project whose first metric is a train one, requirements one folder down.

Real git repositories and real DVC (the foreign project of tests/foreign.py, a scikit-learn text classifier with
dvclive metrics); a fresh clone stands for the CI runner's checkout (no DVC cache, the remote outside it)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import mlops.cli.init  # noqa: F401  (registers `mlops init`)
from mlops import project
from mlops.cli import app
from mlops.config import GateSpec
from mlops.dvc import NOT_IN_REMOTE, why_stale
from mlops.gates import evaluate_gates
from mlops.jobs.init import find_requirements
from tests.foreign import MODEL, make_foreign_project, run, set_params
from tests.helpers import runner

SHA = "0123456789abcdef0123456789abcdef01234567"


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def git(root: Path, *args: str) -> str:
    return run(root, "git", *args)


def dvc(root: Path, *args: str) -> str:
    return run(root, sys.executable, "-m", "dvc", *args)


# --- why a stage is recomputed -----------------------------------------------------------------------------------

def test_missing_outputs_and_missing_upstream_outputs_are_not_in_the_remote() -> None:
    assert why_stale([{"changed outs": {"model/clf.joblib": "not in cache"}}]) == NOT_IN_REMOTE
    # the stage after: its dependency is the missing output, its own outputs were never pulled either
    assert why_stale([{"changed deps": {"data/prepared": "deleted"}},
                      {"changed outs": {"eval": "not in cache"}}]) == NOT_IN_REMOTE


def test_a_real_change_is_named_as_dvc_names_it() -> None:
    assert why_stale([{"changed deps": {"src/train.py": "modified"}},
                      {"changed outs": {"eval": "not in cache"}}]) == "changed dependencies"
    assert why_stale([{"changed params": {"params.yaml": {"train.C": {"old": 1, "new": 2}}}}]) == "changed params"
    assert why_stale([{"changed deps": {"params.yaml": {"train": "modified"}}},  # DVC 3's way of saying it
                      {"changed outs": {"model/clf.joblib": "not in cache"}}]) == "changed params"
    assert why_stale(["always changed"]) == "always changed"
    assert why_stale("garbage") == "changed"


# --- the headline and the default gate ---------------------------------------------------------------------------

@pytest.mark.parametrize(("metrics", "lead"), [
    (["avg_prec.train", "avg_prec.test", "roc_auc.train", "roc_auc.test"], "avg_prec.test"),
    (["threshold", "train.roc_auc", "test.roc_auc"], "test.roc_auc"),
    (["train_loss", "val_loss"], "val_loss"),
    (["eval/train.json:acc", "eval/holdout.json:acc"], "eval/holdout.json:acc"),  # dvclive's eval/ folder: no
    (["training.f1", "accuracy"], "accuracy"),  # nothing held-out: anything but a train metric
    (["train.f1"], "train.f1"),  # only a train metric: it still leads rather than nothing
    ([], None),
])
def test_the_headline_prefers_a_held_out_metric(metrics: list[str], lead: str | None) -> None:
    assert project.headline(None, metrics) == lead
    assert project.headline("train.f1", metrics) == "train.f1"  # configured wins


# --- a side that cannot be had -----------------------------------------------------------------------------------

def test_relative_gates_against_a_side_that_cannot_be_read_are_not_evaluated_nor_passed() -> None:
    gates = {"acc": GateSpec(min=0.5, max_drop=0.01)}
    report = evaluate_gates(gates, {"acc": 0.8}, None, "production", unavailable="data gone")
    by_rule = {r.rule: r for r in report.rows}
    assert by_rule["min"].passed and by_rule["min"].evaluated  # needs no reference
    assert not by_rule["max_drop"].passed and not by_rule["max_drop"].evaluated
    assert "not evaluated: production could not be read (data gone)" in by_rule["max_drop"].detail
    assert not report.passed and report.failed() == [] and report.not_evaluated() == [by_rule["max_drop"]]
    # nothing to compare with at all (the first version) is still a pass, as before
    assert evaluate_gates(gates, {"acc": 0.8}, None, "production").passed


# --- requirements --------------------------------------------------------------------------------------------------

def _touch(root: Path, rel: str, text: str = "") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_requirements_are_found_one_folder_down_and_pinning_is_counted(tmp_path: Path) -> None:
    _touch(tmp_path, "src/requirements.txt", "# what train.py needs\nscikit-learn\ndvclive>=3\n-r base.txt\n")
    _touch(tmp_path, "requirements-dev.txt", "pytest==8.0.0\n")  # for developing, not for running the pipeline
    _touch(tmp_path, ".venv/lib/requirements.txt", "numpy==1\n")  # an environment, never searched
    found = find_requirements(tmp_path)
    assert found is not None
    assert (found.path, found.requirements, found.pinned) == ("src/requirements.txt", 2, 0)
    assert found.pins_nothing and found.candidates == ("requirements-dev.txt",)


def test_a_top_level_lock_wins_then_a_list_then_pyproject(tmp_path: Path) -> None:
    _touch(tmp_path, "pyproject.toml", '[project]\nname = "x"\nversion = "1"\ndependencies = ["pandas>=2"]\n')
    assert find_requirements(tmp_path).path == "pyproject.toml"  # type: ignore[union-attr]
    _touch(tmp_path, "src/requirements.txt", "pandas==2.2.3\n")
    assert find_requirements(tmp_path).path == "src/requirements.txt"  # type: ignore[union-attr]
    _touch(tmp_path, "requirements.txt", "pandas==2.2.3\n")
    _touch(tmp_path, "requirements/main.lock", "pandas==2.2.3 \\\n    --hash=sha256:00\n")
    _touch(tmp_path, "requirements.lock", "pandas==2.2.3 \\\n    --hash=sha256:00\n")
    found = find_requirements(tmp_path)
    assert found is not None and found.path == "requirements.lock" and found.hashed and not found.pins_nothing
    assert find_requirements(tmp_path / "src") is not None
    (tmp_path / "empty" / ".venv").mkdir(parents=True)
    _touch(tmp_path, "empty/.venv/requirements.txt", "x==1\n")
    assert find_requirements(tmp_path / "empty") is None  # nothing there but an environment's folder


@pytest.mark.slow
def test_init_wires_src_requirements_into_the_setup_steps_and_warns_they_pin_nothing(tmp_path: Path) -> None:
    root = make_foreign_project(tmp_path / "p")
    (root / "src" / "requirements.txt").write_text("scikit-learn\ndvclive\njoblib\npyyaml\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "requirements")

    result = invoke("init", str(root), "--actions-sha", SHA)

    assert result.exit_code == 0, result.output
    assert "requirements: src/requirements.txt is installed by the setup steps" in result.output
    assert "warning: src/requirements.txt pins nothing" in result.output
    assert "CI runs are not reproducible" in result.output
    assert "Pin src/requirements.txt" in result.output  # and the next steps say how
    pr = (root / ".github/workflows/mlops-pr.yml").read_text()
    setups = [line.strip() for line in pr.splitlines() if line.strip().startswith("requirements:")]
    assert setups and set(setups) == {"requirements: src/requirements.txt"}
    for name in ("mlops-promote.yml", "mlops-monitor.yml", "mlops-deploy.yml"):
        assert "requirements: src/requirements.txt" in (root / ".github/workflows" / name).read_text(), name
    assert "no requirements file was found" not in result.output


# --- a dvclive project whose first metric is a train one -----------------------------------------------------------

_AVG_PREC_TRAIN = '''\
"""Like tests/foreign.py's train.py, but logging what example-get-started logs: avg_prec and roc_auc, train first."""
import csv
from pathlib import Path

import joblib
import yaml
from dvclive import Live
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline

params = yaml.safe_load(Path("params.yaml").read_text())
feat, train = params["featurize"], params["train"]


def load(name):
    with open(f"data/prepared/{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [int(r["label"] == "technical") for r in rows]


clf = make_pipeline(TfidfVectorizer(max_features=feat["max_features"], ngram_range=(1, feat["ngrams"])),
                    LogisticRegression(C=train["C"], max_iter=train["max_iter"], random_state=train["seed"]))
x_train, y_train = load("train")
clf.fit(x_train, y_train)
clf[0].stop_words_ = None
Path("model").mkdir(exist_ok=True)
joblib.dump(clf, "model/clf.joblib")
with Live(dir="eval", dvcyaml=False, save_dvc_exp=False) as live:
    for split in ("train", "test"):
        x, y = load(split)
        p = clf.predict_proba(x)[:, 1]
        live.log_metric(f"avg_prec/{split}", average_precision_score(y, p), plot=False)
        live.log_metric(f"roc_auc/{split}", roc_auc_score(y, p), plot=False)
'''


@pytest.mark.slow
def test_headline_and_init_gate_use_the_test_metric_of_a_dvclive_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p")
    (root / "src" / "train.py").write_text(_AVG_PREC_TRAIN)
    dvc(root, "repro", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "avg_prec and roc_auc, as example-get-started logs them")
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    assert list(metrics) == ["avg_prec", "roc_auc"] and list(metrics["avg_prec"]) == ["train", "test"]

    result = invoke("init", str(root), "--actions-sha", SHA)
    assert result.exit_code == 0, result.output
    gates = yaml.safe_load((root / "params.yaml").read_text())["gates"]
    assert gates == {"avg_prec.test": {"max_drop": 0.01}}
    assert "gate: avg_prec.test (a held-out metric)" in result.output

    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "mlops init")
    git(root, "checkout", "-q", "-b", "feature")
    monkeypatch.chdir(root)
    report = invoke("report", "--production", "none")
    assert report.exit_code == 0, report.output
    data = json.loads((root / "reports" / "report.json").read_text())
    assert data["headline"] == "avg_prec.test"
    assert "headline: avg_prec.test" in report.output
    md = (root / "reports" / "report.md").read_text()
    assert md.split("\n\n")[1].startswith("**avg\\_prec.test** ")  # the line under the verdict


# --- outputs never pushed: the first pull request ------------------------------------------------------------------

def _ci_clone(origin: Path, dest: Path, branch: str, remote: Path) -> Path:
    """What a runner has: a clone at BRANCH with main fetched, no DVC cache, the remote named by path."""
    run(dest.parent, "git", "clone", "-q", "--no-local", str(origin), dest.name)
    git(dest, "checkout", "-q", branch)
    dvc(dest, "remote", "modify", "--local", "local", "url", str(remote))
    return dest


@pytest.mark.slow
def test_run_pull_recomputes_the_stages_whose_outputs_were_never_pushed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p", gates={"accuracy": {"max_drop": 0.5}})
    git(root, "checkout", "-q", "-b", "stronger-regularisation")
    set_params(root, train={"C": 0.25})
    dvc(root, "repro", "-q")  # dvc.lock committed after a local repro; nothing pushed
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "train.C 1.0 -> 0.25")
    clone = _ci_clone(root, tmp_path / "ci", "stronger-regularisation", root / ".dvcstore")
    monkeypatch.chdir(clone)

    result = invoke("run", "--pull", "--base", "origin/main", "--production", "none")

    assert result.exit_code == 0, result.output
    # featurize's outputs are main's, in the remote: pulled, not rerun; train's new outputs are nowhere
    assert "stages run: train" in result.output
    assert f"stages recomputed: train ({NOT_IN_REMOTE})" in result.output
    data = json.loads((clone / "reports" / "report.json").read_text())
    assert data["recomputed"] == [["train", NOT_IN_REMOTE]]
    assert data["base"]["source"] == "fetched from the DVC remote"
    rows = {m["name"]: m for m in data["metrics"]}
    assert rows["accuracy"]["head"] is not None and rows["accuracy"]["vs_base"]["reference"] is not None
    md = (clone / "reports" / "report.md").read_text()
    assert f"Recomputed in this run: train ({NOT_IN_REMOTE})" in md
    assert "all 1 gates passed" in md


@pytest.mark.slow
def test_a_stage_that_fails_for_real_still_fails_the_run_and_the_report_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p")
    git(root, "checkout", "-q", "-b", "broken")
    train = root / "src" / "train.py"
    train.write_text(train.read_text() + "\nraise SystemExit('train.py: out of memory')\n")
    git(root, "commit", "-q", "-am", "break training")
    clone = _ci_clone(root, tmp_path / "ci", "broken", root / ".dvcstore")
    monkeypatch.chdir(clone)

    result = invoke("run", "--pull", "--base", "origin/main", "--production", "none")

    assert result.exit_code == 1, result.output
    md = (clone / "reports" / "report.md").read_text()
    assert "the pipeline failed at stage train" in md
    assert f"train ({NOT_IN_REMOTE})" not in md  # it ran because its code changed, and failed


@pytest.mark.slow
def test_main_outputs_missing_from_the_remote_are_recomputed_for_the_base_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p")
    shutil.rmtree(root / ".dvcstore")  # a new, empty remote: main's outputs were never pushed to it
    (root / ".dvcstore").mkdir()
    git(root, "checkout", "-q", "-b", "feature")
    set_params(root, train={"C": 0.25})
    git(root, "commit", "-q", "-am", "train.C 0.25")
    clone = _ci_clone(root, tmp_path / "ci", "feature", root / ".dvcstore")
    monkeypatch.chdir(clone)

    result = invoke("run", "--pull", "--base", "origin/main", "--production", "none")

    assert result.exit_code == 0, result.output
    assert "stages recomputed: featurize (outputs not in the remote), train (changed params)" in result.output
    data = json.loads((clone / "reports" / "report.json").read_text())
    # featurize's outputs at main are the branch's too, which this run has just put in the cache
    assert data["base"]["source"] == "recomputed in a temporary worktree: train (outputs not in the remote)"
    assert {m["name"]: m["vs_base"]["reference"] is not None for m in data["metrics"]}["accuracy"]


# --- production that cannot be had ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_production_side_that_cannot_be_fetched_leaves_main_s_comparison_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_foreign_project(tmp_path / "p", registry={"production_stage": "prod"},
                                gates={"accuracy": {"max_drop": 0.05}})
    main = git(root, "rev-parse", "HEAD")
    # An old production: its raw data was a DVC-tracked file that never reached the remote (GTO tags, by hand).
    git(root, "checkout", "-q", "-b", "old")
    git(root, "rm", "-q", "--cached", "data/tickets.csv")
    with (root / "data" / "tickets.csv").open("a") as f:
        f.write("refund for my invoice please,billing\n")
    dvc(root, "add", "-q", "data/tickets.csv")
    dvc(root, "repro", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "old production")
    git(root, "tag", "-a", f"{MODEL}@v0.9.0", "-m", "Registering artifact")
    git(root, "tag", "-a", f"{MODEL}#prod#1", "-m", "Assigning stage prod")
    git(root, "checkout", "-q", "main")
    git(root, "checkout", "-q", "-b", "feature", main)
    set_params(root, train={"C": 0.25})
    git(root, "commit", "-q", "-am", "train.C 0.25")
    clone = _ci_clone(root, tmp_path / "ci", "feature", root / ".dvcstore")
    git(clone, "fetch", "-q", "origin", "refs/tags/*:refs/tags/*")
    monkeypatch.chdir(clone)

    result = invoke("run", "--pull", "--base", "origin/main")

    assert result.exit_code == 0, result.output
    data = json.loads((clone / "reports" / "report.json").read_text())
    assert data["production"] is None and data["base"] is not None
    md = (clone / "reports" / "report.md").read_text()
    note = next(n for n in data["notes"] if "could not be read" in n)
    assert "could not be read" in next(line for line in md.splitlines() if line.startswith("> Production"))
    assert f"Production ({MODEL} v0.9.0" in note and "compares with origin/main only" in note
    assert "data/tickets.csv" in note  # why: the data it needs is gone
    assert data["gates"]["passed"] is True  # against main: evaluated
    prod = data["production_gates"]["rows"]
    assert [(r["rule"], r["evaluated"], r["passed"]) for r in prod] == [("max_drop", False, False)]
    assert "gates not evaluated (production could not be read)" in md
    gate = invoke("gate", "--against", "production")
    assert gate.exit_code == 1 and "not evaluated against production: accuracy (max_drop)" in gate.output
    # the GTO tag records no metrics and its commit's cannot be had: promotion refuses, it does not pass them
    git(clone, "commit", "-q", "-am", "dvc.lock of the run")  # as the merge to main carries it
    promote = invoke("promote", "--no-push", "--allow-branch")
    assert promote.exit_code == 1, promote.output
    assert "not evaluated against prod: accuracy (max_drop)" in promote.output
    assert git(clone, "tag", "--list", f"{MODEL}@v1*") == ""
