"""The exchanged file formats (mlops.formats): round trips of the reference profile and the store metadata, and the
rule that nothing outside mlops/formats/ names a format's identifier or file, so a new ad-hoc reader fails here."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from mlops import modelstore
from mlops.errors import ModelInvalid, ModelStoreError
from mlops.files import sha256_file
from mlops.formats.profile import (
    PROFILE_FORMAT,
    ProfileInvalid,
    dumps,
    parse_profile,
    read_profile,
    write_profile,
)
from mlops.formats.store import (
    META_FILE,
    STORE_FORMAT,
    StoreMeta,
    StoreMetaInvalid,
    parse_store_meta,
    read_store_meta,
    write_store_meta,
)
from mlops.profile import build_profile

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = {"format": "mlops.feature-schema/1",
          "features": [{"name": "tenure", "type": "int"},
                       {"name": "plan", "type": "category", "categories": ["a", "b"]}],
          "output": {"name": "probability", "type": "float", "label": "churn", "positive": "Yes"}}


def _profile(task: str = "binary") -> dict[str, object]:
    rows = 40
    data = {"tenure": [i % 13 for i in range(rows)], "plan": ["a" if i % 3 else "b" for i in range(rows)]}
    if task == "multiclass":
        scores: object = [[0.2, 0.8] if i % 2 else [0.7, 0.3] for i in range(rows)]
        return build_profile(data, SCHEMA, scores, [i % 2 for i in range(rows)], ["plan"], task=task,
                             classes=["x", "y"])
    return build_profile(data, SCHEMA, [(i % 10) / 10 for i in range(rows)], [i % 2 for i in range(rows)],
                         ["plan"], threshold=0.4)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_profile_round_trip(tmp_path: Path, task: str) -> None:
    doc = _profile(task)
    path = write_profile(tmp_path / "models" / "reference.json", doc)
    assert path.read_text(encoding="utf-8") == dumps(doc)  # the writer's bytes are dumps' bytes
    got = read_profile(path)
    assert got.doc == json.loads(dumps(doc))
    assert dumps(got.doc) == dumps(doc)  # read then written again: the same bytes
    assert got.task == task and got.rows == 40
    assert got.feature_names == ["tenure", "plan"] and got.categorical == ["plan"]
    assert got.output_name == "probability" and got.label == "churn" and got.positive == "Yes"
    assert got.threshold == (0.4 if task == "binary" else None)
    assert got.classes == (("x", "y") if task == "multiclass" else None)
    assert not list(tmp_path.glob("models/*.tmp"))


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "mlops.reference-profile/9"}, "key 'format' is 'mlops.reference-profile/9'"),
    ({"rows": 0}, "key 'rows' must be a positive integer"),
    ({"threshold": "high"}, "key 'threshold' must be a number or null"),
    ({"interface": {"features": [{"name": "x", "type": "text"}]}}, "x"),
    ({"task": "ranking"}, "key 'task' is 'ranking'"),
    ({"features": {}}, "key 'features' must be a non-empty object"),
])
def test_profile_reader_names_the_key(change: dict[str, object], message: str) -> None:
    doc = {**_profile(), **change}
    with pytest.raises(ProfileInvalid, match=message) as info:
        parse_profile(json.loads(json.dumps(doc)), "ref.json")
    assert isinstance(info.value, ModelInvalid) and info.value.message.startswith("ref.json")


def test_profile_writer_refuses_what_the_reader_refuses(tmp_path: Path) -> None:
    doc = {**_profile(), "rows": -1}
    with pytest.raises(ProfileInvalid, match="rows"):
        write_profile(tmp_path / "reference.json", doc)
    assert not (tmp_path / "reference.json").exists()
    assert _profile()["format"] == PROFILE_FORMAT


def test_profile_missing_and_not_json(tmp_path: Path) -> None:
    with pytest.raises(ProfileInvalid, match="reference profile not found"):
        read_profile(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(ProfileInvalid, match="not valid JSON"):
        read_profile(tmp_path / "bad.json")


def test_store_meta_round_trip(tmp_path: Path) -> None:
    meta = StoreMeta(name="m", version="v1.2.0", model_file="model.ubj", model_sha256="a" * 64,
                     tag="m@v1.2.0", commit="0" * 40, installed_at="2026-01-29T10:00:00Z",
                     interface=SCHEMA, files={"model.ubj": "a" * 64, "golden.json": "b" * 64},
                     extra={"metrics": {"auc": 0.8}})
    path = write_store_meta(tmp_path / META_FILE, meta)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert list(doc) == ["format", "name", "version", "model_file", "model_sha256", "tag", "commit",
                         "installed_at", "interface", "files", "metrics"]
    assert doc["format"] == STORE_FORMAT
    assert read_store_meta(path) == meta
    write_store_meta(tmp_path / "again.json", read_store_meta(path))
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(("doc", "message"), [
    ([], "not a mlops.modelstore/1 document"),
    ({"format": STORE_FORMAT, "name": "m", "version": "v1.0.0", "model_file": "model.ubj"},
     "key 'model_sha256' is missing"),
    ({"format": STORE_FORMAT, "name": "m", "version": "v1.0.0", "model_file": "m", "model_sha256": "a" * 64,
      "files": {"m": "not-a-digest"}}, "key 'files' must map paths to sha256 digests"),
    ({"format": STORE_FORMAT, "name": "m", "version": "v1.0.0", "model_file": "m", "model_sha256": "a" * 64,
      "tag": 5}, "key 'tag' must be a string or null"),
])
def test_store_meta_reader_names_the_key(doc: object, message: str) -> None:
    with pytest.raises(StoreMetaInvalid, match=message) as info:
        parse_store_meta(doc, "store/m/v1.0.0/mlops-model.json")
    assert isinstance(info.value, ModelStoreError)


def test_the_store_writes_and_reads_through_the_format(tmp_path: Path) -> None:
    src = tmp_path / "art"
    src.mkdir()
    (src / "model.ubj").write_bytes(b"model")
    (src / "feature_schema.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    sha = sha256_file(src / "model.ubj")
    got = modelstore.install(tmp_path / "store", "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha,
                             meta={"tag": "m@v1.0.0", "metrics": {"auc": 0.8}})
    assert read_store_meta(got.path / META_FILE) == got.meta
    assert got.meta.extra == {"metrics": {"auc": 0.8}} and got.meta.tag == "m@v1.0.0"
    assert got.interface is not None and got.interface["features"] == SCHEMA["features"]
    assert set(got.files) == {"model.ubj", "feature_schema.json"}


# --- nothing outside mlops/formats/ parses an exchanged file ------------------------------------------------------

# Format identifiers: only the format's own module may hold them (whoever else has one reads or writes by hand).
FORMAT_IDS = ("mlops.reference-profile/", "mlops.modelstore/", "mlops.golden/", "mlops.registry/", "mlops.model/",
              "mlops.feature-schema/", "-----BEGIN MLOPS METADATA", "-----END MLOPS METADATA")
# File names of the exchanged files, and the places outside mlops/formats/ allowed to spell them, each with why.
FILE_NAMES = ("reference.json", "golden.json", "mlops-model.yaml", "mlops-model.json", "feature_schema.json")
ALLOWED: dict[tuple[str, str], str] = {
    ("mlops/config.py", "feature_schema.json"): "registry.schema_file's default",
    ("mlops/mltestscore.py", "models/golden.json"): "a path the ML Test Score looks for, never opened as golden",
    ("mlops/modelstore.py", "feature_schema.json"): "detects a legacy artifact; read by formats.manifest",
    ("mlops/deploy/local.py", "golden.json"): "the path it hands to formats.golden's reader",
    ("mlops/deploy/local.py", "feature_schema.json"): "the path it hands to formats.manifest's reader",
    ("mlops/serve/models.py", "golden.json"): "the path it hands to formats.golden's reader",
    ("mlops/serve/models.py", "feature_schema.json"): "the path it hands to formats.manifest's reader",
    ("mlops/serve/server.py", "feature_schema.json"): "detects a churn-stage model directory",
    ("mlops/features.py", "feature_schema.json"): "the default source named in error messages",
    ("mlops/jobs/check.py", "feature_schema.json"): "detects a churn-stage directory; read by formats.manifest",
    ("mlops/predict/model.py", "feature_schema.json"): "the path it hands to formats.manifest's reader",
    ("mlops/stages/train.py", "feature_schema.json"): "the churn stage writes the legacy interface file",
}


def _literals(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module that are not docstrings (error texts and hints included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_no_exchanged_format_is_read_or_written_outside_mlops_formats() -> None:
    found: list[str] = []
    for path in sorted((ROOT / "mlops").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("mlops/formats/"):
            continue
        for line, text in _literals(path):
            if any(marker in text for marker in FORMAT_IDS):
                found.append(f"{rel}:{line}: format identifier {text[:60]!r}")
            # a literal that is a file name (or ends in one): where a reader or writer would open it
            for name in FILE_NAMES:
                if (text == name or text.endswith("/" + name)) and (rel, text) not in ALLOWED \
                        and (rel, name) not in ALLOWED:
                    found.append(f"{rel}:{line}: file name {text!r} (use the constant and reader of mlops.formats)")
    assert not found, "exchanged formats handled outside mlops/formats/:\n" + "\n".join(found)


def test_the_allow_list_has_no_stale_entries() -> None:
    """An allowed spelling that is gone is removed from ALLOWED, so the list only shrinks to what is real."""
    stale = [key for key in ALLOWED
             if key[1] not in {t for _, t in _literals(ROOT / key[0])}
             and not any(t.endswith("/" + key[1]) for _, t in _literals(ROOT / key[0]))]
    assert not stale, stale


def test_one_parser_per_name() -> None:
    """No two modules define a reader of the same name with different meanings (parse_interface was three)."""
    owners: dict[str, list[str]] = {}
    for path in sorted((ROOT / "mlops").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith(("parse_", "read_", "load_")):
                owners.setdefault(node.name, []).append(path.relative_to(ROOT).as_posix())
    # read_golden in deploy/smoke.py wraps formats.golden.read_golden (DeployError for the CLI): same meaning
    known = {"read_golden"}
    clashes = {name: files for name, files in owners.items() if len(files) > 1 and name not in known}
    assert not clashes, clashes
