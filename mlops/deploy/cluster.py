"""The `kserve` target end to end: verify the release in the DVC remote, point an InferenceService at it, deliver.

The candidate is fetched and verified exactly as for the local target (a tampered remote object is refused before
a cluster is pointed at it); its storageUri is the model file's object in the default DVC remote, or
`storage_uri` when given (`{artifact}`, `{version}` and `{sha256}` are filled in), for a copy that KServe's
stock runtime can load (see kserve.py). During a canary in standard mode the stable version's predictor is
rendered beside it, so the stable release is verified too.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops import dvc
from mlops.config import DeployParams
from mlops.deploy import kserve
from mlops.deploy.fetch import Release, fetch_release
from mlops.errors import DeployError
from mlops.progress import Progress, silent


@dataclass(frozen=True)
class KServePlan:
    manifest: kserve.Manifest
    delivery: kserve.Delivery  # applied (a cluster context is configured) or written (for Argo CD / Flux)
    where: str  # the kubectl context, or the file to write
    kubectl: str | None
    steps: tuple[str, ...]


def _uri(root: Path, release: Release, template: str | None, progress: Progress) -> kserve.Predictor:
    tmp = Path(tempfile.mkdtemp(prefix="mlops-deploy-"))
    try:
        art = fetch_release(root, release, tmp / "artifact", progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if template:
        try:
            uri = template.format(artifact=release.artifact, version=release.version, sha256=release.model_sha256)
        except (KeyError, IndexError, ValueError) as exc:
            raise DeployError(f"--storage-uri '{template}': unknown placeholder {exc}",
                              hint="use {artifact}, {version} and {sha256}") from None
    else:
        remote = dvc.default_remote_url(root)
        if remote is None:
            raise DeployError("no default DVC remote: a cluster needs a storageUri to load the model from",
                              hint="add one (`dvc remote add -d NAME s3://bucket/path`) or pass --storage-uri")
        uri = dvc.remote_object_url(remote, art.model_md5)
    return kserve.Predictor(release.version, uri, release.model_sha256)


def plan_kserve(root: Path, candidate: Release, stable: Release | None, params: DeployParams, *,
                storage_uri: str | None = None, kubectl: str | None = None,
                progress: Progress = silent) -> KServePlan:
    """Verify CANDIDATE (and STABLE, which keeps the rest of the traffic during a canary), render and validate the
    InferenceService, and say where it will go. KUBECTL: the kubectl to use (default: the one on PATH)."""
    progress(f"deploy: verifying {candidate.ref} in the DVC remote")
    cand = _uri(root, candidate, storage_uri, progress)
    keep: kserve.Predictor | None = None
    if stable is not None and stable.version != candidate.version:
        if params.kserve_mode == "standard":
            progress(f"deploy: verifying {stable.ref} (stable) in the DVC remote")
            keep = _uri(root, stable, storage_uri, progress)
        else:  # knative keeps the last rolled-out revision itself: only its version is named
            keep = kserve.Predictor(stable.version, "", stable.model_sha256)
    manifest = kserve.render(candidate.artifact, params.kserve_namespace, params.kserve_mode, cand, keep,
                             params.canary_percent)
    kserve.validate(manifest.document)
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
    steps = (f"InferenceService {manifest.namespace}/{manifest.name}: {candidate.version} ({rollout}), "
             f"{params.kserve_mode} mode, storageUri {cand.storage_uri}", step)
    return KServePlan(manifest, delivery, where, binary if context is not None else None, steps)


def apply_kserve(plan: KServePlan) -> kserve.Delivered:
    """Apply the planned manifest to the cluster, or write it for GitOps."""
    if plan.delivery == "applied" and plan.kubectl is not None:
        kserve.validate(plan.manifest.document)
        return kserve.Delivered("applied", plan.where, kserve.apply(plan.manifest, plan.kubectl))
    return kserve.Delivered("written", str(kserve.write(plan.manifest, Path(plan.where).parent)))
