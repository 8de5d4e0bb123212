"""One command, one read of params.yaml (mlops.config.read_params): `mlops monitor` and `mlops report` open the file
once and hand what they read to every part that needs a section of it (monitor: its thresholds, the staleness
check, the scorer's model file, the delivery figures; report: the report's sections, its params table and the ML
Test Score). Counted at the file system: every open of the project's params.yaml in this process."""

from __future__ import annotations

import builtins
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mlops.cli.monitor  # noqa: F401  (registers `mlops monitor` on the app, as mlops.cli will)
from mlops.cli import app
from mlops.package import PackageRequest, package_model
from tests.examples import build
from tests.helpers import commit_all, git, init_repo, runner
from tests.report_helpers import branch, set_param, small_project


def _count_opens(monkeypatch: pytest.MonkeyPatch, target: Path) -> list[str]:
    """The modes TARGET is opened with from now on (builtins.open and io.open: what pathlib and open() call)."""
    opened: list[str] = []
    real: Callable[..., Any] = io.open
    want = target.resolve()

    def counting(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and Path(file).resolve() == want:
            opened.append(mode)
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting)
    monkeypatch.setattr(builtins, "open", counting)
    return opened


def test_monitor_reads_params_yaml_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = build("onnx-regression", tmp_path / "ex")
    repo = init_repo(tmp_path / "repo")
    package_model(PackageRequest(ex.model, ex.data, ex.target, "regression", out=repo / "package"))
    # a model artifact and a monitor section: the staleness check, the delivery figures and the thresholds all
    # need params.yaml
    (repo / "dvc.yaml").write_text("artifacts:\n  diabetes-model:\n    path: package\n    type: model\n")
    (repo / "params.yaml").write_text("monitor:\n  reference: package/reference.json\n  min_rows: 0\n"
                                      "  plots: false\nregistry:\n  production_stage: prod\n")
    commit_all(repo, "a packaged model")
    monkeypatch.chdir(repo)
    opened = _count_opens(monkeypatch, repo / "params.yaml")
    result = runner.invoke(app, ["monitor", "--current", str(ex.data), "--out", str(tmp_path / "out")])
    assert result.exit_code in (0, 1), result.output  # healthy or alarming: a completed check either way
    assert (tmp_path / "out" / "monitor.json").is_file()
    assert "no version of diabetes-model is in prod" in (tmp_path / "out" / "monitor.md").read_text()
    assert opened == ["rb"], opened


def test_monitor_with_a_broken_params_yaml_fails_naming_the_line(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "params.yaml").write_text("monitor:\n  min_rows: [1\n")
    monkeypatch.chdir(repo)
    result = runner.invoke(app, ["monitor", "--current", "x.csv"])
    assert result.exit_code == 1 and "params.yaml: line 3: not valid YAML" in result.output, result.output


@pytest.mark.slow
def test_report_reads_params_yaml_once(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo = small_project(tmp_path_factory.mktemp("small") / "repo")
    work = tmp_path / "repo"
    shutil.copytree(repo, work, symlinks=True)
    shutil.copytree(repo.parent / "store", tmp_path / "store")
    branch(work, "feature/alpha")
    set_param(work, "alpha: 0.5", "alpha: 0.8")
    git(work, "commit", "-qam", "alpha 0.8")
    monkeypatch.chdir(work)
    opened = _count_opens(monkeypatch, work / "params.yaml")
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert "| model.alpha | 0.5 | 0.8 |" in (work / "reports" / "report.md").read_text()  # the params table
    assert opened == ["rb"], opened
