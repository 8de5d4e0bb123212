"""One reader for the file formats the toolkit reads (YAML, JSON, CSV/TSV outputs) and one content hasher.

YAML is read with YAML 1.2's floats (`1e-3` is a number, as DVC reads it on ruamel); errors name the file and
the line. Hashes stream the file (`hashlib.file_digest`), so a large model is never read into memory at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import MlopsError


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `1e-3` is a number (DVC, on ruamel, reads it so too)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str | bytes, source: str, error: type[MlopsError] = MlopsError) -> Any:
    """The YAML document in TEXT; ERROR naming SOURCE and the line when it is not valid YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise error(f"{source}:{where} not valid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise error(f"{source}: not valid UTF-8 text") from None


def read_yaml(path: Path | str, error: type[MlopsError] = MlopsError, *, required: bool = True,
              hint: str | None = None) -> Any:
    """The YAML in PATH (None when it is absent and not REQUIRED); ERROR naming the file (and line) otherwise."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        if not required:
            return None
        raise error(f"{p}: file not found", hint=hint) from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a YAML file") from None
    return load_yaml(raw, str(p), error)


def yaml_mapping(raw: bytes | str | None) -> dict[str, Any]:
    """A YAML mapping, or {} for anything else (a file of another revision that may be missing or broken)."""
    if not raw:
        return {}
    try:
        data = load_yaml(raw, "-")
    except MlopsError:
        return {}
    return data if isinstance(data, dict) else {}


def _num(v: Any) -> Any:
    try:
        return float(v) if isinstance(v, str) and v.strip() != "" else v
    except ValueError:
        return v


def parse_structured(path: str, raw: bytes) -> Any:
    """A metrics or plots file's content by its suffix (json, yaml, csv, tsv); None when it cannot be parsed.

    The one reader of metrics files: the report, the gates and promote all see the same values."""
    text = raw.decode("utf-8", errors="replace")
    low = path.lower()
    try:
        if low.endswith((".yaml", ".yml")):
            return load_yaml(text, path)
        if low.endswith((".csv", ".tsv")):
            rows = list(csv.DictReader(io.StringIO(text), delimiter="\t" if low.endswith(".tsv") else ","))
            return [{k: _num(v) for k, v in r.items()} for r in rows]
        return json.loads(text)
    except (ValueError, MlopsError):
        return None


def sha256_file(path: Path | str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def md5_file(path: Path | str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()  # DVC's content hash, not security


def sha256_tree(path: Path) -> str:
    """The sha256 of a directory: of its manifest, one `SHA256  RELPATH` line per file sorted by path (what
    `find . -type f | sort | xargs sha256sum | sha256sum` gives from inside it, paths without the `./`)."""
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
    manifest = "".join(f"{sha256_file(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
    return hashlib.sha256(manifest.encode()).hexdigest()


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a directory's manifest (sha256_tree)."""
    return sha256_tree(path) if path.is_dir() else sha256_file(path)
