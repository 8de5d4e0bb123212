"""Sweep benchmark: a 6-setting `mlops sweep` on the churn project against one training run.

Prints one JSON object. Run: `.venv/bin/python bench/sweep.py [--jobs 1,2] [--engines temp,queue]`.

- one training run: change train.max_depth (to 5) and train.learning_rate in params.yaml, then `dvc repro` (prepare
  and validate are unchanged and skipped; train, evaluate and check run): what a pull request that changes one
  setting costs. Measured before and after the sweeps (the load of a shared machine moves).
- the sweep: `mlops sweep --set train.max_depth=3,5,6 --set train.learning_rate=0.05,0.2` (6 settings, none of them
  in the run cache yet: every experiment trains) for each engine and number of workers asked for, each on a fresh
  copy of the project whose baseline is reproduced. The target of issue 15 is at most 3x the training run on 2
  cores. The machine's load average is reported beside the figures: other processes slow both sides, so CPU
  seconds (user + system, every child process) are reported too: a quiet 2-core machine needs at least the
  sweep's CPU / 2 of wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = ("params.yaml", "dvc.yaml", "data/raw/telco_churn.csv", "data/feedback/README.md", "mlops", ".dvc/config",
         ".dvcignore")
SETS = ["--set", "train.max_depth=3,5,6", "--set", "train.learning_rate=0.05,0.2"]


def env() -> dict[str, str]:
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com"}


CPU: dict[str, float] = {"last": 0.0}  # CPU seconds (user + system) of the last command and all its children


def sh(args: list[str], cwd: Path) -> float:
    """Wall seconds of ARGS; CPU["last"] gets its CPU seconds (a figure the machine's load moves far less)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env(), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    return round(time.perf_counter() - t, 2)


def make_project(root: Path) -> float:
    """The churn project in a fresh git repository, its pipeline reproduced and committed; the seconds of that
    cold `dvc repro` (every stage)."""
    for rel in FILES:
        src, dst = REPO / rel, root / rel
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    (root / ".gitignore").write_text("__pycache__/\n/reports/sweep.*\n")
    dvc = [sys.executable, "-m", "dvc"]
    sh(["git", "init", "-q", "-b", "main"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "bench"], root)
    cold = sh([*dvc, "repro"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "reproduced"], root)
    return cold


def training_run(root: Path, learning_rate: str) -> float:
    """One `dvc repro` after a params change (max_depth 5, the middle of the sweep's depths, and LEARNING_RATE, a
    setting new to the run cache: train, evaluate and check run), then the change undone."""
    params = root / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("  max_depth: 4\n", "  max_depth: 5\n")
                      .replace("  learning_rate: 0.03\n", f"  learning_rate: {learning_rate}\n"))
    try:
        seconds = sh([sys.executable, "-m", "dvc", "repro"], root)
        CPU["training"] = CPU["last"]
        return seconds
    finally:
        params.write_text(original)
        sh(["git", "checkout", "-q", "HEAD", "--", "dvc.lock"], root)  # repro may have staged it
        sh([sys.executable, "-m", "dvc", "checkout", "-q"], root)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--engines", default="temp")
    args = ap.parse_args()
    out: dict[str, object] = {"cores": len(os.sched_getaffinity(0)), "settings": 6}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-sweep-") as tmp:
        template = Path(tmp) / "template"
        out["cold_pipeline_s"] = make_project(template)  # every stage: a reference, not the target's unit
        out["load_before"] = loadavg()
        out["training_run_s"] = training_run(template, "0.04")
        out["training_run_cpu_s"] = CPU["training"]
        runs = []
        for engine in args.engines.split(","):
            for jobs in (int(j) for j in args.jobs.split(",")):
                root = Path(tmp) / f"{engine}-{jobs}"
                shutil.copytree(template, root, symlinks=True)
                load = loadavg()
                seconds = sh([str(Path(sys.executable).parent / "mlops"), "sweep", *SETS, "--jobs", str(jobs),
                              "--engine", engine, "--json"], root)
                board = json.loads((root / "reports" / "sweep.json").read_text())
                ran = sum(e["state"] == "success" for e in board["experiments"])
                runs.append({"engine": engine, "jobs": jobs, "seconds": seconds, "cpu_s": CPU["last"],
                             "cpu_ratio": round(CPU["last"] / CPU["training"], 2), "succeeded": ran,
                             "ratio": round(seconds / float(out["training_run_s"]), 2),  # type: ignore[arg-type]
                             "load_before": load})
        out["training_run_again_s"] = training_run(template, "0.06")  # the load may have changed meanwhile
        out["training_run_again_cpu_s"] = CPU["training"]
        out["sweeps"] = runs
        out["load_after"] = loadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
