"""Static checks of every workflow and action we ship, and of what `mlops init` writes: zizmor (default and auditor
personas) and actionlint find nothing, every suppression says why, and the rules of the issue hold line by line
(permissions, SHA pins with their version, no credentials left in .git/config, no expression inside `run:`)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.jobs.init import Actions, init
from tests.foreign import make_foreign_project

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHA = "0123456789abcdef0123456789abcdef01234567"
PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?P<comment>\s+#.*)?$")
IGNORE = re.compile(r"zizmor: ignore\[(?P<rules>[a-z, -]+)\](?P<why>.*)$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as `mlops init` leaves it."""
    root = make_foreign_project(tmp_path_factory.mktemp("lint") / "project")
    init(root, Actions(sha=SHA))
    return root


def _tool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize("persona", ["regular", "auditor"])
def test_zizmor_finds_nothing_in_our_workflows_and_actions(persona: str) -> None:
    proc = _tool(str(BIN / "zizmor"), "--offline", "--no-progress", "--persona", persona, ".github/workflows",
                 "actions", cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout
    assert "failed to parse" not in proc.stderr  # every file was audited


@pytest.mark.parametrize("persona", ["regular", "auditor"])
def test_zizmor_finds_nothing_in_what_init_writes(generated: Path, persona: str) -> None:
    proc = _tool(str(BIN / "zizmor"), "--offline", "--no-progress", "--persona", persona, ".github", cwd=generated)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout


def test_actionlint_finds_nothing(generated: Path) -> None:
    for where in (REPO, generated):
        proc = _tool(str(BIN / "actionlint"), "-no-color", "-oneline", cwd=where)
        assert proc.returncode == 0, f"{where}:\n{proc.stdout}{proc.stderr}"


def _shipped(generated: Path) -> list[Path]:
    return [*sorted((REPO / ".github/workflows").glob("*.yml")), *sorted((REPO / "actions").glob("*/action.yml")),
            *sorted((generated / ".github/workflows").glob("*.yml"))]


def test_every_suppression_carries_its_reason(generated: Path) -> None:
    files = [*_shipped(generated), *sorted((REPO / "mlops/templates/init").glob("*.yml"))]
    found = 0
    for path in files:
        for line in path.read_text().splitlines():
            if m := IGNORE.search(line):
                found += 1
                assert len(m["why"].split()) >= 6, f"{path}: suppression without a reason: {line.strip()}"
    assert found >= 5
    config = (REPO / ".github/zizmor.yml").read_text()
    for block in re.split(r"\n  (?=[a-z-]+:\n)", config)[1:]:
        assert "disable: true" not in block or "# Why:" in block, block


def _steps(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "runs" in doc:
        yield from doc["runs"].get("steps") or []
    for job in (doc.get("jobs") or {}).values():
        yield from job.get("steps") or []


def test_the_rules_hold_in_every_file(generated: Path) -> None:
    for path in _shipped(generated):
        text = path.read_text()
        doc = yaml.safe_load(text)
        rel = path.name if path.is_relative_to(generated) else path.relative_to(REPO)
        # Third-party actions: a full SHA, with the version beside it.
        for line in text.splitlines():
            m = PIN.match(line)
            if m and not m["ref"].startswith("./"):
                assert re.search(r"@[0-9a-f]{40}$", m["ref"]), f"{rel}: not pinned by SHA: {line.strip()}"
                assert m["comment"] and re.match(r"\s+# v\d+\.\d+\.\d+", m["comment"]), f"{rel}: {line.strip()}"
        if "jobs" in doc:
            assert doc["permissions"] == {}, f"{rel}: permissions: {{}} at the top"
            for name, job in doc["jobs"].items():
                assert isinstance(job.get("permissions"), dict), f"{rel}: job {name} sets no permissions"
        else:  # a composite action: a shell on every run step, its scripts beside it
            assert doc["runs"]["using"] == "composite"
            for step in _steps(doc):
                if "run" in step:
                    assert step.get("shell") == "bash", f"{rel}: {step}"
                    assert '"$GITHUB_ACTION_PATH/' in step["run"], f"{rel}: script not beside the action: {step}"
        for step in _steps(doc):
            uses = str(step.get("uses", ""))
            if uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{rel}: {step}"
            if "run" in step:
                # Untrusted text reaches a script through env: and a quoted variable, never through `${{ }}`.
                assert "${{" not in step["run"], f"{rel}: expression inside run: {step['run']}"


def test_fork_pull_requests_never_reach_a_self_hosted_runner(generated: Path) -> None:
    for path in (REPO / ".github/workflows/pr.yml", generated / ".github/workflows/mlops-pr.yml"):
        jobs = yaml.safe_load(path.read_text())["jobs"]
        same = "github.event.pull_request.head.repo.full_name == github.repository"
        fork = "github.event.pull_request.head.repo.full_name != github.repository"
        assert same in jobs["pipeline"]["if"] and "self-hosted" in jobs["pipeline"]["runs-on"]
        assert jobs["fork"]["if"] == fork and jobs["fork"]["runs-on"] == "ubuntu-latest"
        assert jobs["fork"]["permissions"] == {"contents": "read"}
        assert same in jobs["cloud-runner"]["if"] and "vars.MLOPS_CML_CLOUD != ''" in jobs["cloud-runner"]["if"]
        doc = yaml.safe_load(path.read_text())
        assert doc["concurrency"] == {"group": "mlops-pr-${{ github.event.pull_request.number }}",
                                      "cancel-in-progress": True}


OURS_OF = {"mlops-pr.yml": "pr.yml", "mlops-pr-comment.yml": "pr-comment.yml", "mlops-promote.yml": "promote.yml",
           "mlops-deploy.yml": "deploy.yml", "mlops-monitor.yml": "monitor.yml"}


@pytest.mark.parametrize("template", sorted(OURS_OF))
def test_what_init_writes_behaves_as_our_own_workflows(template: str) -> None:
    """The templates and this repository's workflows are two copies of one design: with our values filled in and
    our actions called as ./actions/..., they must parse to the same workflow (comments aside)."""
    from importlib import resources

    from mlops.jobs.init import render

    text = (resources.files("mlops") / "templates" / "init" / template).read_text()
    rendered = render(text, {"__ACTIONS__": "o/r", "__SHA__": SHA, "__VERSION__": "v0.1.0",
                             "__PRODUCTION__": "production", "__EXTRAS__": "pipeline",
                             "__REQUIREMENTS__": "requirements/runtime.lock"})
    rendered = re.sub(rf"o/r/actions/(\w+)@{SHA}", r"./actions/\1", rendered)
    for ours_name, theirs in OURS_OF.items():
        rendered = rendered.replace(f"./.github/workflows/{ours_name}", f"./.github/workflows/{theirs}")
    ours = yaml.safe_load((REPO / ".github/workflows" / OURS_OF[template]).read_text())
    theirs = yaml.safe_load(rendered)
    assert theirs == ours
