"""Registry test helpers: a plain git repo that looks like a trained project (dvc.lock, models/, metrics) with a
real bare origin, without running the pipeline. dvc.lock's hash of models/ is DVC's own (checked by promote)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from mlops.formats import tagmeta
from mlops.registry.model import dvc_hash
from tests.helpers import REPO, commit_all, git, init_repo

FEATURES: list[dict[str, Any]] = [
    {"name": "tenure", "type": "int"},
    {"name": "monthly_charges", "type": "float"},
    {"name": "contract", "type": "category", "categories": ["Month-to-month", "One year", "Two year"]},
]
OUTPUT = {"name": "probability", "type": "float", "label": "churn", "positive": "Yes"}
METRICS = {"test": {"roc_auc": 0.85, "pr_auc": 0.66, "log_loss": 0.41}, "train": {"roc_auc": 0.9}}


def write_model(repo: Path, *, weights: str = "w0", features: list[dict[str, Any]] | None = None,
                metrics: dict[str, Any] | None = None, output: dict[str, Any] | None = None) -> str:
    """Write models/ and reports/metrics.json, and a dvc.lock whose models hash matches them; returns the hash."""
    models = repo / "models"
    models.mkdir(exist_ok=True)
    (models / "model.ubj").write_bytes(f"fake-xgboost-model:{weights}".encode())
    schema = {"format": "mlops.feature-schema/1", "features": FEATURES if features is None else features,
              "output": OUTPUT if output is None else output}
    (models / "feature_schema.json").write_text(json.dumps(schema, indent=2))
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports/metrics.json").write_text(json.dumps(METRICS if metrics is None else metrics))
    digest = dvc_hash(models)
    metrics_md5 = hashlib.md5((repo / "reports/metrics.json").read_bytes()).hexdigest()
    lock = {"schema": "2.0", "stages": {
        "prepare": {"cmd": "mlops stage prepare",
                    "deps": [{"path": "data/raw/telco_churn.csv", "hash": "md5",
                              "md5": "b9f3583475e1cf6fdf2eb78604f3cc5f", "size": 822087}],
                    "params": {"params.yaml": {"split": {"seed": 42, "test_size": 0.2}}},
                    "outs": [{"path": "data/prepared", "hash": "md5", "md5": "d.dir"}]},
        "train": {"cmd": "mlops stage train", "deps": [{"path": "data/prepared", "hash": "md5", "md5": "d.dir"}],
                  "outs": [{"path": "models", "hash": "md5", "md5": digest, "size": 1, "nfiles": 2}]},
        "evaluate": {"cmd": "mlops stage evaluate", "deps": [{"path": "models", "hash": "md5", "md5": digest}],
                     "outs": [{"path": "reports/metrics.json", "hash": "md5", "md5": metrics_md5}]},
    }}
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    return digest


def fake_project(root: Path, **model: Any) -> Path:
    """A git repo on main with params.yaml, dvc.yaml, a model and its dvc.lock committed, pushed to a bare origin
    at ROOT/origin.git; the working clone is ROOT/work."""
    origin = root / "origin.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    repo = init_repo(root / "work")
    shutil.copy2(REPO / "params.yaml", repo / "params.yaml")
    # This repo's pipeline without its `check` stage: the fake's dvc.lock records models/ and metrics.json only.
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    pipeline["stages"].pop("check", None)
    gates = yaml.safe_load((REPO / "params.yaml").read_text())
    gates["gates"] = {k: v for k, v in gates["gates"].items() if not k.startswith("checks.")}
    (repo / "params.yaml").write_text(yaml.safe_dump(gates, sort_keys=False))
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    (repo / ".gitignore").write_text("/models\n/reports\n")
    write_model(repo, **model)
    commit_all(repo, "example project with a trained model")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    return repo


def merge(repo: Path, message: str = "Merge pull request #7 from team/feature", **model: Any) -> str:
    """A new commit on main that changes the model (as a merged pull request would), pushed to origin."""
    write_model(repo, **model)
    sha = commit_all(repo, message)
    git(repo, "push", "-q", "origin", "main")
    return sha


def clone(origin: Path, dest: Path) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(dest))
    return dest


def remote_tags(origin: Path) -> dict[str, str]:
    """Tag name -> peeled commit, as the bare origin has them."""
    out = git(origin, "for-each-ref", "--format=%(refname:strip=2) %(objecttype) %(*objectname)", "refs/tags")
    tags = {}
    for line in out.splitlines():
        name, kind, peeled = [*line.split(" "), "", ""][:3]
        tags[name] = peeled if kind == "tag" else ""
    return tags


def lock_hash(repo: Path) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return str(lock["stages"]["train"]["outs"][0]["md5"])


def parse_block(message: str) -> dict[str, Any] | None:
    """A tag message's metadata as its JSON object (through the one reader), or None when it has no block."""
    meta = tagmeta.read(message)
    return meta.to_json() if meta else None
