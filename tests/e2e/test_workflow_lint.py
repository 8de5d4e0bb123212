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


def test_fork_pull_requests_are_routed_to_a_github_hosted_runner(generated: Path) -> None:
    for path in (REPO / ".github/workflows/pr.yml", generated / ".github/workflows/mlops-pr.yml"):
        jobs = yaml.safe_load(path.read_text())["jobs"]
        same = "github.event.pull_request.head.repo.full_name == github.repository"
        fork = "github.event.pull_request.head.repo.full_name != github.repository"
        assert same in jobs["pipeline"]["if"] and "self-hosted" in jobs["pipeline"]["runs-on"]
        # a dispatch (the retraining pull request's) runs the same-repository job, never the fork job
        assert jobs["pipeline"]["if"] == f"github.event_name == 'workflow_dispatch' || {same}"
        assert jobs["fork"]["if"] == f"github.event_name == 'pull_request' && {fork}"
        assert jobs["fork"]["runs-on"] == "ubuntu-latest"
        assert jobs["fork"]["permissions"] == {"contents": "read"}
        doc = yaml.safe_load(path.read_text())
        assert doc["concurrency"] == {
            "group": "mlops-pr-${{ github.event.pull_request.number || inputs.pull-request }}",
            "cancel-in-progress": True}
        # the dispatch input is checked to be a number before anything runs, and reaches the shell through env
        check = jobs["pipeline"]["steps"][0]
        assert check["id"] == "input" and check["if"] == "github.event_name == 'workflow_dispatch'"
        assert jobs["pipeline"]["steps"][-1]["if"] == "${{ !cancelled() && steps.input.outcome != 'failure' }}"
        assert check["env"] == {"PULL_REQUEST": "${{ inputs.pull-request }}"}
        assert '[[ ! "$PULL_REQUEST" =~ ^[1-9][0-9]{0,9}$ ]]' in check["run"] and "exit 1" in check["run"]
        assert set(doc[True]) == {"pull_request", "workflow_dispatch"}  # `on` (YAML 1.1 reads it as True)
        assert doc[True]["workflow_dispatch"]["inputs"]["pull-request"]["required"] is True


def _workflows(generated: Path, *names: str) -> list[Path]:
    return [p for n in names for p in (REPO / ".github/workflows" / f"{n}.yml",
                                       generated / ".github/workflows" / f"mlops-{n}.yml")]


# workflow -> its privileged jobs (deploy: one per environment, each with its environment fixed)
PRIVILEGED = {"promote": ("promote",), "deploy": ("staging", "production"), "monitor": ("monitor",)}


def _label_check(path: Path) -> str:
    """The python of job `runner`'s label check, as the step runs it."""
    step = next(s for s in yaml.safe_load(path.read_text())["jobs"]["runner"]["steps"] if s.get("id") == "labels")
    return str(step["run"]).split("<<'PY'\n", 1)[1].rsplit("PY\n", 1)[0]


@pytest.mark.parametrize(("privileged", "pull_requests", "ok"), [
    (None, None, True),  # the defaults: ["self-hosted", "mlops-deploy"] against ["self-hosted", "gpu"]
    ('["self-hosted"]', None, False),  # what every privileged job defaulted to: any PR runner matches it
    ('["self-hosted", "gpu"]', None, False),
    ('["self-hosted", "linux", "X64"]', None, False),  # generic labels every runner has
    ('["self-hosted", "cml-gpu"]', None, False),  # the cloud runner that runs pull requests
    ('["self-hosted", "deploy"]', '["self-hosted", "deploy", "gpu"]', False),
    ('["self-hosted", "linux", "mlops-deploy"]', '["self-hosted", "linux", "gpu"]', True),
    ('"self-hosted"', None, False),
    ("[]", None, False),
])
def test_privileged_jobs_refuse_runner_labels_a_pull_request_runner_could_match(
        generated: Path, tmp_path: Path, privileged: str | None, pull_requests: str | None, ok: bool) -> None:
    for path in _workflows(generated, *PRIVILEGED):
        doc = yaml.safe_load(path.read_text())
        for name in PRIVILEGED[path.stem.removeprefix("mlops-")]:
            job = doc["jobs"][name]
            # The privileged job is only ever scheduled on the labels that job `runner` checked, on a GitHub-hosted
            # runner, before: a check inside the job itself would run where the job already landed.
            assert job["runs-on"] == "${{ fromJSON(needs.runner.outputs.labels) }}", path
            assert job["needs"] == "runner" and doc["jobs"]["runner"]["runs-on"] == "ubuntu-latest"
        step = next(s for s in doc["jobs"]["runner"]["steps"] if s.get("id") == "labels")
        assert "'[\"self-hosted\", \"mlops-deploy\"]'" in step["env"]["PRIVILEGED"]
        out = tmp_path / "output"
        out.write_text("")
        env = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(out),
               "PRIVILEGED": privileged or '["self-hosted", "mlops-deploy"]',
               "PULL_REQUESTS": pull_requests or '["self-hosted", "gpu"]'}
        proc = subprocess.run([sys.executable, "-c", _label_check(path)], env=env, capture_output=True, text=True,
                              check=False)
        assert (proc.returncode == 0) is ok, f"{path}: {proc.stdout}{proc.stderr}"
        if ok:
            assert out.read_text().startswith("labels=[") and "mlops-deploy" in out.read_text()
        else:
            assert "::error title=mlops runner::" in proc.stdout + proc.stderr and out.read_text() == ""


def test_privileged_jobs_never_adopt_a_runner_resident_environment(generated: Path) -> None:
    """Code of a pull request that ran on the same runner as the same user could have rewritten it: jobs with a
    write token or secrets install the toolkit from the hashed locks instead."""
    for path in _workflows(generated, "promote", "deploy", "monitor", "pr-comment"):
        for step in _steps(yaml.safe_load(path.read_text())):
            if "/actions/setup" in str(step.get("uses", "")):
                assert "venv" not in (step.get("with") or {}), f"{path}: {step}"
                assert (step.get("with") or {}).get("cache") is False, f"{path}: {step}"
    assert "MLOPS_TOOLKIT_VENV" not in "".join(p.read_text() for p in _workflows(generated, "promote", "deploy",
                                                                                 "monitor", "pr-comment"))


def test_uv_and_the_build_backend_are_installed_from_a_hashed_lock() -> None:
    action = (REPO / "actions/setup/action.yml").read_text()
    assert "astral-sh/setup-uv" not in action
    script = (REPO / "actions/setup/install.sh").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes \\\n\s+--requirement \"\$root/requirements/bootstrap.lock\"",
                     script), script
    assert "--no-build-isolation" in script
    lock = (REPO / "requirements/bootstrap.lock").read_text()
    pins = re.findall(r"^([a-z0-9_.-]+)==\S+ \\$", lock, re.MULTILINE)
    assert sorted(pins) == ["setuptools", "uv"]
    for block in re.split(r"\n(?=[a-z])", lock.split("\n", 2)[2]):
        assert "--hash=sha256:" in block, block


def test_pull_requests_hold_no_secrets_and_the_cloud_runner_is_launched_from_a_trusted_workflow(
        generated: Path) -> None:
    for path in _workflows(generated, "pr"):
        text = path.read_text()
        assert "secrets." not in text and "cml runner" not in text and "environment:" not in text, path
    for path in _workflows(generated, "cml-runner"):
        doc = yaml.safe_load(path.read_text())
        on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on` as true
        assert set(on) == {"pull_request_target"}  # the default branch's file, whatever the pull request changes
        job = doc["jobs"]["launch"]
        assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
        assert job["permissions"] == {"id-token": "write"} and job["environment"] == "mlops-cml-runner"
        assert not any("checkout" in str(s.get("uses", "")) for s in job["steps"])  # no code of the PR
        text = path.read_text()
        assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text  # OIDC, no static keys
        launch = next(s for s in job["steps"] if "run" in s)
        assert "--single" in launch["run"]
        assert int(re.search(r"--idle-timeout=(\d+)", launch["run"])[1]) <= 300
        assert "github.event" not in str(launch)


def test_deploy_runs_the_default_branchs_definition_in_a_fixed_environment(generated: Path) -> None:
    for path in _workflows(generated, "deploy"):
        doc = yaml.safe_load(path.read_text())
        on = doc[True] if True in doc else doc["on"]
        assert set(on) == {"workflow_call", "workflow_dispatch"}, path  # never a tag push: that runs the tag's file
        # The environment is written in each job, never taken from an input: the input (a choice when dispatched)
        # only picks which job runs, and job `runner` refuses any other value.
        assert on["workflow_dispatch"]["inputs"]["environment"]["options"] == ["production", "staging"]
        for env in ("staging", "production"):
            job = doc["jobs"][env]
            assert job["environment"] == {"name": env} and job["if"] == f"inputs.environment == '{env}'", path
            assert next(s for s in job["steps"] if s.get("id") == "deploy")["with"]["environment"] == env
        assert set(doc["jobs"]) == {"runner", "staging", "production"}
        assert doc["concurrency"]["group"] == "mlops-deploy-${{ inputs.environment }}"
        assert 'staging|production) ;;' in doc["jobs"]["runner"]["steps"][1]["run"]
        check = doc["jobs"]["runner"]["steps"][0]
        assert '"$GITHUB_REF" != "refs/heads/$DEFAULT_BRANCH"' in check["run"]
    for path in _workflows(generated, "stage-tag"):
        doc = yaml.safe_load(path.read_text())
        job = doc["jobs"]["dispatch"]
        # Runs the tagged commit's file: it must hold nothing worth taking.
        assert job["permissions"] == {"actions": "write"} and "environment" not in job
        assert job["runs-on"] == "ubuntu-latest" and len(job["steps"]) == 1
        assert "secrets." not in path.read_text() and "checkout" not in path.read_text()
        assert job["steps"][0]["env"]["DEFAULT_BRANCH"] == "${{ github.event.repository.default_branch }}"


def test_no_comment_claims_a_boundary_the_workflow_cannot_enforce(generated: Path) -> None:
    for path in [*_shipped(generated), *sorted((REPO / "mlops/templates/init").glob("*.yml"))]:
        text = " ".join(path.read_text().split())
        assert "never reach a self-hosted runner" not in text, path
        assert "same-repository pull requests only, see above" not in text, path
        assert "a tag pushed by a person): the runner" not in text, path


def test_repository_hygiene_files() -> None:
    """What OpenSSF Scorecard looks for: a security policy, a licence, dependency-update configuration."""
    security = (REPO / "SECURITY.md").read_text()
    for boundary in ("Pull-request code", "DVC remote", "Tags", "KServe", "clients", "Fork", "Supply chain"):
        assert boundary.lower() in security.lower(), boundary
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    dependabot = yaml.safe_load((REPO / ".github/dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"] for u in dependabot["updates"]}
    assert {"pip", "github-actions"} <= ecosystems


OURS_OF = {"mlops-pr.yml": "pr.yml", "mlops-pr-comment.yml": "pr-comment.yml", "mlops-promote.yml": "promote.yml",
           "mlops-deploy.yml": "deploy.yml", "mlops-monitor.yml": "monitor.yml",
           "mlops-stage-tag.yml": "stage-tag.yml", "mlops-cml-runner.yml": "cml-runner.yml",
           "mlops-sweep.yml": "sweep.yml"}


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
        rendered = re.sub(rf"(?<![\w-]){re.escape(ours_name)}", theirs, rendered)
    ours = yaml.safe_load((REPO / ".github/workflows" / OURS_OF[template]).read_text())
    theirs = yaml.safe_load(rendered)
    assert theirs == ours
