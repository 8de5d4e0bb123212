"""The metadata block of mlops' registry tags (`NAME@vX.Y.Z`, `NAME#STAGE#N`): the one writer and the one reader.

A registry tag's message is one human line, an optional human paragraph, then a JSON object between two marker
lines, and nothing after it but the signature git appends to a signed tag:

    churn-model v1.3.0 (minor: input added: region)

    Registered by mlops 0.9.0 from commit 0123456789ab.

    -----BEGIN MLOPS METADATA-----
    {"format": "mlops.registry/1", "action": "register", ...}
    -----END MLOPS METADATA-----

What later decisions read from it (production's metrics for the gates, the previous interface for the bump, the
DVC hash for "unchanged", the model's sha256 for deploy) must not be forgeable by the data that a model was trained
on, and some of the human text comes from the data (the bump reason names features and category values):

- the writer puts every human text on one line: control, format and line/paragraph-separator characters become
  spaces, so no data string can start a line of its own, let alone a marker line; the JSON escapes everything
  outside printable ASCII;
- the reader accepts exactly one block, at the end of the message: a second marker line anywhere, or any text
  after the block other than a signature, is refused as malformed (TagMetaInvalid), never resolved by picking one.
  Tags made by earlier versions (a single block at the end) read as before.

A tag with no block (GTO's, a person's) reads as None: mlops then falls back to what git alone can tell.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mlops import versions
from mlops.errors import RegistryError

FORMAT = "mlops.registry/1"
BEGIN = "-----BEGIN MLOPS METADATA-----"
END = "-----END MLOPS METADATA-----"
# The lines with which git starts the signature it appends to a signed tag's message (gpg-interface.c).
SIGNATURE_STARTS = ("-----BEGIN PGP SIGNATURE-----", "-----BEGIN PGP MESSAGE-----", "-----BEGIN SIGNED MESSAGE-----",
                    "-----BEGIN SSH SIGNATURE-----")
HEADLINE_MAX = 300  # characters of the human line; longer text is cut with an ellipsis

_HEX40_64 = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a commit id (SHA-1 or SHA-256 repositories)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}(?:\.dir)?")


class TagMetaInvalid(RegistryError):
    """A registry tag's metadata block is malformed: more than one block, text after it, bad JSON or bad values."""


@dataclass(frozen=True)
class TagMeta:
    """The block's content. Registration tags fill the model's facts; assignment tags the stage fields."""

    action: str  # "register" or "assign"
    artifact: str | None = None
    version: str | None = None
    commit: str | None = None  # the commit the tag points at (a copied or edited tag disagrees with its target)
    # registration
    bump: str | None = None
    bump_reason: str | None = None
    path: str | None = None  # the artifact's path (a DVC output)
    dvc_md5: str | None = None  # its hash in dvc.lock
    model_file: str | None = None  # what model_sha256 covers, repo-relative
    model_sha256: str | None = None
    interface: Mapping[str, Any] | None = None
    interface_sha256: str | None = None
    data_md5: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    params_sha256: str | None = None
    metrics: Mapping[str, Any] | None = None
    pr: int | None = None
    actor: str | None = None
    # assignment
    stage: str | None = None
    number: int | None = None
    previous: str | None = None
    reason: str | None = None
    # provenance
    run_url: str | None = None
    mlops: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a newer writer added: kept, never interpreted

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"format": FORMAT}
        for f in fields(self):
            if f.name != "extra":
                value = getattr(self, f.name)
                doc[f.name] = dict(value) if isinstance(value, Mapping) else value
        for k, v in self.extra.items():
            doc.setdefault(k, v)
        return doc


# --- validation of each key -----------------------------------------------------------------------------------

_STR = ("action", "artifact", "bump", "bump_reason", "path", "model_file", "interface_sha256", "params_sha256",
        "data_md5",
        "actor", "stage", "reason", "run_url", "mlops")


def _check(doc: Mapping[str, Any], where: str) -> TagMeta:
    def bad(key: str, what: str) -> TagMetaInvalid:
        return TagMetaInvalid(f"{where}: key '{key}' {what}", hint="the tag was not written by mlops' writer; "
                              "deploy or compare against another version")

    values: dict[str, Any] = {}
    for key in _STR:
        v = doc.get(key)
        if v is not None and not isinstance(v, str):
            raise bad(key, "must be a string")
        values[key] = v
    if values["action"] not in ("register", "assign", "", None):
        raise bad("action", "must be register or assign")
    for key in ("version", "previous"):
        v = doc.get(key)
        if v is not None and not versions.is_valid(v):
            raise bad(key, "must be a version vX.Y.Z[-pre][+build]")
        values[key] = v
    for key, pattern, what in (("commit", _HEX40_64, "a commit id"), ("model_sha256", _SHA256, "a sha256 hex digest"),
                               ("dvc_md5", _MD5, "a DVC md5 hash")):
        v = doc.get(key)
        if v is not None and not (isinstance(v, str) and pattern.fullmatch(v)):
            raise bad(key, f"must be {what}")
        values[key] = v
    for key in ("pr", "number"):
        v = doc.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise bad(key, "must be a whole number")
        values[key] = v
    for key in ("interface", "metrics"):
        v = doc.get(key)
        if v is not None and not isinstance(v, dict):
            raise bad(key, "must be an object")
        values[key] = v
    data = doc.get("data") or {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise bad("data", "must map paths to hashes")
    values["data"] = data
    known = {f.name for f in fields(TagMeta)} | {"format"}
    values["extra"] = {k: v for k, v in doc.items() if k not in known}
    values["action"] = values["action"] or ""
    return TagMeta(**values)


def from_json(doc: Any, where: str = "tag metadata") -> TagMeta:
    """A TagMeta from the block's JSON object; TagMetaInvalid naming WHERE and the key when it is not one."""
    if not isinstance(doc, dict):
        raise TagMetaInvalid(f"{where}: the metadata block is not a JSON object")
    if doc.get("format") != FORMAT:
        raise TagMetaInvalid(f"{where}: metadata format {doc.get('format')!r} is not {FORMAT}",
                             hint="a newer mlops wrote it, or another tool: upgrade mlops, or deploy another version")
    return _check(doc, where)


# --- the message ------------------------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")


def one_line(text: str, limit: int = HEADLINE_MAX) -> str:
    """TEXT as one line of plain text: control and format characters and line/paragraph separators become spaces,
    runs of spaces one space; cut to LIMIT characters with an ellipsis."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") else ch
                      for ch in text)
    line = _SPACES.sub(" ", cleaned).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"


def write(headline: str, meta: TagMeta, body: str = "") -> str:
    """The tag message: HEADLINE and BODY made single lines (see `one_line`), then the block (keys sorted: stable
    bytes). Checked by reading it back: what the writer makes, the reader reads as META."""
    parts = [one_line(headline) or meta.action, ""]
    if body.strip():
        parts += [one_line(body, 2000), ""]
    parts += [BEGIN, json.dumps(meta.to_json(), indent=2, sort_keys=True, ensure_ascii=True), END, ""]
    message = "\n".join(parts)
    back = read(message, "the tag message being written")
    if back is None or json.dumps(back.to_json(), sort_keys=True) != json.dumps(meta.to_json(), sort_keys=True):
        raise TagMetaInvalid("the tag message being written does not read back as its metadata",
                             hint="a bug in mlops: please report it")
    return message


def _lines(message: str) -> list[str]:
    return [ln.rstrip("\r") for ln in message.split("\n")]


def read(message: str, where: str = "tag message") -> TagMeta | None:
    """The metadata of a tag MESSAGE (as git returns it, signature included); None when it has no block.

    TagMetaInvalid (naming WHERE) when it has more than one marker line of either kind, when anything but a
    signature follows the block, or when the block is not a valid FORMAT object."""
    lines = _lines(message)
    begins = [i for i, ln in enumerate(lines) if ln.strip() == BEGIN]
    ends = [i for i, ln in enumerate(lines) if ln.strip() == END]
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1:
        raise TagMetaInvalid(f"{where}: {max(len(begins), len(ends))} metadata blocks (exactly one is allowed)",
                             hint="the message was not made by mlops' writer; deploy or compare against another "
                                  "version")
    begin, end = begins[0], ends[0]
    if end < begin:
        raise TagMetaInvalid(f"{where}: the metadata block's end marker comes before its start")
    rest = [ln for ln in lines[end + 1:] if ln.strip()]
    if rest and not rest[0].startswith(SIGNATURE_STARTS):
        raise TagMetaInvalid(f"{where}: text after the metadata block (it must end the message)")
    try:
        doc = json.loads("\n".join(lines[begin + 1:end]))
    except ValueError:
        raise TagMetaInvalid(f"{where}: the metadata block is not valid JSON") from None
    return from_json(doc, where)


def headline(message: str) -> str:
    """The human line of a tag message (what `mlops registry history` shows), made one plain line."""
    first = next((ln for ln in _lines(message) if ln.strip()), "")
    return one_line(first)
