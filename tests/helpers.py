"""Test helpers: real git repos, copies of the example project, the CLI runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
# What the example project is made of: the toolkit's own code is a dependency of dvc.yaml's stages.
PROJECT_FILES = ("params.yaml", "dvc.yaml", "data/raw/telco_churn.csv", "data/feedback/README.md", "mlops",
                 ".dvc/config", ".dvcignore")


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def init_repo(path: Path, branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    return path


def commit_all(path: Path, message: str) -> str:
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)
    return git(path, "rev-parse", "HEAD")


def copy_project(dest: Path) -> Path:
    """A fresh git repo holding the example project (code, params, data, DVC config), committed on main."""
    init_repo(dest)
    for rel in PROJECT_FILES:
        src = REPO / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)
    (dest / ".gitignore").write_text("/.dvcstore/\n__pycache__/\n")
    commit_all(dest, "example project")
    return dest


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    import sys

    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


runner = CliRunner()
