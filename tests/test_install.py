"""`pip install mlops` beside an adopter's own numpy 2 and pandas >= 2.3: the core installs without downgrading them,
reports and promotes a foreign DVC project, and a pipeline command says which extra it needs.

A fresh virtual environment per run (uv, this interpreter), the checkout installed as a wheel (not editable, no
extras). uv's own cache is shared with the developer's, so a rerun downloads nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.foreign import MODEL, make_foreign_project

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
# Read at import, before conftest's autouse fixture points HOME at an empty folder (and uv's cache with it).
UV_CACHE = os.environ.get("UV_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path(os.environ.get("HOME", "/root")) / ".cache") / "uv")
# What makes up the distribution (pyproject: packages mlops*, README as the long description).
DIST_FILES = ("pyproject.toml", "README.md", "mlops")


def _uv(*args: str, cwd: Path) -> str:
    env = {**os.environ, "UV_CACHE_DIR": UV_CACHE, "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([str(UV), *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, f"uv {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _versions(python: Path) -> dict[str, str | None]:
    code = ("import importlib.metadata as m, json\n"
            "def v(n):\n"
            "    try: return m.version(n)\n"
            "    except m.PackageNotFoundError: return None\n"
            "print(json.dumps({n: v(n) for n in ('numpy', 'pandas', 'scikit-learn', 'xgboost', 'deepchecks', "
            "'mlops')}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout
    data: dict[str, str | None] = json.loads(out)
    return data


def _major_minor(version: str | None) -> tuple[int, int]:
    assert version is not None
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _clean_env(venv: Path) -> dict[str, str]:
    """The caller's environment (isolated HOME, git identity) with PATH holding only system folders: neither the
    dev venv nor the fresh one is on it, as when CI calls `<venv>/bin/mlops` directly."""
    dev_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and p != dev_bin and not p.startswith(str(REPO / ".venv")) and p != str(venv / "bin")]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(path or ["/usr/bin", "/bin"])
    return env


@pytest.mark.slow
def test_core_installs_beside_numpy2_and_runs_report_and_promote(tmp_path: Path) -> None:
    started = time.perf_counter()
    venv = tmp_path / "fresh"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv), cwd=tmp_path)
    python = venv / "bin/python"
    _uv("pip", "install", "--quiet", "--python", str(python), "numpy>=2", "pandas>=2.3", cwd=tmp_path)
    before = _versions(python)
    assert _major_minor(before["numpy"]) >= (2, 0)
    assert _major_minor(before["pandas"]) >= (2, 3)

    # A copy of the distribution's files: building a wheel in place would leave build/ and *.egg-info in the
    # shared checkout.
    src = tmp_path / "src"
    for name in DIST_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    _uv("pip", "install", "--quiet", "--python", str(python), str(src), cwd=tmp_path)
    installed = time.perf_counter() - started
    after = _versions(python)
    assert after["numpy"] == before["numpy"]
    assert after["pandas"] == before["pandas"]
    assert after["mlops"] is not None
    # The core pulls none of the pipeline extra.
    assert (after["scikit-learn"], after["xgboost"], after["deepchecks"]) == (None, None, None)

    project = make_foreign_project(tmp_path / "project")
    mlops = str(venv / "bin/mlops")
    env = _clean_env(venv)

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([mlops, *args], cwd=project, capture_output=True, text=True, env=env, check=False,
                              timeout=300)

    report = call("report", "--base", "main")
    assert report.returncode == 0, report.stdout + report.stderr
    assert (project / "reports/report.json").is_file()

    promote = call("promote", "--no-push")
    assert promote.returncode == 0, promote.stdout + promote.stderr
    tags = subprocess.run(["git", "tag", "--list"], cwd=project, capture_output=True, text=True, check=True)
    assert tags.stdout.split() == [f"{MODEL}@v1.0.0"]

    stage = call("stage", "train")
    assert stage.returncode == 1, stage.stdout + stage.stderr
    assert 'pip install "mlops[pipeline]"' in stage.stderr
    print(f"\ninstall test: fresh venv + installs {installed:.1f} s, total {time.perf_counter() - started:.1f} s")
