"""The `kserve` target: an InferenceService manifest, checked strictly against KServe's own CRD schema, then
applied with `kubectl apply` when a cluster context is configured, else written for Argo CD or Flux to sync.

The schema (mlops/deploy/schemas/, from kserve/kserve's full CRD) never says `additionalProperties: false`, so a
typo such as `storageUrl` would pass it and be dropped by the API server without a word. Before validating, every
object schema that declares properties, and does not keep unknown fields on purpose
(`x-kubernetes-preserve-unknown-fields`), is closed: unknown fields are refused, naming their path. `metadata` is a
bare `{type: object}` in the CRD (the API server checks ObjectMeta); it is closed here to the keys a manifest sets.

Canary: Knative mode splits traffic between the last rolled-out revision and the new one by
`predictor.canaryTrafficPercent` (only that mode reads it: standard mode ignores it silently, kserve#5335).
Standard mode takes `spec.canary: [{predictor, trafficPercent}]` (KServe v0.20) beside the stable `predictor`.

storageUri and its limit: the URI points at the model file's object in the DVC remote, `<remote>/files/md5/xx/rest`
(DVC 3's content-addressed layout), so what a cluster loads is exactly the bytes the tag's sha256 names. KServe's
storage initializer saves a single object under its key's last segment, a hash without a suffix, while its xgboost
runtime looks for `*.bst|*.json|*.ubj` in the model directory: with the stock runtime, point `storage_uri` at a
copy named model.ubj (or use a ClusterStorageContainer that names the file). A remote that is a local folder
cannot be read from a cluster at all. The result's notes say both.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mlops.errors import DeployError

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
SCHEMA_FILE = "inferenceservice-v1beta1.schema.json"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"

Mode = Literal["knative", "standard"]
# KServe >= 0.15 names the modes Knative (formerly Serverless) and Standard (formerly RawDeployment).
_MODE_VALUE: dict[str, str] = {"knative": "Knative", "standard": "Standard"}

# KServe refuses InferenceService names that are not DNS-1035 labels (they become Knative service names).
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# The schemes KServe's default storage initializer downloads from (kserve_storage.Storage.download).
_CLUSTER_SCHEMES = ("s3://", "gs://", "hdfs://", "webhdfs://", "https://", "http://", "hf://", "pvc://", "oci://")

# ObjectMeta as a manifest writes it; the CRD leaves metadata open ({type: object}).
_METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": _NAME.pattern},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@dataclass(frozen=True)
class Predictor:
    """One model version as a predictor serves it."""

    version: str
    storage_uri: str
    model_sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str
    namespace: str
    mode: Mode
    version: str  # the version being rolled out
    stable: str | None  # the version that keeps the rest of the traffic during a canary (None: full rollout)
    canary_percent: int | None
    document: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def yaml(self) -> str:
        return yaml.safe_dump(self.document, sort_keys=False, default_flow_style=False)


# KServe's own default name of the model container; the CRD requires a name in `spec.canary[].predictor.model`.
CONTAINER = "kserve-container"


def _model(p: Predictor) -> dict[str, Any]:
    return {"name": CONTAINER, "modelFormat": {"name": "xgboost"}, "protocolVersion": "v2",
            "storageUri": p.storage_uri}


def storage_notes(uris: Iterable[str]) -> tuple[str, ...]:
    """What a cluster will make of these storageUris (see the module docstring): one note per problem."""
    unique = list(dict.fromkeys(uris))
    unreadable = [u for u in unique if not u.startswith(_CLUSTER_SCHEMES)]
    hashed = [u for u in unique if re.search(r"/files/md5/[0-9a-f]{2}/[0-9a-f]{30}$", u)]
    notes: list[str] = []
    if unreadable:
        notes.append(f"storageUri {', '.join(unreadable)}: not a scheme KServe's storage initializer downloads from "
                     f"({', '.join(s.removesuffix('://') for s in _CLUSTER_SCHEMES)}); a cluster cannot read a local "
                     "DVC remote: use an s3/gs/https remote, or pass --storage-uri")
    if hashed:
        notes.append("storageUri is a content-addressed DVC object: KServe saves it under its hash, without the "
                     ".ubj suffix that the stock xgboost runtime looks for; use a runtime or storage container that "
                     "names the file, or pass --storage-uri with a copy named model.ubj")
    return tuple(notes)


def render(name: str, namespace: str, mode: Mode, candidate: Predictor, stable: Predictor | None,
           canary_percent: int, labels: Mapping[str, str] | None = None) -> Manifest:
    """The InferenceService that rolls CANDIDATE out: a canary beside STABLE (when there is one and it differs),
    else all traffic to CANDIDATE. Not yet validated: `validate` does that."""
    if not _NAME.match(name):
        raise DeployError(f"'{name}' cannot name an InferenceService: KServe needs a DNS-1035 label (lower-case "
                          "letters, digits and '-', starting with a letter, at most 63 characters)",
                          hint="rename the artifact (registry.artifact in params.yaml)")
    if not 0 <= canary_percent <= 100:
        raise DeployError(f"canary share {canary_percent}% is not between 0 and 100",
                          hint="set deploy.canary_percent in params.yaml")
    canary = stable is not None and stable.version != candidate.version
    annotations = {MODE_ANNOTATION: _MODE_VALUE[mode], "mlops/version": candidate.version,
                   "mlops/model-sha256": candidate.model_sha256}
    predictor: dict[str, Any]
    spec: dict[str, Any]
    if canary and stable is not None and mode == "standard":
        annotations["mlops/stable-version"] = stable.version
        predictor = {"model": _model(stable)}
        spec = {"predictor": predictor, "canary": [{"predictor": {"model": _model(candidate)},
                                                    "trafficPercent": canary_percent}]}
    else:
        predictor = {"model": _model(candidate)}
        if canary and stable is not None:  # knative: the last rolled-out revision keeps the rest
            annotations["mlops/stable-version"] = stable.version
            predictor["canaryTrafficPercent"] = canary_percent
        spec = {"predictor": predictor}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace,
                                "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "mlops",
                                           **(labels or {})},
                                "annotations": annotations}
    doc = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
    uris = [candidate.storage_uri] + ([stable.storage_uri] if canary and stable and mode == "standard" else [])
    return Manifest(name, namespace, mode, candidate.version, stable.version if canary and stable else None,
                    canary_percent if canary else None, doc, storage_notes(uris))


# --- the strict schema ------------------------------------------------------------------------------------------


def _close(schema: Any) -> Any:
    """SCHEMA with `additionalProperties: false` on every object schema that declares properties, unless it keeps
    unknown fields on purpose or already says what extra keys may hold."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _close(v) for k, v in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _close(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_close(s) for s in out[key]]
    return out


def packaged_schema() -> dict[str, Any]:
    """KServe's InferenceService openAPIV3Schema as packaged (unchanged)."""
    raw = resources.files("mlops.deploy").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    data = json.loads(raw)
    schema = data.get("openAPIV3Schema", data)
    if not isinstance(schema, dict):
        raise DeployError(f"mlops/deploy/schemas/{SCHEMA_FILE}: not a CRD schema")
    return schema


@functools.lru_cache(maxsize=1)
def strict_schema() -> dict[str, Any]:
    """The packaged schema, closed (see `_close`), with apiVersion, kind and metadata pinned down."""
    schema: dict[str, Any] = _close(copy.deepcopy(packaged_schema()))
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "enum": [API_VERSION]}
    props["kind"] = {"type": "string", "enum": [KIND]}
    props["metadata"] = _METADATA_SCHEMA
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    schema["additionalProperties"] = False
    return schema


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft7Validator  # type: ignore[import-untyped]

    schema = strict_schema()
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(top level)"


def _describe(error: Any) -> tuple[str, str]:
    """(JSON path, what is wrong) of one jsonschema error; unknown fields are named with their own path."""
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties") or {})
        extra = sorted(k for k in error.instance if k not in known)
        if extra:
            return _path([*where, extra[0]]), "unknown field" + (f" (also {', '.join(extra[1:])})" if extra[1:] else "")
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        if missing:
            return _path([*where, missing[0]]), "required field missing"
    return _path(where), error.message


def validate(document: Mapping[str, Any]) -> None:
    """DeployError naming the JSON path of the first problem (unknown fields included) when DOCUMENT does not
    pass KServe's InferenceService schema, made strict."""
    # an unknown field first: it usually explains a "required" one missing beside it (a renamed key)
    errors = sorted(_validator().iter_errors(document),
                    key=lambda e: (e.validator != "additionalProperties", list(map(str, e.absolute_path)), e.message))
    if not errors:
        return
    where, what = _describe(errors[0])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise DeployError(f"InferenceService invalid at {where}: {what}{more}",
                      hint="see KServe's InferenceService v1beta1 reference; unknown fields are refused, not dropped")


# --- apply or write ---------------------------------------------------------------------------------------------

Delivery = Literal["applied", "written"]


def cluster_context(kubectl: str | None) -> str | None:
    """The current kubectl context, or None when there is no kubectl or no context configured."""
    if kubectl is None:
        return None
    try:
        proc = subprocess.run([kubectl, "config", "current-context"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    ctx = proc.stdout.strip()
    return ctx if proc.returncode == 0 and ctx else None


def write(manifest: Manifest, directory: Path) -> Path:
    """Write MANIFEST to DIRECTORY/<name>.yaml atomically (what Argo CD or Flux syncs); returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{manifest.name}.yaml"
    fd, tmp = tempfile.mkstemp(prefix=f".{manifest.name}.", suffix=".yaml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"# Rendered by mlops deploy --target kserve: {manifest.name} {manifest.version}"
                    + (f" (canary {manifest.canary_percent}% beside {manifest.stable})" if manifest.stable else "")
                    + "\n")
            f.write(manifest.yaml())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def apply(manifest: Manifest, kubectl: str) -> str:
    """`kubectl apply -f -` with the manifest on stdin; returns kubectl's own line; DeployError when refused."""
    try:
        proc = subprocess.run([kubectl, "apply", "-f", "-"], input=manifest.yaml(), capture_output=True, text=True,
                              timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise DeployError("kubectl apply did not answer within 120 s", hint="check the cluster connection") from None
    except OSError as exc:
        raise DeployError(f"cannot run kubectl: {exc}", hint="install kubectl or fix PATH") from None
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise DeployError(f"kubectl apply refused the InferenceService {manifest.name}: "
                          f"{err[0] if err else 'exit code ' + str(proc.returncode)}",
                          hint="check the context (`kubectl config current-context`) and that KServe is installed")
    return proc.stdout.strip()


@dataclass(frozen=True)
class Delivered:
    how: Delivery
    where: str  # the kubectl context, or the file written
    output: str = ""
