"""Every DVC call of the toolkit goes through this module: the `dvc` CLI for pipeline work, YAML for files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import DvcError

DVC_YAML = "dvc.yaml"
DVC_LOCK = "dvc.lock"


def _dvc_cmd() -> list[str]:
    # The dvc of this interpreter's environment, so the locked version runs, whatever PATH says.
    return [sys.executable, "-m", "dvc"]


def run(args: Sequence[str], cwd: Path | str = ".", *, on_line: Callable[[str], None] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dvc ARGS`; stream its output lines to ON_LINE; DvcError with DVC's own error line on failure."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*_dvc_cmd(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines: list[str] = []
    assert proc.stdout is not None  # PIPE was requested
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        if on_line is not None:
            on_line(line)
    code = proc.wait()
    output = "\n".join(lines)
    if check and code != 0:
        # A failing `mlops stage` prints its own one-line cause ("error: ..."): that beats DVC's summary.
        ours = [ln for ln in lines if ln.startswith("error: ")]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        if ours:
            detail = ours[-1].removeprefix("error: ")
        elif errors:
            detail = errors[-1].removeprefix("ERROR:").strip()
        else:
            detail = lines[-1] if lines else f"exit {code}"
        raise DvcError(f"dvc {args[0]} failed: {detail}")
    return subprocess.CompletedProcess([*_dvc_cmd(), *args], code, output, "")


def repro(cwd: Path | str = ".", *, pull: bool = False, force: bool = False,
          on_line: Callable[[str], None] | None = None) -> list[str]:
    """Reproduce the pipeline; returns the names of the stages DVC actually ran."""
    args = ["repro"] + (["--pull", "--allow-missing"] if pull else []) + (["--force"] if force else [])
    proc = run(args, cwd, on_line=on_line)
    ran = []
    for line in proc.stdout.splitlines():
        # "Running stage 'train':" is DVC's line for a stage that executes (not restored, not skipped).
        if line.startswith("Running stage '"):
            ran.append(line.split("'")[1])
    return ran


def status(cwd: Path | str = ".") -> str:
    return run(["status"], cwd).stdout


def push(cwd: Path | str = ".", *, run_cache: bool = True) -> None:
    run(["push"] + (["--run-cache"] if run_cache else []), cwd)


def pull(cwd: Path | str = ".", *, run_cache: bool = True) -> None:
    run(["pull"] + (["--run-cache"] if run_cache else []), cwd)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DvcError(f"{path}: not found", hint="run `dvc repro` to create it") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise DvcError(f"{path}:{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise DvcError(f"{path}: expected a mapping at the top level")
    return data


def read_dvc_yaml(root: Path | str = ".") -> dict[str, Any]:
    return _read_yaml(Path(root) / DVC_YAML)


def read_lock(root: Path | str = ".") -> dict[str, Any]:
    return _read_yaml(Path(root) / DVC_LOCK)


def parse_lock(text: str | bytes, source: str = DVC_LOCK) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise DvcError(f"{source}: not valid YAML") from None
    if not isinstance(data, dict):
        raise DvcError(f"{source}: expected a mapping at the top level")
    return data


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str
    type: str
    desc: str
    labels: tuple[str, ...]


def artifacts(root: Path | str = ".") -> dict[str, Artifact]:
    """Artifacts declared under `artifacts:` in dvc.yaml (the GTO/DVC model registry declaration)."""
    raw = read_dvc_yaml(root).get("artifacts") or {}
    out = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or "path" not in spec:
            raise DvcError(f"{DVC_YAML}: artifact '{name}' needs a 'path'")
        out[name] = Artifact(name, str(spec["path"]), str(spec.get("type", "")), str(spec.get("desc", "")),
                             tuple(spec.get("labels") or ()))
    return out


def output_hash(lock: dict[str, Any], path: str) -> str | None:
    """The md5 DVC recorded for output PATH in a parsed dvc.lock (None when no stage outputs it)."""
    norm = path.rstrip("/")
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if str(out.get("path", "")).rstrip("/") == norm:
                h = out.get("md5") or out.get("hash")
                return str(h) if h is not None else None
    return None
