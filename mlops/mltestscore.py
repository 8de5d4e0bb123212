"""The ML Test Score (Breck, Cai, Nielsen, Salib, Sculley, "The ML Test Score: A Rubric for ML Production
Readiness and Technical Debt Reduction", IEEE Big Data 2017), assessed from what a project's files show.

Scoring, as the paper defines it: each of the 28 tests (7 per section: data, model, infrastructure, monitoring)
scores 0, 0.5 when the test exists but is run by hand (a command, a config, a benchmark that a person runs) and 1
when it is automated and run repeatedly (a workflow of `.github/workflows/` runs it on a trigger: pull_request, push,
schedule, workflow_call/dispatch). Each section sums its tests; the final score is the MINIMUM of the four sums.

The evidence is read, never guessed from names alone: `dvc.yaml` (stages, outputs, plots), `params.yaml` (gates,
validate, data columns, deploy, monitor, report), the workflows (their triggers and steps: a step runs the mlops
commands of its `run:` text, of the local composite action it uses — from the action's name, description and
scripts — or of the reusable workflow it calls) and the tests folder. The mapping of each test to its evidence:

| test | 1 point (automated) | 0.5 (manual) |
| --- | --- | --- |
| data 1 schema | `data.columns` declared and a workflow runs the pipeline (`mlops run`) | columns declared |
| data 2 features beneficial | a gate on a `features.*`/`unused` metric | feature importance plotted |
| data 3 feature cost | a gate on a `*cost*`/`latency` metric of features | – |
| data 4 meta-level requirements | declared columns and a validate stage run by a workflow | a validate stage |
| data 5 privacy controls | `report.sensitive`/`data.pii` declared and checked in a workflow | declared |
| data 6 new features quickly | features declared in params.yaml, the pipeline rerun by a workflow | declared |
| data 7 feature code tested | tests/test_features.py run by a workflow (`make test`/pytest) | the test exists |
| model 1 specs reviewed | a pull_request workflow reports params and metrics (`mlops run`) | dvc.yaml, params |
| model 2 offline ~ online | a scheduled workflow runs `mlops monitor` (realised metrics) | – |
| model 3 hyperparameters tuned | a workflow runs `mlops sweep`/`dvc exp` | – |
| model 4 staleness impact | – | monitor decay per window (`monitor.max_drop`) run by a workflow |
| model 5 simpler model not better | a gate on a `baseline`/`lift` metric | – |
| model 6 quality on slices | segment metrics in dvc.yaml and the PR report run by a workflow | segment metrics |
| model 7 inclusion | a gate on a `fairness.*` metric | `report.sensitive` declared |
| infra 1 reproducible training | dvc.lock, a train seed, a fresh-clone test run by a workflow | dvc.lock and a seed |
| infra 2 model specs unit tested | tests of the training code run by a workflow | the tests exist |
| infra 3 pipeline integration tested | end-to-end tests (tests/e2e) run by a workflow | the tests exist |
| infra 4 quality validated before serving | gates configured and a workflow runs `mlops promote` | gates configured |
| infra 5 debug a single example | – | golden records in the model package |
| infra 6 canary | a workflow step runs `mlops deploy` (its canary: `deploy.canary_percent`) | deploy configured |
| infra 7 quick, safe rollback | a workflow runs `mlops rollback` | the `mlops rollback` command |
| monitoring 1 dependency notification | .github/dependabot.yml or renovate.json | hashed lock files |
| monitoring 2 data invariants in serving | a workflow runs `mlops monitor` and the pipeline validates | validate only |
| monitoring 3 training/serving skew | tests/test_features.py (serving = training) run by a workflow | the test |
| monitoring 4 staleness | `monitor.max_age_days` and a workflow runs `mlops monitor` | max_age_days set |
| monitoring 5 NaN/inf | `monitor.max_violation_share` and a workflow runs `mlops monitor` | configured |
| monitoring 6 computing performance | a workflow runs `bench/` | bench/ scripts exist |
| monitoring 7 served quality | `monitor.max_drop` and a workflow runs `mlops monitor` | configured |

Each test's evidence names what was found (the workflow and step, the gate, the file) or what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("data", "model", "infrastructure", "monitoring")
AUTOMATED_TRIGGERS = ("pull_request", "pull_request_target", "push", "schedule", "workflow_call",
                      "workflow_dispatch", "repository_dispatch", "workflow_run")
# An invocation: `mlops CMD` or `"$MLOPS" CMD` at the start of a command (a line, or after ; && || | $( ), never
# inside a message (`echo "::error title=mlops deploy::..."` runs nothing).
_MLOPS_CMD = re.compile(r"(?:^|[;&|(]|\$\()\s*(?:mlops|\"?\$\{?MLOPS\}?\"?)\s+([a-z][a-z-]+)", re.MULTILINE)
_NAME_CMD = re.compile(r"^mlops\s+([a-z][a-z-]+)")
_ARGS_CMD = re.compile(r"\bargs=\(\s*\"?([a-z][a-z-]+)")


@dataclass(frozen=True)
class Step:
    workflow: str  # file name
    job: str
    name: str
    commands: frozenset[str]  # mlops commands the step runs (directly or through a local action / workflow)
    text: str  # its run text and what it uses (for other evidence: make test, pytest, bench)


@dataclass(frozen=True)
class Facts:
    """What the rubric reads from a project."""

    dvc_yaml: Mapping[str, Any]
    params: Mapping[str, Any]
    steps: tuple[Step, ...]  # the steps of workflows with an automated trigger
    files: frozenset[str]  # repo-relative paths of interest that exist (tests, bench, lock files...)

    def running(self, command: str) -> Step | None:
        return next((s for s in self.steps if command in s.commands), None)

    def text_step(self, pattern: str) -> Step | None:
        rx = re.compile(pattern)
        return next((s for s in self.steps if rx.search(s.text)), None)

    def has(self, prefix: str) -> bool:
        return any(f == prefix or f.startswith(prefix.rstrip("/") + "/") for f in self.files)


@dataclass(frozen=True)
class TestResult:
    section: str
    number: int
    title: str
    points: float  # 0, 0.5 or 1
    evidence: str


@dataclass(frozen=True)
class Score:
    tests: tuple[TestResult, ...]

    def section_sum(self, section: str) -> float:
        return sum(t.points for t in self.tests if t.section == section)

    @property
    def sections(self) -> dict[str, float]:
        return {s: self.section_sum(s) for s in SECTIONS}

    @property
    def final(self) -> float:
        """The paper's score: the minimum of the four section sums."""
        return min(self.sections.values())


# --- reading a project ------------------------------------------------------------------------------------------------

def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return None


def _local_commands(root: Path, uses: str, seen: set[str]) -> tuple[frozenset[str], str]:
    """The mlops commands (and text) of a local composite action or reusable workflow that a step uses."""
    if not uses.startswith("./") or uses in seen:
        return frozenset(), ""
    seen.add(uses)
    target = (root / uses).resolve()
    if not str(target).startswith(str(root.resolve())):
        return frozenset(), ""
    if target.is_file():  # a reusable workflow: its steps
        steps = _workflow_steps(root, target, seen, automated_only=False)
        return frozenset(c for s in steps for c in s.commands), " ".join(s.text for s in steps)
    texts = []
    meta = _yaml(target / "action.yml") or _yaml(target / "action.yaml")
    if isinstance(meta, Mapping):
        texts.append(str(meta.get("name") or ""))
        runs = meta.get("runs") if isinstance(meta.get("runs"), Mapping) else {}
        for step in (runs.get("steps") or []) if isinstance(runs, Mapping) else []:
            if isinstance(step, Mapping):
                texts.append(str(step.get("run") or ""))
    if target.is_dir():
        texts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(target.glob("*.sh"))]
    text = "\n".join(texts)
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    commands = set(_ARGS_CMD.findall(text))
    commands |= set(_MLOPS_CMD.findall(text))
    head = _NAME_CMD.match(name)
    if head:
        commands.add(head.group(1))
    return frozenset(commands), text


def _workflow_steps(root: Path, path: Path, seen: set[str], automated_only: bool = True) -> list[Step]:
    wf = _yaml(path)
    if not isinstance(wf, Mapping):
        return []
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on:` as true
    triggers = [on] if isinstance(on, str) else list(on) if isinstance(on, list | Mapping) else []
    if automated_only and not any(t in AUTOMATED_TRIGGERS for t in triggers):
        return []
    out: list[Step] = []
    jobs = wf.get("jobs") if isinstance(wf.get("jobs"), Mapping) else {}
    for job_id, job in (jobs or {}).items():
        if not isinstance(job, Mapping):
            continue
        if isinstance(job.get("uses"), str):  # a job that calls a reusable workflow
            commands, text = _local_commands(root, job["uses"], seen)
            out.append(Step(path.name, str(job_id), f"uses {job['uses']}", commands, text))
        for i, step in enumerate(job.get("steps") or []):
            if not isinstance(step, Mapping):
                continue
            run = str(step.get("run") or "")
            uses = str(step.get("uses") or "")
            commands, text = _local_commands(root, uses, seen) if uses else (frozenset(), "")
            commands = commands | frozenset(_MLOPS_CMD.findall(run))
            name = str(step.get("name") or step.get("id") or uses or f"step {i + 1}")
            out.append(Step(path.name, str(job_id), name, commands, f"{run}\n{uses}\n{text}"))
    return out


WATCHED = ("tests/test_features.py", "tests/test_pipeline.py", "tests/test_fresh_clone.py", "tests/e2e", "bench",
           "dvc.lock", "requirements", ".github/dependabot.yml", ".github/dependabot.yaml", "renovate.json",
           "mlops/cli/registry.py", "models/golden.json")


def read_facts(root: Path, params: Any = None) -> Facts:
    """What ROOT holds; PARAMS: its params.yaml as the command already read it (read here when None)."""
    root = root.resolve()
    steps: list[Step] = []
    wf_dir = root / ".github" / "workflows"
    for path in sorted([*wf_dir.glob("*.yml"), *wf_dir.glob("*.yaml")]) if wf_dir.is_dir() else []:
        steps += _workflow_steps(root, path, set())
    files = frozenset(w for w in WATCHED if (root / w).exists())
    files |= frozenset(p.relative_to(root).as_posix() for p in (root / "requirements").glob("*.lock")) \
        if (root / "requirements").is_dir() else frozenset()
    dvc_yaml = _yaml(root / "dvc.yaml")
    params = _yaml(root / "params.yaml") if params is None else params
    return Facts(dvc_yaml if isinstance(dvc_yaml, Mapping) else {}, params if isinstance(params, Mapping) else {},
                 tuple(steps), files)


# --- the rubric -------------------------------------------------------------------------------------------------------

def _where(step: Step) -> str:
    return f"{step.workflow} job {step.job}, step '{step.name}'"


def _section(facts: Facts, name: str) -> Mapping[str, Any]:
    v = facts.params.get(name)
    return v if isinstance(v, Mapping) else {}


def _gates(facts: Facts, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [str(m) for m in _section(facts, "gates") if rx.search(str(m))]


def _stages(facts: Facts) -> Mapping[str, Any]:
    s = facts.dvc_yaml.get("stages")
    return s if isinstance(s, Mapping) else {}


def _outs(facts: Facts) -> list[str]:
    out: list[str] = []
    for stage in _stages(facts).values():
        if isinstance(stage, Mapping):
            for key in ("outs", "metrics", "plots"):
                for o in stage.get(key) or []:
                    out.append(str(next(iter(o)) if isinstance(o, Mapping) else o))
    for p in facts.dvc_yaml.get("plots") or []:
        if isinstance(p, Mapping):
            out += [str(k) for k in p] + [str(y) for v in p.values() if isinstance(v, Mapping)
                                          for y in (v.get("y") or {})]
    return out


def _pipeline(facts: Facts) -> Step | None:
    return facts.running("run") or facts.text_step(r"\bdvc\s+repro\b")


def _tests_step(facts: Facts) -> Step | None:
    return facts.text_step(r"\bmake\s+test\b|\bpytest\b")


def _graded(auto: Step | None, auto_what: str, manual: bool, manual_what: str, missing: str) -> tuple[float, str]:
    if auto is not None:
        return 1.0, f"{auto_what}: {_where(auto)}"
    if manual:
        return 0.5, f"{manual_what} (no workflow runs it: manual)"
    return 0.0, missing


Check = Callable[[Facts], tuple[float, str]]


def _data(facts: Facts) -> list[tuple[str, Check]]:
    columns = _section(facts, "data").get("columns")
    declared = isinstance(columns, Mapping) and bool(columns)
    validate = "validate" in _stages(facts)
    importance = any("importance" in o for o in _outs(facts))
    return [
        ("Feature expectations are captured in a schema",
         lambda f: _graded(_pipeline(f) if declared else None, "params.yaml data.columns, enforced by the pipeline",
                           declared, "params.yaml data.columns", "no schema of the input columns")),
        ("All features are beneficial",
         lambda f: (1.0, f"gated: {', '.join(g)}") if (g := _gates(f, r"^features\.|unused")) else
         _graded(None, "", importance, "feature importance is plotted for review", "no feature-contribution check")),
        ("No feature's cost is too much",
         lambda f: (1.0, f"gated: {', '.join(g)}") if (g := _gates(f, r"^features\..*(cost|latency)")) else
         (0.0, "no per-feature cost (latency, memory) is measured")),
        ("Features adhere to meta-level requirements",
         lambda f: _graded(_pipeline(f) if declared and validate else None,
                           "declared columns and the validate stage (deepchecks), run by the pipeline",
                           validate, "a validate stage in dvc.yaml", "no validation stage")),
        ("The data pipeline has appropriate privacy controls",
         lambda f: (0.5, "sensitive columns declared (report.sensitive)")
         if _section(f, "report").get("sensitive") else (0.0, "no privacy control of the data found "
                                                              "(no declared sensitive/PII columns)")),
        ("New features can be added quickly",
         lambda f: _graded(_pipeline(f) if declared else None,
                           "a feature is one entry in params.yaml data.columns; the pipeline reruns it",
                           declared, "features declared in params.yaml", "features are not declared")),
        ("All input feature code is tested",
         lambda f: _graded(_tests_step(f) if f.has("tests/test_features.py") else None,
                           "tests/test_features.py, run by", f.has("tests/test_features.py"),
                           "tests/test_features.py", "no tests of the feature code")),
    ]


def _model(facts: Facts) -> list[tuple[str, Check]]:
    segments = any("segment" in o for o in _outs(facts))
    monitor = facts.running("monitor")
    sweep = facts.running("sweep") or facts.text_step(r"\bdvc\s+exp\s+run\b")
    pr = next((s for s in facts.steps if "run" in s.commands and s.workflow.startswith("pr")), None) \
        or facts.running("report")
    return [
        ("Model specs are reviewed and submitted",
         lambda f: _graded(pr, "params and metrics diffed in the pull-request report",
                           bool(f.dvc_yaml), "dvc.yaml and params.yaml in version control", "no pipeline spec")),
        ("Offline proxy metrics correlate with actual online impact",
         lambda f: _graded(monitor, "realised metrics on served, labelled traffic (mlops monitor)", False, "",
                           "online metrics are not measured")),
        ("All hyperparameters have been tuned",
         lambda f: _graded(sweep, "parameter sweeps", False, "", "no sweep or tuning run found")),
        ("The impact of model staleness is known",
         lambda f: (0.5, f"decay per time window measured by mlops monitor ({_where(monitor)}); the effect of "
                         "age is not studied") if monitor is not None else (0.0, "staleness impact not measured")),
        ("A simpler model is not better",
         lambda f: (1.0, f"gated: {', '.join(g)}") if (g := _gates(f, r"baseline|lift")) else
         (0.0, "no comparison with a simple baseline")),
        ("Model quality is sufficient on all important data slices",
         lambda f: _graded(_pipeline(f) if segments else None,
                           "segment metrics (evaluate.segments) in the report, worse segments flagged",
                           segments, "segment metrics", "no per-slice metrics")),
        ("The model has been tested for considerations of inclusion",
         lambda f: (1.0, f"gated: {', '.join(g)}") if (g := _gates(f, r"^fairness\.")) else
         (0.5, "sensitive columns declared") if _section(f, "report").get("sensitive") else
         (0.0, "no fairness check over sensitive columns")),
    ]


def _infra(facts: Facts) -> list[tuple[str, Check]]:
    seed = "seed" in _section(facts, "train")
    deploy_cfg = _section(facts, "deploy")
    return [
        ("Training is reproducible",
         lambda f: _graded(_tests_step(f) if f.has("tests/test_fresh_clone.py") and f.has("dvc.lock") else None,
                           "dvc.lock, a fixed train.seed and a fresh-clone reproduction test, run by",
                           f.has("dvc.lock") and seed, "dvc.lock and train.seed", "training is not pinned")),
        ("Model specs are unit tested",
         lambda f: _graded(_tests_step(f) if f.has("tests/test_pipeline.py") else None,
                           "tests/test_pipeline.py, run by", f.has("tests/test_pipeline.py"),
                           "tests/test_pipeline.py", "no tests of the training code")),
        ("The full ML pipeline is integration tested",
         lambda f: _graded(_tests_step(f) if f.has("tests/e2e") else None, "tests/e2e (the workflows end to end), "
                           "run by", f.has("tests/e2e"), "tests/e2e", "no end-to-end test")),
        ("Model quality is validated before attempting to serve it",
         lambda f: _graded(f.running("promote") if _section(f, "gates") else None,
                           f"gates ({', '.join(map(str, _section(f, 'gates')))}) checked by mlops promote",
                           bool(_section(f, "gates")), "gates configured", "no gates")),
        ("The model allows debugging by observing the computation on a single example",
         lambda f: (0.5, "golden records (models/golden.json) replay single examples") if f.has("models/golden.json")
         else (0.0, "no single-example debugging aid")),
        ("Models are tested via a canary process before they enter production serving",
         lambda f: _graded(f.running("deploy"), f"canary of {deploy_cfg.get('canary_percent', 10)}% and smoke test "
                           "(mlops deploy)", bool(deploy_cfg), "deploy configured", "no canary")),
        ("Models can be quickly and safely rolled back",
         lambda f: _graded(f.running("rollback"), "mlops rollback", True,
                           "`mlops rollback` moves production back to an earlier version", "")),
    ]


def _monitoring(facts: Facts) -> list[tuple[str, Check]]:
    mon = _section(facts, "monitor")
    runs = facts.running("monitor")
    locks = any(f.endswith(".lock") for f in facts.files)
    bench = facts.text_step(r"\bbench/")
    return [
        ("Dependency changes result in notification",
         lambda f: (1.0, "dependabot/renovate configured") if f.has(".github/dependabot.yml") or
         f.has(".github/dependabot.yaml") or f.has("renovate.json") else
         (0.5, "hashed lock files (changes are reviewed by hand)") if locks else (0.0, "no dependency watch")),
        ("Data invariants hold in training and serving inputs",
         lambda f: _graded(runs if "validate" in _stages(f) else None,
                           "validate stage in training, schema violations of served inputs in",
                           "validate" in _stages(f),
                           "the validate stage (training only)", "no data invariants checked")),
        ("Training and serving features compute the same values",
         lambda f: _graded(_tests_step(f) if f.has("tests/test_features.py") else None,
                           "one encoding (mlops.features) for both, tests/test_features.py run by",
                           f.has("tests/test_features.py"), "tests/test_features.py", "no skew test")),
        ("Models are not too stale",
         lambda f: _graded(runs if mon.get("max_age_days", 180) is not None else None,
                           f"monitor.max_age_days ({mon.get('max_age_days', 180)}), checked by", False, "",
                           "no staleness limit")),
        ("The model is numerically stable",
         lambda f: _graded(runs, "NaN/Inf and violations share (monitor.max_violation_share), checked by", False, "",
                           "no NaN/Inf watch")),
        ("Computing performance has not regressed",
         lambda f: _graded(bench, "benchmarks", f.has("bench"), "bench/ scripts (run by hand)",
                           "no performance measurement")),
        ("Prediction quality has not regressed on served data",
         lambda f: _graded(runs, "realised metrics against monitor.max_drop, checked by", False, "",
                           "served quality not measured")),
    ]


def assess(facts: Facts) -> Score:
    """Score FACTS on the 28 tests; pure."""
    tests: list[TestResult] = []
    for section, checks in zip(SECTIONS, (_data(facts), _model(facts), _infra(facts), _monitoring(facts)),
                               strict=True):
        for number, (title, check) in enumerate(checks, 1):
            points, evidence = check(facts)
            tests.append(TestResult(section, number, title, points, evidence))
    return Score(tuple(tests))
