"""Concurrent promotions against one origin: never a duplicate version, never a half-done tag."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops.jobs.promote import PromoteOptions, promote
from tests.helpers import git
from tests.registry_helpers import clone, fake_project, merge, remote_tags


def _mlops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlops", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)


def _registrations(origin: Path) -> dict[str, str]:
    return {t: c for t, c in remote_tags(origin).items() if "@" in t}


def _no_unpublished_tags(repo: Path, origin: Path) -> None:
    theirs = remote_tags(origin)
    for name in git(repo, "tag", "-l").split():
        assert name in theirs, f"{name} was left in {repo} but never published"


@pytest.mark.parametrize("same_commit", [True, False])
def test_losing_the_race_refetches_and_recomputes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  same_commit: bool) -> None:
    """Between our fetch and our push another runner registers first (a real `mlops promote` process)."""
    repo = fake_project(tmp_path)
    origin = tmp_path / "origin.git"
    other = clone(origin, tmp_path / "other")
    if same_commit:
        for name in ("models", "reports"):
            shutil.copytree(repo / name, other / name)
    else:
        merge(other, weights="theirs")  # another merge on main, promoted by another runner
    from mlops.registry import publish

    real = publish.create_local
    calls: list[int] = []

    def racing(tags: list[Any], root: Path) -> list[str]:
        if not calls:  # the other runner pushes between our plan and our push
            won = _mlops(other, "promote", "--json")
            assert won.returncode == 0, won.stderr
        calls.append(1)
        return real(tags, root)

    monkeypatch.setattr(publish, "create_local", racing)
    result = promote(repo, PromoteOptions())
    head = git(repo, "rev-parse", "HEAD")
    regs = _registrations(origin)
    if same_commit:
        assert (result.action, result.version, result.attempts) == ("already_registered", "v1.0.0", 2)
        assert regs == {"churn-model@v1.0.0": head}
    else:
        assert (result.action, result.version, result.attempts) == ("registered", "v1.0.1", 2)
        assert regs == {"churn-model@v1.0.0": git(other, "rev-parse", "HEAD"), "churn-model@v1.0.1": head}
    _no_unpublished_tags(repo, origin)


def _start(cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "mlops", "promote", "--json", "--stage", "staging"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _promote_both(a: Path, b: Path, origin: Path) -> list[dict[str, Any]]:
    procs = [_start(a), _start(b)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr
    results = [json.loads(stdout) for stdout, _ in outs]
    regs = _registrations(origin)
    assert len(set(regs.values())) == len(regs), regs  # one version per commit (and one commit per version)
    for r in results:
        assert regs[r["tag"]] == r["commit"]
    for repo in (a, b):
        _no_unpublished_tags(repo, origin)
    return results


@pytest.mark.e2e
def test_two_promotions_at_once_in_two_processes(tmp_path: Path) -> None:
    repo = fake_project(tmp_path)
    origin = tmp_path / "origin.git"
    other = clone(origin, tmp_path / "other")
    # round 1: two runners at two different merges: two distinct versions
    merge(other, weights="theirs")
    results = _promote_both(repo, other, origin)
    assert sorted(r["version"] for r in results) == ["v1.0.0", "v1.0.1"]
    assert {r["action"] for r in results} == {"registered"}
    # round 2: two runners at the same commit: one registers, the other ends in a clean no-op
    merge(other, weights="again")
    git(repo, "pull", "-q", "--ff-only", "origin", "main")
    for name in ("models", "reports"):
        shutil.rmtree(repo / name)
        shutil.copytree(other / name, repo / name)
    results = _promote_both(repo, other, origin)
    assert sorted(r["action"] for r in results) == ["already_registered", "registered"] or \
        sorted(r["action"] for r in results) == ["already_assigned", "registered"]
    assert {r["version"] for r in results} == {"v1.0.2"}
    assert sorted(_registrations(origin)) == ["churn-model@v1.0.0", "churn-model@v1.0.1", "churn-model@v1.0.2"]
    stages = [t for t in remote_tags(origin) if "#staging#" in t]
    assert len(stages) == len(set(stages))
