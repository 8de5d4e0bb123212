"""The kserve target: the rendered InferenceService passes KServe's own CRD schema made strict; typos are refused
naming their path; knative and standard canaries; kubectl apply with a context, a file for GitOps without one."""

from __future__ import annotations

import copy
import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.deploy import kserve
from mlops.deploy.cluster import KServePlan, apply_kserve
from mlops.errors import DeployError

NEW = kserve.Predictor("v1.1.0", "s3://models/churn/files/md5/ab/" + "c" * 30, "a" * 64)
OLD = kserve.Predictor("v1.0.0", "s3://models/churn/files/md5/cd/" + "e" * 30, "b" * 64)


def rendered(mode: kserve.Mode = "knative", stable: kserve.Predictor | None = OLD, percent: int = 10) -> dict[str, Any]:
    manifest = kserve.render("churn-model", "ml", mode, NEW, stable, percent)
    kserve.validate(manifest.document)
    return manifest.document


def refused(doc: dict[str, Any]) -> str:
    with pytest.raises(DeployError) as info:
        kserve.validate(doc)
    return info.value.message


def test_full_rollout_manifest_passes_the_crd_schema() -> None:
    doc = rendered(stable=None)
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert doc["kind"] == "InferenceService"
    assert doc["metadata"]["name"] == "churn-model"
    assert doc["metadata"]["namespace"] == "ml"
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    model = doc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "xgboost"}
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == NEW.storage_uri
    assert "canaryTrafficPercent" not in doc["spec"]["predictor"]
    assert "canary" not in doc["spec"]


def test_knative_canary_uses_canary_traffic_percent() -> None:
    doc = rendered("knative")
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert doc["spec"]["predictor"]["model"]["storageUri"] == NEW.storage_uri  # the new revision
    assert "canary" not in doc["spec"]
    assert doc["metadata"]["annotations"]["mlops/stable-version"] == "v1.0.0"


def test_standard_canary_uses_spec_canary_beside_the_stable_predictor() -> None:
    doc = rendered("standard", percent=25)
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert doc["spec"]["predictor"]["model"]["storageUri"] == OLD.storage_uri
    assert "canaryTrafficPercent" not in doc["spec"]["predictor"]  # ignored in standard mode (kserve#5335)
    [canary] = doc["spec"]["canary"]
    assert canary["trafficPercent"] == 25
    assert canary["predictor"]["model"]["storageUri"] == NEW.storage_uri
    # the CRD requires a container name in spec.canary[].predictor.model
    assert canary["predictor"]["model"]["name"] == "kserve-container"


def test_same_version_as_stable_is_a_full_rollout() -> None:
    doc = rendered("standard", stable=kserve.Predictor("v1.1.0", NEW.storage_uri, NEW.model_sha256))
    assert "canary" not in doc["spec"]
    assert doc["spec"]["predictor"]["model"]["storageUri"] == NEW.storage_uri


def test_the_packaged_schema_is_kserves_own() -> None:
    raw = json.loads((Path(kserve.__file__).parent / "schemas" / kserve.SCHEMA_FILE).read_text())
    assert (raw["apiVersion"], raw["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    packaged = kserve.packaged_schema()
    assert packaged == raw["openAPIV3Schema"]
    assert "additionalProperties" not in packaged["properties"]["spec"]  # KServe never closes its objects
    strict = kserve.strict_schema()
    assert strict["properties"]["spec"]["additionalProperties"] is False
    # status keeps unknown fields on purpose (x-kubernetes-preserve-unknown-fields): left open
    assert "additionalProperties" not in strict["properties"]["status"]
    # maps (labels, annotations...) keep their value schema
    labels = strict["properties"]["spec"]["properties"]["predictor"]["properties"]["labels"]
    assert labels["additionalProperties"] == {"type": "string"}


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda d: d["spec"]["predictor"]["model"].__setitem__("storageUrl", d["spec"]["predictor"]["model"]
                                                            .pop("storageUri")),
     "spec.predictor.model.storageUrl"),
    (lambda d: d["spec"]["predictor"].__setitem__("canaryTraficPercent", 10), "spec.predictor.canaryTraficPercent"),
    (lambda d: d["spec"].__setitem__("predicter", d["spec"].pop("predictor")), "spec.predicter"),
    (lambda d: d["metadata"].__setitem__("namspace", "ml"), "metadata.namspace"),
    (lambda d: d.__setitem__("specs", {}), "specs"),
    (lambda d: d["spec"]["canary"][0]["predictor"]["model"]["modelFormat"].__setitem__("nmae", "x"),
     "spec.canary[0].predictor.model.modelFormat.nmae"),
])
def test_a_typo_is_refused_naming_its_path(mutate: Any, path: str) -> None:
    doc = copy.deepcopy(rendered("standard"))
    mutate(doc)
    message = refused(doc)
    assert f"invalid at {path}: unknown field" in message


def test_wrong_types_and_ranges_are_refused_naming_their_path() -> None:
    doc = copy.deepcopy(rendered("standard"))
    doc["spec"]["canary"][0]["trafficPercent"] = 120
    assert "spec.canary[0].trafficPercent: 120 is greater than the maximum of 100" in refused(doc)
    doc = copy.deepcopy(rendered())
    doc["spec"]["predictor"]["canaryTrafficPercent"] = "10"
    assert "spec.predictor.canaryTrafficPercent" in refused(doc)
    doc = copy.deepcopy(rendered())
    del doc["spec"]["predictor"]["model"]["modelFormat"]["name"]
    assert "spec.predictor.model.modelFormat.name: required field missing" in refused(doc)
    doc = copy.deepcopy(rendered())
    doc["apiVersion"] = "serving.kserve.io/v1alpha1"
    assert "apiVersion" in refused(doc)
    doc = copy.deepcopy(rendered())
    doc["metadata"]["name"] = "Churn_Model"
    assert "metadata.name" in refused(doc)


def test_a_name_kserve_refuses_is_refused_before_rendering() -> None:
    with pytest.raises(DeployError, match="DNS-1035"):
        kserve.render("1churn", "ml", "knative", NEW, None, 10)


def test_storage_notes_say_what_a_cluster_cannot_load() -> None:
    manifest = kserve.render("churn-model", "ml", "knative", NEW, None, 10)
    assert any("without the .ubj suffix" in n for n in manifest.notes)
    local = kserve.Predictor("v1.1.0", "/srv/dvcstore/files/md5/ab/" + "c" * 30, "a" * 64)
    notes = kserve.render("churn-model", "ml", "knative", local, None, 10).notes
    assert any("cannot read a local DVC remote" in n for n in notes)
    copy_uri = kserve.Predictor("v1.1.0", "s3://models/churn/v1.1.0/model.ubj", "a" * 64)
    assert kserve.render("churn-model", "ml", "knative", copy_uri, None, 10).notes == ()


def _plan(manifest: kserve.Manifest, where: str, delivery: kserve.Delivery, kubectl: str | None) -> KServePlan:
    return KServePlan(manifest, delivery, where, kubectl, ())


def fake_kubectl(tmp: Path, *, context: str | None) -> Path:
    """A kubectl stand-in: `config current-context` answers CONTEXT (or fails as kubectl does without one);
    `apply -f -` records its arguments and stdin."""
    script = tmp / "kubectl"
    ctx = f'echo "{context}"; exit 0' if context else 'echo "error: current-context is not set" >&2; exit 1'
    script.write_text(f"""#!/bin/sh
if [ "$1 $2" = "config current-context" ]; then {ctx}; fi
if [ "$1" = "apply" ]; then echo "$@" > "{tmp}/args"; cat > "{tmp}/stdin"
  echo "inferenceservice.serving.kserve.io/churn-model configured"; exit 0; fi
exit 2
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_without_a_cluster_context_the_manifest_is_written_for_gitops(tmp_path: Path) -> None:
    kubectl = fake_kubectl(tmp_path, context=None)
    assert kserve.cluster_context(str(kubectl)) is None
    assert kserve.cluster_context(str(tmp_path / "no-such-kubectl")) is None
    manifest = kserve.render("churn-model", "ml", "standard", NEW, OLD, 10)
    out = apply_kserve(_plan(manifest, str(tmp_path / "deploy/kserve/churn-model.yaml"), "written", None))
    assert out.how == "written"
    written = tmp_path / "deploy/kserve/churn-model.yaml"
    assert out.where == str(written)
    doc = yaml.safe_load(written.read_text())
    assert doc == manifest.document
    kserve.validate(doc)
    assert not (tmp_path / "args").exists()  # kubectl was never asked to apply
    assert [p.name for p in written.parent.iterdir()] == ["churn-model.yaml"]  # no temporary file left


def test_with_a_cluster_context_kubectl_applies_it(tmp_path: Path) -> None:
    kubectl = fake_kubectl(tmp_path, context="kind-ml")
    assert kserve.cluster_context(str(kubectl)) == "kind-ml"
    manifest = kserve.render("churn-model", "ml", "knative", NEW, OLD, 10)
    out = apply_kserve(_plan(manifest, "kind-ml", "applied", str(kubectl)))
    assert (out.how, out.where) == ("applied", "kind-ml")
    assert "configured" in out.output
    assert (tmp_path / "args").read_text().split() == ["apply", "-f", "-"]
    assert yaml.safe_load((tmp_path / "stdin").read_text()) == manifest.document


def test_kubectl_refusal_is_a_deploy_error(tmp_path: Path) -> None:
    script = tmp_path / "kubectl"
    script.write_text('#!/bin/sh\necho \'error: no matches for kind "InferenceService"\' >&2\nexit 1\n')
    script.chmod(0o755)
    manifest = kserve.render("churn-model", "ml", "knative", NEW, None, 10)
    with pytest.raises(DeployError, match=r'kubectl apply refused.*no matches for kind "InferenceService"'):
        kserve.apply(manifest, str(script))


def test_real_kubectl_without_a_context_is_not_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("kubectl")
    if real is None:
        pytest.skip("no kubectl on PATH")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "empty-kubeconfig"))
    assert kserve.cluster_context(real) is None
