"""Deploy test helpers: a tiny real DVC project with two registered versions and a DVC remote beside it, and a
test double of the model server's admin API (for plan logic; the real server is in the e2e test)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import commit_all, dvc, git, init_repo

TOKEN = "test-admin-token-0123456789abcdef"  # the server wants 32 characters at least

FEATURE_SCHEMA = {"format": "mlops.feature-schema/1",
                  "features": [{"name": "tenure", "type": "int"},
                               {"name": "contract", "type": "category",
                                "categories": ["Month-to-month", "One year", "Two year"]}],
                  "output": {"name": "probability", "type": "float", "label": "churn", "positive": "Yes"}}

MAKE_MODEL = '''"""Writes a stand-in model artifact (deploy's fetch does not parse the model)."""
import json
from pathlib import Path

WEIGHTS = "{weights}"
out = Path("models")
out.mkdir(exist_ok=True)
(out / "model.ubj").write_bytes(("fake-xgboost-model:" + WEIGHTS).encode() * 64)
(out / "feature_schema.json").write_text(json.dumps({schema}, indent=2))
golden = {{"records": [{{"tenure": 3, "contract": "One year"}}], "predictions": [0.25]}}
if {golden_sha!r}:
    golden["model_sha256"] = {golden_sha!r}  # what train records: the model the predictions were made with
(out / "golden.json").write_text(json.dumps(golden))
'''

DVC_YAML = {
    "stages": {"train": {"cmd": "python make_model.py", "deps": ["make_model.py"], "outs": ["models"]}},
    "artifacts": {"churn-model": {"path": "models", "type": "model", "desc": "a stand-in"}},
}

PARAMS = {
    "registry": {"artifact": "churn-model", "model_file": "model.ubj", "production_stage": "production",
                 # the tests' git identity (conftest) plays the promote workflow's
                 "promote_identities": [{"name": "Test Committer", "email": "committer@example.com"}]},
    "deploy": {"kserve_namespace": "ml", "kserve_mode": "standard", "canary_percent": 20,
               "kserve_dir": "deploy/kserve", "kserve_runtime": "stock"},  # these tests check the stock layout
}


def _write_model_script(repo: Path, weights: str, golden_sha: str = "") -> None:
    (repo / "make_model.py").write_text(MAKE_MODEL.format(weights=weights, schema=repr(FEATURE_SCHEMA),
                                                          golden_sha=golden_sha))


def build_released_project(root: Path) -> Path:
    """ROOT/work: a git repo on main with a DVC pipeline whose `models` output is registered three times (v1.0.0
    in production; v1.0.1; v1.0.2 at a commit on a side branch, whose golden.json names another model file), every
    object pushed to the DVC remote ROOT/dvcstore. HEAD is v1.0.1's commit on main. Returns the repo."""
    from mlops.jobs.promote import PromoteOptions, promote

    repo = init_repo(root / "work")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (repo / ".gitignore").write_text("__pycache__/\n/deploy/\n")
    _write_model_script(repo, "w1")
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "store", "../dvcstore")  # ROOT/dvcstore (DVC stores it relative to .dvc/)
    dvc(repo, "repro", "-q")
    commit_all(repo, "first model")
    promote(repo, PromoteOptions(stage="production", push=False))
    dvc(repo, "push", "-q")
    _write_model_script(repo, "w2")
    dvc(repo, "repro", "-q")
    commit_all(repo, "second model")
    promote(repo, PromoteOptions(push=False))
    dvc(repo, "push", "-q")
    git(repo, "checkout", "-q", "-b", "side")
    _write_model_script(repo, "w3", golden_sha="0" * 64)
    dvc(repo, "repro", "-q")
    commit_all(repo, "golden records of another model")
    promote(repo, PromoteOptions(push=False, allow_branch=True))
    dvc(repo, "push", "-q")
    git(repo, "checkout", "-q", "main")
    dvc(repo, "checkout", "-q")
    assert set(git(repo, "tag").split()) == {"churn-model@v1.0.0", "churn-model@v1.0.1", "churn-model@v1.0.2",
                                             "churn-model#production#1"}
    return repo


@contextmanager
def template_env(home: Path) -> Iterator[None]:
    """The environment conftest's autouse fixture gives a test, for module-scoped fixtures that run outside it."""
    saved = dict(os.environ)
    os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Test Author",
                       "GIT_AUTHOR_EMAIL": "author@example.com", "GIT_COMMITTER_NAME": "Test Committer",
                       "GIT_COMMITTER_EMAIL": "committer@example.com", "DVC_NO_ANALYTICS": "1",
                       "DVC_GLOBAL_CONFIG_DIR": str(home / ".dvcglobal"),
                       "DVC_SYSTEM_CONFIG_DIR": str(home / ".dvcsystem"),
                       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def copy_tree(template: Path, dest: Path) -> Path:
    """A copy of a template ROOT (repo + its DVC remote), returning the copy's repo."""
    shutil.copytree(template, dest, symlinks=True)
    return dest / "work"


def remote_object(repo: Path, md5: str) -> Path:
    """The file of object MD5 in the project's DVC remote (DVC 3 layout)."""
    h = md5.removesuffix(".dir")
    return repo.parent / "dvcstore" / "files" / "md5" / h[:2] / (h[2:] + (".dir" if md5.endswith(".dir") else ""))


def listing(repo: Path, rev: str = "HEAD") -> dict[str, str]:
    """relpath -> md5 of the `models` output at REV, from the remote's .dir object."""
    lock = yaml.safe_load(git(repo, "show", f"{rev}:dvc.lock"))
    h = lock["stages"]["train"]["outs"][0]["md5"]
    items = json.loads(remote_object(repo, h).read_text())
    return {i["relpath"]: i["md5"] for i in items}


def tamper(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


class AdminDouble:
    """GET /admin/models/{name} answers STATES[name] (404 when absent); POST /admin/models/{name}/OP answers
    ANSWERS[OP] (status, body), else 200 with the state. Every request is recorded. Checks the bearer token as the
    real server does (401)."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                double.requests.append(("GET", self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, {"error": "admin token required"})
                    return
                m = re.fullmatch(r"/admin/models/([^/]+)", self.path)
                if m and m[1] in double.states:
                    self._answer(200, double.states[m[1]])
                else:
                    self._answer(404, {"error": "unknown model"})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                double.requests.append(("POST", self.path, self.headers.get("Authorization")))
                m = re.fullmatch(r"/admin/models/([^/]+)/(\w+)", self.path)
                if m is None:
                    self._answer(404, {"error": "no such path"})
                    return
                status, body = double.answers.get(m[2], (200, double.states.get(m[1], {})))
                self._answer(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
