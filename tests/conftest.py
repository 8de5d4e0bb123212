from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import commit_all, copy_project, dvc


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and git identity, and sees no CI or GitHub environment of the host."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(home / ".dvcglobal"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(home / ".dvcsystem"))
    for key in list(os.environ):
        if key.startswith(("GITHUB_", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX")) or key in ("CI", "RUNNER_TEMP"):
            monkeypatch.delenv(key, raising=False)
    # dvc.yaml stages call `mlops`: the one of this interpreter's environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The example project as a fresh git repo on main, nothing reproduced yet."""
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def _trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained") / "project"
    env_home = tmp_path_factory.mktemp("trained-home")
    saved = dict(os.environ)
    os.environ.update({"HOME": str(env_home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Test Author",
                       "GIT_AUTHOR_EMAIL": "author@example.com", "GIT_COMMITTER_NAME": "Test Committer",
                       "GIT_COMMITTER_EMAIL": "committer@example.com", "DVC_NO_ANALYTICS": "1",
                       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    try:
        copy_project(root)
        dvc(root, "repro")
        commit_all(root, "train the model")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return root


@pytest.fixture
def trained_project(_trained_template: Path, tmp_path: Path) -> Path:
    """The example project with the pipeline reproduced and dvc.lock committed on main (a copy per test)."""
    dest = tmp_path / "trained"
    shutil.copytree(_trained_template, dest, symlinks=True)
    return dest
