"""`mlops init --batch`: the scheduled batch-scoring workflow, written through the CLI into a real temp git + DVC
repository, linted by actionlint and zizmor, and its two shell steps (the runner-label check, the scoring command)
run for real with bash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import mlops.cli.init  # noqa: F401  (registers `mlops init`)
from mlops.cli import app
from tests.helpers import commit_all, dvc, init_repo, runner

BIN = Path(sys.executable).parent
SHA = "0123456789abcdef0123456789abcdef01234567"
WORKFLOW = ".github/workflows/mlops-batch.yml"


def project(root: Path, params: dict[str, Any] | None = None) -> Path:
    """A DVC project that is not ours: one stage that writes a model, declared as a model artifact."""
    init_repo(root)
    dvc(root, "init", "-q")
    (root / "train.py").write_text("from pathlib import Path\nPath('models').mkdir(exist_ok=True)\n"
                                   "Path('models/model.ubj').write_bytes(b'x')\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({
        "stages": {"train": {"cmd": "python train.py", "deps": ["train.py"], "outs": ["models/model.ubj"]}},
        "artifacts": {"churn-model": {"path": "models/model.ubj", "type": "model"}}}, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(params or {"train": {"seed": 1}}, sort_keys=False))
    (root / "requirements.txt").write_text("xgboost==3.2.0\n")
    commit_all(root, "a project")
    return root


def init(root: Path, *extra: str) -> str:
    res = runner.invoke(app, ["init", str(root), "--actions-sha", SHA, *extra])
    assert res.exit_code == 0, res.output
    return res.output


def test_batch_writes_the_workflow_pinned_least_privilege_on_the_checked_runner(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    out = init(root, "--batch")
    assert f"+ {WORKFLOW}: created" in out
    assert "MLOPS_BATCH_INPUT and MLOPS_BATCH_OUTPUT" in out  # the next step says what to set
    assert "Training on Dask" in out and "train.dask" in out  # and how its own train stage scales out
    text = (root / WORKFLOW).read_text()
    assert "__" not in text.replace("__init__", "")  # every placeholder filled
    doc = yaml.safe_load(text)
    assert doc["permissions"] == {}
    assert doc[True]["schedule"][0]["cron"] and "workflow_dispatch" in doc[True]  # yaml reads `on:` as True
    assert doc["concurrency"] == {"group": "mlops-batch", "cancel-in-progress": False}
    runner_job, predict = doc["jobs"]["runner"], doc["jobs"]["predict"]
    # The label check runs first, on a GitHub-hosted runner with no permissions; scoring runs on what it vetted.
    assert runner_job["runs-on"] == "ubuntu-latest" and runner_job["permissions"] == {}
    assert runner_job["if"] == "vars.MLOPS_BATCH == 'true'"
    assert predict["needs"] == "runner"
    assert predict["runs-on"] == "${{ fromJSON(needs.runner.outputs.labels) }}"
    assert predict["permissions"] == {"contents": "read"}
    steps = predict["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["persist-credentials"] is False
    assert steps[1]["uses"] == f"mlops-toolkit/mlops/actions/setup@{SHA}"
    assert steps[1]["with"] == {"cache": False, "extras": "dask", "requirements": "requirements.txt"}
    assert 'args=(--stage "production" --input "$INPUT" --output "$OUTPUT")' in steps[2]["run"]
    for step in steps:  # nothing from the event or vars is expanded inside a shell script
        assert "${{" not in step.get("run", "")
    record = json.loads((root / ".mlops/init.json").read_text())
    assert WORKFLOW in record["files"]


def test_the_configured_production_stage_is_what_it_scores(tmp_path: Path) -> None:
    root = project(tmp_path / "p", {"registry": {"artifact": "churn-model", "production_stage": "prod"}})
    init(root, "--batch")
    assert 'args=(--stage "prod" --input' in (root / WORKFLOW).read_text()


def test_without_batch_nothing_is_written_and_a_later_plain_init_keeps_it(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    out = init(root)
    assert not (root / WORKFLOW).exists() and "MLOPS_BATCH" not in out
    init(root, "--batch")
    written = (root / WORKFLOW).read_bytes()
    assert f"= {WORKFLOW}: unchanged" in init(root, "--batch")  # idempotent
    init(root)  # a plain init neither rewrites nor removes it
    assert (root / WORKFLOW).read_bytes() == written
    (root / WORKFLOW).write_text((root / WORKFLOW).read_text().replace("41 2 * * *", "0 5 * * 1"))
    assert f"- {WORKFLOW}: kept (changed since mlops init wrote it)" in init(root, "--batch")


def test_actionlint_and_zizmor_find_nothing_in_the_written_workflow(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    init(root, "--batch")
    lint = subprocess.run([str(BIN / "actionlint"), "-no-color", "-oneline", WORKFLOW], cwd=root,
                          capture_output=True, text=True, check=False, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for persona in ("regular", "auditor"):
        z = subprocess.run([str(BIN / "zizmor"), "--offline", "--no-progress", "--persona", persona, WORKFLOW],
                           cwd=root, capture_output=True, text=True, check=False, timeout=120)
        assert z.returncode == 0 and "No findings to report" in z.stdout, z.stdout + z.stderr


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, check=False, timeout=60)


def test_the_label_check_refuses_labels_a_pull_request_runner_shares(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    init(root, "--batch")
    step = yaml.safe_load((root / WORKFLOW).read_text())["jobs"]["runner"]["steps"][0]
    out = tmp_path / "github_output"
    shared = _bash(step["run"], {"PRIVILEGED": '["self-hosted", "gpu"]', "PULL_REQUESTS": '["self-hosted", "gpu"]',
                                 "GITHUB_OUTPUT": str(out)}, tmp_path)
    assert shared.returncode != 0 and "has no label of its own" in shared.stderr
    own = _bash(step["run"], {"PRIVILEGED": '["self-hosted", "mlops-deploy"]',
                              "PULL_REQUESTS": '["self-hosted", "gpu"]', "GITHUB_OUTPUT": str(out)}, tmp_path)
    assert own.returncode == 0, own.stderr
    assert out.read_text() == 'labels=["self-hosted", "mlops-deploy"]\n'


@pytest.mark.parametrize(("rejects", "scheduler"), [("", ""), ("s3://b/rejects.parquet", "tcp://10.0.0.5:8786")])
def test_the_score_step_runs_mlops_predict_on_the_production_stage(tmp_path: Path, rejects: str,
                                                                     scheduler: str) -> None:
    root = project(tmp_path / "p")
    init(root, "--batch")
    step = yaml.safe_load((root / WORKFLOW).read_text())["jobs"]["predict"]["steps"][2]
    # A stand-in for the installed mlops: it records its arguments and the scheduler it was given.
    fake = tmp_path / "mlops"
    fake.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$CALLS"\necho "scheduler=${MLOPS_DASK_SCHEDULER-unset}" '
                    '>> "$CALLS"\necho "scored 10 rows"\n')
    fake.chmod(0o755)
    calls, summary = tmp_path / "calls", tmp_path / "summary.md"
    env = {"MLOPS": str(fake), "CALLS": str(calls), "GITHUB_STEP_SUMMARY": str(summary),
           "INPUT": "s3://b/in dir/", "OUTPUT": "s3://b/out.parquet", "REJECTS": rejects,
           "MLOPS_DASK_SCHEDULER": scheduler}
    ran = _bash(step["run"], env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    want = ["predict", "--stage", "production", "--input", "s3://b/in dir/", "--output", "s3://b/out.parquet"]
    want += ["--rejects", rejects] if rejects else []
    assert calls.read_text().splitlines() == [*want, f"scheduler={scheduler or 'unset'}"]
    assert "scored 10 rows" in summary.read_text()
    # Unset input: a one-line error, mlops never called.
    calls.unlink()
    missing = _bash(step["run"], {**env, "INPUT": ""}, tmp_path)
    assert missing.returncode == 1 and "MLOPS_BATCH_INPUT" in missing.stdout and not calls.exists()
    # A failed scoring fails the step although its output goes through tee.
    fake.write_text("#!/bin/bash\necho 'error: model sha256 mismatch' >&2\nexit 1\n")
    assert _bash(step["run"], env, tmp_path).returncode == 1
