"""A fresh clone reproduces the committed dvc.lock: `make run` there leaves `git status` clean.

The lock-versus-code test (tests/test_dvc.py) cannot catch an output that the locked environment does not
reproduce elsewhere; only running the whole pipeline in a clean clone does (a committed validation.html written
where OpenBLAS ran other kernels made `mlops promote` refuse every fresh clone's dirty tree).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, git

pytestmark = pytest.mark.slow


def test_make_run_in_a_fresh_clone_leaves_the_tree_clean(tmp_path: Path) -> None:
    # A path unlike the one the lock was written in (a space too): nothing in the outputs may depend on it.
    clone = tmp_path / "fresh clone" / "churn"
    git(tmp_path, "clone", "-q", str(REPO), str(clone))  # HEAD, as committed; no .dvc/cache, no .dvcstore
    assert not (clone / ".dvc/cache").exists() and not (clone / ".dvcstore").exists()
    committed_lock = (clone / "dvc.lock").read_text()

    # The venv's own `mlops` (as `make run` calls it, without rebuilding a venv). Its editable install points at
    # REPO's working tree: PYTHONPATH makes the clone's committed code the one that runs, in every stage.
    env = {**os.environ, "PYTHONPATH": str(clone)}
    entry = Path(sys.executable).parent / "mlops"
    # --base HEAD: the report's base does not touch the pipeline, and HEAD exists in any checkout (CI's is a
    # shallow, detached merge commit with no local main).
    proc = subprocess.run([str(entry), "run", "--base", "HEAD"], cwd=clone, capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # Everything was recomputed: a fresh clone has neither the DVC cache nor the in-repo remote.
    assert "stages run: prepare, validate, train, evaluate, check" in proc.stdout, proc.stdout[-2000:]

    status = git(clone, "status", "--porcelain", "--untracked-files=all")
    diff = git(clone, "diff", "HEAD", "--", "dvc.lock", check=False)
    assert status == "", f"a fresh clone's `make run` changed the tree:\n{status}\n{diff[:3000]}"
    assert (clone / "dvc.lock").read_text() == committed_lock

    # The page that used to differ, named in the failure if it ever does again.
    lock = yaml.safe_load(committed_lock)
    recorded = {o["path"]: o["md5"] for o in lock["stages"]["validate"]["outs"]}
    page = hashlib.md5((clone / "reports/validation.html").read_bytes()).hexdigest()
    assert page == recorded["reports/validation.html"]
