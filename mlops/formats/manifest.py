"""The model package manifest (`mlops-model.yaml`) and the model's interface: the one parser of both.

A model package is a directory: the model's file(s), this manifest, the golden records and the reference profile.
The manifest is the one contract between train (or `mlops package`), the registry, deploy, serve and monitor:

    # mlops model package (format 1)
    format: 1
    runtime: sklearn                  # xgboost | lightgbm | sklearn | onnx | python
    files:                            # relative to this file: no '..', not absolute; sha256 checked before a load
      - {path: model.skops, sha256: 9f2c...}
    entrypoint: model.py:ChurnModel   # python runtime only: FILE:CLASS, FILE one of `files`
    trusted: []                       # sklearn .skops only: types beyond skops' defaults, reviewed by a person
    task: binary                      # binary | multiclass | regression
    target: churn                     # the label column of the data (optional)
    classes: ["No", "Yes"]            # classifiers: class names in the order of the model's probability columns;
                                      #   binary: [negative, positive], the positive class is the second
    threshold: 0.5                    # binary: label = positive when P(positive) >= threshold
    interface:
      inputs:                         # in the model's column order
        - {name: tenure, type: int, range: [0, 72]}
        - {name: total_charges, type: float, nullable: true, range: [18.8, 8684.8]}
        - {name: contract, type: category, categories: [Month-to-month, One year, Two year]}
      outputs:                        # follow from task and classes (checked on read, written for readers)
        - {name: probability, type: float}
        - {name: label, type: category, categories: ["No", "Yes"]}
    golden: golden.json               # golden records (mlops.formats.golden), beside this file
    reference: reference.json         # the reference profile (mlops.profile), beside this file

Input types: `float`, `int`, `bool`, `category` (one of `categories`, a non-empty list of distinct strings) and
`string` (free text: only runtimes that take records, sklearn and python, can use it). `nullable: true` lets a
value be null (missing); `range` is the [min, max] seen in the packaging data, for monitoring; it is not enforced.
Outputs per task: binary `probability` (of the positive class) and `label`; multiclass `probabilities` (one per
class, named by `categories`) and `label`; regression `value`.

The interface part also reads today's `feature_schema.json` (format `mlops.feature-schema/1`: `features` with
name/type/categories, and a free-form `output` object), so that the server, the registry and the stages share one
set of rules: `parse_feature_schema`. Every error is one line naming the file and the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

from mlops.errors import ModelInvalid
from mlops.formats._io import write_text_atomic

MANIFEST_FILE = "mlops-model.yaml"
MANIFEST_FORMAT = 1
FEATURE_SCHEMA_FORMAT = "mlops.feature-schema/1"
GOLDEN_FILE = "golden.json"
REFERENCE_FILE = "reference.json"

RuntimeName = Literal["xgboost", "lightgbm", "sklearn", "onnx", "python"]
RUNTIMES: tuple[RuntimeName, ...] = ("xgboost", "lightgbm", "sklearn", "onnx", "python")
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
InputType = Literal["float", "int", "bool", "category", "string"]
INPUT_TYPES: tuple[InputType, ...] = ("float", "int", "bool", "category", "string")
# feature_schema.json (format 1) knows these four; `string` and `nullable` are manifest-only.
LEGACY_TYPES: tuple[InputType, ...] = ("int", "float", "bool", "category")
Scalar = str | int | float | bool | None

_MANIFEST_KEYS = ("format", "runtime", "files", "entrypoint", "trusted", "task", "target", "classes", "threshold",
                  "interface", "golden", "reference")


class ManifestInvalid(ModelInvalid):
    """mlops-model.yaml (or a feature_schema.json) is missing, malformed or inconsistent; names the file and key."""


# --- the interface -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """One input of the model: a raw feature as an application sends it."""

    name: str
    type: InputType
    categories: tuple[str, ...] | None = None  # category only: the values, in the model's code order
    range: tuple[float, float] | None = None  # int/float: [min, max] seen when packaging (informational)
    nullable: bool = False  # whether null (a missing value) is accepted

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.range is not None:
            out["range"] = [_num(self.range[0]), _num(self.range[1])]
        if self.nullable:
            out["nullable"] = True
        return out


@dataclass(frozen=True)
class Output:
    """One output of the model, as the task defines it."""

    name: str  # probability | label | probabilities | value
    type: Literal["float", "category"]
    categories: tuple[str, ...] | None = None  # label: its classes; probabilities: one column per class

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class Interface:
    """The inputs a model takes, in its column order, and the outputs it gives."""

    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...] = ()

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def input(self, name: str) -> Input:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [i.to_json() for i in self.inputs], "outputs": [o.to_json() for o in self.outputs]}


def outputs_for(task: Task, classes: Sequence[str] | None) -> tuple[Output, ...]:
    """The outputs a model of TASK gives (see the module docstring)."""
    cls = tuple(classes) if classes is not None else None
    if task == "binary":
        return (Output("probability", "float"), Output("label", "category", cls))
    if task == "multiclass":
        return (Output("probabilities", "float", cls), Output("label", "category", cls))
    return (Output("value", "float"),)


def _num(v: float) -> int | float:
    """An integral float as an int in the file (`72`, not `72.0`); other floats unchanged."""
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else float(v)


def _fail(source: str, key: str, message: str, hint: str | None = None) -> ManifestInvalid:
    return ManifestInvalid(f"{source}: key '{key}' {message}", hint=hint)


def _string(raw: Any, source: str, key: str) -> str:
    if not isinstance(raw, str) or not raw:
        extra = " (quote it: YAML reads yes/no/on/off as booleans)" if isinstance(raw, bool) else ""
        raise _fail(source, key, f"must be a non-empty string, got {_shown(raw)}{extra}")
    return raw


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _string_list(raw: Any, source: str, key: str, *, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(source, key, f"must be a non-empty list of {what}")
    out = tuple(_string(v, source, f"{key}[{k}]") for k, v in enumerate(raw))
    if len(set(out)) != len(out):
        dup = next(v for v in out if out.count(v) > 1)
        raise _fail(source, key, f"lists {dup!r} twice")
    return out


def parse_inputs(raw: Any, source: str, key: str = "interface.inputs", *, legacy: bool = False,
                 allow_string: bool = False) -> tuple[Input, ...]:
    """The inputs of an interface (a list of objects); ManifestInvalid naming SOURCE and the key when malformed.

    LEGACY: feature_schema.json's rules (its four types, or five with ALLOW_STRING; unknown keys ignored, as its
    first readers did)."""
    if not isinstance(raw, list) or not raw:
        raise ManifestInvalid(f"{source}: key '{key}' must be a non-empty list")
    allowed = LEGACY_TYPES if legacy and not allow_string else INPUT_TYPES
    specs: list[Input] = []
    seen: set[str] = set()
    for i, f in enumerate(raw):
        where = f"{source}: key '{key}[{i}]'"
        if not isinstance(f, Mapping):
            raise ManifestInvalid(f"{where} must be an object")
        name, ftype = f.get("name"), f.get("type")
        if not isinstance(name, str) or not name:
            raise ManifestInvalid(f"{source}: key '{key}[{i}].name' must be a non-empty string")
        if name in seen:
            raise ManifestInvalid(f"{where}: feature '{name}' is declared twice")
        seen.add(name)
        if ftype not in allowed:
            raise ManifestInvalid(f"{where}: feature '{name}' has type {ftype!r}, expected one of "
                                  f"{', '.join(allowed)}")
        if not legacy:
            unknown = sorted(set(f) - {"name", "type", "categories", "range", "nullable"})
            if unknown:
                raise ManifestInvalid(f"{source}: key '{key}[{i}].{unknown[0]}' is not an input key "
                                      "(name, type, categories, range, nullable)")
        cats = f.get("categories")
        categories: tuple[str, ...] | None = None
        if ftype == "category":
            if not isinstance(cats, list) or not cats or not all(isinstance(c, str) and c for c in cats):
                raise ManifestInvalid(f"{where}: category feature '{name}' needs 'categories', a non-empty list of "
                                      "strings")
            if len(set(cats)) != len(cats):
                raise ManifestInvalid(f"{where}: feature '{name}' lists a category twice")
            categories = tuple(cats)
        elif cats is not None:
            raise ManifestInvalid(f"{where}: feature '{name}' of type {ftype} cannot have 'categories'")
        rng = f.get("range") if not legacy else None
        range_: tuple[float, float] | None = None
        if rng is not None:
            if ftype not in ("int", "float"):
                raise ManifestInvalid(f"{where}: feature '{name}' of type {ftype} cannot have 'range'")
            if not (isinstance(rng, list) and len(rng) == 2 and all(
                    type(v) in (int, float) and math.isfinite(v) for v in rng) and rng[0] <= rng[1]):
                raise ManifestInvalid(f"{source}: key '{key}[{i}].range' must be [min, max], two finite numbers "
                                      "with min <= max")
            range_ = (float(rng[0]), float(rng[1]))
        nullable = f.get("nullable", False) if not legacy else False
        if not isinstance(nullable, bool):
            raise ManifestInvalid(f"{source}: key '{key}[{i}].nullable' must be true or false")
        specs.append(Input(name, cast(InputType, ftype), categories, range_, nullable))
    return tuple(specs)


def _parse_outputs(raw: Any, source: str, expected: tuple[Output, ...]) -> tuple[Output, ...]:
    """The manifest's written outputs must be those its task gives (they are there for readers)."""
    if raw is None:
        return expected
    want = [o.to_json() for o in expected]
    if raw != want:
        names = ", ".join(o.name for o in expected)
        raise _fail(source, "interface.outputs", f"does not match the task's outputs ({names})",
                    hint="remove `interface.outputs` (they follow from task and classes) or fix them")
    return expected


def parse_interface(raw: Any, source: str, *, task: Task = "binary", classes: Sequence[str] | None = None,
                    key: str = "interface") -> Interface:
    """The `interface` section of a manifest ({inputs, outputs}) for a model of TASK with CLASSES."""
    if not isinstance(raw, Mapping):
        raise _fail(source, key, "must be a mapping with 'inputs' (and optionally 'outputs')")
    unknown = sorted(set(raw) - {"inputs", "outputs"})
    if unknown:
        raise _fail(source, f"{key}.{unknown[0]}", "is not an interface key (inputs, outputs)")
    inputs = parse_inputs(raw.get("inputs"), source, f"{key}.inputs")
    return Interface(inputs, _parse_outputs(raw.get("outputs"), source, outputs_for(task, classes)))


# --- the manifest ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to the manifest's directory, POSIX separators
    sha256: str | None = None  # when recorded: a load refuses a file whose bytes differ

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        return out


@dataclass(frozen=True)
class Manifest:
    runtime: RuntimeName
    files: tuple[ModelFile, ...]
    task: Task
    interface: Interface
    classes: tuple[str, ...] | None = None
    threshold: float | None = None  # binary only (default 0.5)
    target: str | None = None
    entrypoint: str | None = None  # python only: FILE:CLASS
    trusted: tuple[str, ...] = ()  # sklearn .skops only
    golden: str = GOLDEN_FILE
    reference: str = REFERENCE_FILE
    format: int = MANIFEST_FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # reserved, unused

    @property
    def positive(self) -> str | None:
        """The positive class of a binary model (the second of `classes`)."""
        return self.classes[1] if self.task == "binary" and self.classes else None

    @property
    def outputs(self) -> tuple[Output, ...]:
        return self.interface.outputs

    @property
    def decision_threshold(self) -> float:
        return 0.5 if self.threshold is None else self.threshold

    def output_description(self) -> dict[str, Scalar | list[str]]:
        """The output as feature_schema.json's `output` object describes it (what the registry versions). For a
        binary model it is exactly today's churn description: name, type, label (the target), positive."""
        out: dict[str, Scalar | list[str]] = {"name": self.outputs[0].name, "type": "float"}
        if self.target is not None:
            out["label"] = self.target
        if self.task == "binary":
            out["positive"] = self.positive
        else:
            out["task"] = self.task
            if self.classes is not None:
                out["classes"] = list(self.classes)
        return out

    def file(self, path: str) -> ModelFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "runtime": self.runtime,
                               "files": [f.to_json() for f in self.files]}
        if self.entrypoint is not None:
            out["entrypoint"] = self.entrypoint
        if self.trusted:
            out["trusted"] = list(self.trusted)
        out["task"] = self.task
        if self.target is not None:
            out["target"] = self.target
        if self.classes is not None:
            out["classes"] = list(self.classes)
        if self.threshold is not None:
            out["threshold"] = self.threshold
        out["interface"] = self.interface.to_json()
        out["golden"] = self.golden
        out["reference"] = self.reference
        return out


def check_relative(path: Any, source: str, key: str) -> str:
    """PATH as a relative POSIX path inside the package: no '..', not absolute, not empty."""
    text = _string(path, source, key)
    p = PurePosixPath(text)
    if "\\" in text or p.is_absolute() or text.startswith("~") or any(part == ".." for part in p.parts) \
            or p.as_posix() in (".", ""):
        raise _fail(source, key, f"must be a relative path inside the package (no '..', not absolute), got {text!r}")
    return p.as_posix()


def _parse_files(raw: Any, source: str) -> tuple[ModelFile, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise _fail(source, "files", "must be a non-empty list of the model's files")
    out: list[ModelFile] = []
    for k, entry in enumerate(raw):
        key = f"files[{k}]"
        if isinstance(entry, str):
            out.append(ModelFile(check_relative(entry, source, key)))
            continue
        if not isinstance(entry, Mapping) or set(entry) - {"path", "sha256"}:
            raise _fail(source, key, "must be a path or {path, sha256}")
        sha = entry.get("sha256")
        if sha is not None and not (isinstance(sha, str) and len(sha) == 64
                                    and all(c in "0123456789abcdef" for c in sha)):
            raise _fail(source, f"{key}.sha256", "must be 64 lowercase hex digits")
        out.append(ModelFile(check_relative(entry.get("path"), source, f"{key}.path"), sha))
    paths = [f.path for f in out]
    if len(set(paths)) != len(paths):
        raise _fail(source, "files", "lists a file twice")
    return tuple(out)


def parse_manifest(raw: Any, source: str = MANIFEST_FILE) -> Manifest:
    """A Manifest from the parsed YAML of mlops-model.yaml; ManifestInvalid naming SOURCE and the key."""
    if not isinstance(raw, Mapping):
        raise ManifestInvalid(f"{source}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_MANIFEST_KEYS))
    if unknown:
        raise _fail(source, str(unknown[0]), f"is not a manifest key ({', '.join(_MANIFEST_KEYS)})")
    fmt = raw.get("format")
    if fmt != MANIFEST_FORMAT or isinstance(fmt, bool):
        raise _fail(source, "format", f"is {fmt!r}, this mlops reads format {MANIFEST_FORMAT}",
                    hint="repackage the model with this mlops (mlops package), or upgrade mlops")
    runtime = raw.get("runtime")
    if runtime not in RUNTIMES:
        raise _fail(source, "runtime", f"is {runtime!r}, expected one of {', '.join(RUNTIMES)}")
    task = raw.get("task")
    if task not in TASKS:
        raise _fail(source, "task", f"is {task!r}, expected one of {', '.join(TASKS)}")
    files = _parse_files(raw.get("files"), source)
    classes: tuple[str, ...] | None = None
    if task == "regression":
        for key in ("classes", "threshold"):
            if raw.get(key) is not None:
                raise _fail(source, key, "is for classifiers; a regression model has none")
    else:
        classes = _string_list(raw.get("classes"), source, "classes", what="class names")
        if task == "binary" and len(classes) != 2:
            raise _fail(source, "classes", f"must name 2 classes for a binary model ([negative, positive]), got "
                        f"{len(classes)}")
        if task == "multiclass" and len(classes) < 2:
            raise _fail(source, "classes", "must name at least 2 classes")
    threshold = raw.get("threshold")
    if threshold is not None:
        if task != "binary":
            raise _fail(source, "threshold", "is for binary models only (multiclass labels are the argmax)")
        if type(threshold) not in (int, float) or not 0 < threshold < 1:
            raise _fail(source, "threshold", f"must be a number strictly between 0 and 1, got {_shown(threshold)}")
        threshold = float(threshold)
    target = raw.get("target")
    if target is not None:
        target = _string(target, source, "target")
    entrypoint = raw.get("entrypoint")
    if runtime == "python":
        entrypoint = _string(entrypoint, source, "entrypoint")
        file_part, _, cls = entrypoint.partition(":")
        if not cls.isidentifier() or check_relative(file_part, source, "entrypoint") not in \
                {f.path for f in files} or not file_part.endswith(".py"):
            raise _fail(source, "entrypoint", f"must be FILE.py:CLASS with FILE one of 'files', got {entrypoint!r}")
    elif entrypoint is not None:
        raise _fail(source, "entrypoint", "is for the python runtime only")
    trusted_raw = raw.get("trusted") or []
    if trusted_raw and runtime != "sklearn":
        raise _fail(source, "trusted", "is for the sklearn runtime's .skops files only")
    trusted = _string_list(trusted_raw, source, "trusted", what="type names") if trusted_raw else ()
    interface = parse_interface(raw.get("interface"), source, task=cast(Task, task), classes=classes)
    golden = check_relative(raw.get("golden", GOLDEN_FILE), source, "golden")
    reference = check_relative(raw.get("reference", REFERENCE_FILE), source, "reference")
    return Manifest(runtime=cast(RuntimeName, runtime), files=files, task=cast(Task, task), interface=interface,
                    classes=classes, threshold=threshold, target=target, entrypoint=entrypoint, trusted=trusted,
                    golden=golden, reference=reference)


def manifest_path(path: Path | str) -> Path:
    """PATH itself, or PATH/mlops-model.yaml when PATH is a directory."""
    p = Path(path)
    return p / MANIFEST_FILE if p.is_dir() else p


def read_manifest(path: Path | str) -> Manifest:
    """The manifest at PATH (the file, or the package directory); ManifestInvalid when missing or malformed."""
    from mlops.files import read_yaml

    p = manifest_path(path)
    raw = read_yaml(p, ManifestInvalid, hint="write it with `mlops package` (it goes beside the model file)")
    return parse_manifest(raw, str(p))


def dump_manifest(manifest: Manifest) -> str:
    """The manifest's YAML text: a header comment, keys in the documented order, inputs one per line."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _flow_mapping(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
        flow = all(not isinstance(v, dict) for v in data.values()) and "inputs" not in data
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow or None)

    def _flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        flow = all(not isinstance(v, dict | list) for v in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow or None)

    _Dumper.add_representer(dict, _flow_mapping)
    _Dumper.add_representer(list, _flow_list)
    body = yaml.dump(manifest.to_json(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120,
                     default_flow_style=False)
    return f"# mlops model package (format {manifest.format}): see mlops/formats/manifest.py\n{body}"


def write_manifest(directory: Path | str, manifest: Manifest) -> Path:
    """Write MANIFEST as DIRECTORY/mlops-model.yaml, atomically; the path written."""
    text = dump_manifest(manifest)
    # What is written must read back as the same manifest: a writer bug never ships a package nobody can load.
    import yaml

    if parse_manifest(yaml.safe_load(text), MANIFEST_FILE) != manifest:
        raise ManifestInvalid(f"{MANIFEST_FILE}: the written manifest does not read back as written (a bug)")
    return write_text_atomic(Path(directory) / MANIFEST_FILE, text)


# --- feature_schema.json (format mlops.feature-schema/1): the compatibility reader and writer ---------------------


@dataclass(frozen=True)
class FeatureSchema:
    """A feature_schema.json: the interface's inputs, and its free-form `output` object verbatim."""

    interface: Interface
    output: Mapping[str, Scalar | list[str]]


def _parse_output(raw: Any, source: str) -> dict[str, Scalar | list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ManifestInvalid(f"{source}: key 'output' must be an object")
    out: dict[str, Scalar | list[str]] = {}
    for k, v in raw.items():
        if not isinstance(k, str):
            raise ManifestInvalid(f"{source}: key 'output' must have string keys")
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            out[k] = list(v)
        elif v is None or isinstance(v, str | int | float | bool):
            out[k] = v
        else:
            raise ManifestInvalid(f"{source}: key 'output.{k}' must be a string, number, boolean or list of strings")
    return out


def parse_feature_schema(raw: Any, source: str = "feature_schema.json", *, allow_string: bool = False
                         ) -> FeatureSchema:
    """A feature_schema.json document (or the interface a registry tag recorded: the same shape, with or without
    `format`; ALLOW_STRING: a recorded block may list `string` inputs of a manifest); ManifestInvalid (a
    ModelInvalid) naming SOURCE and the key when malformed.

    Also reads a manifest's interface section ({inputs, outputs}) so that a tag recording either shape diffs."""
    if not isinstance(raw, Mapping):
        raise ManifestInvalid(f"{source}: expected a JSON object, got {type(raw).__name__}")
    if "inputs" in raw and "features" not in raw:
        inputs = parse_inputs(raw.get("inputs"), source, "inputs")
        output = _parse_output(raw.get("output"), source)
        return FeatureSchema(Interface(inputs, _legacy_outputs(output)), output)
    fmt = raw.get("format", FEATURE_SCHEMA_FORMAT)
    if fmt != FEATURE_SCHEMA_FORMAT:
        raise ManifestInvalid(f"{source}: key 'format' is {fmt!r}, this mlops reads {FEATURE_SCHEMA_FORMAT!r}",
                              hint="retrain the model with this mlops, or upgrade mlops")
    inputs = parse_inputs(raw.get("features"), source, "features", legacy=True, allow_string=allow_string)
    output = _parse_output(raw.get("output"), source)
    return FeatureSchema(Interface(inputs, _legacy_outputs(output)), output)


def _legacy_outputs(output: Mapping[str, Any]) -> tuple[Output, ...]:
    name = output.get("name")
    return (Output(name if isinstance(name, str) and name else "probability", "float"),)


def read_feature_schema(path: Path | str) -> FeatureSchema:
    """The feature_schema.json at PATH; ManifestInvalid when missing, not JSON or malformed."""
    import json

    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestInvalid(f"{p}: not found", hint="train writes it beside the model") from None
    except (ValueError, UnicodeDecodeError):
        raise ManifestInvalid(f"{p}: not valid JSON") from None
    return parse_feature_schema(raw, str(p))


def feature_schema_json(inputs: Sequence[Input], output: Mapping[str, Any]) -> dict[str, Any]:
    """The feature_schema.json document of INPUTS and OUTPUT (its keys: name, type, categories; the manifest-only
    `range` and `nullable` are not part of format 1)."""
    feats: list[dict[str, Any]] = []
    for f in inputs:
        entry: dict[str, Any] = {"name": f.name, "type": f.type}
        if f.categories is not None:
            entry["categories"] = list(f.categories)
        feats.append(entry)
    return {"format": FEATURE_SCHEMA_FORMAT, "features": feats, "output": dict(output)}


def feature_schema_of(manifest: Manifest) -> dict[str, Any]:
    """A manifest's interface as a feature_schema.json document (for readers of format 1); ManifestInvalid when it
    has an input that format 1 cannot state (a `string` input)."""
    bad = [i.name for i in manifest.interface.inputs if i.type not in LEGACY_TYPES]
    if bad:
        raise ManifestInvalid(f"{MANIFEST_FILE}: input '{bad[0]}' of type string has no feature_schema.json form")
    return feature_schema_json(manifest.interface.inputs, manifest.output_description())
