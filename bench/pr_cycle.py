"""The pull-request cycle under act, as GitHub runs it: how long our workflows take, per scenario.

    .venv/bin/python bench/pr_cycle.py [--keep DIR]

Builds the example project (trained, pushed to a bare origin with its DVC remote outside the repository, this
checkout's workflows and actions in it), the local GitHub double and a real `mlops serve` on a free loopback port,
then times with act (host mode, the e2e tests' harness in tests/e2e/act.py):

  noop_pr     pr.yml for a pull request that touches no pipeline input: every stage current, outputs from the DVC
              remote, report, sticky comment, gates (target: 15 s of toolkit time on 2 cores)
  param_pr    pr.yml for a one-param change (train.n_estimators): train and evaluate rerun (target: 60 s)
  merge       promote.yml for the merge of that change: gates, registry tag, then deploy.yml (canary, smoke test,
              production tag) against the running server, which then answers with the new version (target: 60 s)

"toolkit" is the time of our own steps (the setup, pipeline, report, promote and deploy actions), from act's log;
"wall" adds act itself (copying the repository per job, the stand-ins of third-party actions). The first
deployment (v1.0.0 to the empty server) is made before `merge` and not timed. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.act import Act, ActRun, pull_request_event, push_event  # noqa: E402
from tests.e2e.projects import (  # noqa: E402
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
from tests.github_double import GitHubDoubleWithPulls  # noqa: E402
from tests.helpers import copy_project  # noqa: E402
from tests.serve_helpers import TOKEN, Server, call  # noqa: E402

TARGETS = {"noop_pr": 15.0, "param_pr": 60.0, "merge": 60.0}


def toolkit_seconds(run: ActRun) -> dict[str, float]:
    """Seconds of each of our job-level steps (`./actions/...`), summed over the jobs of the run."""
    steps: dict[str, float] = {}
    for line in run.lines:
        sid = line.get("stepID")
        step = str(line.get("step", ""))
        if "stepResult" in line and line.get("stage") == "Main" and isinstance(sid, list) and len(sid) == 1 \
                and step.startswith("./actions/"):
            name = step.removeprefix("./actions/")
            steps[name] = steps.get(name, 0.0) + float(line.get("executionTime", 0)) / 1e9
    return steps


def figures(run: ActRun, target: float) -> dict[str, Any]:
    if run.returncode != 0:
        raise SystemExit(f"act failed ({run.returncode}):\n{run.log()[-4000:]}")
    steps = toolkit_seconds(run)
    total = sum(steps.values())
    return {"toolkit_s": round(total, 2), "wall_s": round(run.seconds, 2), "target_s": target,
            "met": total <= target, "steps_s": {k: round(v, 2) for k, v in steps.items()}}


def build(root: Path, port: int) -> tuple[Path, str]:
    """The trained example project with the workflows, `deploy:` at the server on PORT, main on a bare origin."""
    repo = copy_project(root / "repo")
    dvc(repo, "repro", "-q")
    add_workflows(repo)
    with open(repo / "params.yaml", "a") as fh:  # the canary as configured by default (10 s, 200 requests)
        fh.write(f"deploy:\n  server_url: http://127.0.0.1:{port}\n  store: {root / 'store'}\n")
    remote_outside(repo, root / "dvcstore")
    main = commit(repo, "trained; workflows; DVC remote; deploy to the local server")
    with_origin(repo, root / "origin.git")
    return repo, main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="mlops-pr-cycle-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    gh = GitHubDoubleWithPulls().start()
    server = Server(root / "store")
    out: dict[str, Any] = {"machine": {"cpus": __import__("os").cpu_count()}}
    try:
        with environment(project_env(root / "home")):
            start = time.monotonic()
            repo, main_sha = build(root, server.port)
            out["setup_s"] = round(time.monotonic() - start, 1)
            server.wait()
            act = Act(root / "act", gh.url)

            branch(repo, "docs")
            (repo / "CONTRIBUTING.md").write_text("How to propose a change.\n")
            head = commit(repo, "docs only")
            run = act.run(repo, "pull_request", pull_request_event("opened", 1, head_sha=head, head_ref="docs",
                                                                   base_sha=main_sha), ".github/workflows/pr.yml")
            out["noop_pr"] = figures(run, TARGETS["noop_pr"])

            branch(repo, "tune", "main")
            set_param(repo, "n_estimators: 400", "n_estimators: 300")
            head = commit(repo, "fewer trees")
            run = act.run(repo, "pull_request", pull_request_event("opened", 2, head_sha=head, head_ref="tune",
                                                                   base_sha=main_sha), ".github/workflows/pr.yml")
            out["param_pr"] = figures(run, TARGETS["param_pr"])

            def promote() -> ActRun:
                event = push_event(ref="refs/heads/main", before=git(repo, "rev-parse", "HEAD~1"),
                                   after=git(repo, "rev-parse", "HEAD"))
                return act.run(repo, "push", event, ".github/workflows/promote.yml", platforms=("self-hosted",),
                               secrets={"MLOPS_ADMIN_TOKEN": TOKEN})

            git(repo, "checkout", "-q", "main")
            first = promote()  # v1.0.0 onto the empty server: not timed
            if first.returncode != 0:
                raise SystemExit(f"first promotion failed:\n{first.log()[-4000:]}")
            git(repo, "checkout", "-q", "tune")
            dvc(repo, "repro", "-q")  # the author reproduced and committed dvc.lock, as promote requires
            dvc(repo, "push", "-q")
            commit(repo, "dvc.lock of fewer trees")
            git(repo, "checkout", "-q", "main")
            git(repo, "merge", "-q", "--no-ff", "-m", "Merge pull request #2 from acme/tune", "tune")
            dvc(repo, "checkout", "-q")
            git(repo, "push", "-q", "origin", "main")
            run = promote()
            out["merge"] = figures(run, TARGETS["merge"])
            record = json.loads((repo / "models/golden.json").read_text())["records"][0]
            reply = call(server.port, "POST", "/v1/models/churn-model/predict", {"instances": [record]})
            out["merge"]["serving"] = reply.version
    finally:
        server.stop()
        gh.stop()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
