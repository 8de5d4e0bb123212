"""Repositories for the workflow tests: a project pushed to a bare local origin, with its DVC remote outside the
repository (as an S3 bucket would be: act copies the repository without its ignored files)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def project_env(home: Path) -> dict[str, str]:
    """A clean environment for git and DVC in module-scoped fixtures (the autouse isolation is per test)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX")) and k not in ("CI", "RUNNER_TEMP")}
    env.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Test Author",
                "GIT_AUTHOR_EMAIL": "author@example.com", "GIT_COMMITTER_NAME": "Test Committer",
                "GIT_COMMITTER_EMAIL": "committer@example.com", "DVC_NO_ANALYTICS": "1",
                "DVC_GLOBAL_CONFIG_DIR": str(home / ".dvcglobal"), "DVC_SYSTEM_CONFIG_DIR": str(home / ".dvcsystem"),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    return env


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip()


def git(cwd: Path, *args: str) -> str:
    return sh(cwd, "git", *args)


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def remote_outside(repo: Path, store: Path) -> None:
    """Point the project's default DVC remote at STORE (committed, as a bucket URL is) and push everything."""
    name = dvc(repo, "remote", "default")
    dvc(repo, "remote", "modify", name, "url", str(store))
    dvc(repo, "push", "--run-cache", "-q")


def with_origin(repo: Path, origin: Path) -> Path:
    """A bare ORIGIN that REPO's main is pushed to (and tracks)."""
    git(origin.parent, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "-u", "origin", "main")
    return origin


def add_workflows(repo: Path) -> None:
    """This checkout's workflows and actions (and the lock the setup action bootstraps from), as they are, into
    REPO (the example project runs them on itself)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / ".github", repo / ".github", ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(REPO / "actions", repo / "actions", ignore=ignore, dirs_exist_ok=True)
    # The hashed locks the privileged jobs install from: the setup action's bootstrap (uv, the build backend) and
    # the runtime the workflows name.
    (repo / "requirements").mkdir(exist_ok=True)
    for lock in ("bootstrap.lock", "runtime.lock"):
        shutil.copy2(REPO / "requirements" / lock, repo / "requirements" / lock)
    # This repository is the toolkit as well: the setup action builds it from here when a job installs it.
    for rel in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / rel, repo / rel)


def branch(repo: Path, name: str, base: str = "main") -> None:
    git(repo, "checkout", "-q", "-B", name, base)


def set_param(repo: Path, old: str, new: str) -> None:
    """Edit one line of params.yaml as a person would (the rest of the file stays byte for byte)."""
    path = repo / "params.yaml"
    text = path.read_text()
    assert old in text, f"{old!r} not in params.yaml"
    path.write_text(text.replace(old, new, 1))
