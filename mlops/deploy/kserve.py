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

Verified bytes in the cluster. Deploy verifies the release before rendering, but a bucket can change afterwards
(PR jobs may hold write access to the DVC remote), and every pod start downloads again. So the pod checks the bytes
itself, before the model loads: the model container's command is a shell step that runs `sha256sum -c` on the
downloaded file against the sha256 from the tag, and only then `exec`s the runtime's server (`deploy.
kserve_server_command`, the stock xgboost runtime's `python -m xgbserver` by default; the runtime's args follow).
A mismatch exits 1: the pod never becomes ready and the model is never loaded. (A user initContainer could not do
this: KServe appends its storage initializer after them, so they run before the download.)

storageUri: the model file's object in the DVC remote, `<remote>/files/md5/xx/rest` (DVC 3's content-addressed
layout), or a copy named by its sha256 (`--storage-uri` must contain `{sha256}`, e.g.
`s3://models/{artifact}/sha256/{sha256}/model.ubj`, so that a name never points at other bytes without the check
failing). KServe's storage initializer saves a single object under its key's last segment; its xgboost runtime
looks for `*.bst|*.json|*.ubj`, so a DVC object (a hash without a suffix) needs a copy named model.ubj. A remote
that is a local folder cannot be read from a cluster at all. The result's notes say both.

The mlops runtime (`deploy.kserve_runtime: mlops`, the default). KServe's stock runtimes take other inputs than our
server (an xgboost DMatrix of category codes, not the raw strings; joblib pickles), so a request to the cluster
would not get the local server's answer. With this runtime the manifest is two documents: a namespaced
`ServingRuntime` (model format `mlops`, protocols v2 and grpc-v2) whose container is the toolkit's own image, by
digest (`deploy.image`, built by docker/Dockerfile and .github/workflows/release.yml), running `mlops serve
--model-dir /mnt/models`, and the InferenceService that selects it by name. The storageUri is then the model
package's directory (a copy named by its sha256); the pod checks the file the tag checksums, or the whole
directory's sha256 (files.sha256_tree, recomputed with find/sort/sha256sum), before it execs `mlops serve`.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shlex
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
RUNTIME_API_VERSION = "serving.kserve.io/v1alpha1"
RUNTIME_KIND = "ServingRuntime"
RUNTIME_SCHEMA_FILE = "servingruntime-v1alpha1.schema.json"
_SCHEMAS: dict[str, tuple[str, str]] = {KIND: (API_VERSION, SCHEMA_FILE),
                                        RUNTIME_KIND: (RUNTIME_API_VERSION, RUNTIME_SCHEMA_FILE)}
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


RuntimeKind = Literal["mlops", "stock"]
WHOLE = "."  # Predictor.covers: the tag's sha256 is of the whole model directory (files.sha256_tree)


@dataclass(frozen=True)
class Predictor:
    """One model version as a predictor serves it."""

    version: str
    storage_uri: str
    model_sha256: str
    # What model_sha256 covers inside the model directory: a relative file path, WHOLE, or None for the file the
    # storageUri names (the stock runtimes' single object).
    covers: str | None = None

    @property
    def file_name(self) -> str:
        """The name KServe's storage initializer gives the downloaded object in the model directory."""
        return self.storage_uri.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]

    @property
    def checked(self) -> str:
        return self.covers if self.covers is not None else self.file_name


# The toolkit's image, by digest only: a tag can be moved to other bytes, a digest cannot.
_IMAGE = re.compile(r"(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)"
                    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}")
HTTP_PORT = 8080
GRPC_PORT = 8081  # KServe's and MLServer's default gRPC port
MODEL_FORMAT = "mlops"


def check_image(image: str | None) -> str:
    """IMAGE when it names an image by digest (registry/repo[:tag]@sha256:<64 hex>); DeployError otherwise."""
    hint = ("set deploy.image in params.yaml to the image the release workflow pushed, by digest "
            "(ghcr.io/OWNER/REPO@sha256:…, in its job summary), or deploy.kserve_runtime: stock")
    if not image:
        raise DeployError("deploy.image is not set: the mlops runtime runs the toolkit's image, by digest", hint=hint)
    if not _IMAGE.fullmatch(image):
        what = "not pinned by digest" if "@sha256:" not in image else "not an image reference"
        raise DeployError(f"deploy.image '{image}': {what} (registry/repo@sha256:<64 hex digits>)", hint=hint)
    return image


def serve_args(grpc: bool = True) -> list[str]:
    """What the runtime's container runs after the image's entrypoint (`mlops serve`): the package KServe downloaded,
    served under the InferenceService's name (KServe fills in {{.Name}}), reachable from the pod's network (the
    Host allow-list is off: the cluster's ingress routes by Host), its working store in /tmp (any UID can write it)."""
    args = ["--model-dir", MODEL_DIR, "--model", "{{.Name}}",
            "--store", "/tmp/mlops/store",  # noqa: S108 - the container's own /tmp, no other user shares it
            "--host", "0.0.0.0",  # noqa: S104 - the pod's network: KServe's ingress and probes reach it there
            "--port", str(HTTP_PORT), "--allowed-host", "*"]
    return args + (["--grpc-port", str(GRPC_PORT)] if grpc else [])


MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the model
DEFAULT_SERVER_COMMAND = ("python", "-m", "xgbserver")  # the entrypoint of KServe's stock xgboost runtime image
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE = re.compile(r"[A-Za-z0-9._-]{1,255}")


def verify_command(sha256: str, file_name: str, server_command: Iterable[str] = DEFAULT_SERVER_COMMAND,
                   model_dir: str = MODEL_DIR) -> list[str]:
    """The model container's command: `sha256sum -c` of MODEL_DIR/FILE_NAME against SHA256 (the tag's), and only
    when it matches, exec SERVER_COMMAND with the runtime's args ("$@"). FILE_NAME may be a path inside MODEL_DIR,
    or WHOLE: then the directory's sha256 (files.sha256_tree: sha256sum of every file, sorted by path, hashed
    again) must be SHA256. Every value is checked, then quoted."""
    if not _SHA256.fullmatch(sha256):
        raise DeployError(f"{sha256!r} is not a sha256 hex digest")
    parts = file_name.split("/")
    if file_name != WHOLE and not all(_FILE.fullmatch(p) and p not in (".", "..") for p in parts):
        raise DeployError(f"storageUri ends in {file_name!r}: not a file name the pod can check",
                          hint="point the storageUri at the model file itself (…/model.ubj)")
    server = list(server_command)
    if not server:
        raise DeployError("deploy.kserve_server_command is empty", hint="e.g. [python, -m, xgbserver]")
    if file_name == WHOLE:
        what = "the model directory"
        check = (f"test \"$(find . -type f -printf '%P\\n' | LC_ALL=C sort | tr '\\n' '\\0' "
                 f"| xargs -0r sha256sum -- | sha256sum | cut -d ' ' -f 1)\" = {sha256}")
    else:
        what = file_name
        check = f"printf '%s  %s\\n' {sha256} {shlex.quote(file_name)} | sha256sum -c --strict - >&2"
    script = (f"cd {shlex.quote(model_dir)} && {check} || {{ echo 'mlops: {what} does not match the sha256 of its "
              f"registry tag: refusing to load it' >&2; exit 1; }}; exec {shlex.join(server)} \"$@\"")
    return ["/bin/sh", "-c", script, "mlops-verify"]


@dataclass(frozen=True)
class Manifest:
    name: str
    namespace: str
    mode: Mode
    version: str  # the version being rolled out
    stable: str | None  # the version that keeps the rest of the traffic during a canary (None: full rollout)
    canary_percent: int | None
    document: dict[str, Any]  # the InferenceService
    notes: tuple[str, ...] = field(default_factory=tuple)
    runtime: dict[str, Any] | None = None  # the ServingRuntime it selects (mlops runtime), applied first

    @property
    def documents(self) -> tuple[dict[str, Any], ...]:
        return (self.runtime, self.document) if self.runtime is not None else (self.document,)

    def yaml(self) -> str:
        return yaml.safe_dump_all(self.documents, sort_keys=False, default_flow_style=False)


# KServe's own default name of the model container; the CRD requires a name in `spec.canary[].predictor.model`.
CONTAINER = "kserve-container"


def _model(p: Predictor, server_command: Iterable[str], runtime: str | None = None) -> dict[str, Any]:
    if runtime is None:
        return {"name": CONTAINER, "modelFormat": {"name": "xgboost"}, "protocolVersion": "v2",
                "storageUri": p.storage_uri, "command": verify_command(p.model_sha256, p.checked, server_command)}
    # The runtime's args (serve_args) follow this command: KServe merges the two containers, appending args.
    return {"name": CONTAINER, "modelFormat": {"name": MODEL_FORMAT}, "runtime": runtime, "protocolVersion": "v2",
            "storageUri": p.storage_uri, "command": verify_command(p.model_sha256, p.checked, ("mlops", "serve"))}


def runtime_name(name: str) -> str:
    """The ServingRuntime of the InferenceService NAME (a DNS-1123 label too, at most 63 characters)."""
    return f"{name[:56].rstrip('-')}-mlops"


def render_runtime(name: str, namespace: str, image: str | None, grpc: bool = True,
                   labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The namespaced ServingRuntime that runs `mlops serve --model-dir /mnt/models` from IMAGE (by digest) for the
    model format `mlops`. Not yet validated: `validate` does that."""
    image = check_image(image)
    return {
        "apiVersion": RUNTIME_API_VERSION, "kind": RUNTIME_KIND,
        "metadata": {"name": runtime_name(name), "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "mlops",
                                **(labels or {})}},
        "spec": {
            "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2", "grpc-v2"] if grpc else ["v2"],
            "multiModel": False,
            "containers": [{
                "name": CONTAINER, "image": image, "args": serve_args(grpc),
                # the entrypoint and HEALTHCHECK of docker/Dockerfile; KServe routes to the first port
                "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT},
                                   "periodSeconds": 5},
                "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def storage_notes(uris: Iterable[str], runtime: RuntimeKind = "stock") -> tuple[str, ...]:
    """What a cluster will make of these storageUris (see the module docstring): one note per problem."""
    unique = list(dict.fromkeys(uris))
    unreadable = [u for u in unique if not u.startswith(_CLUSTER_SCHEMES)]
    if runtime == "mlops":  # a DVC object is a single file or a .dir listing, never the package's folder
        dvc_objects = [u for u in unique if re.search(r"/files/md5/[0-9a-f]{2}/[0-9a-f]{30}(\.dir)?$", u)]
        mine = [f"storageUri {', '.join(unreadable)}: not a scheme KServe's storage initializer downloads from; "
                 "pass --storage-uri with a copy a cluster can read"] if unreadable else []
        if dvc_objects:
            mine.append("storageUri is a content-addressed DVC object, not the model package's folder that "
                         "`mlops serve --model-dir` loads: copy the artifact's directory and pass --storage-uri "
                        "s3://…/{artifact}/sha256/{sha256}/")
        return tuple(mine)
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
           canary_percent: int, labels: Mapping[str, str] | None = None,
           server_command: Iterable[str] = DEFAULT_SERVER_COMMAND, runtime: RuntimeKind = "stock",
           image: str | None = None, grpc: bool = True) -> Manifest:
    """The InferenceService that rolls CANDIDATE out: a canary beside STABLE (when there is one and it differs),
    else all traffic to CANDIDATE; each predictor checks its model's sha256 in the pod before the server starts
    (see `verify_command`). RUNTIME mlops: beside it the ServingRuntime that runs `mlops serve` from IMAGE (by
    digest), which it selects by name (SERVER_COMMAND is then `mlops serve`). Not yet validated: `validate_manifest`
    does that."""
    server_command = tuple(server_command)
    if not _NAME.fullmatch(name):
        raise DeployError(f"'{name}' cannot name an InferenceService: KServe needs a DNS-1035 label (lower-case "
                          "letters, digits and '-', starting with a letter, at most 63 characters)",
                          hint="rename the artifact (registry.artifact in params.yaml)")
    if not re.fullmatch(_METADATA_SCHEMA["properties"]["namespace"]["pattern"], namespace):
        raise DeployError(f"'{namespace}' cannot name a Kubernetes namespace (a DNS-1123 label)",
                          hint="set deploy.kserve_namespace in params.yaml")
    if not 0 <= canary_percent <= 100:
        raise DeployError(f"canary share {canary_percent}% is not between 0 and 100",
                          hint="set deploy.canary_percent in params.yaml")
    canary = stable is not None and stable.version != candidate.version
    runtime_doc = render_runtime(name, namespace, image, grpc, labels) if runtime == "mlops" else None
    rt = runtime_doc["metadata"]["name"] if runtime_doc is not None else None
    annotations = {MODE_ANNOTATION: _MODE_VALUE[mode], "mlops/version": candidate.version,
                   "mlops/model-sha256": candidate.model_sha256}
    predictor: dict[str, Any]
    spec: dict[str, Any]
    if canary and stable is not None and mode == "standard":
        annotations["mlops/stable-version"] = stable.version
        predictor = {"model": _model(stable, server_command, rt)}
        spec = {"predictor": predictor, "canary": [{"predictor": {"model": _model(candidate, server_command, rt)},
                                                    "trafficPercent": canary_percent}]}
    else:
        predictor = {"model": _model(candidate, server_command, rt)}
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
                    canary_percent if canary else None, doc, storage_notes(uris, runtime), runtime_doc)


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


def packaged_schema(kind: str = KIND) -> dict[str, Any]:
    """KServe's openAPIV3Schema of KIND (InferenceService or ServingRuntime) as packaged (unchanged)."""
    file = _SCHEMAS[kind][1]
    raw = resources.files("mlops.deploy").joinpath("schemas", file).read_text(encoding="utf-8")
    data = json.loads(raw)
    schema = data.get("openAPIV3Schema", data)
    if not isinstance(schema, dict):
        raise DeployError(f"mlops/deploy/schemas/{file}: not a CRD schema")
    return schema


@functools.lru_cache(maxsize=2)
def strict_schema(kind: str = KIND) -> dict[str, Any]:
    """The packaged schema of KIND, closed (see `_close`), with apiVersion, kind and metadata pinned down."""
    schema: dict[str, Any] = _close(copy.deepcopy(packaged_schema(kind)))
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "enum": [_SCHEMAS[kind][0]]}
    props["kind"] = {"type": "string", "enum": [kind]}
    props["metadata"] = _METADATA_SCHEMA
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    schema["additionalProperties"] = False
    return schema


@functools.lru_cache(maxsize=2)
def _validator(kind: str = KIND) -> Any:
    from jsonschema import Draft7Validator  # type: ignore[import-untyped]

    schema = strict_schema(kind)
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
    pass KServe's schema for its kind (InferenceService, the default, or ServingRuntime), made strict."""
    kind = document.get("kind") if document.get("kind") in _SCHEMAS else KIND
    assert isinstance(kind, str)
    # an unknown field first: it usually explains a "required" one missing beside it (a renamed key)
    errors = sorted(_validator(kind).iter_errors(document),
                    key=lambda e: (e.validator != "additionalProperties", list(map(str, e.absolute_path)), e.message))
    if not errors:
        return
    where, what = _describe(errors[0])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    version = _SCHEMAS[kind][0].rsplit("/", 1)[-1]
    raise DeployError(f"{kind} invalid at {where}: {what}{more}",
                      hint=f"see KServe's {kind} {version} reference; unknown fields are refused, not dropped")


def validate_manifest(manifest: Manifest) -> None:
    """`validate` every document of MANIFEST: the ServingRuntime (when there is one) and the InferenceService."""
    for doc in manifest.documents:
        validate(doc)


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
        raise DeployError(f"kubectl apply refused the {' and '.join(d['kind'] for d in manifest.documents)} "
                          f"{manifest.name}: "
                          f"{err[0] if err else 'exit code ' + str(proc.returncode)}",
                          hint="check the context (`kubectl config current-context`) and that KServe is installed")
    return proc.stdout.strip()


@dataclass(frozen=True)
class Delivered:
    how: Delivery
    where: str  # the kubectl context, or the file written
    output: str = ""
