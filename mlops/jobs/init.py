"""`mlops init`: install the GitOps loop into a DVC project that exists already (not one of ours).

It writes the workflows (pull request, fork commenter, promote, deploy, monitor) that call this toolkit's
actions pinned by the release commit's SHA, the actionlint config, and `gates:` / `registry:` sections appended to
params.yaml (the user's text stays byte for byte). What it reads off the project: the model artifact (the one
resolver, `project.resolve_artifact`), the metrics files dvc.yaml declares and their headline metric, the stage
that serves traffic when GTO tags already name one (`prod`), the project's requirements file.

Idempotent: a second run changes nothing. It never overwrites a file the user changed: the sha256 of every file
it wrote is recorded in `.mlops/init.json`; a file whose content is not what was recorded is kept (`--force`
overwrites it), a file still as written is brought up to date (a new release's SHA).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mlops import __version__, dvc, git, project
from mlops.config import PARAMS_FILE, RegistryParams, load_sections
from mlops.errors import DvcError, InitError, ParamsInvalid
from mlops.files import load_yaml, parse_structured
from mlops.gates import metrics_of
from mlops.progress import Progress, silent
from mlops.registry.tags import read_state

RECORD = Path(".mlops/init.json")
RECORD_FORMAT = "mlops.init/1"
TOOLKIT_REPO = "mlops-toolkit/mlops"
# The toolkit's release commit that `mlops init` pins the actions to, set when a release is cut; until then (and
# in tests) the CLI takes it as --actions-sha.
RELEASE_SHA: str | None = None

# template -> where it goes in the project
FILES: dict[str, str] = {
    "mlops-pr.yml": ".github/workflows/mlops-pr.yml",
    "mlops-pr-comment.yml": ".github/workflows/mlops-pr-comment.yml",
    "mlops-promote.yml": ".github/workflows/mlops-promote.yml",
    "mlops-deploy.yml": ".github/workflows/mlops-deploy.yml",
    "mlops-monitor.yml": ".github/workflows/mlops-monitor.yml",
    "actionlint.yaml": ".github/actionlint.yaml",
}
# Placeholders a template line may leave out: the line goes when the value is empty.
_OPTIONAL = ("__EXTRAS__", "__REQUIREMENTS__")
_SHA = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
_VERSION = re.compile(r"v\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")
_REQUIREMENTS = ("requirements.lock", "requirements.txt", "requirements/runtime.lock", "requirements/main.txt")

FileAction = Literal["created", "updated", "unchanged", "kept", "overwritten"]


@dataclass(frozen=True)
class Actions:
    """Which release of this toolkit's actions the workflows pin."""

    repo: str = TOOLKIT_REPO  # owner/name on GitHub
    sha: str = ""  # the release commit, 40 hex
    version: str = f"v{__version__}"  # the release it is, for the comment beside the SHA


@dataclass(frozen=True)
class FileOutcome:
    path: str  # relative to the project
    action: FileAction
    reason: str = ""


@dataclass(frozen=True)
class InitResult:
    root: Path
    actions: Actions
    artifact: str | None  # the model artifact the registry will version
    metrics_files: tuple[str, ...]
    headline: str | None  # the metric the gate added watches
    production_stage: str
    requirements: str | None  # the project's requirements file the workflows install
    files: tuple[FileOutcome, ...]
    params_added: tuple[str, ...]  # sections appended to params.yaml
    notes: tuple[str, ...]
    next_steps: tuple[str, ...]


def check_actions(actions: Actions) -> Actions:
    """ACTIONS as given, or InitError naming the bad part (they are pasted into YAML and must pin exactly)."""
    if not _SHA.fullmatch(actions.sha):
        raise InitError(f"actions SHA '{actions.sha}' is not a full 40-character commit SHA",
                        hint="pass the toolkit's release commit: --actions-sha $(git rev-parse vX.Y.Z^{commit})")
    if not _REPO.fullmatch(actions.repo):
        raise InitError(f"actions repository '{actions.repo}' is not OWNER/NAME", hint=f"e.g. {TOOLKIT_REPO}")
    if not _VERSION.fullmatch(actions.version):
        raise InitError(f"actions version '{actions.version}' is not vX.Y.Z", hint="e.g. v0.1.0")
    return actions


def _project_root(path: Path) -> Path:
    root = git.toplevel(path)
    if root.resolve() != path.resolve():
        raise InitError(f"{path}: not the top of its git repository ({root})",
                        hint="run mlops init at the repository's root, where dvc.yaml is")
    if not (root / dvc.DVC_YAML).is_file() or not (root / ".dvc").is_dir():
        raise DvcError(f"{root}: not a DVC project (no dvc.yaml or no .dvc/)",
                       hint="`dvc init`, then declare the pipeline in dvc.yaml")
    return root


def _headline(root: Path, metrics_files: list[str], configured: str | None) -> str | None:
    files = {}
    for rel in metrics_files:
        path = root / rel
        if path.is_file():
            files[rel] = parse_structured(rel, path.read_bytes())
    return project.headline(configured, metrics_of(files, metrics_files))


def _production_stage(root: Path, registry: RegistryParams, artifact: str | None) -> str:
    """The configured stage, else `prod` when the project's GTO tags use it and not `production`."""
    if "production_stage" in registry.model_fields_set or artifact is None:
        return registry.production_stage
    state, _ = read_state(root)
    stages = set(state[artifact].stages) if artifact in state else set()
    return "prod" if "prod" in stages and "production" not in stages else registry.production_stage


def _uses_mlops_stages(dvc_yaml: dict[str, Any]) -> bool:
    stages = dvc_yaml.get("stages") or {}
    return isinstance(stages, dict) and any("mlops stage" in str(s.get("cmd", "")) for s in stages.values()
                                            if isinstance(s, dict))


def render(template: str, values: dict[str, str]) -> str:
    """TEMPLATE with its placeholders filled; lines with an empty optional placeholder are left out."""
    out = []
    for line in template.splitlines(keepends=True):
        if any(key in line and not values.get(key) for key in _OPTIONAL):
            continue
        for key, value in values.items():
            line = line.replace(key, value)
        out.append(line)
    return "".join(out)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_record(root: Path) -> dict[str, str]:
    path = root / RECORD
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InitError(f"{path}: not the JSON that mlops init writes",
                        hint="delete it (the files it lists are then treated as yours) and rerun") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise InitError(f"{path}: no 'files' record", hint="delete it and rerun mlops init")
    return {str(k): str(v) for k, v in files.items()}


def _place(root: Path, rel: str, content: str, recorded: str | None, force: bool) -> FileOutcome:
    """Write CONTENT to REL unless the user changed what is there; see the module docstring."""
    path = root / rel
    new = content.encode("utf-8")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(new)
        return FileOutcome(rel, "created")
    current = _sha256(path.read_bytes())
    if current == _sha256(new):
        return FileOutcome(rel, "unchanged")
    if recorded is not None and current == recorded:
        path.write_bytes(new)
        return FileOutcome(rel, "updated", "as mlops init wrote it before: brought up to date")
    if force:
        path.write_bytes(new)
        return FileOutcome(rel, "overwritten", "--force")
    why = "changed since mlops init wrote it" if recorded is not None else "not written by mlops init"
    return FileOutcome(rel, "kept", why)


def _sections_text(missing: dict[str, Any]) -> str:
    body = yaml.safe_dump(missing, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return ("\n# Added by `mlops init` (mlops " + __version__ + "): what promotion checks and what the registry "
            "versions.\n# Tune the gates to your metrics; see the toolkit's README, \"Adopting it in another repo\".\n"
            + body)


def _append_params(root: Path, sections: dict[str, Any]) -> tuple[str, ...]:
    """Append the SECTIONS that params.yaml lacks, as text after the user's own (never reformatted)."""
    path = root / PARAMS_FILE
    original = path.read_bytes() if path.is_file() else b""
    raw = load_yaml(original, str(path), ParamsInvalid) if original.strip() else {}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsInvalid(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}",
                            hint="add gates: and registry: yourself")
    missing = {k: v for k, v in sections.items() if k not in raw}
    if not missing:
        return ()
    text = original.decode("utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    text += _sections_text(missing)
    merged = load_yaml(text, str(path), ParamsInvalid)
    if not isinstance(merged, dict) or any(merged.get(k) != v for k, v in raw.items()) \
            or any(merged.get(k) != v for k, v in missing.items()):
        raise ParamsInvalid(f"{path}: appending {', '.join(missing)} would change how the file reads "
                            "(a flow-style top level?)",
                            hint=f"add {' and '.join(f'{k}:' for k in missing)} to it yourself (README: adopting it)")
    path.write_text(text, encoding="utf-8")
    return tuple(missing)


def _next_steps(production: str, requirements: str | None, kept: bool) -> tuple[str, ...]:
    steps = [
        "Commit what mlops init wrote (.github/, .mlops/init.json, params.yaml) and open a pull request.",
        "Runners: pull requests of this repository run on a self-hosted runner with the labels [self-hosted, gpu] "
        "(set the repository variable MLOPS_RUNNER_LABELS to a JSON list to change them; MLOPS_CML_CLOUD starts "
        "an ephemeral cloud GPU runner with CML instead). Promote and deploy run on [self-hosted] "
        "(MLOPS_DEPLOY_RUNNER_LABELS), beside the model server. Fork pull requests are routed to GitHub-hosted "
        "runners, but a fork can edit that routing in its own pull request: require approval for workflows from "
        "all outside contributors (Settings > Actions), keep the self-hosted runners in a runner group that "
        "public repositories cannot use, and prefer ephemeral runners.",
        "DVC remote: the runners need read access to it (write access for same-repository pull requests, which "
        "push the run cache): give the self-hosted runner its credentials, or pass them as secrets in the env: of "
        "the pipeline step (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, ...).",
        "Create the `production` environment (Settings > Environments), with required reviewers if a person must "
        "approve each deploy; the model server's admin token goes into its secret MLOPS_ADMIN_TOKEN.",
        f"Stage tags: deploys assign `{production}` (NAME#{production}#N); pushing such a tag by hand deploys it.",
    ]
    if requirements is None:
        steps.insert(1, "Dependencies: no requirements file was found; add `requirements: <your lock file>` to the "
                        "setup steps so that the pipeline's stages find their packages on the runner.")
    if kept:
        steps.insert(0, "Some files were kept because you changed them: compare them with what mlops init would "
                        "write (rerun with --force to overwrite).")
    return tuple(steps)


def init(path: Path, actions: Actions, *, force: bool = False, artifact: str | None = None,
         progress: Progress = silent) -> InitResult:
    """Install the mlops workflows and config into the DVC project at PATH; see the module docstring."""
    actions = check_actions(actions)
    root = _project_root(path)
    sections = load_sections(root / PARAMS_FILE)
    registry = sections.registry if artifact is None else sections.registry.model_copy(update={"artifact": artifact})
    notes: list[str] = []
    model: str | None = None
    if registry.artifact is None and not any(a.type == "model" for a in dvc.artifacts(root).values()):
        notes.append(f"{dvc.DVC_YAML} declares no artifact of type model: the report works, promote and deploy "
                     "need one (declare the model under `artifacts:` with `type: model`, then rerun mlops init)")
    else:
        model = project.resolve_artifact(root, registry).name  # ambiguous or unknown: its error names the choices
    dvc_yaml = dvc.read_dvc_yaml(root)
    metrics_files = dvc.metrics_paths(dvc_yaml)
    headline = _headline(root, metrics_files, sections.report.headline)
    if not metrics_files:
        notes.append("dvc.yaml declares no metrics: the report will have no metrics table and no gate is added")
    elif headline is None:
        notes.append(f"no metric found in {', '.join(metrics_files)} (not reproduced yet?): no gate added")
    production = _production_stage(root, registry, model)
    requirements = next((r for r in _REQUIREMENTS if (root / r).is_file()), None)
    progress(f"init: model artifact {model or 'none'}, metrics {', '.join(metrics_files) or 'none'}, "
             f"production stage {production}")

    values = {"__ACTIONS__": actions.repo, "__SHA__": actions.sha, "__VERSION__": actions.version,
              "__PRODUCTION__": production, "__EXTRAS__": "pipeline" if _uses_mlops_stages(dvc_yaml) else "",
              "__REQUIREMENTS__": requirements or ""}
    recorded = _read_record(root)
    templates = resources.files("mlops") / "templates" / "init"
    outcomes = []
    for name, rel in FILES.items():
        outcome = _place(root, rel, render(templates.joinpath(name).read_text(encoding="utf-8"), values),
                         recorded.get(rel), force)
        progress(f"init: {outcome.path}: {outcome.action}")
        outcomes.append(outcome)

    wanted: dict[str, Any] = {}
    if headline is not None:
        higher = sections.report.spec(headline).higher_is_better
        wanted["gates"] = {headline: {"max_drop": 0.01} if higher else {"max_rise": 0.01}}
    reg: dict[str, Any] = {}
    if model is not None:
        reg["artifact"] = model
    if production != "production":
        reg["production_stage"] = production
    if reg:
        wanted["registry"] = reg
    added = _append_params(root, wanted)

    # Record what is ours now: files written or found as we would write them. Kept files keep their old record.
    record = dict(recorded)
    for outcome in outcomes:
        if outcome.action != "kept":
            record[outcome.path] = _sha256((root / outcome.path).read_bytes())
    data = {"format": RECORD_FORMAT, "mlops": __version__,
            "actions": {"repo": actions.repo, "sha": actions.sha, "version": actions.version}, "files": record}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    record_path = root / RECORD
    if not record_path.is_file() or record_path.read_text(encoding="utf-8") != text:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(text, encoding="utf-8")

    kept = any(o.action == "kept" for o in outcomes)
    return InitResult(root, actions, model, tuple(metrics_files), headline, production, requirements,
                      tuple(outcomes), added, tuple(notes), _next_steps(production, requirements, kept))
