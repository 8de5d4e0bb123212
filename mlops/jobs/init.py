"""`mlops init`: install the GitOps loop into a DVC project that exists already (not one of ours).

It writes the workflows (pull request, fork commenter, promote, deploy, monitor; with `--batch` scheduled batch
scoring too) that call this toolkit's actions pinned by the release commit's SHA, the actionlint config, and
`gates:` / `registry:` sections appended to params.yaml (the user's text stays byte for byte). What it reads off
the project: the model artifact (the one resolver, `project.resolve_artifact`), the metrics files dvc.yaml
declares and their headline metric, the stage that serves traffic when GTO tags already name one (`prod`), the
project's requirements file.

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

from mlops import __version__, dvc, git, project, versions
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
    "mlops-stage-tag.yml": ".github/workflows/mlops-stage-tag.yml",
    "mlops-cml-runner.yml": ".github/workflows/mlops-cml-runner.yml",
    "mlops-sweep.yml": ".github/workflows/mlops-sweep.yml",  # `/mlops sweep` and `/mlops apply` on pull requests
    "actionlint.yaml": ".github/actionlint.yaml",
    # alerting rules and a Grafana dashboard for the server's and the monitor's metrics (templates/observability)
    "../observability/alerts.yml": "observability/prometheus-rules.yml",
    "../observability/dashboard.json": "observability/grafana-dashboard.json",
}
# Written only when asked (`mlops init --batch`): scheduled batch scoring needs input and output locations that only
# the adopter knows. Once written, a later plain `mlops init` leaves the file alone.
BATCH_FILES: dict[str, str] = {"mlops-batch.yml": ".github/workflows/mlops-batch.yml"}
# Placeholders a template line may leave out: the line goes when the value is empty.
_OPTIONAL = ("__EXTRAS__", "__REQUIREMENTS__")
_SHA = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
# Folders never searched for requirements (environments, vendored trees, tool state).
_SKIP_DIRS = frozenset({".git", ".dvc", ".venv", "venv", "env", ".tox", ".nox", "node_modules", "site-packages",
                        "__pycache__", ".mlops", ".github", "build", "dist"})
# Names of requirements files that describe something else than what the pipeline runs.
_OTHER_PURPOSE = re.compile(r"(?:^|[-_.])(?:dev|test|tests|testing|docs?|lint|ci|build|bench)(?:[-_.]|$)")
# A requirement pinned to one version (== or ===), or a direct reference (URL / VCS with a commit, a wheel file).
_PINNED = re.compile(r"(?:===?\s*[^\s,;*]+\s*(?:;|$|\s--hash|\s\\))|(?:\s@\s|^[a-z+]+://|\.whl\b)")

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
class Requirements:
    """The project's requirements as `mlops init` found them: the file the setup steps install, how many of its
    requirements pin an exact version, and the other candidates it saw."""

    path: str  # relative to the project; `pyproject.toml` for [project] dependencies
    requirements: int  # requirement lines (options and comments left out)
    pinned: int
    hashed: bool  # every requirement carries --hash (a lock uv installs with --require-hashes)
    candidates: tuple[str, ...]

    @property
    def pins_nothing(self) -> bool:
        return self.requirements > 0 and self.pinned == 0


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
    package_stage: str | None = None  # the dvc.yaml text of a `package` stage to add (None: packaged already)


def check_actions(actions: Actions) -> Actions:
    """ACTIONS as given, or InitError naming the bad part (they are pasted into YAML and must pin exactly)."""
    if not _SHA.fullmatch(actions.sha):
        raise InitError(f"actions SHA '{actions.sha}' is not a full 40-character commit SHA",
                        hint="pass the toolkit's release commit: --actions-sha $(git rev-parse vX.Y.Z^{commit})")
    if not _REPO.fullmatch(actions.repo):
        raise InitError(f"actions repository '{actions.repo}' is not OWNER/NAME", hint=f"e.g. {TOOLKIT_REPO}")
    if not versions.is_valid(actions.version):
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


def _requirement_lines(text: str) -> list[str]:
    """The requirement lines of a pip requirements file: comments, blanks and options (-r, -c, --index-url...)
    dropped, continuation lines (`\\` then `--hash=...`) joined."""
    joined = re.sub(r"\\\s*\n", " ", text)
    lines = [ln.split(" #", 1)[0].strip() for ln in joined.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith(("#", "-"))]


def _pyproject_dependencies(path: Path) -> list[str] | None:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    deps = (data.get("project") or {}).get("dependencies") if isinstance(data, dict) else None
    return [str(d) for d in deps] if isinstance(deps, list) and deps else None


def _rank(rel: str) -> tuple[int, int, int, str]:
    """Sort key among candidates: a lock (pinned, hashed) before a plain list before pyproject.toml's ranges, then
    the top level before one folder down, then the file named for running the project before its variants."""
    name = rel.rsplit("/", 1)[-1]
    depth = rel.count("/")
    kind = 2 if name == "pyproject.toml" else 0 if name.endswith(".lock") or "lock" in name else 1
    exact = 0 if name in ("requirements.txt", "requirements.lock") else 1
    return kind, depth, exact, rel


def find_requirements(root: Path) -> Requirements | None:
    """The project's requirements where projects keep them: `requirements*.txt` or a pip-installable lock
    (`requirements*.lock`, `*.lock` under a requirements/ folder) at the top or one folder down, else the
    `[project] dependencies` of pyproject.toml (top or one down). Files for development, tests or docs are
    skipped while another candidate exists. None when there is nothing."""
    found: list[str] = []
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS
                             and not p.name.startswith("."))]
    for folder in folders:
        for path in sorted(folder.iterdir()):
            name = path.name
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            if (name.startswith("requirements") and name.endswith((".txt", ".lock"))) \
                    or (folder.name == "requirements" and name.endswith((".txt", ".lock"))) \
                    or (name == "pyproject.toml" and _pyproject_dependencies(path)):
                found.append(rel)
    if not found:
        return None
    for_running = [r for r in found if not _OTHER_PURPOSE.search(r.rsplit("/", 1)[-1].rsplit(".", 1)[0])]
    chosen = sorted(for_running or found, key=_rank)[0]
    if chosen.endswith("pyproject.toml"):
        lines = _pyproject_dependencies(root / chosen) or []
    else:
        lines = _requirement_lines((root / chosen).read_text(encoding="utf-8", errors="replace"))
    pinned = sum(1 for ln in lines if _PINNED.search(ln))
    hashed = bool(lines) and all("--hash=" in ln for ln in lines)
    return Requirements(chosen, len(lines), pinned, hashed, tuple(r for r in sorted(found, key=_rank) if r != chosen))


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


# Placeholders of the suggested package stage: what init cannot read off the project.
PACKAGE_PLACEHOLDERS = ("<TARGET COLUMN>", "<binary|multiclass|regression>", "<HELD-OUT DATA>", "<MODEL FILE>")


def _data_paths(dvc_yaml: dict[str, Any]) -> list[str]:
    """Every dependency and output path dvc.yaml names, in order."""
    out: list[str] = []
    stages = dvc_yaml.get("stages") or {}
    for stage in stages.values() if isinstance(stages, dict) else ():
        for key in ("deps", "outs"):
            for entry in (stage.get(key) or []) if isinstance(stage, dict) else []:
                path = next(iter(entry), None) if isinstance(entry, dict) else entry
                if isinstance(path, str) and path not in out:
                    out.append(path)
    return out


def package_stage(root: Path, artifact: dvc.Artifact, dvc_yaml: dict[str, Any]) -> str | None:
    """The dvc.yaml text of a `mlops package` stage for ARTIFACT, or None when it is packaged already (an
    mlops-model.yaml in it, or a stage that runs `mlops package`). Its output is a folder of its own (`package`):
    an output inside the training stage's would overlap it, so the artifact's path moves there too. What cannot be
    read off the project (the target, the task, sometimes the data) is a <PLACEHOLDER>."""
    from mlops.formats.manifest import MANIFEST_FILE
    from mlops.packaging import SUFFIX_RUNTIMES

    where = root / artifact.path
    stages = dvc_yaml.get("stages") or {}
    if (where / MANIFEST_FILE).is_file() or (isinstance(stages, dict) and any(
            "mlops package" in str(s.get("cmd", "")) for s in stages.values() if isinstance(s, dict))):
        return None
    if where.is_dir():
        found = sorted(p.name for p in where.iterdir() if p.is_file() and p.suffix.lower() in SUFFIX_RUNTIMES)
        model = f"{artifact.path.rstrip('/')}/{found[0] if found else PACKAGE_PLACEHOLDERS[3]}"
    else:
        model = artifact.path
    held_out = [p for p in _data_paths(dvc_yaml) if Path(p).suffix.lower() in (".csv", ".parquet", ".pq")
                and set(re.findall(r"[a-z]+", Path(p).stem.lower())) & project.HELD_OUT]
    data = held_out[0] if held_out else PACKAGE_PLACEHOLDERS[2]
    out = "package" if artifact.path.rstrip("/") != "package" else "model-package"
    cmd = (f"mlops package --model {model} --data {data} --target {PACKAGE_PLACEHOLDERS[0]} "
           f"--task {PACKAGE_PLACEHOLDERS[1]}")
    if Path(model).suffix.lower() not in SUFFIX_RUNTIMES:
        cmd += " --runtime <xgboost|lightgbm|sklearn|onnx|python>"
    doc = {"stages": {"package": {"cmd": f"{cmd} --out {out}", "deps": [model, data], "outs": [out]}},
           "artifacts": {artifact.name: {"path": out, "type": "model"}}}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


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


def _next_steps(production: str, requirements: Requirements | None, kept: bool,
                package: str | None = None, batch: bool = False) -> tuple[str, ...]:
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
    steps.append("Sweeps (.github/workflows/mlops-sweep.yml): a `/mlops sweep --set KEY=V1,V2` comment on a pull "
                 "request (or the label mlops-sweep) runs the settings as DVC experiments and keeps one leaderboard "
                 "comment; `/mlops apply NAME` commits the chosen params. Only writers on same-repository pull "
                 "requests are served.")
    steps.append("Retraining (mlops-monitor.yml, MLOPS_RETRAIN=true): a GitHub App token (repository variable "
                 "MLOPS_APP_ID, secret MLOPS_APP_PRIVATE_KEY) lets the retraining pull request start mlops-pr.yml by "
                 "itself; without one, monitor dispatches mlops-pr.yml on the branch (the job has actions: write). "
                 "Make your training stage depend on monitor.retrain_dir (data/feedback/) to train on the new data.")
    steps.append("Scale out (optional): a train stage of your own can train on a Dask cluster as the built-in one "
                 "does with `train.dask`: read a scheduler address from params.yaml (`local` for a LocalCluster), "
                 "open `distributed.Client(address)` and fit with xgboost.dask or lightgbm.dask on a "
                 "dask.dataframe; the README's \"Training on Dask\" has the stage, and what stays deterministic.")
    if batch:
        steps.append("Batch scoring (.github/workflows/mlops-batch.yml): set the repository variables "
                     "MLOPS_BATCH_INPUT and MLOPS_BATCH_OUTPUT (paths on the privileged runner or s3://, gs:// URLs), "
                     "optionally MLOPS_BATCH_REJECTS and MLOPS_DASK_SCHEDULER, then MLOPS_BATCH=true; it scores "
                     f"nightly with the version `{production}` points at (edit the cron to change when).")
    if requirements is None:
        steps.insert(1, "Dependencies: no requirements file was found (requirements*.txt or a lock file at the top "
                        "or one folder down, or [project] dependencies in pyproject.toml); add `requirements: <your "
                        "lock file>` to the setup steps so that the pipeline's stages find their packages.")
    elif requirements.pinned < requirements.requirements:
        steps.insert(1, f"Pin {requirements.path}: CI installs whatever versions are newest on the day it runs, so "
                        "two runs of the same commit can train different models. Lock it, e.g. `uv pip compile "
                        f"--generate-hashes {requirements.path} -o requirements.lock`, and rerun mlops init.")
    if package is not None:
        steps.insert(0, "Package the model: merge the `package` stage printed below into dvc.yaml (its `stages:` "
                        "and its `artifacts:` entry, whose path moves to the package folder), replace each "
                        "<PLACEHOLDER> (the target column, the task, the held-out data if none was found), then "
                        "`dvc repro package` and commit. mlops init does not edit dvc.yaml itself: rewriting it "
                        "would drop your comments and formatting.")
    if kept:
        steps.insert(0, "Some files were kept because you changed them: compare them with what mlops init would "
                        "write (rerun with --force to overwrite).")
    return tuple(steps)


def init(path: Path, actions: Actions, *, force: bool = False, artifact: str | None = None, batch: bool = False,
         progress: Progress = silent) -> InitResult:
    """Install the mlops workflows and config into the DVC project at PATH; see the module docstring. BATCH: also
    the scheduled batch-scoring workflow (BATCH_FILES)."""
    actions = check_actions(actions)
    root = _project_root(path)
    sections = load_sections(root / PARAMS_FILE)
    registry = sections.registry if artifact is None else sections.registry.model_copy(update={"artifact": artifact})
    notes: list[str] = []
    model: str | None = None
    found_artifact: dvc.Artifact | None = None
    if registry.artifact is None and not any(a.type == "model" for a in dvc.artifacts(root).values()):
        notes.append(f"{dvc.DVC_YAML} declares no artifact of type model: the report works, promote and deploy "
                     "need one (declare the model under `artifacts:` with `type: model`, then rerun mlops init)")
    else:
        found_artifact = project.resolve_artifact(root, registry)  # ambiguous or unknown: its error names them
        model = found_artifact.name
    dvc_yaml = dvc.read_dvc_yaml(root)
    stage_text = package_stage(root, found_artifact, dvc_yaml) if found_artifact is not None else None
    if stage_text is not None:
        notes.append(f"model artifact {model}: no mlops-model.yaml, so serve, deploy and monitor cannot load it "
                     "yet: add the `package` stage printed below to dvc.yaml")
    metrics_files = dvc.metrics_paths(dvc_yaml)
    headline = _headline(root, metrics_files, sections.report.headline)
    if not metrics_files:
        notes.append("dvc.yaml declares no metrics: the report will have no metrics table and no gate is added")
    elif headline is None:
        notes.append(f"no metric found in {', '.join(metrics_files)} (not reproduced yet?): no gate added")
    production = _production_stage(root, registry, model)
    requirements = find_requirements(root)
    if requirements is not None:
        others = f" (also found: {', '.join(requirements.candidates)})" if requirements.candidates else ""
        notes.append(f"requirements: {requirements.path} is installed by the setup steps{others}")
        if requirements.pins_nothing:
            notes.append(f"warning: {requirements.path} pins nothing (no `==` version in its "
                         f"{requirements.requirements} requirements): CI runs are not reproducible")
        elif requirements.pinned < requirements.requirements:
            notes.append(f"warning: {requirements.path} pins {requirements.pinned} of its "
                         f"{requirements.requirements} requirements: CI runs are not reproducible")
    progress(f"init: model artifact {model or 'none'}, metrics {', '.join(metrics_files) or 'none'}, "
             f"production stage {production}")

    values = {"__ACTIONS__": actions.repo, "__SHA__": actions.sha, "__VERSION__": actions.version,
              "__PRODUCTION__": production, "__EXTRAS__": "pipeline" if _uses_mlops_stages(dvc_yaml) else "",
              "__REQUIREMENTS__": requirements.path if requirements else ""}
    recorded = _read_record(root)
    templates = resources.files("mlops") / "templates" / "init"
    outcomes = []
    for name, rel in (FILES | BATCH_FILES if batch else FILES).items():
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
    if "gates" in added and headline is not None:
        measured = {"held-out": "a held-out metric", "train": "a train metric: no held-out one was found",
                    "": "the first metric: none is named for held-out data"}[project.split(headline)]
        rule = next(iter(wanted["gates"][headline]))
        notes.append(f"gate: {headline} ({measured}), {rule} 0.01 against main and production")

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
    return InitResult(root, actions, model, tuple(metrics_files), headline, production,
                      requirements.path if requirements else None, tuple(outcomes), added, tuple(notes),
                      _next_steps(production, requirements, kept, stage_text, batch), stage_text)
