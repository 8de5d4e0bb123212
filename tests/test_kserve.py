"""The kserve target: the rendered InferenceService passes KServe's own CRD schema made strict; typos are refused
naming their path; knative and standard canaries; kubectl apply with a context, a file for GitOps without one."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
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


# --- the pod checks the bytes before the model loads ------------------------------------------------------------


def test_every_predictor_checks_its_sha256_before_the_server_starts() -> None:
    doc = rendered("standard")
    stable = doc["spec"]["predictor"]["model"]["command"]
    [canary] = doc["spec"]["canary"]
    cand = canary["predictor"]["model"]["command"]
    for command, p in ((stable, OLD), (cand, NEW)):
        assert command[:2] == ["/bin/sh", "-c"]
        assert f"printf '%s  %s\\n' {p.model_sha256} {p.file_name} | sha256sum -c --strict -" in command[2]
        assert command[2].endswith('exec python -m xgbserver "$@"')  # the runtime's server, with its args
    assert rendered("knative")["spec"]["predictor"]["model"]["command"] == cand


def _run_check(tmp_path: Path, content: bytes, sha256: str) -> subprocess.CompletedProcess[str]:
    """The rendered model container's command, run here against TMP_PATH as the model directory."""
    models = tmp_path / "mnt-models"
    models.mkdir(exist_ok=True)
    (models / "model.ubj").write_bytes(content)
    p = kserve.Predictor("v1.1.0", "s3://models/churn-model/sha256/" + sha256 + "/model.ubj", sha256)
    doc = kserve.render("churn-model", "ml", "knative", p, None, 10, server_command=("echo", "serving"))
    kserve.validate(doc.document)
    command = doc.document["spec"]["predictor"]["model"]["command"]
    command = [command[0], command[1], command[2].replace(kserve.MODEL_DIR, str(models)), *command[3:]]
    return subprocess.run([*command, "--model_name=churn-model"], capture_output=True, text=True, check=False)


def test_the_rendered_check_passes_the_right_bytes_and_fails_tampered_ones(tmp_path: Path) -> None:
    good = b"the registered model"
    digest = hashlib.sha256(good).hexdigest()
    ok = _run_check(tmp_path, good, digest)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "serving --model_name=churn-model\n"  # the server got the runtime's args
    bad = _run_check(tmp_path, b"tampered in the bucket", digest)
    assert bad.returncode == 1
    assert bad.stdout == ""  # the server never started
    assert "does not match the sha256 of its registry tag" in bad.stderr


def test_the_check_refuses_what_it_cannot_quote_safely() -> None:
    with pytest.raises(DeployError, match="not a sha256"):
        kserve.verify_command("a" * 63 + "'", "model.ubj")
    with pytest.raises(DeployError, match="not a file name the pod can check"):
        kserve.verify_command("a" * 64, "model.ubj; rm -rf /")
    weird = kserve.Predictor("v1.1.0", "s3://models/churn/x/model$(id).ubj", "a" * 64)
    with pytest.raises(DeployError, match="not a file name"):
        kserve.render("churn-model", "ml", "knative", weird, None, 10)


@pytest.mark.parametrize(("name", "namespace"), [("churn-model\n", "ml"), ("churn-model", "ml\n"),
                                                 ("churn-model", "ML")])
def test_names_must_match_whole(name: str, namespace: str) -> None:
    with pytest.raises(DeployError, match="cannot name"):
        kserve.render(name, namespace, "knative", NEW, None, 10)


# --- the mlops runtime: a ServingRuntime that runs `mlops serve` from the toolkit's image, by digest -------------

IMAGE = "ghcr.io/acme/mlops@sha256:" + "c" * 64
PKG_NEW = kserve.Predictor("v1.1.0", "s3://models/churn-model/sha256/" + "a" * 64 + "/", "a" * 64, kserve.WHOLE)
PKG_OLD = kserve.Predictor("v1.0.0", "s3://models/churn-model/sha256/" + "b" * 64 + "/", "b" * 64, "model.ubj")


def mlops_manifest(mode: kserve.Mode = "standard", stable: kserve.Predictor | None = PKG_OLD) -> kserve.Manifest:
    manifest = kserve.render("churn-model", "ml", mode, PKG_NEW, stable, 10, runtime="mlops", image=IMAGE)
    kserve.validate_manifest(manifest)
    return manifest


def test_the_mlops_runtime_renders_a_serving_runtime_and_an_inference_service_that_selects_it() -> None:
    manifest = mlops_manifest()
    runtime, isvc = manifest.documents
    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1", "ServingRuntime")
    assert runtime["metadata"] == {"name": "churn-model-mlops", "namespace": "ml", "labels": {
        "app.kubernetes.io/name": "churn-model", "app.kubernetes.io/managed-by": "mlops"}}
    spec = runtime["spec"]
    assert spec["supportedModelFormats"] == [{"name": "mlops", "version": "1", "autoSelect": True}]
    assert spec["protocolVersions"] == ["v2", "grpc-v2"]  # `mlops serve --grpc-port` exists
    [container] = spec["containers"]
    assert container["image"] == IMAGE
    assert container["args"] == ["--model-dir", "/mnt/models", "--model", "{{.Name}}", "--store", "/tmp/mlops/store",
                                 "--host", "0.0.0.0", "--port", "8080", "--allowed-host", "*", "--grpc-port", "8081"]
    assert "command" not in container  # the image's entrypoint, `mlops serve`
    # the InferenceService selects it by format and name; each predictor checks its bytes, then execs mlops serve
    for model in (isvc["spec"]["predictor"]["model"], isvc["spec"]["canary"][0]["predictor"]["model"]):
        assert model["modelFormat"] == {"name": "mlops"}
        assert model["runtime"] == "churn-model-mlops"
        assert model["command"][2].endswith('exec mlops serve "$@"')
    assert "sha256sum -c --strict" in isvc["spec"]["predictor"]["model"]["command"][2]  # the stable: model.ubj
    assert "LC_ALL=C sort" in isvc["spec"]["canary"][0]["predictor"]["model"]["command"][2]  # the whole package
    # one file, two documents: the runtime first (kubectl applies in order)
    assert list(yaml.safe_load_all(manifest.yaml())) == [runtime, isvc]
    assert mlops_manifest("knative", None).documents[0] == runtime


def test_the_stock_runtime_stays_available() -> None:
    manifest = kserve.render("churn-model", "ml", "knative", NEW, None, 10, runtime="stock", image=None)
    assert manifest.runtime is None and manifest.documents == (manifest.document,)
    assert manifest.document["spec"]["predictor"]["model"]["modelFormat"] == {"name": "xgboost"}
    assert yaml.safe_load(manifest.yaml()) == manifest.document


def test_the_deploy_config_defaults_to_the_mlops_runtime() -> None:
    from mlops.config import DeployParams

    assert (DeployParams().kserve_runtime, DeployParams().image) == ("mlops", None)
    assert DeployParams.model_validate({"kserve_runtime": "stock"}).kserve_runtime == "stock"


def test_the_packaged_serving_runtime_schema_is_kserves_own_made_strict() -> None:
    raw = json.loads((Path(kserve.__file__).parent / "schemas" / kserve.RUNTIME_SCHEMA_FILE).read_text())
    assert kserve.packaged_schema("ServingRuntime") == raw.get("openAPIV3Schema", raw)
    assert "additionalProperties" not in raw["properties"]["spec"]
    strict = kserve.strict_schema("ServingRuntime")
    spec = strict["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["containers"]["items"]["additionalProperties"] is False
    assert spec["properties"]["supportedModelFormats"]["items"]["additionalProperties"] is False


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda d: d["spec"]["containers"][0].__setitem__("imagee", d["spec"]["containers"][0].pop("image")),
     "spec.containers[0].imagee"),
    (lambda d: d["spec"]["supportedModelFormats"][0].__setitem__("autoselect", True),
     "spec.supportedModelFormats[0].autoselect"),
    (lambda d: d["spec"].__setitem__("protocolVersion", ["v2"]), "spec.protocolVersion"),
    (lambda d: d["spec"]["containers"][0]["readinessProbe"]["httpGet"].__setitem__("pth", "/"),
     "spec.containers[0].readinessProbe.httpGet.pth"),
    (lambda d: d["metadata"].__setitem__("namepsace", "ml"), "metadata.namepsace"),
])
def test_a_typo_in_the_serving_runtime_is_refused_naming_its_path(mutate: Any, path: str) -> None:
    doc = copy.deepcopy(mlops_manifest().documents[0])
    mutate(doc)
    with pytest.raises(DeployError) as info:
        kserve.validate(doc)
    assert f"ServingRuntime invalid at {path}: unknown field" in info.value.message
    doc = copy.deepcopy(mlops_manifest().documents[0])
    doc["spec"]["supportedModelFormats"][0]["priority"] = 0
    with pytest.raises(DeployError, match=r"ServingRuntime invalid at spec.supportedModelFormats\[0\].priority"):
        kserve.validate(doc)


def test_a_typo_in_the_inference_service_that_selects_it_is_refused_too() -> None:
    manifest = mlops_manifest()
    isvc = copy.deepcopy(manifest.document)
    isvc["spec"]["predictor"]["model"]["runtme"] = isvc["spec"]["predictor"]["model"].pop("runtime")
    with pytest.raises(DeployError, match=r"InferenceService invalid at spec.predictor.model.runtme: unknown field"):
        kserve.validate_manifest(kserve.Manifest(manifest.name, manifest.namespace, manifest.mode, manifest.version,
                                                 None, None, isvc, (), manifest.runtime))


@pytest.mark.parametrize(("image", "why"), [
    (None, "deploy.image is not set"),
    ("", "deploy.image is not set"),
    ("ghcr.io/acme/mlops:v1.2.0", "not pinned by digest"),
    ("ghcr.io/acme/mlops", "not pinned by digest"),
    ("ghcr.io/acme/mlops@sha256:" + "c" * 63, "not an image reference"),
    ("ghcr.io/Acme/mlops@sha256:" + "c" * 64, "not an image reference"),
    ("mlops@sha256:" + "c" * 64, "not an image reference"),  # no registry: Docker Hub by accident
    ("ghcr.io/acme/mlops@sha256:" + "c" * 64 + "\n", "not an image reference"),
])
def test_an_image_without_a_digest_is_refused(image: str | None, why: str) -> None:
    with pytest.raises(DeployError, match=why) as info:
        kserve.render("churn-model", "ml", "knative", PKG_NEW, None, 10, runtime="mlops", image=image)
    assert "deploy.image" in (info.value.hint or "")


def test_image_references_by_digest_are_accepted() -> None:
    for ref in (IMAGE, "ghcr.io/acme/mlops:v1.2.0@sha256:" + "d" * 64, "localhost:5000/mlops/serve@sha256:" + "e" * 64):
        assert kserve.check_image(ref) == ref


def test_the_mlops_runtime_notes_a_storage_uri_that_is_not_a_package_folder() -> None:
    dvc_dir = kserve.Predictor("v1.1.0", "s3://remote/files/md5/ab/" + "c" * 30 + ".dir", "a" * 64, kserve.WHOLE)
    notes = kserve.render("churn-model", "ml", "knative", dvc_dir, None, 10, runtime="mlops", image=IMAGE).notes
    assert any("not the model package's folder" in n for n in notes)
    assert mlops_manifest("knative", None).notes == ()


def test_the_tree_check_refuses_what_it_cannot_quote_safely() -> None:
    assert "sort" in kserve.verify_command("a" * 64, kserve.WHOLE, ("mlops", "serve"))[2]
    assert "sha256sum -c" in kserve.verify_command("a" * 64, "sub/model.ubj", ("mlops", "serve"))[2]
    for bad in ("../model.ubj", "sub/../x", "/etc/passwd", "a b"):
        with pytest.raises(DeployError, match="not a file name"):
            kserve.verify_command("a" * 64, bad, ("mlops", "serve"))


# --- the container's command line, run here against a real package: the cluster's answers are the local server's -


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The scikit-learn example (a Pipeline with one-hot categories: what the stock runtime would need as codes),
    packaged by `mlops package` into a folder as KServe's storage initializer leaves /mnt/models."""
    from mlops.package import PackageRequest, package_model
    from tests.examples import build

    root = tmp_path_factory.mktemp("kserve-pkg")
    ex = build("sklearn-binary", root / "example")
    pkg = root / "models"
    pkg.mkdir()
    shutil.copy(ex.model, pkg / ex.model.name)
    package_model(PackageRequest(pkg / ex.model.name, ex.data, ex.target, "binary"))
    return pkg, ex


def _pod_command(manifest: kserve.Manifest, models: Path, store: Path, port: int, grpc_port: int) -> list[str]:
    """The container's argv as KServe assembles it (the InferenceService's command, then the ServingRuntime's args,
    {{.Name}} filled in), with the pod's paths and ports mapped onto this machine."""
    assert manifest.runtime is not None
    command = manifest.document["spec"]["predictor"]["model"]["command"]
    args = manifest.runtime["spec"]["containers"][0]["args"]
    mapping = {kserve.MODEL_DIR: str(models), "{{.Name}}": manifest.name, "/tmp/mlops/store": str(store),
               "8080": str(port), "8081": str(grpc_port)}
    script = command[2].replace(f"cd {kserve.MODEL_DIR} ", f"cd {shlex.quote(str(models))} ")
    return [command[0], command[1], script, command[3], *[mapping.get(a, a) for a in args]]


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLOPS_ADMIN_TOKEN", None)
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
                                start_new_session=True)


def _ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    from tests.serve_helpers import call

    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if call(port, "GET", "/v2/health/ready", timeout=2).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready on {port}:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_the_pods_command_line_serves_the_package_with_the_local_servers_answers(
        package: tuple[Path, Any], tmp_path: Path) -> None:
    import numpy as np

    from mlops.files import sha256_tree
    from tests.examples import as_records
    from tests.serve_helpers import call, free_port

    pkg, ex = package
    tree = sha256_tree(pkg)
    pod = kserve.Predictor("v1.0.0", f"s3://models/sklearn-binary/sha256/{tree}/", tree, kserve.WHOLE)
    manifest = kserve.render("sklearn-binary", "ml", "knative", pod, None, 10, runtime="mlops", image=IMAGE)
    kserve.validate_manifest(manifest)
    port, grpc_port, local_port = free_port(), free_port(), free_port()
    cluster = _start(_pod_command(manifest, pkg, tmp_path / "pod-store", port, grpc_port), tmp_path / "pod.log")
    # the local server as a newcomer runs it on the same package
    local = _start([sys.executable, "-m", "mlops", "serve", "--model-dir", str(pkg), "--model", "sklearn-binary",
                    "--store", str(tmp_path / "local-store"), "--port", str(local_port)], tmp_path / "local.log")
    try:
        _ready(cluster, port, tmp_path / "pod.log")
        _ready(local, local_port, tmp_path / "local.log")
        x = ex.features()
        records = as_records(x)
        meta = call(port, "GET", "/v2/models/sklearn-binary").json()
        assert meta == call(local_port, "GET", "/v2/models/sklearn-binary").json()
        body = {"inputs": [{"name": i["name"], "datatype": i["datatype"], "shape": [len(records)],
                            "data": [r[i["name"]] for r in records]} for i in meta["inputs"]]}
        assert any(i["datatype"] == "BYTES" for i in body["inputs"])  # raw category strings, not codes
        there = call(port, "POST", "/v2/models/sklearn-binary/infer", body)
        here = call(local_port, "POST", "/v2/models/sklearn-binary/infer", body)
        assert there.status == here.status == 200, there.json()
        assert there.json()["outputs"] == here.json()["outputs"]  # the same answer, byte for byte
        got = np.asarray(there.json()["outputs"][0]["data"], dtype=np.float64)
        np.testing.assert_allclose(got, ex.offline(x), rtol=0, atol=1e-6)
        # gRPC is listening too (protocolVersions grpc-v2)
        with socket.create_connection(("127.0.0.1", grpc_port), timeout=5):
            pass
        # a bad input is the same 4xx naming the field
        bad = {"inputs": [{**body["inputs"][0], "data": ["x"] * len(records)}, *body["inputs"][1:]]}
        assert call(port, "POST", "/v2/models/sklearn-binary/infer", bad).json() == \
            call(local_port, "POST", "/v2/models/sklearn-binary/infer", bad).json()
    finally:
        _stop(cluster)
        _stop(local)
    assert "sha256" in (tmp_path / "pod.log").read_text()


def test_the_pods_command_line_refuses_a_tampered_package(package: tuple[Path, Any], tmp_path: Path) -> None:
    from mlops.files import sha256_tree
    from tests.serve_helpers import free_port

    pkg, _ = package
    tree = sha256_tree(pkg)
    tampered = tmp_path / "models"
    shutil.copytree(pkg, tampered)
    golden = next(p for p in tampered.iterdir() if p.name.startswith("golden"))
    golden.write_bytes(golden.read_bytes() + b"\n")
    pod = kserve.Predictor("v1.0.0", f"s3://models/sklearn-binary/sha256/{tree}/", tree, kserve.WHOLE)
    manifest = kserve.render("sklearn-binary", "ml", "knative", pod, None, 10, runtime="mlops", image=IMAGE)
    port = free_port()
    proc = subprocess.run(_pod_command(manifest, tampered, tmp_path / "store", port, free_port()),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "mlops: the model directory does not match the sha256 of its registry tag" in proc.stderr
    assert not (tmp_path / "store").exists()  # mlops serve never started
    # an extra file is a different package too
    extra = tmp_path / "extra"
    shutil.copytree(pkg, extra)
    (extra / "model.pkl").write_bytes(b"planted")
    proc = subprocess.run(_pod_command(manifest, extra, tmp_path / "store", port, free_port()),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1 and not (tmp_path / "store").exists()
