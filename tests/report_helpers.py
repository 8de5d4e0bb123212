"""A second, small DVC project (different metrics and plots than the example project) for report tests."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import commit_all, dvc, git, init_repo

MAKE = '''import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["model"]
a = float(p["alpha"])
out = pathlib.Path("eval"); out.mkdir(exist_ok=True)
yaml.safe_dump({"quality": {"accuracy": round(0.5 + a / 10, 4), "rmse": round(1 - a / 2, 4)}},
               open(out / "scores.yaml", "w"))
with open(out / "curve.csv", "w") as fh:
    fh.write("epoch,err\\n" + "".join(f"{i},{round(1 / (1 + a * i), 4)}\\n" for i in range(20)))
preds = [{"actual": "cat", "predicted": "cat" if i % (3 + int(a * 4)) else "dog"} for i in range(40)]
preds += [{"actual": "dog", "predicted": "dog"} for _ in range(10)]
json.dump(preds, open(out / "preds.json", "w"))
'''

DVC_YAML = '''stages:
  fit:
    cmd: python make.py
    deps: [make.py]
    params: [model]
    metrics: [eval/scores.yaml]
    plots:
      - eval/curve.csv: {x: epoch, y: err}
    outs: [eval/preds.json]
plots:
  - Confusion:
      template: confusion
      x: predicted
      y:
        eval/preds.json: actual
'''

PARAMS = '''model:
  alpha: 0.5
  name: "plain"
report:
  headline: quality.accuracy
gates:
  quality.accuracy: {min: 0.5, max_drop: 0.001}
  quality.rmse: {max_rise: 0.001}
'''


def small_project(path: Path) -> Path:
    """A git + DVC repo on main with the small pipeline reproduced, committed and pushed to its local remote."""
    init_repo(path)
    (path / "make.py").write_text(MAKE)
    (path / "dvc.yaml").write_text(DVC_YAML)
    (path / "params.yaml").write_text(PARAMS)
    (path / ".gitignore").write_text("/store/\n")
    dvc(path, "init", "-q")
    dvc(path, "remote", "add", "-d", "store", "../store")
    dvc(path, "repro", "-q")
    dvc(path, "push", "-q", "--run-cache")
    commit_all(path, "small project")
    return path


def set_param(path: Path, old: str, new: str) -> None:
    p = path / "params.yaml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def branch(path: Path, name: str) -> None:
    git(path, "checkout", "-q", "-b", name)
