"""Parameter sweeps: which settings to try, the `/mlops` comment commands, params.yaml edited in place, and the
leaderboard. Pure functions over text and data; running the experiments (DVC) and reading their outputs is the
sweep job's (mlops/jobs/sweep.py).

- A sweep is a grid (`--set train.max_depth=3,4,5 --set train.learning_rate=0.03,0.1`: every combination) or a
  random search (`--random N --seed S` over `KEY=LOW..HIGH` ranges and `KEY=A,B,C` choices), capped by `--max`.
- Every key must name a scalar of params.yaml and every value must have that scalar's type: one-line errors naming
  the key otherwise (the job adds the project's own schema where params.yaml has one).
- Each setting gets a stable name (`sw-` + 7 hex of its canonical form): the same setting is the same experiment,
  in any order of `--set`, on any run.
- params.yaml is edited as text, value by value (comments, quoting and order stay as they are): `dvc exp run -S`
  rewrites the whole file with YAML 1.2 rules, which turned this repo's `positive: "Yes"` into `positive: Yes`, a
  boolean for the YAML 1.1 readers of the stages.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from mlops.errors import SweepError
from mlops.markdown import md

Scalar = bool | int | float | str
Setting = tuple[tuple[str, Scalar], ...]  # (key, value) pairs, sorted by key

DEFAULT_MAX = 12  # settings per sweep unless --max says otherwise
HARD_MAX = 64  # never more, whoever asks (a comment cannot occupy the runners for a day)
COMMENT_MAX = 16  # the most a `/mlops sweep` comment may ask for
MARKER_LABEL = "mlops sweep"  # the leaderboard's sticky marker: distinct from the report's
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")
_NAME = re.compile(r"sw-[0-9a-f]{7}")
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


# --- values ------------------------------------------------------------------------------------------------------

def parse_value(text: str) -> Scalar:
    """A value as written on the command line: true/false, an integer, a float, else the text itself."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(type(v), type(v).__name__)


def coerce(key: str, value: Scalar, current: Any) -> Scalar:
    """VALUE for KEY in the type of its CURRENT value in params.yaml (an integer is fine where a float is);
    SweepError naming the key otherwise."""
    if current is None:
        return value
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(current, float):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)):
            return float(value)
    elif isinstance(current, str):
        return value if isinstance(value, str) else _text(value)
    raise SweepError(f"key '{key}': {_text(value)!r} is not {_type_name(current)} (params.yaml has "
                     f"{_text(current)})", hint=f"give {key} values of the type it has in params.yaml")


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def lookup(params: Mapping[str, Any], key: str) -> Any:
    """The scalar at dotted KEY of params.yaml's mapping; SweepError when KEY names none."""
    node: Any = params
    walked: list[str] = []
    for part in key.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            raise SweepError(f"key '{key}': not in params.yaml" + (
                f" ('{'.'.join(walked[:-1])}' has no '{part}')" if len(walked) > 1 else ""),
                hint="sweep over keys that params.yaml already has (e.g. train.max_depth)")
        node = node[part]
    if isinstance(node, Mapping | list):
        raise SweepError(f"key '{key}': a {'mapping' if isinstance(node, Mapping) else 'list'} in params.yaml, "
                         "not a single value", hint="sweep over a leaf, e.g. train.max_depth")
    return node


def with_setting(params: Mapping[str, Any], setting: Setting) -> dict[str, Any]:
    """A deep copy of PARAMS with SETTING applied (what params.yaml holds in that experiment)."""
    out: dict[str, Any] = json.loads(json.dumps(params))
    for key, value in setting:
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return out


# --- the sweep spec ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[Scalar, ...] = ()  # grid values or random choices
    low: float | None = None  # random range LOW..HIGH (both ends included)
    high: float | None = None
    integer: bool = False  # a range of integers

    @property
    def is_range(self) -> bool:
        return self.low is not None


@dataclass(frozen=True)
class SweepSpec:
    axes: tuple[Axis, ...]
    random: int | None = None  # N settings drawn at random instead of the grid
    seed: int = 0
    max: int = DEFAULT_MAX


def parse_axis(text: str) -> Axis:
    """`KEY=V1,V2,...` (grid values or random choices) or `KEY=LOW..HIGH` (a random range)."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise SweepError(f"--set {text!r}: expected KEY=VALUE[,VALUE...] or KEY=LOW..HIGH with a dotted key of "
                         "params.yaml", hint="e.g. --set train.max_depth=3,4,5")
    if ".." in rest:
        low_t, _, high_t = rest.partition("..")
        low, high = parse_value(low_t.strip()), parse_value(high_t.strip())
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise SweepError(f"key '{key}': range {rest!r} must be NUMBER..NUMBER")
        lo, hi = float(low), float(high)  # type: ignore[arg-type]  # numbers, checked above
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise SweepError(f"key '{key}': range {rest!r} must go from low to high")
        both_int = isinstance(low, int) and isinstance(high, int)
        return Axis(key, low=lo, high=hi, integer=both_int)
    parts = [p.strip() for p in rest.split(",")]
    if not rest.strip() or any(p == "" for p in parts):
        raise SweepError(f"key '{key}': empty value in {rest!r}", hint="e.g. --set train.max_depth=3,4,5")
    values = tuple(dict.fromkeys(parse_value(p) for p in parts))  # duplicates are the same experiment
    return Axis(key, values)


def make_spec(sets: Sequence[str], *, random_n: int | None = None, seed: int = 0,
              max_settings: int = DEFAULT_MAX) -> SweepSpec:
    if not sets:
        raise SweepError("no parameters to sweep", hint="add --set KEY=V1,V2 (e.g. --set train.max_depth=3,4,5)")
    axes = tuple(parse_axis(s) for s in sets)
    keys = [a.key for a in axes]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup:
        raise SweepError(f"key '{dup}': given twice", hint="give each key once, with all its values")
    if random_n is not None and random_n < 1:
        raise SweepError(f"--random {random_n}: must be at least 1")
    if not 1 <= max_settings <= HARD_MAX:
        raise SweepError(f"--max {max_settings}: must be between 1 and {HARD_MAX}")
    ranged = next((a.key for a in axes if a.is_range), None)
    if random_n is None and ranged:
        raise SweepError(f"key '{ranged}': a range (LOW..HIGH) needs --random N",
                         hint="list the grid's values instead (KEY=V1,V2,V3), or add --random N")
    return SweepSpec(axes, random_n, seed, max_settings)


def _canonical(setting: Setting) -> Setting:
    return tuple(sorted(setting, key=lambda kv: kv[0]))


def expand(spec: SweepSpec, params: Mapping[str, Any]) -> list[Setting]:
    """The settings SPEC asks for, each checked against PARAMS (params.yaml's mapping) and typed as it is there;
    SweepError naming the key on a bad key or value, or when they are more than SPEC.max."""
    current = {a.key: lookup(params, a.key) for a in spec.axes}
    typed: list[Axis] = []
    for a in spec.axes:
        cur = current[a.key]
        if a.is_range:
            if isinstance(cur, bool) or not isinstance(cur, int | float):
                raise SweepError(f"key '{a.key}': a range needs a number, params.yaml has {_text(cur)}")
            if isinstance(cur, int) and not a.integer:
                raise SweepError(f"key '{a.key}': integer in params.yaml, so the range needs integer ends")
            typed.append(Axis(a.key, low=a.low, high=a.high, integer=isinstance(cur, int)))
        else:
            typed.append(Axis(a.key, tuple(dict.fromkeys(coerce(a.key, v, cur) for v in a.values))))
    if spec.random is None:
        count = math.prod(len(a.values) for a in typed)
        if count > spec.max:
            raise SweepError(f"{count} settings: more than --max {spec.max}",
                             hint="drop values, or raise --max (at most 64), or draw some with --random N")
        grid = itertools.product(*[[(a.key, v) for v in a.values] for a in typed])
        return [_canonical(tuple(s)) for s in grid]
    if spec.random > spec.max:
        raise SweepError(f"--random {spec.random}: more than --max {spec.max}")
    rng = random.Random(spec.seed)  # noqa: S311  # a seeded, reproducible draw, not a secret
    out: list[Setting] = []
    seen: set[Setting] = set()
    for _ in range(spec.random * 20):  # draws that repeat a setting are skipped; finite choices may run out
        s: list[tuple[str, Scalar]] = []
        for a in typed:
            if a.values:
                s.append((a.key, a.values[rng.randrange(len(a.values))]))
            elif a.integer:
                s.append((a.key, rng.randint(int(a.low or 0), int(a.high or 0))))
            else:
                s.append((a.key, float(f"{rng.uniform(a.low or 0.0, a.high or 0.0):.4g}")))
        setting = _canonical(tuple(s))
        if setting not in seen:
            seen.add(setting)
            out.append(setting)
        if len(out) == spec.random:
            break
    return out


def name_of(setting: Setting) -> str:
    """The stable experiment name of SETTING: `sw-` and 7 hex digits of its canonical JSON."""
    text = json.dumps([[k, v] for k, v in _canonical(setting)], sort_keys=True)
    return "sw-" + hashlib.sha256(text.encode()).hexdigest()[:7]


def describe(setting: Setting) -> str:
    return " ".join(f"{k}={_text(v)}" for k, v in setting)


# --- params.yaml, edited as text ---------------------------------------------------------------------------------

_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+|\"[^\"]*\"|'[^']*'):(?P<sep>[ \t]*)(?P<rest>.*)$")


def _yaml_scalar(value: Scalar) -> str:
    """VALUE as YAML 1.1 reads it back as the same value (quoted when it would read as something else)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "inf" in text or "nan" in text) else text + ".0"
    plain = value
    if plain and yaml.safe_load(plain) == plain and not re.search(r"[#:\n]|^[\s'\"&*!|>%@`{\[-]|\s$", plain):
        return plain
    return json.dumps(plain)


def _split_scalar(rest: str) -> tuple[str, str] | None:
    """(the scalar, what follows it: spaces and a comment) of a `key: scalar  # comment` line's rest; None when the
    value is not a one-line scalar (a block, a flow collection, an anchor, a multi-line string)."""
    if not rest or rest[0] in "{[|>&*!":
        return None
    if rest[0] in "\"'":
        q = rest[0]
        i = 1
        while i < len(rest):
            if rest[i] == q:
                if q == "'" and i + 1 < len(rest) and rest[i + 1] == "'":
                    i += 2
                    continue
                if q == "\"" and rest[i - 1] == "\\":
                    i += 1
                    continue
                return rest[:i + 1], rest[i + 1:]
            i += 1
        return None
    m = re.search(r"\s+#", rest)
    if m:
        return rest[:m.start()], rest[m.start():]
    return rest.rstrip(), rest[len(rest.rstrip()):]


def set_params_text(text: str, setting: Setting, source: str = "params.yaml") -> str:
    """TEXT (params.yaml) with each key of SETTING set to its value, nothing else changed: same comments, order,
    quoting and line endings. SweepError naming the key when it is not a one-line block-style scalar."""
    try:
        before = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    lines = text.splitlines(keepends=True)
    wanted = dict(setting)
    done: set[str] = set()
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        if not body.strip() or body.lstrip().startswith("#") or body.lstrip().startswith("- "):
            continue
        m = _LINE.match(body)
        if m is None:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = m["key"].strip("\"'")
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if path not in wanted:
            continue
        parts = _split_scalar(m["rest"])
        if parts is None:
            raise SweepError(f"key '{path}': {source} line {i + 1} is not a one-line value that can be edited in "
                             "place", hint="write it as `key: value` in block style")
        value = wanted[path]
        new = f"{m['indent']}{m['key']}:{m['sep'] or ' '}{_yaml_scalar(value)}{parts[1]}"
        lines[i] = new + line[len(body):]
        done.add(path)
    missing = [k for k in wanted if k not in done]
    if missing:
        raise SweepError(f"key '{missing[0]}': not found as a `key: value` line in {source}",
                         hint="sweep over keys written in block style in params.yaml")
    out = "".join(lines)
    if yaml.safe_load(out) != with_setting(before, setting):  # the edit must change exactly these values
        raise SweepError(f"{source}: setting {describe(setting)} would change more than these keys",
                         hint="write the keys in plain block style in params.yaml")
    return out


# --- the `/mlops` comment commands ---------------------------------------------------------------------------------

Action = Literal["sweep", "apply"]
_TOKEN = re.compile(r"[A-Za-z0-9_.,=+\-]+")


@dataclass(frozen=True)
class Command:
    action: Action
    sets: tuple[str, ...] = ()
    random: int | None = None
    seed: int = 0
    max: int = DEFAULT_MAX
    name: str | None = None  # apply: the experiment

    def spec(self) -> SweepSpec:
        return make_spec(self.sets, random_n=self.random, seed=self.seed, max_settings=self.max)


def is_command(body: str | None) -> bool:
    """True when BODY's first line is an `/mlops` command (what a workflow filters comments on)."""
    words = (body or "").lstrip().split("\n", 1)[0].split()
    return bool(words) and words[0] == "/mlops"


def parse_command(body: str) -> Command:
    """The command on the first line of a comment: `/mlops sweep [--set KEY=VALUES]... [--random N] [--seed S]
    [--max N]` or `/mlops apply NAME`. Strict: anything else is a SweepError saying what (the comment is untrusted
    text: only these words and characters, never passed to a shell)."""
    first = body.lstrip().split("\n", 1)[0].strip()
    words = first.split()
    if not words or words[0] != "/mlops":
        raise SweepError("not an /mlops command: the comment must start with `/mlops sweep` or `/mlops apply`")
    if len(words) < 2 or words[1] not in ("sweep", "apply"):
        raise SweepError(f"unknown command {' '.join(words[:2])!r}: use `/mlops sweep --set KEY=V1,V2` or "
                         "`/mlops apply NAME`")
    bad = next((w for w in words[2:] if not _TOKEN.fullmatch(w)), None)
    if bad is not None:
        raise SweepError(f"unexpected characters in {bad[:40]!r}: only letters, digits and _ . , = + - are allowed")
    if words[1] == "apply":
        if len(words) != 3 or not _NAME.fullmatch(words[2]):
            raise SweepError("`/mlops apply NAME` takes one experiment name from the leaderboard (sw- and 7 hex "
                             "digits)")
        return Command("apply", name=words[2])
    sets: list[str] = []
    values: dict[str, int] = {}
    rest = words[2:]
    i = 0
    while i < len(rest):
        opt = rest[i]
        if opt not in ("--set", "-S", "--random", "--seed", "--max"):
            raise SweepError(f"unknown option {opt!r}: use --set KEY=VALUES, --random N, --seed S, --max N")
        if i + 1 >= len(rest):
            raise SweepError(f"{opt} needs a value")
        arg = rest[i + 1]
        if opt in ("--set", "-S"):
            sets.append(arg)
        else:
            if not arg.isdigit():
                raise SweepError(f"{opt} {arg!r}: expected a whole number")
            if opt in values:
                raise SweepError(f"{opt} given twice")
            values[opt] = int(arg)
        i += 2
    limit = values.get("--max", min(DEFAULT_MAX, COMMENT_MAX))
    if limit > COMMENT_MAX:
        raise SweepError(f"--max {limit}: a comment may ask for at most {COMMENT_MAX} settings")
    command = Command("sweep", tuple(sets), values.get("--random"), values.get("--seed", 0), limit)
    command.spec()  # syntax of every --set checked now; keys and values against params.yaml by the sweep
    return command


# --- the leaderboard ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delta:
    """One metric of an experiment against the baseline: the paired interval when per-row predictions give it."""

    metric: str
    value: float | None
    baseline: float | None
    delta: float | None
    low: float | None = None
    high: float | None = None
    verdict: str = "n/a"  # better / worse / within noise (interval), or "no interval"


@dataclass(frozen=True)
class GateVerdict:
    metric: str
    rule: str
    passed: bool
    evaluated: bool
    detail: str


@dataclass(frozen=True)
class Entry:
    name: str
    setting: Setting
    state: str  # success, failed, queued, running
    deltas: tuple[Delta, ...] = ()
    gates: tuple[GateVerdict, ...] = ()
    note: str = ""  # why there is no interval, why it failed
    rev: str | None = None

    @property
    def gates_passed(self) -> bool | None:
        if self.state != "success" or not self.gates:
            return None
        return all(g.passed for g in self.gates)


@dataclass(frozen=True)
class Board:
    baseline: str  # the commit the experiments derive from
    headline: str
    higher_is_better: bool
    metrics: tuple[str, ...]  # the columns: headline first
    entries: tuple[Entry, ...]
    baseline_metrics: Mapping[str, float] = field(default_factory=dict)
    jobs: int = 1
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    resamples: int = 0
    confidence: float = 0.95

    def entry(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)

    def ranked(self) -> list[Entry]:
        """Successful experiments by the headline (best first), then the others."""
        def key(e: Entry) -> tuple[int, float]:
            d = next((x for x in e.deltas if x.metric == self.headline), None)
            v = d.value if d is not None and d.value is not None else None
            if e.state != "success" or v is None:
                return (1, 0.0)
            return (0, -v if self.higher_is_better else v)
        return sorted(self.entries, key=key)


def _f(v: float | None, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _delta_cell(d: Delta) -> str:
    if d.delta is None:
        return "–"
    if d.low is None or d.high is None:
        return f"{d.delta:+.4f} (no interval)"
    return f"{d.delta:+.4f} [{d.low:+.4f}, {d.high:+.4f}] {d.verdict}"


def board_markdown(board: Board, *, run_url: str | None = None) -> str:
    """The leaderboard for the pull request: one row per experiment, best first, and how to apply one."""
    out = ["## mlops sweep: leaderboard", ""]
    ok = sum(e.state == "success" for e in board.entries)
    out.append(f"{len(board.entries)} settings of params.yaml tried as DVC experiments from "
               f"`{board.baseline[:12]}` ({ok} ran, {board.jobs} at a time, {board.seconds:.0f} s). Each delta is "
               f"against this branch's own result, with its {board.confidence:.0%} paired-bootstrap interval over "
               f"the held-out rows ({board.resamples} resamples) and what it means.")
    out.append("")
    swept = list(dict.fromkeys(k for e in board.entries for k, _ in e.setting))
    head = ["experiment", *[md(k) for k in swept], *[md(m) for m in board.metrics],
            f"Δ {md(board.headline)} (95% interval)", "gates"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    base_vals = [_f(board.baseline_metrics.get(m)) for m in board.metrics]
    out.append("| " + " | ".join(["**baseline** (this branch)", *["" for _ in swept], *base_vals, "", ""]) + " |")
    for e in board.ranked():
        values = dict(e.setting)
        cells = [f"`{e.name}`", *[md(_text(values[k])) if k in values else "" for k in swept]]
        by = {d.metric: d for d in e.deltas}
        cells += [_f(by[m].value) if m in by else "–" for m in board.metrics]
        if e.state != "success":
            cells += [md(f"{e.state}: {e.note}" if e.note else e.state), ""]
        else:
            lead = by.get(board.headline)
            cells.append(md(_delta_cell(lead)) if lead else "–")
            gp = e.gates_passed
            failed = list(dict.fromkeys(g.metric for g in e.gates if not g.passed and g.evaluated))
            cells.append("–" if gp is None else "✅ pass" if gp else "❌ " + md(", ".join(failed) or "not evaluated"))
        out.append("| " + " | ".join(cells) + " |")
    notes = [*board.notes, *(f"`{e.name}`: {e.note}" for e in board.entries if e.state == "success" and e.note)]
    if notes:
        out.append("")
        out += [f"- {md(n)}" for n in notes]
    out += ["", "To take one: comment `/mlops apply NAME` (commits its params.yaml values to this branch; nothing is "
                "merged). Another sweep: `/mlops sweep --set KEY=V1,V2 ...`."]
    if run_url:
        out.append(f"\n[workflow run]({run_url})")
    settings = {e.name: {k: v for k, v in e.setting} for e in board.entries if e.state == "success"}
    # Machine-readable settings for `/mlops apply`: read back only from our own comment (marker and author).
    # `>` escaped: a value can never end the HTML comment early
    blob = json.dumps({"baseline": board.baseline, "settings": settings}, sort_keys=True).replace(">", "\\u003e")
    out += ["", f"<!-- mlops-sweep-settings {blob} -->"]
    return "\n".join(out) + "\n"


_SETTINGS = re.compile(r"<!-- mlops-sweep-settings (\{.*?\}) -->")


def settings_from_markdown(text: str) -> tuple[str, dict[str, Setting]]:
    """(baseline, name -> setting) from a leaderboard's markdown; SweepError when it carries none."""
    m = _SETTINGS.search(text or "")
    if m is None:
        raise SweepError("the leaderboard carries no experiment settings", hint="run a sweep first (`/mlops sweep`)")
    try:
        raw = json.loads(m.group(1))
        settings = {str(n): _canonical(tuple((str(k), v) for k, v in s.items()))
                    for n, s in raw["settings"].items()}
        return str(raw["baseline"]), settings
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SweepError("the leaderboard's experiment settings are unreadable") from None


def board_dict(board: Board) -> dict[str, Any]:
    """The leaderboard as JSON-ready data (`mlops sweep --json`)."""
    def entry(e: Entry) -> dict[str, Any]:
        return {"name": e.name, "params": dict(e.setting), "state": e.state, "rev": e.rev, "note": e.note or None,
                "metrics": {d.metric: {"value": d.value, "baseline": d.baseline, "delta": d.delta, "low": d.low,
                                       "high": d.high, "verdict": d.verdict} for d in e.deltas},
                "gates": [{"metric": g.metric, "rule": g.rule, "passed": g.passed, "evaluated": g.evaluated,
                           "detail": g.detail} for g in e.gates],
                "gates_passed": e.gates_passed}
    return {"baseline": board.baseline, "headline": board.headline, "higher_is_better": board.higher_is_better,
            "baseline_metrics": dict(board.baseline_metrics), "jobs": board.jobs, "seconds": round(board.seconds, 3),
            "resamples": board.resamples, "confidence": board.confidence, "notes": list(board.notes),
            "experiments": [entry(e) for e in board.ranked()]}
