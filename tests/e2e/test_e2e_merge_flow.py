"""The merge loop, run by act as GitHub would run it: promote.yml for a push to main registers the model
(churn-model@vX.Y.Z on origin), then deploy.yml, called in the same run, delivers it to the running `mlops serve`
(canary, smoke test) and assigns production (churn-model#production#N). This project declares no
deploy.environments: the staging step has nothing to do and production follows as before (tests/test_environments.py
runs staging and production servers side by side). A merged retrained model replaces it; a
second run of the same commit is a no-op.

The tests share one repository, one model server and one act, and run in order.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.act import Act, ActRun, push_event, workflow_dispatch_event
from tests.e2e.double import GitHubDoubleWithDispatch
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
DEPLOY = ".github/workflows/deploy.yml"
# The privileged runner (its own label) and the GitHub-hosted one that checks its labels first. No `gpu`: a job
# that asked for a pull-request runner could not start here.
PRIVILEGED = ("self-hosted", "mlops-deploy", "ubuntu-latest")


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
    return act.run(repo, "push", event, PROMOTE, platforms=PRIVILEGED, secrets={"MLOPS_ADMIN_TOKEN": TOKEN})


def test_push_to_main_registers_deploys_and_assigns_production(released: Released, act: Act) -> None:
    run = _promote(act, released)

    assert run.returncode == 0, run.log()
    # runner (labels: promote's and deploy's own, one job id), promote, staging (skips: no environments), production
    assert run.jobs == {"runner": "success", "promote": "success", "staging": "success", "production": "success"}, \
        run.jobs
    assert {"churn-model@v1.0.0", "churn-model#production#1"} <= _tags(released)
    # The privileged jobs installed the toolkit from the hashed locks, although the runner offered an environment
    # (act passes the repository variable MLOPS_TOOLKIT_VENV): none of them adopted it.
    out = run.output()
    assert "using the environment at" not in out and out.count("mlops setup: mlops ") == 3, out
    assert "no deploy.environments in params.yaml, so no staging: nothing to deploy" in run.output("staging")
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


def _on(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on` as true
    return on if isinstance(on, dict) else {name: None for name in ([on] if isinstance(on, str) else on)}


def _filter_pattern(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern for branches and tags: `**` any characters, `*` any but `/`, `?` and `+` quantify
    the character before them, `[...]` a class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        if c == "[":
            end = pattern.index("]", i)
            out.append(pattern[i:end + 1])
            i = end + 1
            continue
        out.append("[^/]*" if c == "*" else c if c in "?+" else re.escape(c))
        i += 1
    return re.compile("".join(out))


def _tag_starts(path: Path, tag: str) -> bool:
    """Whether pushing TAG starts the workflow at PATH (its `push: tags:` filters, as GitHub applies them)."""
    patterns = (_on(path).get("push") or {}).get("tags") or []
    return any(_filter_pattern(str(p)).fullmatch(tag) for p in patterns)


def test_a_stage_tag_pushed_by_hand_runs_the_default_branchs_deploy_definition(released: Released, act: Act,
                                                                               gh: GitHubDoubleWithDispatch) -> None:
    """A writer tags a commit whose deploy.yml was altered. GitHub runs, for a tag push, the workflow files of the
    tagged commit: the altered deploy.yml must not be one of them, and what deploys is the default branch's."""
    repo = released.repo
    marker = "ALTERED-DEFINITION-RAN"
    tag = "churn-model#production#3"
    with environment(project_env(repo.parent / "home")):
        branch(repo, "altered")
        deploy = repo / DEPLOY
        deploy.write_text(deploy.read_text().replace("    steps:\n", f"    steps:\n      - shell: bash\n"
                                                     f"        run: echo {marker}\n"))
        tagged = commit(repo, "deploy.yml: an altered definition")
        git(repo, "tag", "-a", "-m", "assign production", tag, tagged)
        git(repo, "push", "-q", "origin", "altered", f"refs/tags/{tag}")
    before = len(gh.dispatches)

    # Every workflow of the tagged commit that this tag push starts, as GitHub would run them (act does not apply
    # the branches/tags filters itself: the test applies them).
    event = push_event(ref=f"refs/tags/{tag}", before="0" * 40, after=tagged, pusher="octo-writer")
    started = [path for path in sorted((repo / ".github/workflows").glob("*.yml")) if _tag_starts(path, tag)]
    assert not _tag_starts(repo / ".github/workflows/release.yml", tag)  # the toolkit's releases: v1.2.3 only
    runs = [act.run(repo, "push", event, str(path.relative_to(repo)), platforms=PRIVILEGED,
                    secrets={"MLOPS_ADMIN_TOKEN": TOKEN}) for path in started]

    assert all(marker not in run.log() for run in runs)
    assert [p.name for p in started] == ["stage-tag.yml"]
    assert runs[0].jobs == {"dispatch": "success"}, runs[0].log()
    assert gh.dispatches[before:] == [{"workflow": "deploy.yml", "ref": "main",
                                       "inputs": {"tag": tag, "target": "default", "environment": "production"}}]

    # GitHub then runs deploy.yml as the default branch has it (act does not chain runs: the test does).
    with environment(project_env(repo.parent / "home")):
        git(repo, "checkout", "-q", "main")
    dispatched = gh.dispatches[-1]
    run = act.run(repo, "workflow_dispatch",
                  workflow_dispatch_event(ref=f"refs/heads/{dispatched['ref']}", inputs=dispatched["inputs"],
                                          workflow=DEPLOY),
                  DEPLOY, platforms=PRIVILEGED, secrets={"MLOPS_ADMIN_TOKEN": TOKEN})

    assert marker not in run.log()
    assert run.jobs.get("runner") == "success" and "production" in run.jobs and "staging" not in run.jobs, run.log()
    assert _serving(released) == "v1.0.1"


def test_deploy_dispatched_on_another_branch_is_refused(released: Released, act: Act) -> None:
    """The production environment admits the default branch only; the workflow refuses any other ref itself too."""
    event = workflow_dispatch_event(ref="refs/heads/altered", inputs={"ref": "churn-model@v1.0.0"}, workflow=DEPLOY,
                                    sender="octo-writer")
    run = act.run_refused(released.repo, "workflow_dispatch", event, DEPLOY, platforms=PRIVILEGED,
                          secrets={"MLOPS_ADMIN_TOKEN": TOKEN},
                          expect="production deploys run the default branch's workflow only")

    assert run.jobs == {"runner": "failure"}, run.log()
    assert "production deploys run the default branch's workflow only" in run.log()
    assert _serving(released) == "v1.0.1"
