"""Every DVC call of the toolkit goes through this module: the `dvc` CLI for pipeline work, YAML for files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import DvcError, ReproFailed
from mlops.files import load_yaml, read_yaml

DVC_YAML = "dvc.yaml"
DVC_LOCK = "dvc.lock"


def _dvc_cmd() -> list[str]:
    # The dvc of this interpreter's environment, so the locked version runs, whatever PATH says.
    return [sys.executable, "-m", "dvc"]


def stage_env() -> dict[str, str]:
    """The environment stage commands run in: this toolkit's own scripts directory first on PATH, so that
    `mlops stage ...` in dvc.yaml finds the mlops that is running it (`.venv/bin/mlops run` with the venv not
    activated, a pipx install), never another one or none."""
    scripts = sysconfig.get_path("scripts") or str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": os.pathsep.join([scripts, path]) if path else scripts,
            "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}


def run(args: Sequence[str], cwd: Path | str = ".", *, on_line: Callable[[str], None] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dvc ARGS`; stream its output lines to ON_LINE; DvcError with DVC's own error line on failure."""
    env = stage_env()
    proc = subprocess.Popen([*_dvc_cmd(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines: list[str] = []
    assert proc.stdout is not None  # PIPE was requested
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        if on_line is not None:
            on_line(line)
    code = proc.wait()
    output = "\n".join(lines)
    if check and code != 0:
        # A failing `mlops stage` prints its own one-line cause ("error: ..."): that beats DVC's summary.
        ours = [ln for ln in lines if ln.startswith("error: ")]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        if ours:
            detail = ours[-1].removeprefix("error: ")
        elif errors:
            detail = errors[-1].removeprefix("ERROR:").strip()
        else:
            detail = lines[-1] if lines else f"exit {code}"
        raise DvcError(f"dvc {args[0]} failed: {detail}")
    return subprocess.CompletedProcess([*_dvc_cmd(), *args], code, output, "")


@dataclass
class ReproResult:
    """What `dvc repro` did, read from its output as it streams: stages it ran, stages that were already current
    (unchanged, or restored from the run cache), and the stage that failed (DVC stops at the first). With --pull,
    WHY holds, for each stage that was not current before the run, the reason it had to be recomputed."""

    ran: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    failed: str | None = None
    why: dict[str, str] = field(default_factory=dict)

    def see(self, line: str) -> None:
        text = line.strip()
        if text.startswith("Running stage '"):  # a stage that executes (not restored, not skipped)
            self.ran.append(text.split("'")[1])
        elif (text.startswith("Stage '") and ("didn't change" in text or "is cached" in text)) \
                or text.startswith("Restored stage '"):
            self.current.append(text.split("'")[1])

    @property
    def recomputed(self) -> list[tuple[str, str]]:
        """(stage, why) for every stage that ran, in the order it ran."""
        return [(name, self.why.get(name, "changed")) for name in self.ran]


NOT_IN_REMOTE = "outputs not in the remote"
NOT_IN_CACHE = "outputs not in the cache"
_MISSING_STATES = ("not in cache", "deleted")
_CHANGE_KEYS = {"changed deps": "changed dependencies", "changed outs": "changed outputs",
                "changed params": "changed params"}


def why_stale(changes: Any, missing: str = NOT_IN_REMOTE) -> str:
    """Why `dvc status --json` says a stage is stale, in words: NOT_IN_REMOTE when all that is wrong is that its
    outputs (and the outputs of stages before it) are missing here, else what changed, in DVC's words
    ("changed params, changed dependencies", "always changed")."""
    if not isinstance(changes, list):
        return "changed"
    what: list[str] = []
    for change in changes:
        if not isinstance(change, dict):  # "always changed", "changed command", ...
            what.append(str(change))
            continue
        for key, paths in change.items():
            for state in (paths.values() if isinstance(paths, dict) else [None]):
                if key in ("changed outs", "changed deps") and state in _MISSING_STATES:
                    continue  # missing, not modified: the remote lacks it (or an earlier stage's output is not here)
                # DVC lists a params file under "changed deps" with a dict of the params that changed
                params = key == "changed deps" and isinstance(state, dict)
                what.append("changed params" if params else _CHANGE_KEYS.get(str(key), str(key)))
    return ", ".join(dict.fromkeys(what)) if what else missing


def stale_stages(cwd: Path | str = ".", missing: str = NOT_IN_REMOTE) -> dict[str, str]:
    """stage -> why it is stale (`why_stale`), from `dvc status --json`; empty when DVC cannot say."""
    proc = subprocess.run([*_dvc_cmd(), "status", "--json"], cwd=cwd, capture_output=True, text=True,
                          env=stage_env(), check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    try:
        data = json.loads(lines[-1]) if proc.returncode == 0 and lines else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        return {}
    # `dvc.yaml:train` for stages of a dvc.yaml outside the root; plain names here
    return {str(k).rsplit(":", 1)[-1]: why_stale(v, missing) for k, v in data.items()}


def repro(cwd: Path | str = ".", *, pull: bool = False, force: bool = False, explain: bool = False,
          on_line: Callable[[str], None] | None = None) -> ReproResult:
    """Reproduce the pipeline. ReproFailed (carrying the ReproResult: which stage failed, what ran before it)
    when a stage fails.

    PULL: first `dvc pull --allow-missing` (checks out every output the cache or the remote holds), then
    `dvc repro --pull`, which restores a changed stage from the run cache when the remote has that run, and
    recomputes every stage whose outputs are still missing. Never `repro --allow-missing`: it skips an unchanged
    stage whose outputs could not be pulled, and the stage after it (or the report) then finds nothing.
    PULL or EXPLAIN: `ReproResult.why` says why each stage had to run (one `dvc status` before the run).
    """
    args = ["repro"] + (["--pull"] if pull else []) + (["--force"] if force else [])
    result = ReproResult()
    if pull:
        run(["pull", "--allow-missing"], cwd, on_line=on_line, check=False)
    if pull or explain:
        result.why = stale_stages(cwd, NOT_IN_REMOTE if pull else NOT_IN_CACHE)

    def watch(line: str) -> None:
        result.see(line)
        if on_line is not None:
            on_line(line)

    try:
        run(args, cwd, on_line=watch)
    except DvcError as exc:
        result.failed = result.ran[-1] if result.ran else None
        raise ReproFailed(exc.message, hint=exc.hint, result=result) from None
    return result


def status(cwd: Path | str = ".") -> str:
    return run(["status"], cwd).stdout


def push(cwd: Path | str = ".", *, run_cache: bool = True) -> None:
    run(["push"] + (["--run-cache"] if run_cache else []), cwd)


def pull(cwd: Path | str = ".", *, run_cache: bool = True) -> None:
    run(["pull"] + (["--run-cache"] if run_cache else []), cwd)


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, DvcError, hint="run `dvc repro` to create it")
    if not isinstance(data, dict):
        raise DvcError(f"{path}: expected a mapping at the top level")
    return data


_HINT_BAD_LOCK = "regenerate it with `dvc repro` (or restore the committed one with `git checkout dvc.lock`)"


def check_lock_shape(lock: Any, source: str = DVC_LOCK) -> dict[str, Any]:
    """The one dvc.lock validator: DvcError naming the file and the key when a (YAML-valid) lock is not shaped
    as DVC writes it. Every reader of dvc.lock (workspace, a base commit, a tag's commit) goes through it."""
    if not isinstance(lock, dict):
        raise DvcError(f"{source}: expected a mapping at the top level, got {type(lock).__name__}",
                       hint=_HINT_BAD_LOCK)
    stages = lock.get("stages") or {}
    if not isinstance(stages, dict):
        raise DvcError(f"{source}: key 'stages' must be a mapping of stage names, got {type(stages).__name__}",
                       hint=_HINT_BAD_LOCK)
    for name, stage in stages.items():
        if stage is None:
            continue  # an empty stage entry: nothing recorded
        if not isinstance(stage, dict):
            raise DvcError(f"{source}: stage '{name}' must be a mapping, got {type(stage).__name__}",
                           hint=_HINT_BAD_LOCK)
        for key in ("deps", "outs"):
            entries = stage.get(key) or []
            if not isinstance(entries, list):
                raise DvcError(f"{source}: key 'stages.{name}.{key}' must be a list, got {type(entries).__name__}",
                               hint=_HINT_BAD_LOCK)
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("path"), str | int | float) or \
                        isinstance(entry.get("path"), bool):
                    raise DvcError(f"{source}: key 'stages.{name}.{key}[{i}]' must be a mapping with a 'path'",
                                   hint=_HINT_BAD_LOCK)
    return lock


def read_dvc_yaml(root: Path | str = ".") -> dict[str, Any]:
    return _read_yaml(Path(root) / DVC_YAML)


def read_lock(root: Path | str = ".") -> dict[str, Any]:
    path = Path(root) / DVC_LOCK
    return check_lock_shape(_read_yaml(path), str(path))


def parse_lock(text: str | bytes | None, source: str = DVC_LOCK) -> dict[str, Any]:
    """A dvc.lock's content (of any revision) parsed and checked; {} for an absent one (nothing reproduced)."""
    if text is None:
        return {}
    return check_lock_shape(load_yaml(text, source, DvcError), source)


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str
    type: str
    desc: str
    labels: tuple[str, ...]


def artifacts(root: Path | str = ".") -> dict[str, Artifact]:
    """Artifacts declared under `artifacts:` in dvc.yaml (the GTO/DVC model registry declaration)."""
    raw = read_dvc_yaml(root).get("artifacts") or {}
    if not isinstance(raw, dict):
        raise DvcError(f"{DVC_YAML}: key 'artifacts' must map artifact names to their declarations")
    out = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or "path" not in spec:
            raise DvcError(f"{DVC_YAML}: artifact '{name}' needs a 'path'")
        out[name] = Artifact(name, str(spec["path"]), str(spec.get("type", "")), str(spec.get("desc", "")),
                             tuple(spec.get("labels") or ()))
    return out


# The walkers below take a lock as `read_lock`/`parse_lock` return it (shape already checked).

def lock_entries(lock: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Every `deps` or `outs` (KEY) entry of a parsed dvc.lock, stage after stage."""
    return [entry for stage in (lock.get("stages") or {}).values() if stage for entry in stage.get(key) or []]


def entry_path(entry: dict[str, Any]) -> str:
    return str(entry["path"]).rstrip("/")


def entry_hash(entry: dict[str, Any]) -> str | None:
    """The hash a dvc.lock entry records (`md5`, or DVC 2's `hash`), None when it records none."""
    h = entry.get("md5") or entry.get("hash")
    return str(h) if isinstance(h, str | int) and not isinstance(h, bool) else None


def lock_out(lock: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The dvc.lock entry of output PATH, or None when no stage outputs it."""
    norm = path.rstrip("/")
    return next((dict(out) for out in lock_entries(lock, "outs") if entry_path(out) == norm), None)


def output_hash(lock: dict[str, Any], path: str) -> str | None:
    """The hash DVC recorded for output PATH in a parsed dvc.lock (None when no stage outputs it)."""
    out = lock_out(lock, path)
    return entry_hash(out) if out is not None else None


# --- reading pipeline outputs at any revision (the report's three states) ---------------------------------------

_CODE_SUFFIXES = (".py", ".j2", ".ipynb", ".sh", ".r", ".R", ".sql", ".toml", ".cfg", ".ini")


def _entry_path(entry: Any) -> str | None:
    """A dvc.yaml list entry is `path` or `{path: {options}}`."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and len(entry) == 1:
        return str(next(iter(entry)))
    return None


def metrics_paths(dvc_yaml: dict[str, Any]) -> list[str]:
    """Every metrics file a dvc.yaml declares: stage `metrics:` outputs and top-level `metrics:`, in order."""
    paths: list[str] = []
    for stage in (dvc_yaml.get("stages") or {}).values():
        if isinstance(stage, dict):
            paths += [p for p in map(_entry_path, stage.get("metrics") or []) if p]
    paths += [p for p in map(_entry_path, dvc_yaml.get("metrics") or []) if p]
    return list(dict.fromkeys(paths))


@dataclass(frozen=True)
class PlotSpec:
    """One plot of dvc.yaml: which fields of which files, drawn with which DVC template."""

    id: str
    template: str  # DVC template name: simple, linear, smooth, scatter, confusion, bar_horizontal...
    x: dict[str, str]  # file -> x field ({} means the row index, DVC's `step`)
    y: dict[str, tuple[str, ...]]  # file -> y fields (() means the last field of each row, as DVC does)
    title: str
    x_label: str
    y_label: str


def _as_fields(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def _label(value: Any, default: str) -> str:
    return default if value is None or value is False else str(value)


def plot_specs(dvc_yaml: dict[str, Any]) -> list[PlotSpec]:
    """The plots a dvc.yaml declares (top-level `plots:` in any of its forms, then stage `plots:` outputs).

    Top-level directories cannot be expanded without the files; they are returned as a spec whose y maps the
    directory path, and the reader expands them.
    """
    specs: list[PlotSpec] = []
    top = dvc_yaml.get("plots") or []
    if isinstance(top, dict):  # an older form: {path_or_id: {options}}
        top = [{k: v} for k, v in top.items()]
    for entry in top:
        if isinstance(entry, str):
            specs.append(PlotSpec(entry, "linear", {}, {entry: ()}, entry, "step", ""))
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DvcError(f"{DVC_YAML}: a 'plots' entry must be a path or a mapping with one key")
        pid, opts = next(iter(entry.items()))
        opts = opts if isinstance(opts, dict) else {}
        template = str(opts.get("template") or "linear")
        y_raw = opts.get("y")
        if isinstance(y_raw, dict):
            y = {str(f): _as_fields(v) for f, v in y_raw.items()}
        else:  # the id is the data file
            y = {str(pid): _as_fields(y_raw)}
        x_raw = opts.get("x")
        if isinstance(x_raw, dict):
            x = {str(f): str(v) for f, v in x_raw.items()}
        elif x_raw is not None:
            x = {f: str(x_raw) for f in y}
        else:
            x = {}
        first_x = next(iter(x.values()), "step")
        first_y = next((fs[0] for fs in y.values() if fs), "")
        specs.append(PlotSpec(str(pid), template, x, y, str(opts.get("title") or pid),
                              _label(opts.get("x_label"), first_x), _label(opts.get("y_label"), first_y)))
    for stage in (dvc_yaml.get("stages") or {}).values():
        if not isinstance(stage, dict):
            continue
        for entry in stage.get("plots") or []:
            path = _entry_path(entry)
            if path is None:
                continue
            opts = entry[path] if isinstance(entry, dict) and isinstance(entry[path], dict) else {}
            x_field = opts.get("x")
            specs.append(PlotSpec(path, str(opts.get("template") or "linear"),
                                  {path: str(x_field)} if x_field else {}, {path: _as_fields(opts.get("y"))},
                                  str(opts.get("title") or path), _label(opts.get("x_label"), x_field or "step"),
                                  _label(opts.get("y_label"), str(opts.get("y") or ""))))
    return specs


def params_paths(dvc_yaml: dict[str, Any]) -> list[str]:
    """params.yaml plus every other params file a stage names (`params: [{file.yaml: [keys]}]`)."""
    paths = ["params.yaml"]
    for stage in (dvc_yaml.get("stages") or {}).values():
        if isinstance(stage, dict):
            for entry in stage.get("params") or []:
                if isinstance(entry, dict):
                    paths += [str(k) for k in entry]
    return list(dict.fromkeys(paths))


def data_deps(lock: dict[str, Any]) -> dict[str, str]:
    """Path -> hash of every dependency in a parsed dvc.lock that is input data: not produced by a stage
    (intermediate outputs are not input data), not code. In the order dvc.lock lists them."""
    out: dict[str, str] = {}
    produced = {entry_path(o) for o in lock_entries(lock, "outs")}
    for dep in lock_entries(lock, "deps"):
        path, h = entry_path(dep), entry_hash(dep)
        if path and path not in produced and not path.endswith(_CODE_SUFFIXES) and h is not None:
            out[path] = h
    return out


def _ini(path: Path) -> dict[str, dict[str, str]]:
    import configparser

    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error:
        return {}
    return {s.strip("'\" "): dict(cp[s]) for s in cp.sections()}


def _config(root: Path) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        for section, values in _ini(root / ".dvc" / name).items():
            merged.setdefault(section, {}).update(values)
    return merged


def cache_dir(root: Path | str = ".") -> Path:
    """The local DVC cache directory (`cache.dir` of .dvc/config[.local], default .dvc/cache)."""
    r = Path(root)
    configured = _config(r).get("cache", {}).get("dir")
    if configured:
        p = Path(configured)
        return p if p.is_absolute() else (r / ".dvc" / p).resolve()
    return r / ".dvc" / "cache"


def check_md5(md5: str) -> str:
    """MD5 when it is a DVC md5 hash (32 lower-case hex digits, `.dir` for a directory listing); DvcError
    otherwise. Every cache or remote path is built from a checked hash: `0f/etc/hostname` (from a crafted dvc.lock
    or listing) would otherwise make the path absolute and read a file outside the cache."""
    import re

    if not isinstance(md5, str) or re.fullmatch(r"[0-9a-f]{32}(?:\.dir)?", md5) is None:
        raise DvcError(f"{md5!r} is not a DVC md5 hash (32 hex digits, optionally .dir)",
                       hint="dvc.lock or a directory listing was edited by hand or crafted; restore it from git")
    return md5


def _cache_object(cache: Path, md5: str) -> Path | None:
    try:
        check_md5(md5)
    except DvcError:
        return None  # never a path built from something that is not a hash: the cache cannot hold it
    h = md5.removesuffix(".dir")
    suffix = ".dir" if md5.endswith(".dir") else ""
    for base in (cache / "files" / "md5", cache):  # DVC 3 layout, then DVC 2's
        p = base / h[:2] / (h[2:] + suffix)
        if p.is_file():
            return p
    return None


def _lock_outs(lock: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, hash) of every output that records a hash."""
    pairs = [(entry_path(out), entry_hash(out)) for out in lock_entries(lock, "outs")]
    return [(p, h) for p, h in pairs if p and h]


def cached_output(root: Path | str, lock: dict[str, Any], path: str) -> tuple[bool, bytes | None]:
    """Bytes of PATH as recorded in LOCK, from the local cache.

    Returns (declared, content): declared is False when no output of LOCK holds PATH; content is None when the
    cache lacks the object (fetch or reproduce it). A file inside a directory output is found via its .dir listing.
    """
    import json

    cache = cache_dir(root)
    norm = path.rstrip("/")
    for out_path, h in _lock_outs(lock):
        if norm == out_path and not h.endswith(".dir"):
            obj = _cache_object(cache, h)
            return True, obj.read_bytes() if obj else None
        if norm.startswith(out_path + "/") and h.endswith(".dir"):
            listing = _cache_object(cache, h)
            if listing is None:
                return True, None
            rel = norm[len(out_path) + 1:]
            for item in json.loads(listing.read_text(encoding="utf-8")):
                if item.get("relpath") == rel:
                    obj = _cache_object(cache, str(item.get("md5") or item.get("hash")))
                    return True, obj.read_bytes() if obj else None
            return True, None
    return False, None


def dir_listing(root: Path | str, lock: dict[str, Any], path: str) -> list[str] | None:
    """The files (repo-relative) of directory output PATH from the cache, or None when not a cached dir."""
    import json

    norm = path.rstrip("/")
    for out_path, h in _lock_outs(lock):
        if out_path == norm and h.endswith(".dir"):
            listing = _cache_object(cache_dir(root), h)
            if listing is None:
                return None
            return [f"{norm}/{item['relpath']}" for item in json.loads(listing.read_text(encoding="utf-8"))]
    return None


def prepare_worktree(root: Path | str, worktree: Path) -> None:
    """Make a git worktree of ROOT share its DVC cache and see its remotes (relative URLs made absolute)."""
    r = Path(root).resolve()
    lines = ["[cache]", f"    dir = {cache_dir(r).resolve()}"]
    for section, values in _config(r).items():
        if section.startswith("remote ") and "url" in values:
            url = values["url"]
            if "://" not in url and not Path(url).is_absolute():
                url = str((r / ".dvc" / url).resolve())
            name = section.split(" ", 1)[1].strip("'\" ")
            lines += [f"['remote \"{name}\"']", f"    url = {url}"]
    (worktree / ".dvc").mkdir(exist_ok=True)
    (worktree / ".dvc" / "config.local").write_text("\n".join(lines) + "\n", encoding="utf-8")


def has_remote(root: Path | str = ".") -> bool:
    cfg = _config(Path(root))
    return any(s.startswith("remote ") for s in cfg)


def fetch(cwd: Path | str, targets: Sequence[str] = ()) -> bool:
    """`dvc fetch [targets]` into the cache; False (not an error) when the remote lacks something."""
    proc = run(["fetch", *targets], cwd, check=False)
    return proc.returncode == 0


# --- deploy: cache objects and the remote's layout (appended for mlops deploy) ----------------------------------


def cache_object(root: Path | str, md5: str) -> Path | None:
    """The file of object MD5 ("<md5>" or "<md5>.dir") in ROOT's local DVC cache, or None when it lacks it;
    DvcError when MD5 is not a DVC md5 hash (check_md5)."""
    return _cache_object(cache_dir(root), check_md5(md5))


def discard_cache_object(root: Path | str, md5: str) -> None:
    """Remove object MD5 from ROOT's local cache (one whose content does not hash to its name: corrupt or tampered
    with), so that the next fetch downloads it again instead of trusting it."""
    obj = cache_object(root, md5)  # checks MD5
    if obj is not None and not obj.is_symlink() and obj.resolve().is_relative_to(cache_dir(root).resolve()):
        obj.unlink(missing_ok=True)


def default_remote_url(root: Path | str = ".") -> str | None:
    """The URL of the default DVC remote (`core.remote`, else the only one), a local folder made absolute; None
    when there is none."""
    r = Path(root).resolve()
    cfg = _config(r)
    remotes = {s.split(" ", 1)[1].strip("'\" "): v for s, v in cfg.items() if s.startswith("remote ")}
    name = cfg.get("core", {}).get("remote") or (next(iter(remotes)) if len(remotes) == 1 else None)
    url = remotes.get(name, {}).get("url") if name else None
    if not url:
        return None
    if "://" not in url and not Path(url).is_absolute():
        url = str((r / ".dvc" / url).resolve())
    return url


def remote_object_url(remote_url: str, md5: str) -> str:
    """Where DVC 3 keeps object MD5 in a remote: REMOTE/files/md5/<first 2 hex>/<the rest>[.dir]."""
    h = check_md5(md5).removesuffix(".dir")
    return f"{remote_url.rstrip('/')}/files/md5/{h[:2]}/{h[2:]}{'.dir' if md5.endswith('.dir') else ''}"


# --- monitor --retrain: a data snapshot tracked and pushed (appended) ---------------------------------------------


def add(path: str, cwd: Path | str = ".") -> None:
    """`dvc add PATH`: PATH.dvc beside it, PATH in the .gitignore of its folder, the data in the cache."""
    run(["add", "--quiet", path], cwd)


def push_targets(targets: Sequence[str], cwd: Path | str = ".") -> None:
    """`dvc push TARGETS` (the .dvc files' data only, not the whole workspace's)."""
    run(["push", *targets], cwd)


# --- mlops sweep: DVC experiments (appended) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """One experiment as `dvc exp show --json` lists it."""

    name: str
    rev: str  # the experiment's commit (refs/exps/...), or the queue task's stash commit while queued
    baseline: str  # the commit it derives from
    state: str  # success, failed, queued, running
    error: str | None = None


def exp_queue(name: str, cwd: Path | str = ".") -> None:
    """`dvc exp run --queue --name NAME`: the workspace as it is now (params.yaml included) becomes a queued
    experiment. Params are written into params.yaml by the caller, never with `-S` (see mlops.sweep)."""
    run(["exp", "run", "--queue", "--quiet", "--name", name], cwd)


def exp_run_queued(jobs: int, cwd: Path | str = ".", *, on_line: Callable[[str], None] | None = None) -> None:
    """Run every queued experiment, JOBS at a time, and wait for them (`dvc exp run --run-all -j JOBS`: queue
    workers in temporary workspaces sharing the cache and the run cache). A failed experiment is not an error
    here: `experiments` says which failed."""
    run(["exp", "run", "--run-all", "--jobs", str(max(1, jobs))], cwd, on_line=on_line, check=False)


def experiments(cwd: Path | str = ".") -> list[Experiment]:
    """The experiments of the current commit (`dvc exp show --json`), newest first."""
    proc = run(["exp", "show", "--json", "--no-pager"], cwd, check=False)
    start = proc.stdout.find("[")
    try:
        data = json.loads(proc.stdout[start:]) if proc.returncode == 0 and start >= 0 else None
    except ValueError:
        data = None
    if not isinstance(data, list):
        raise DvcError(f"dvc exp show failed: {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ''}")
    out: list[Experiment] = []
    for base in data:
        if not isinstance(base, dict) or base.get("rev") == "workspace":
            continue
        for exp in base.get("experiments") or []:
            executor = exp.get("executor") or {}
            for rev in (exp.get("revs") or [])[:1]:  # the experiment's last commit (checkpoints aside)
                error = rev.get("error") or {}
                state = str(executor.get("state") or ("failed" if error else "success"))
                out.append(Experiment(str(rev.get("name") or exp.get("name") or ""), str(rev.get("rev") or ""),
                                      str(base.get("rev") or ""), state,
                                      str(error.get("msg")) if isinstance(error, dict) and error else None))
    return out


def exp_remove(names: Sequence[str], cwd: Path | str = ".") -> None:
    """`dvc exp remove NAMES` (finished or failed experiments of the current commit, queued ones too)."""
    if names:
        run(["exp", "remove", *names], cwd, check=False)


class TempExperiment:
    """One `dvc exp run --temp --name NAME` running in the background: DVC copies the workspace (params.yaml as
    the caller wrote it) into a temporary directory and reproduces there, sharing the cache and the run cache.
    `start` returns once DVC has taken that copy (its "Reproducing experiment" line), so the caller may change
    params.yaml for the next one; `wait` returns the exit code and keeps the output for the error line."""

    def __init__(self, name: str, cwd: Path | str = ".", on_line: Callable[[str], None] | None = None) -> None:
        import threading

        self.name = name
        self.lines: list[str] = []
        self._on_line = on_line
        # --wait-for-lock: the experiments in flight take the repository lock in turns, never fail on it
        self._proc = subprocess.Popen([*_dvc_cmd(), "--wait-for-lock", "exp", "run", "--temp", "--name", name],
                                      cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=stage_env())
        assert self._proc.stdout is not None  # PIPE was requested
        self._out = self._proc.stdout
        for line in self._out:  # until DVC has copied the workspace: the caller must not touch it before
            self._see(line)
            if line.startswith("Reproducing experiment '"):
                break
        self._drain = threading.Thread(target=self._rest, daemon=True)
        self._drain.start()

    def _see(self, line: str) -> None:
        line = line.rstrip("\n")
        self.lines.append(line)
        if self._on_line is not None and line.strip():
            self._on_line(line)

    def _rest(self) -> None:
        for line in self._out:
            self._see(line)

    @property
    def done(self) -> bool:
        return self._proc.poll() is not None

    def wait(self) -> int:
        code = self._proc.wait()
        self._drain.join()
        return code

    def error(self) -> str | None:
        """DVC's (or the failing stage's) own error line, None when it succeeded."""
        if self._proc.poll() in (None, 0):
            return None
        ours = [ln.removeprefix("error: ") for ln in self.lines if ln.startswith("error: ")]
        errors = [ln.removeprefix("ERROR:").strip() for ln in self.lines if ln.startswith("ERROR")]
        return (ours or errors or [f"exit {self._proc.returncode}"])[-1]
