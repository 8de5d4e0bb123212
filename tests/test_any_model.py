"""Any model, end to end: the four example shapes of tests/examples.py (a scikit-learn Pipeline, LightGBM
multiclass, an ONNX regression, a python class) as real DVC projects: `mlops package` as a DVC stage, promote,
`mlops deploy --target local` to one real `mlops serve` (golden check and canary pass), served answers equal to the
offline ones through V2 and records, bad input refused naming the field, monitoring of an injected shift, KServe
manifests that validate, and the Triton and KServe Python clients getting the same answers.

One module-scoped setup builds the four projects and one server; the tests read from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.deploy import kserve
from mlops.formats.manifest import read_manifest
from mlops.jobs.deploy import DeployOptions, DeployResult, deploy
from mlops.jobs.monitor import monitor
from mlops.jobs.promote import PromoteOptions, promote
from mlops.monitor import MonitorAlert, MonitorParams, MonitorResult
from tests.deploy_helpers import TOKEN, template_env
from tests.examples import BUILDERS, Example, as_records, build
from tests.helpers import commit_all, dvc, init_repo
from tests.serve_helpers import Server, call, v2_body

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# A numeric input of each example, shifted by two standard deviations in the drift test.
SHIFTED = {"sklearn-binary": "mean radius", "lightgbm-multiclass": "alcohol", "onnx-regression": "bmi",
           "python-multiclass": "sepal_length"}
MODEL_FILES = {"sklearn-binary": "model.skops", "lightgbm-multiclass": "model.txt", "onnx-regression": "model.onnx",
               "python-multiclass": "centroids.json"}


@dataclass
class Project:
    example: Example
    repo: Path
    artifact: str
    ref: str
    deployed: DeployResult | None = None


@dataclass
class World:
    projects: dict[str, Project]
    server: Server
    store: Path


def _make_project(ex: Example, root: Path, store: Path, port: int) -> Project:
    """A DVC project whose pipeline is the adopter's: their model file and held-out data, `mlops package` as the
    stage that writes the package (one DVC output, the registered artifact)."""
    repo = init_repo(root / ex.name)
    dvc(repo, "init", "-q")
    (repo / "models").mkdir()
    (repo / "data").mkdir()
    model_name = MODEL_FILES[ex.name]
    shutil.copy(ex.model, repo / "models" / model_name)
    shutil.copy(ex.data, repo / "data/test.csv")
    deps = [f"models/{model_name}", "data/test.csv"]
    cmd = (f"{sys.executable} -m mlops package --model models/{model_name} --data data/test.csv --target "
           f"{ex.target} --task {ex.task} --runtime {ex.runtime} --out package")
    if ex.code:
        code_file = Path(ex.code.split(":")[0])
        shutil.copy(code_file, repo / code_file.name)
        cmd += f" --code {code_file.name}:{ex.code.split(':')[1]}"
        deps.append(code_file.name)
    artifact = f"{ex.name}-model"
    (repo / "dvc.yaml").write_text(yaml.safe_dump({
        "stages": {"package": {"cmd": cmd, "deps": deps, "outs": ["package"]}},
        "artifacts": {artifact: {"path": "package", "type": "model", "desc": ex.name}}}, sort_keys=False))
    (repo / "params.yaml").write_text(yaml.safe_dump({
        "registry": {"artifact": artifact, "production_stage": "production",
                     "promote_identities": [{"name": "Test Committer", "email": "committer@example.com"}]},
        "deploy": {"server_url": f"http://127.0.0.1:{port}", "store": str(store), "canary_percent": 20,
                   "canary_seconds": 0.5, "canary_requests": 20, "max_error_rate": 0.0, "max_p99_ms": 2000.0,
                   "kserve_dir": "deploy/kserve", "kserve_namespace": "ml",
                   "image": "ghcr.io/example/mlops@sha256:" + "0" * 64},  # the mlops runtime's image
    }, sort_keys=False))
    (repo / ".gitignore").write_text("__pycache__/\n/deploy/\n")
    dvc(repo, "remote", "add", "-d", "store", str(root / f"{ex.name}-dvcstore"))
    dvc(repo, "repro", "-q")
    commit_all(repo, "the adopter's model, packaged")
    result = promote(repo, PromoteOptions(push=False))
    dvc(repo, "push", "-q")
    return Project(ex, repo, artifact, f"{result.artifact}@{result.version}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("any-model")
    with template_env(root / "home"):
        os.environ["MLOPS_ADMIN_TOKEN"] = TOKEN
        store = root / "store"
        server = Server(store, workers=1, cwd=root)
        try:
            server.wait()
            projects: dict[str, Project] = {}
            for name in BUILDERS:
                ex = build(name, root / "examples" / name)
                projects[name] = _make_project(ex, root / "projects", store, server.port)
            for p in projects.values():
                p.deployed = deploy(p.repo, DeployOptions(target="local", ref=p.ref, push=False))
            yield World(projects, server, store)
        finally:
            server.stop()


def _held_out(p: Project) -> pd.DataFrame:
    return p.example.features()


# --- delivery ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_package_stage_promote_and_deploy_pass_golden_and_canary(world: World, name: str) -> None:
    p = world.projects[name]
    m = read_manifest(p.repo / "package")
    assert (m.runtime, m.task) == (p.example.runtime, p.example.task)
    assert p.ref == f"{p.artifact}@v1.0.0"
    r = p.deployed
    assert r is not None and r.action == "deployed", r
    checks = {c.name: c for c in r.checks}
    assert checks["golden"].passed and checks["golden"].figures["mismatches"] == 0, checks["golden"]
    assert checks["canary_error_rate"].passed and checks["metrics"].passed
    ready = call(world.server.port, "GET", f"/v2/models/{p.artifact}/ready")
    assert ready.status == 200 and ready.version == "v1.0.0"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_metadata_describes_the_task(world: World, name: str) -> None:
    p = world.projects[name]
    doc = call(world.server.port, "GET", f"/v2/models/{p.artifact}").json()
    m = read_manifest(p.repo / "package")
    assert doc["platform"] == m.runtime and doc["parameters"]["task"] == m.task
    assert [i["name"] for i in doc["inputs"]] == m.interface.names
    names = [o["name"] for o in doc["outputs"]]
    if m.task == "regression":
        assert names == ["value"]
    elif m.task == "binary":
        assert names == ["probability", "label"] and doc["parameters"]["classes"] == list(m.classes or ())
    else:
        assert names == ["probabilities", "label"]
        assert doc["outputs"][0]["shape"] == [-1, len(m.classes or ())]
        assert doc["outputs"][0]["parameters"]["classes"] == list(m.classes or ())


def _expected_labels(m: Any, values: np.ndarray) -> list[str] | None:
    if m.task == "regression":
        return None
    if m.task == "binary":
        return [m.classes[1] if v >= m.decision_threshold else m.classes[0] for v in values]
    return [m.classes[int(k)] for k in np.argmax(values, axis=1)]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_served_answers_equal_the_offline_ones_through_v2_and_records(world: World, name: str) -> None:
    p = world.projects[name]
    port = world.server.port
    m = read_manifest(p.repo / "package")
    x = _held_out(p)
    offline = p.example.offline(x)
    records = as_records(x)
    meta = call(port, "GET", f"/v2/models/{p.artifact}").json()
    v2 = call(port, "POST", f"/v2/models/{p.artifact}/infer", v2_body(records, meta["inputs"]))
    assert v2.status == 200, v2.json()
    out = {o["name"]: o for o in v2.json()["outputs"]}
    primary = out[meta["outputs"][0]["name"]]
    got = np.asarray(primary["data"], dtype=np.float64).reshape(offline.shape)
    np.testing.assert_allclose(got, offline, rtol=0, atol=1e-6 * max(1.0, float(np.abs(offline).max()))
                               if m.task == "regression" else 1e-6)
    assert primary["shape"] == list(offline.shape)
    labels = _expected_labels(m, offline)
    if labels is not None:
        assert out["label"]["data"] == labels and out["label"]["datatype"] == "BYTES"
    rec = call(port, "POST", f"/v1/models/{p.artifact}/predict", {"instances": records})
    assert rec.status == 200, rec.json()
    body = rec.json()
    np.testing.assert_allclose(np.asarray(body["predictions"], dtype=np.float64), offline, rtol=0,
                               atol=1e-6 * max(1.0, float(np.abs(offline).max())) if m.task == "regression"
                               else 1e-6)
    assert body.get("labels") == labels
    only = call(port, "POST", f"/v2/models/{p.artifact}/infer",
                {**v2_body(records[:3], meta["inputs"]), "outputs": [{"name": meta["outputs"][-1]["name"]}]})
    assert [o["name"] for o in only.json()["outputs"]] == [meta["outputs"][-1]["name"]]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_bad_input_is_a_4xx_naming_the_field(world: World, name: str) -> None:
    p = world.projects[name]
    port = world.server.port
    record = as_records(_held_out(p))[0]
    numeric = SHIFTED[name]
    bad = {**record, numeric: "lots"}
    rec = call(port, "POST", f"/v1/models/{p.artifact}/predict", {"instances": [bad]})
    assert rec.status == 400 and f"'{numeric}'" in rec.json()["error"], rec.json()
    missing = {k: v for k, v in record.items() if k != numeric}
    rec = call(port, "POST", f"/v1/models/{p.artifact}/predict", {"instances": [missing]})
    assert rec.status == 400 and f"'{numeric}' is missing" in rec.json()["error"]
    meta = call(port, "GET", f"/v2/models/{p.artifact}").json()
    body = v2_body([record], meta["inputs"])
    for t in body["inputs"]:
        if t["name"] == numeric:
            t["datatype"] = "BYTES"
    v2 = call(port, "POST", f"/v2/models/{p.artifact}/infer", body)
    assert v2.status == 400 and f"input '{numeric}'" in v2.json()["error"]
    wrong_out = call(port, "POST", f"/v2/models/{p.artifact}/infer",
                     {**v2_body([record], meta["inputs"]), "outputs": [{"name": "nope"}]})
    assert wrong_out.status == 400 and "'outputs'" in wrong_out.json()["error"]


# --- monitoring --------------------------------------------------------------------------------------------------


def _check(p: Project, frame: pd.DataFrame, path: Path, out: Path) -> MonitorResult:
    frame.to_csv(path, index=False)
    params = MonitorParams(min_rows=0, plots=False, max_age_days=None)
    try:
        return monitor(p.repo, current=path, reference=p.repo / "package/reference.json", out=out,
                       registered=None, params=params)
    except MonitorAlert as alert:
        return alert.result


@pytest.mark.parametrize("name", list(BUILDERS))
def test_monitor_flags_the_shifted_feature_and_no_other_and_stays_quiet_on_clean_resamples(
        world: World, name: str, tmp_path: Path) -> None:
    p = world.projects[name]
    x = _held_out(p)
    rng = np.random.default_rng(11)
    n = 600
    shifted = x.sample(n, replace=True, random_state=5).reset_index(drop=True)
    col = SHIFTED[name]
    shifted[col] = shifted[col] + 2 * float(x[col].std())
    result = _check(p, shifted, tmp_path / "shifted.csv", tmp_path / "out")
    drift = {a.subject for a in result.alarms if a.check == "drift"}
    assert drift == {col}, [a.message for a in result.alarms]
    assert result.drifted_features == (col,)
    alarmed = 0
    for k in range(100):
        clean = x.sample(n, replace=True, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)
        res = _check(p, clean, tmp_path / f"clean{k % 2}.csv", tmp_path / "out")
        alarmed += not res.healthy
    assert alarmed <= 5, alarmed


# --- KServe ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_kserve_manifests_validate(world: World, name: str) -> None:
    p = world.projects[name]
    result = deploy(p.repo, DeployOptions(target="kserve", ref=p.ref, push=False))
    written = p.repo / "deploy/kserve" / f"{p.artifact}.yaml"
    assert result.action == "written" and written.is_file()
    for doc in yaml.safe_load_all(written.read_text()):
        if doc and doc.get("kind") == "InferenceService":
            kserve.validate(doc)


# --- the peers' clients ------------------------------------------------------------------------------------------


@dataclass
class Triton:
    """tritonclient.http pointed at the server, with one project's held-out rows, their offline answers and the
    model's metadata as the client reads it."""

    http: Any
    client: Any
    project: Project
    x: pd.DataFrame
    offline: Any
    meta: dict[str, Any]

    def check(self, res: Any) -> None:
        primary = self.meta["outputs"][0]["name"]
        got = np.asarray(res.as_numpy(primary), dtype=np.float64).reshape(self.offline.shape)
        scale = max(1.0, float(np.abs(self.offline).max())) if self.project.example.task == "regression" else 1.0
        np.testing.assert_allclose(got, self.offline, rtol=0, atol=1e-6 * scale)


def _triton(world: World, name: str) -> Triton:
    http = pytest.importorskip("tritonclient.http")
    p = world.projects[name]
    x = _held_out(p)
    client = http.InferenceServerClient(url=f"127.0.0.1:{world.server.port}")
    return Triton(http, client, p, x, p.example.offline(x), client.get_model_metadata(p.artifact))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_triton_client_gets_the_offline_answers(world: World, name: str) -> None:
    tc = _triton(world, name)
    tritonclient_http, p, x, client, meta = tc.http, tc.project, tc.x, tc.client, tc.meta
    inputs = []
    for i in meta["inputs"]:
        values = x[i["name"]].to_numpy()
        arr = np.asarray(values.astype(object) if i["datatype"] == "BYTES" else values,
                         dtype=object if i["datatype"] == "BYTES" else
                         {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}[i["datatype"]])
        t = tritonclient_http.InferInput(i["name"], [len(x)], i["datatype"])
        t.set_data_from_numpy(arr, binary_data=False)
        inputs.append(t)
    primary = meta["outputs"][0]["name"]
    # The server takes POST bodies declared as JSON only (a cross-site form cannot send them); tritonclient
    # declares none by default.
    tc.check(client.infer(p.artifact, inputs, outputs=[tritonclient_http.InferRequestedOutput(primary,
                                                                                               binary_data=False)],
                          headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_one_matrix_tensor_as_mlservers_clients_send_it(world: World, name: str) -> None:
    """A client moving from MLServer sends a numeric model's rows as one [rows, k] FP64 tensor (tritonclient's
    default, binary data): the offline answers. A model with a text input refuses it, naming the input to send
    apart (a 400, never a 5xx)."""
    tc = _triton(world, name)
    from tritonclient.utils import InferenceServerException

    p, x, client, meta = tc.project, tc.x, tc.client, tc.meta
    text = [i["name"] for i in meta["inputs"] if i["datatype"] == "BYTES"]
    t = tc.http.InferInput("input-0", [len(x), len(meta["inputs"])], "FP64")
    if text:
        t.set_data_from_numpy(np.zeros((len(x), len(meta["inputs"]))), binary_data=True)
        with pytest.raises(InferenceServerException) as exc:
            client.infer(p.artifact, [t])
        assert exc.value.status() == "400" and f"input '{text[0]}' is a" in exc.value.message(), exc.value
        return
    t.set_data_from_numpy(x[[i["name"] for i in meta["inputs"]]].to_numpy(dtype=np.float64), binary_data=True)
    tc.check(client.infer(p.artifact, [t], outputs=[tc.http.InferRequestedOutput(meta["outputs"][0]["name"])]))


KSERVE_VENV = Path(os.environ.get("MLOPS_KSERVE_VENV", "/tmp/kserve-venv"))
KSERVE_SCRIPT = textwrap.dedent('''\
    import asyncio, json, sys
    from kserve import InferenceRESTClient, RESTConfig, InferRequest, InferInput

    async def main():
        url, name, inputs = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
        client = InferenceRESTClient(config=RESTConfig(protocol="v2"))
        tensors = [InferInput(name=i["name"], shape=i["shape"], datatype=i["datatype"], data=i["data"])
                   for i in inputs]
        res = await client.infer(url, InferRequest(model_name=name, infer_inputs=tensors), model_name=name)
        await client.close()
        print(json.dumps({o.name: list(o.data) for o in res.outputs}))

    asyncio.run(main())
''')


@pytest.mark.parametrize("name", list(BUILDERS))
def test_kserve_sdk_gets_the_offline_answers(world: World, name: str) -> None:
    """KServe's SDK pins clash with this venv's (protobuf, psutil...): it runs from its own venv, driven here."""
    python = KSERVE_VENV / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"no kserve venv at {KSERVE_VENV} (uv venv; uv pip install kserve==0.21.0)")
    p = world.projects[name]
    x = _held_out(p)
    offline = p.example.offline(x)
    meta = call(world.server.port, "GET", f"/v2/models/{p.artifact}").json()
    records = as_records(x)
    inputs = v2_body(records, meta["inputs"])["inputs"]
    proc = subprocess.run([str(python), "-c", KSERVE_SCRIPT, f"http://127.0.0.1:{world.server.port}", p.artifact],
                          input=json.dumps(inputs), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    got = np.asarray(out[meta["outputs"][0]["name"]], dtype=np.float64).reshape(offline.shape)
    scale = max(1.0, float(np.abs(offline).max())) if p.example.task == "regression" else 1.0
    np.testing.assert_allclose(got, offline, rtol=0, atol=1e-6 * scale)


# --- the newcomer's path -----------------------------------------------------------------------------------------


def test_serve_a_workspace_package_without_promote_or_deploy(world: World, tmp_path: Path) -> None:
    """`mlops serve --model-dir package`: a first try with no registry; the sha256 of what is served is logged."""
    p = world.projects["python-multiclass"]  # the python runtime: code that loads only with a trusted sha256
    server = Server(tmp_path / "ws-store", token=None, extra=["--model-dir", str(p.repo / "package"),
                                                               "--model", "iris"], cwd=tmp_path)
    try:
        server.wait("/v2/health/ready")
        x = _held_out(p)
        rec = call(server.port, "POST", "/v1/models/iris/predict", {"instances": as_records(x)})
        assert rec.status == 200, rec.json()
        np.testing.assert_allclose(np.asarray(rec.json()["predictions"]), p.example.offline(x), rtol=0, atol=1e-6)
        assert rec.version is not None and rec.version.startswith("v0.0.0-workspace+")
        assert "serving the workspace's package" in server.log() and "sha256_tree" in server.log()
    finally:
        server.stop()
