"""The `kserve` target end to end: verify the release in the DVC remote, point an InferenceService at it, deliver.

The candidate is fetched and verified exactly as for the local target (a tampered remote object is refused before
a cluster is pointed at it); its storageUri is the model file's object in the default DVC remote, or
`storage_uri` when given (`{artifact}`, `{version}` and `{sha256}` are filled in), for a copy that KServe's
stock runtime can load (see kserve.py). That template must contain `{sha256}`: a copy is named by its content, and
a copy on a local path is hashed here before the cluster is pointed at it. Either way the pod checks the sha256
again before the model loads (kserve.verify_command). During a canary in standard mode the stable version's
predictor is rendered beside it, so the stable release is verified too.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlops import dvc
from mlops.config import DeployParams
from mlops.deploy import kserve
from mlops.deploy.fetch import Release, fetch_release
from mlops.errors import DeployError
from mlops.files import sha256_file, sha256_tree
from mlops.progress import Progress, silent


@dataclass(frozen=True)
class KServePlan:
    manifest: kserve.Manifest
    delivery: kserve.Delivery  # applied (a cluster context is configured) or written (for Argo CD / Flux)
    where: str  # the kubectl context, or the file to write
    kubectl: str | None
    steps: tuple[str, ...]


def _check_local_copy(release: Release, uri: str, covers: str | None = None) -> None:
    """A --storage-uri copy this machine can read (a path or file:// URL) must hash to the tag's sha256 before a
    cluster is pointed at it; remote copies are checked by the pod (kserve.verify_command). COVERS: what the
    sha256 covers inside a package directory (kserve.Predictor.covers)."""
    local = uri.removeprefix("file://") if uri.startswith("file://") or "://" not in uri else None
    if local is None:
        return
    path = Path(local)
    if covers is not None and path.is_dir() and not path.is_symlink():
        if covers != kserve.WHOLE:
            path = path / covers
        elif sha256_tree(path) != release.model_sha256:
            raise DeployError(f"--storage-uri {uri}: the directory's sha256 does not match the tag's "
                              f"{release.model_sha256} of {release.ref}", hint="copy the verified package there again")
        else:
            return
    if not path.is_file() or path.is_symlink():
        raise DeployError(f"--storage-uri {uri}: no such file to check against the tag's sha256",
                          hint="copy the verified model there first")
    actual = sha256_file(path)
    if actual != release.model_sha256:
        raise DeployError(f"--storage-uri {uri}: sha256 {actual} does not match the tag's {release.model_sha256} "
                          f"of {release.ref}", hint="copy the verified model there again")


def _uri(root: Path, release: Release, template: str | None, progress: Progress,
         params: DeployParams) -> kserve.Predictor:
    tmp = Path(tempfile.mkdtemp(prefix="mlops-deploy-"))
    try:
        art = fetch_release(root, release, tmp / "artifact", progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if template:
        if "{sha256}" not in template:
            raise DeployError(f"--storage-uri '{template}' does not name the copy by its sha256",
                              hint="include {sha256} in the path, e.g. s3://models/{artifact}/sha256/{sha256}/"
                                   "model.ubj: a name that always means the same bytes")
        try:
            uri = template.format(artifact=release.artifact, version=release.version, sha256=release.model_sha256)
        except (KeyError, IndexError, ValueError) as exc:
            raise DeployError(f"--storage-uri '{template}': unknown placeholder {exc}",
                              hint="use {artifact}, {version} and {sha256}") from None
        _check_local_copy(release, uri, _covers(release, params))
    else:
        remote = dvc.default_remote_url(root)
        if remote is None:
            raise DeployError("no default DVC remote: a cluster needs a storageUri to load the model from",
                              hint="add one (`dvc remote add -d NAME s3://bucket/path`) or pass --storage-uri")
        uri = dvc.remote_object_url(remote, art.model_md5)
    return kserve.Predictor(release.version, uri, release.model_sha256, _covers(release, params))


def _covers(release: Release, params: DeployParams) -> str | None:
    """What the tag's sha256 covers inside the directory the pod downloads (the mlops runtime loads the package's
    folder): the model file's path in it, or the whole directory; None: the stock runtime's single object."""
    if params.kserve_runtime != "mlops":
        return None
    if not release.whole:
        model, base = PurePosixPath(release.model_file), PurePosixPath(release.path)
        return model.relative_to(base).as_posix() if model.is_relative_to(base) else model.name
    return kserve.WHOLE if (release.dvc_md5 or "").endswith(".dir") else None


def plan_kserve(root: Path, candidate: Release, stable: Release | None, params: DeployParams, *,
                storage_uri: str | None = None, kubectl: str | None = None,
                progress: Progress = silent) -> KServePlan:
    """Verify CANDIDATE (and STABLE, which keeps the rest of the traffic during a canary), render and validate the
    InferenceService, and say where it will go. KUBECTL: the kubectl to use (default: the one on PATH)."""
    progress(f"deploy: verifying {candidate.ref} in the DVC remote")
    cand = _uri(root, candidate, storage_uri, progress, params)
    keep: kserve.Predictor | None = None
    if stable is not None and stable.version != candidate.version:
        if params.kserve_mode == "standard":
            progress(f"deploy: verifying {stable.ref} (stable) in the DVC remote")
            keep = _uri(root, stable, storage_uri, progress, params)
        else:  # knative keeps the last rolled-out revision itself: only its version is named
            keep = kserve.Predictor(stable.version, "", stable.model_sha256)
    manifest = kserve.render(candidate.artifact, params.kserve_namespace, params.kserve_mode, cand, keep,
                             params.canary_percent, server_command=params.kserve_server_command,
                             runtime=params.kserve_runtime, image=params.image)
    kserve.validate_manifest(manifest)
    binary = kubectl if kubectl is not None else shutil.which("kubectl")
    context = kserve.cluster_context(binary)
    delivery: kserve.Delivery
    rollout = f"canary {params.canary_percent}% beside {manifest.stable}" if manifest.stable else "all traffic"
    if context is not None:
        where = context
        delivery = "applied"
        step = f"kubectl apply -f - (context {context})"
    else:
        where = str(root / params.kserve_dir / f"{manifest.name}.yaml")
        delivery = "written"
        step = f"write {where} (no kubectl context configured: for Argo CD or Flux to sync)"
    steps: tuple[str, ...] = (f"InferenceService {manifest.namespace}/{manifest.name}: {candidate.version} "
                              f"({rollout}), {params.kserve_mode} mode, storageUri {cand.storage_uri}", step)
    if manifest.runtime is not None:
        steps = (f"ServingRuntime {manifest.namespace}/{manifest.runtime['metadata']['name']}: mlops serve from "
                 f"{params.image}", *steps)
    return KServePlan(manifest, delivery, where, binary if context is not None else None, steps)


def apply_kserve(plan: KServePlan) -> kserve.Delivered:
    """Apply the planned manifest to the cluster, or write it for GitOps."""
    if plan.delivery == "applied" and plan.kubectl is not None:
        kserve.validate_manifest(plan.manifest)
        return kserve.Delivered("applied", plan.where, kserve.apply(plan.manifest, plan.kubectl))
    return kserve.Delivered("written", str(kserve.write(plan.manifest, Path(plan.where).parent)))
