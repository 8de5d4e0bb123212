"""The merge loop, run by act as GitHub would run it: promote.yml for a push to main registers the model
(churn-model@vX.Y.Z on origin), then deploy.yml, called in the same run, delivers it to the running `mlops serve`
(canary, smoke test) and assigns production (churn-model#production#N). A merged retrained model replaces it; a
second run of the same commit is a no-op.

The tests share one repository, one model server and one act, and run in order.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.act import Act, ActRun, push_event
from tests.e2e.projects import (
    add_workflows,
    branch,
    commit,
    dvc,
    environment,
    git,
    project_env,
    remote_outside,
    set_param,
    with_origin,
)
from tests.serve_helpers import TOKEN, Server, call

pytestmark = pytest.mark.e2e

PROMOTE = ".github/workflows/promote.yml"


@dataclass
class Released:
    repo: Path
    origin: Path
    server: Server
    record: dict[str, object]  # a customer, as the model's golden records have it


@pytest.fixture(scope="module")
def released(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    """The trained example project with this checkout's workflows, `deploy:` pointing at a real `mlops serve`
    (empty store) on a free loopback port, its DVC remote outside the repository, main pushed to a bare origin."""
    root = tmp_path_factory.mktemp("merge-flow")
    (root / "home").mkdir()
    server = Server(root / "store")
    with environment(project_env(root / "home")):
        repo = root / "repo"
        shutil.copytree(_trained_template, repo, symlinks=True)
        add_workflows(repo)
        with open(repo / "params.yaml", "a") as fh:  # a short canary: the replayed window is the cost here
            fh.write(f"deploy:\n  server_url: http://127.0.0.1:{server.port}\n  store: {root / 'store'}\n"
                     "  canary_seconds: 1\n  canary_requests: 20\n  max_p99_ms: 2000\n")
        remote_outside(repo, root / "dvcstore")
        commit(repo, "workflows; deploy to the local server; DVC remote")
        origin = with_origin(repo, root / "origin.git")
    golden = json.loads((repo / "models/golden.json").read_text())
    try:
        server.wait()
        yield Released(repo, origin, server, golden["records"][0])
    finally:
        server.stop()


def _tags(released: Released) -> set[str]:
    out = git(released.repo, "ls-remote", "--tags", str(released.origin))
    return {line.split("refs/tags/", 1)[1] for line in out.splitlines() if "^{}" not in line}


def _serving(released: Released) -> str | None:
    reply = call(released.server.port, "POST", "/v1/models/churn-model/predict", {"instances": [released.record]})
    assert reply.status == 200, reply.body
    return reply.version


def _promote(act: Act, released: Released) -> ActRun:
    repo = released.repo
    head = git(repo, "rev-parse", "HEAD")
    event = push_event(ref="refs/heads/main", before=git(repo, "rev-parse", "HEAD~1"), after=head)
    return act.run(repo, "push", event, PROMOTE, platforms=("self-hosted",), secrets={"MLOPS_ADMIN_TOKEN": TOKEN})


def test_push_to_main_registers_deploys_and_assigns_production(released: Released, act: Act) -> None:
    run = _promote(act, released)

    assert run.returncode == 0, run.log()
    assert set(run.jobs.values()) == {"success"} and len(run.jobs) == 2, run.jobs
    assert {"churn-model@v1.0.0", "churn-model#production#1"} <= _tags(released)
    assert _serving(released) == "v1.0.0"
    assert '"action": "deployed"' in run.output()


def test_a_merged_retrained_model_replaces_it(released: Released, act: Act) -> None:
    repo = released.repo
    with environment(project_env(repo.parent / "home")):
        branch(repo, "tune")
        set_param(repo, "n_estimators: 400", "n_estimators: 300")
        dvc(repo, "repro", "-q")
        dvc(repo, "push", "-q")
        commit(repo, "fewer trees")
        git(repo, "checkout", "-q", "main")
        git(repo, "merge", "-q", "--no-ff", "-m", "Merge pull request #1 from acme/tune", "tune")
        dvc(repo, "checkout", "-q")
        git(repo, "push", "-q", "origin", "main")

    run = _promote(act, released)

    assert run.returncode == 0, run.log()
    assert {"churn-model@v1.0.1", "churn-model#production#2"} <= _tags(released)
    assert _serving(released) == "v1.0.1"


def test_a_second_run_of_the_same_commit_is_a_no_op(released: Released, act: Act) -> None:
    before = _tags(released)

    run = _promote(act, released)

    assert run.returncode == 0, run.log()
    assert _tags(released) == before
    assert _serving(released) == "v1.0.1"
    out = run.output()
    assert '"action": "already_registered"' in out and '"action": "already_serving"' in out
