"""A second example project, shaped unlike ours: what a team that adopts the toolkit brings.

A support-ticket text classifier (scikit-learn TfidfVectorizer + LogisticRegression, pickled with joblib, no
feature_schema.json), stages that run the project's own scripts (`python src/...`), metrics logged with dvclive under
eval/, params.yaml with the project's own keys, and two artifacts in dvc.yaml of which the dataset comes first. It
looks like iterative/example-get-started, the public project the issue was tried on. Nothing here imports mlops:
the toolkit must cope with the project, not the other way round.

`make_foreign_project` copies a template built once per process (`dvc repro` costs seconds), then adds the
`registry:` / `gates:` sections asked for as a second commit, as an adopter configuring the toolkit would.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

MODEL = "text-clf"
DATASET = "tickets"
MODEL_PATH = "model/clf.joblib"
DATA_PATH = "data/tickets.csv"
METRICS_PATH = "eval/metrics.json"
ROWS = 400
# 12% of the labels are flipped: accuracy stays well below 1 (a `min: 0.99` gate fails) and moves with train.C.
LABEL_NOISE = 0.12

PARAMS: dict[str, Any] = {
    "featurize": {"test_size": 0.25, "seed": 7, "max_features": 300, "ngrams": 2},
    "train": {"C": 1.0, "seed": 7, "max_iter": 500},
}

DVC_YAML = f"""\
stages:
  featurize:
    cmd: python src/featurize.py
    deps:
      - {DATA_PATH}
      - src/featurize.py
    params:
      - featurize.test_size
      - featurize.seed
    outs:
      - data/prepared
  train:
    cmd: python src/train.py
    deps:
      - data/prepared
      - src/train.py
    params:
      - featurize.max_features
      - featurize.ngrams
      - train
    outs:
      - {MODEL_PATH}
      - eval
# dvclive writes eval/ (Live(dvcyaml=False)); the metrics file is declared at top level, as dvclive's docs show.
metrics:
  - {METRICS_PATH}
artifacts:
  {DATASET}:
    path: {DATA_PATH}
    type: dataset
    desc: synthetic support tickets, labelled billing or technical
  {MODEL}:
    path: {MODEL_PATH}
    type: model
    desc: ticket router (scikit-learn pipeline, joblib)
    labels: [sklearn, nlp]
"""

FEATURIZE_PY = '''\
"""Normalise the ticket texts and split them into train and test."""
import csv
import random
from pathlib import Path

import yaml

params = yaml.safe_load(Path("params.yaml").read_text())["featurize"]
with open("data/tickets.csv", newline="") as f:
    rows = [(" ".join(r["text"].lower().split()), r["label"]) for r in csv.DictReader(f)]
random.Random(params["seed"]).shuffle(rows)
n_test = int(len(rows) * params["test_size"])
out = Path("data/prepared")
out.mkdir(parents=True, exist_ok=True)
for name, part in (("test", rows[:n_test]), ("train", rows[n_test:])):
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(part)
'''

TRAIN_PY = '''\
"""Fit TF-IDF + logistic regression, save it with joblib, log test metrics with dvclive."""
import csv
from pathlib import Path

import joblib
import yaml
from dvclive import Live
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

params = yaml.safe_load(Path("params.yaml").read_text())
feat, train = params["featurize"], params["train"]


def load(name):
    with open(f"data/prepared/{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


x_train, y_train = load("train")
x_test, y_test = load("test")
clf = make_pipeline(
    TfidfVectorizer(max_features=feat["max_features"], ngram_range=(1, feat["ngrams"])),
    LogisticRegression(C=train["C"], max_iter=train["max_iter"], random_state=train["seed"]),
)
clf.fit(x_train, y_train)
# A set of strings, ordered by the hash seed: scikit-learn says it can be dropped before pickling.
clf[0].stop_words_ = None
Path("model").mkdir(exist_ok=True)
joblib.dump(clf, "model/clf.joblib")

predicted = clf.predict(x_test)
with Live(dir="eval", dvcyaml=False, save_dvc_exp=False) as live:
    live.log_metric("accuracy", accuracy_score(y_test, predicted), plot=False)
    live.log_metric("f1", f1_score(y_test, predicted, pos_label="technical"), plot=False)
'''

_WORDS = {
    "billing": ["invoice", "charged", "refund", "payment", "card", "subscription", "price", "receipt", "plan",
                "discount", "bill", "overcharged"],
    "technical": ["error", "crash", "login", "password", "install", "update", "server", "timeout", "bug",
                  "screen", "sync", "connection"],
}
_SHARED = ["please", "help", "my", "account", "the", "app", "since", "yesterday", "again", "urgent", "thanks",
           "cannot", "why", "is", "not", "working", "with", "today"]


def tickets(rows: int = ROWS, seed: int = 20240611) -> list[tuple[str, str]]:
    """ROWS seeded synthetic tickets: a few class words among shared ones, LABEL_NOISE of the labels flipped."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        label = rng.choice(sorted(_WORDS))
        words = rng.choices(_WORDS[label], k=rng.randint(1, 3)) + rng.choices(_SHARED, k=rng.randint(4, 9))
        # A word of the other class now and then: the classes overlap, as real tickets do.
        if rng.random() < 0.3:
            other = next(k for k in _WORDS if k != label)
            words.append(rng.choice(_WORDS[other]))
        rng.shuffle(words)
        if rng.random() < LABEL_NOISE:
            label = next(k for k in _WORDS if k != label)
        out.append((" ".join(words), label))
    return out


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for git and DVC: the caller's, with an identity when it has none, and this interpreter's
    scripts first on PATH (dvc.yaml's `python` is the test environment's, which has scikit-learn and dvclive)."""
    env = dict(os.environ)
    env.update({"GIT_AUTHOR_NAME": env.get("GIT_AUTHOR_NAME", "Test Author"),
                "GIT_AUTHOR_EMAIL": env.get("GIT_AUTHOR_EMAIL", "author@example.com"),
                "GIT_COMMITTER_NAME": env.get("GIT_COMMITTER_NAME", "Test Committer"),
                "GIT_COMMITTER_EMAIL": env.get("GIT_COMMITTER_EMAIL", "committer@example.com"),
                "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})
    env.update(extra or {})
    return env


def run(cwd: Path, *cmd: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=env or _env(), check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip()


def repro_and_commit(root: Path, message: str, env: dict[str, str] | None = None) -> str:
    """`dvc repro`, push the outputs to the local remote, commit everything; returns the new HEAD."""
    env = env or _env()
    run(root, sys.executable, "-m", "dvc", "repro", "-q", env=env)
    run(root, sys.executable, "-m", "dvc", "push", "-q", env=env)
    run(root, "git", "add", "-A", env=env)
    run(root, "git", "commit", "-q", "-m", message, env=env)
    return run(root, "git", "rev-parse", "HEAD", env=env)


def set_params(root: Path, **sections: dict[str, Any]) -> None:
    """Merge SECTIONS into params.yaml (one level deep: `train={"C": 0.1}` changes train.C only)."""
    path = root / "params.yaml"
    data = yaml.safe_load(path.read_text())
    for key, values in sections.items():
        data[key] = {**(data.get(key) or {}), **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def build(dest: Path, env: dict[str, str] | None = None) -> Path:
    """The project from scratch at DEST: files, git repo on main, DVC with a local remote, reproduced, committed."""
    env = env or _env()
    dest.mkdir(parents=True)
    run(dest, "git", "init", "-q", "-b", "main", env=env)
    (dest / "data").mkdir()
    with open(dest / DATA_PATH, "w", newline="") as f:
        f.write("text,label\n")
        f.writelines(f"{text},{label}\n" for text, label in tickets())
    (dest / "src").mkdir()
    (dest / "src/featurize.py").write_text(FEATURIZE_PY)
    (dest / "src/train.py").write_text(TRAIN_PY)
    (dest / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (dest / "dvc.yaml").write_text(DVC_YAML)
    (dest / ".gitignore").write_text("/.dvcstore/\n__pycache__/\n")
    run(dest, sys.executable, "-m", "dvc", "init", "-q", env=env)
    # The remote sits inside the repo (ignored by git) so a copy of the project brings its own.
    run(dest, sys.executable, "-m", "dvc", "remote", "add", "-d", "local", ".dvcstore", env=env)
    run(dest, sys.executable, "-m", "dvc", "config", "core.autostage", "true", env=env)
    # dvclive reads the git revision it runs on: the code is committed before the first run, as in any project.
    run(dest, "git", "add", "-A", env=env)
    run(dest, "git", "commit", "-q", "-m", "ticket classifier: data, code, pipeline", env=env)
    repro_and_commit(dest, "train the ticket classifier", env=env)
    return dest


_TEMPLATE: Path | None = None


def _template() -> Path:
    """The project built once per process, in a private HOME so no user or host git/DVC config leaks in."""
    global _TEMPLATE
    if _TEMPLATE is None:
        scratch = Path(tempfile.mkdtemp(prefix="mlops-foreign-"))
        atexit.register(shutil.rmtree, scratch, True)
        home = scratch / "home"
        home.mkdir()
        env = _env({"HOME": str(home), "DVC_GLOBAL_CONFIG_DIR": str(home / ".dvcglobal"),
                    "DVC_SYSTEM_CONFIG_DIR": str(home / ".dvcsystem")})
        for key in [k for k in env if k.startswith(("GITHUB_", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX"))]:
            del env[key]
        _TEMPLATE = build(scratch / "project", env)
    return _TEMPLATE


def make_foreign_project(dest: Path, *, registry: dict[str, Any] | None = None,
                         gates: dict[str, Any] | None = None) -> Path:
    """The foreign project at DEST, reproduced and committed on main; with REGISTRY / GATES, params.yaml gains
    those sections in a second commit (the stages do not depend on them: dvc.lock stays current)."""
    shutil.copytree(_template(), dest, symlinks=True)
    if registry is not None or gates is not None:
        sections = {k: v for k, v in (("registry", registry), ("gates", gates)) if v is not None}
        params = yaml.safe_load((dest / "params.yaml").read_text())
        (dest / "params.yaml").write_text(yaml.safe_dump({**params, **sections}, sort_keys=False))
        run(dest, "git", "commit", "-q", "-am", "configure mlops")
    return dest
