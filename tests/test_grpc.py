"""`mlops serve --grpc-port`: the Open Inference Protocol over gRPC (KServe's grpc_predict_v2.proto) from a real
server process on loopback, two workers, the churn model (v1.0.0, and the same bytes as v1.1.0 for the canary) and
the four example models of tests/examples.py packaged by `mlops package`.

The peers' clients in their default modes (Triton's tritonclient.grpc, KServe's InferenceGRPCClient, in their own
venv, tests/v2_clients.py) get the offline predictions; the health and metadata RPCs answer as REST does; a
malformed request is INVALID_ARGUMENT naming the field and counted as a client error; the canary split, the request
log and the metrics treat a gRPC request as a REST one. Raw requests go through grpcio and the server's own
generated messages.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops import modelstore
from mlops.config import load_params
from mlops.features import read_model_interface, records_from_frame
from mlops.files import sha256_file
from mlops.formats.manifest import read_manifest
from mlops.stages.data import features_and_label, load_prepared
from tests.examples import BUILDERS, Example, as_records, build
from tests.serve_helpers import (
    TOKEN,
    Server,
    admin,
    call,
    clients_python,
    install,
    metric,
    run_clients,
    tensors,
)

grpc = pytest.importorskip("grpc")
pb = pytest.importorskip("mlops.serve._proto.grpc_predict_v2_pb2")

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MODEL = "churn-model"
SERVICE = "/inference.GRPCInferenceService/"
MAX_ROWS = 2000
MAX_BODY = 1024 * 1024
PROTO_DIR = Path(__file__).resolve().parents[1] / "mlops/serve/_proto"


@dataclass
class Served:
    server: Server
    logs: Path
    records: list[dict[str, Any]]  # the churn test split, raw
    offline: np.ndarray  # evaluate's reports/predictions.csv for those rows
    inputs: list[dict[str, Any]]  # the V2 metadata's inputs
    examples: dict[str, tuple[Example, str]]  # example name -> (example, served model name)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"


def _package(ex: Example, out: Path, store: Path) -> str:
    """`mlops package` the example, install the package in the store as v1.0.0; its model name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "mlops", *ex.cli_args(out), "--runtime", ex.runtime]
    proc = subprocess.run(args, capture_output=True, text=True, check=False, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(out)
    name = f"{ex.name}-model"
    model_file = manifest.files[0].path
    modelstore.install(store, name, "v1.0.0", out, model_file=model_file, model_sha256=sha256_file(out / model_file),
                       meta={"tag": f"{name}@v1.0.0", "commit": "0" * 40})
    return name


@pytest.fixture(scope="module")
def served(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("grpc")
    store, logs = root / "store", root / "logs"
    models = _trained_template / "models"
    install(store, models, "v1.0.0")
    install(store, models, "v1.1.0")  # the same bytes under another version: the canary's
    examples: dict[str, tuple[Example, str]] = {}
    for name in BUILDERS:
        ex = build(name, root / "examples" / name)
        examples[name] = (ex, _package(ex, root / "packages" / name, store))
    server = Server(store, workers=2, log_dir=logs, grpc=True,
                    extra=["--max-rows", str(MAX_ROWS), "--max-body-bytes", str(MAX_BODY)])
    try:
        server.wait("/v2/health/ready")
        assert admin(server.port, "load", {"version": "v1.0.0", "role": "stable"}).status == 200
        params = load_params(_trained_template / "params.yaml")
        test = load_prepared(_trained_template / "data/prepared/test.csv", params.data)
        iface = read_model_interface(models / "feature_schema.json")
        records = records_from_frame(iface, features_and_label(test, params.data)[0])
        offline = pd.read_csv(_trained_template / "reports/predictions.csv")["probability"].to_numpy()
        inputs = call(server.port, "GET", f"/v2/models/{MODEL}").json()["inputs"]
        yield Served(server, logs, records, offline, inputs, examples)
    finally:
        code = server.stop()
    assert code == 0, server.log()


@pytest.fixture(scope="module")
def clients() -> Path:
    python = clients_python()
    if python is None:
        pytest.skip("the V2 clients' venv could not be made (uv venv; uv pip install tritonclient[grpc,http]==2.73.0 "
                    "kserve==0.21.0 numpy==1.26.4; or set MLOPS_V2_CLIENTS_VENV)")
    return python


def rpc(s: Served, method: str, request: Any, response: Any, metadata: tuple[tuple[str, str], ...] = ()
        ) -> tuple[Any, dict[str, str]]:
    """One RPC with grpcio; (the response, the trailing metadata); grpc.RpcError when refused."""
    with grpc.insecure_channel(s.grpc_url) as channel:
        fn = channel.unary_unary(SERVICE + method, request_serializer=lambda m: m if isinstance(m, bytes)
                                 else m.SerializeToString(), response_deserializer=response.FromString)
        reply, call_ = fn.with_call(request, metadata=metadata, timeout=60)
        return reply, dict(call_.trailing_metadata() or ())


def refused(s: Served, request: Any, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        rpc(s, "ModelInfer", request, pb.ModelInferResponse, metadata)
    return info.value


def infer_request(records: list[dict[str, Any]], inputs: list[dict[str, Any]], **kw: Any) -> Any:
    """A ModelInferRequest with typed contents, one tensor per feature (what the REST body holds, as protobuf)."""
    req = pb.ModelInferRequest(model_name=MODEL, **kw)
    field = {"INT64": "int64_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents", "BOOL": "bool_contents"}
    for t in tensors(records, inputs):
        tensor = req.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        values = [v.encode() for v in t["data"]] if t["datatype"] == "BYTES" else t["data"]
        getattr(tensor.contents, field[t["datatype"]]).extend(values)
    return req


def metrics(s: Served) -> str:
    return call(s.server.port, "GET", "/metrics").body.decode()


def log_lines(logs: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(logs.glob("requests-*.jsonl")):
        out.extend(json.loads(line) for line in f.read_text().splitlines() if line.strip())
    return out


def wait_for(cond: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- the generated code ----------------------------------------------------------------------------------------------


def test_the_committed_generated_code_is_what_protoc_generates(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    shutil.copy(PROTO_DIR / "grpc_predict_v2.proto", tmp_path / "grpc_predict_v2.proto")
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--python_out={tmp_path}",
                           str(tmp_path / "grpc_predict_v2.proto")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert filecmp.cmp(tmp_path / "grpc_predict_v2_pb2.py", PROTO_DIR / "grpc_predict_v2_pb2.py", shallow=False), \
        "mlops/serve/_proto/grpc_predict_v2_pb2.py is stale: regenerate it (see mlops/serve/_proto/__init__.py)"
    reference = Path("/work/shared/reference/open-inference-protocol/grpc_predict_v2.proto")
    if reference.is_file():  # the copy is KServe's file, unchanged below our header
        ours = (PROTO_DIR / "grpc_predict_v2.proto").read_text()
        assert ours.endswith(reference.read_text())


# --- the peers' clients ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["triton-grpc", "kserve-grpc", "kserve-grpc-lists"])
def test_peer_grpc_clients_get_the_offline_predictions_of_churn(served: Served, clients: Path, client: str) -> None:
    ops = [{"op": "infer", "client": client, "url": served.grpc_url, "model": MODEL,
            "inputs": tensors(served.records, served.inputs)},
           {"op": "infer", "client": client, "url": served.grpc_url, "model": MODEL, "version": "v1.0.0",
            "inputs": tensors(served.records[:3], served.inputs), "outputs": ["probability"]}]
    whole, pinned = run_clients(clients, ops)
    assert "error" not in whole, whole
    got = np.asarray(whole["outputs"]["probability"], dtype=np.float64)
    np.testing.assert_allclose(got, served.offline, rtol=0, atol=1e-6)
    assert whole["shapes"]["probability"] == [len(served.records)] and whole["datatypes"]["probability"] == "FP32"
    assert whole["model_version"] == "v1.0.0" and whole["id"]  # no id sent: the server's request id
    np.testing.assert_allclose(pinned["outputs"]["probability"], served.offline[:3], rtol=0, atol=1e-6)


def _offline_and_tensors(s: Served, name: str) -> tuple[Example, str, np.ndarray, list[dict[str, Any]], str]:
    ex, model = s.examples[name]
    x = ex.features()
    meta = call(s.server.port, "GET", f"/v2/models/{model}").json()
    return ex, model, ex.offline(x), tensors(as_records(x), meta["inputs"]), meta["outputs"][0]["name"]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_peer_clients_get_the_offline_predictions_of_every_runtime(served: Served, clients: Path, name: str) -> None:
    ex, model, offline, inputs, primary = _offline_and_tensors(served, name)
    ops = [{"op": "infer", "client": c, "url": url, "model": model, "inputs": inputs}
           for c, url in (("triton-grpc", served.grpc_url), ("kserve-grpc", served.grpc_url),
                          ("kserve-grpc-lists", served.grpc_url), ("triton-http", f"127.0.0.1:{served.server.port}"))]
    atol = 1e-6 * max(1.0, float(np.abs(offline).max())) if ex.task == "regression" else 1e-6
    rest = call(served.server.port, "POST", f"/v2/models/{model}/infer", {"inputs": inputs}).json()
    for op, got in zip(ops, run_clients(clients, ops), strict=True):
        assert "error" not in got, (op["client"], got)
        values = np.asarray(got["outputs"][primary], dtype=np.float64).reshape(offline.shape)
        np.testing.assert_allclose(values, offline, rtol=0, atol=atol, err_msg=op["client"])
        # every output the REST answer has (the label of a classifier too), with the same values
        for out in rest["outputs"]:
            assert got["shapes"][out["name"]] == out["shape"] and got["datatypes"][out["name"]] == out["datatype"]
            if out["datatype"] == "BYTES":
                assert got["outputs"][out["name"]] == out["data"], op["client"]
            else:  # bit for bit in the output's own type (JSON carries float32 as its shortest decimal)
                dtype = np.float32 if out["datatype"] == "FP32" else np.float64
                np.testing.assert_array_equal(np.asarray(got["outputs"][out["name"]], dtype=dtype),
                                              np.asarray(out["data"], dtype=dtype), err_msg=op["client"])


def test_health_and_metadata_rpcs_answer_as_rest_does(served: Served, clients: Path) -> None:
    triton, kserve = run_clients(clients, [
        {"op": "health", "client": "triton-grpc", "url": served.grpc_url, "model": MODEL},
        {"op": "health", "client": "kserve-grpc", "url": served.grpc_url, "model": MODEL}])
    for got in (triton, kserve):
        assert got["live"] is True and got["ready"] is True and got["model_ready"] is True
    rest = call(served.server.port, "GET", "/v2").json()
    assert triton["server_metadata"]["name"] == rest["name"] == "mlops"
    assert "binary_tensor_data" in triton["server_metadata"]["extensions"] == rest["extensions"]
    meta = call(served.server.port, "GET", f"/v2/models/{MODEL}").json()
    got = triton["model_metadata"]
    assert got["name"] == MODEL and got["platform"] == meta["platform"]
    assert got["versions"] == meta["versions"] == ["v1.0.0"]  # the versions loaded (no canary now)
    assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in got["inputs"]] == \
        [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]]
    assert [t["name"] for t in got["outputs"]] == [t["name"] for t in meta["outputs"]]
    # a version, an unknown model, a version not loaded: as REST (404 is NOT_FOUND)
    one, trailer = rpc(served, "ModelMetadata", pb.ModelMetadataRequest(name=MODEL, version="v1.0.0"),
                       pb.ModelMetadataResponse)
    assert list(one.versions) == ["v1.0.0"] and trailer["x-model-version"] == "v1.0.0"
    assert [t.name for t in one.inputs] == [t["name"] for t in meta["inputs"]]
    ready, _ = rpc(served, "ModelReady", pb.ModelReadyRequest(name=MODEL, version="v1.0.0"), pb.ModelReadyResponse)
    assert ready.ready is True
    for method, req, resp in (("ModelReady", pb.ModelReadyRequest(name="nope"), pb.ModelReadyResponse),
                              ("ModelMetadata", pb.ModelMetadataRequest(name=MODEL, version="v1.1.0"),
                               pb.ModelMetadataResponse)):
        with pytest.raises(grpc.RpcError) as info:
            rpc(served, method, req, resp)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
    # a name that would be another path is refused, not routed
    with pytest.raises(grpc.RpcError) as info:
        rpc(served, "ModelMetadata", pb.ModelMetadataRequest(name=f"{MODEL}/versions/v1.0.0"),
            pb.ModelMetadataResponse)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- validation, limits, accounting ----------------------------------------------------------------------------------


def test_malformed_requests_are_invalid_argument_naming_the_field_and_client_errors(served: Served) -> None:
    labels = {"model": MODEL, "version": "v1.0.0"}
    before = metrics(served)
    rec = served.records[:2]
    wrong_type = infer_request(rec, served.inputs)
    tenure = next(t for t in wrong_type.inputs if t.name == "tenure")
    tenure.datatype = "FP32"  # an int feature: an integer datatype only
    unknown = infer_request(rec, served.inputs)
    contract = next(t for t in unknown.inputs if t.name == "contract")
    del contract.contents.bytes_contents[:]
    contract.contents.bytes_contents.extend([b"Forever", b"One year"])
    raw_mismatch = infer_request(rec, served.inputs)
    raw_mismatch.raw_input_contents.append(b"\x00" * 8)
    wrong_field = infer_request(rec, served.inputs)
    charges = next(t for t in wrong_field.inputs if t.name == "monthly_charges")
    values = list(charges.contents.fp64_contents)
    charges.contents.Clear()
    charges.contents.fp32_contents.extend(values)  # FP64 declared, values in fp32_contents
    cases = [(wrong_type, "tenure"), (unknown, "contract"), (raw_mismatch, "raw_input_contents"),
             (wrong_field, "monthly_charges")]
    for req, field in cases:
        err = refused(served, req)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert field in err.details(), err.details()
    garbage = refused(served, b"\xff\xff\xff\xff not protobuf")
    assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT and "ModelInferRequest" in garbage.details()
    unknown_model = refused(served, pb.ModelInferRequest(model_name="nope"))
    assert unknown_model.code() == grpc.StatusCode.NOT_FOUND
    after = metrics(served)
    assert metric(after, "model_infer_request_client_error_total", **labels) == \
        (metric(before, "model_infer_request_client_error_total", **labels) or 0) + len(cases)
    assert (metric(after, "model_infer_request_failure_total", **labels) or 0) == \
        (metric(before, "model_infer_request_failure_total", **labels) or 0)
    code = {"grpc_method": "ModelInfer", "grpc_code": "INVALID_ARGUMENT"}
    assert metric(after, "grpc_server_handled_total", **code) == \
        (metric(before, "grpc_server_handled_total", **code) or 0) + len(cases) + 1


def test_row_cap_and_message_size_cap_hold_for_grpc(served: Served) -> None:
    many = (served.records * (MAX_ROWS // len(served.records) + 2))[:MAX_ROWS + 1]
    err = refused(served, infer_request(many, served.inputs))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-rows" in err.details()
    big = infer_request(served.records[:1], served.inputs)
    big.inputs[0].parameters["note"].string_param = "x" * (MAX_BODY + 1)
    err = refused(served, big)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
    ok, _ = rpc(served, "ModelInfer", infer_request(served.records[:MAX_ROWS], served.inputs), pb.ModelInferResponse)
    assert list(ok.outputs[0].shape) == [min(MAX_ROWS, len(served.records))]


def test_request_log_and_metrics_record_grpc_requests_like_rest_ones(served: Served) -> None:
    labels = {"model": MODEL, "version": "v1.0.0"}
    before = metrics(served)
    rows = served.records[:4]
    resp, trailer = rpc(served, "ModelInfer", infer_request(rows, served.inputs, id="order-42"),
                        pb.ModelInferResponse, metadata=(("x-request-id", "grpc-client-7"),))
    rid = trailer["x-request-id"]
    assert resp.id == "order-42" and resp.model_version == "v1.0.0" == trailer["x-model-version"]
    assert trailer["x-client-request-id"] == "grpc-client-7"
    got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4")
    np.testing.assert_allclose(got, served.offline[:4], rtol=0, atol=1e-6)
    bad = infer_request(rows[:1], served.inputs)
    next(t for t in bad.inputs if t.name == "contract").contents.bytes_contents[0] = b"Forever"
    err = refused(served, bad, metadata=(("x-request-id", "grpc-client-8"),))
    bad_rid = dict(err.trailing_metadata())["x-request-id"]

    def ours() -> list[dict[str, Any]] | None:
        found = [ln for ln in log_lines(served.logs) if ln["request_id"] in (rid, bad_rid)]
        return found if len(found) == 5 else None

    lines = wait_for(ours)
    good = sorted((ln for ln in lines if ln["request_id"] == rid), key=lambda ln: ln["row"])
    assert [ln["row"] for ln in good] == [0, 1, 2, 3] and {ln["rows"] for ln in good} == {4}
    assert {(ln["endpoint"], ln["status"], ln["role"], ln["client_request_id"]) for ln in good} == \
        {("v2", 200, "stable", "grpc-client-7")}
    assert [ln["inputs"] for ln in good] == [{k: r[k] for k in ln["inputs"]} for ln, r in zip(good, rows, strict=True)]
    np.testing.assert_allclose([ln["outputs"]["probability"] for ln in good], got, rtol=0, atol=1e-7)
    (refusal,) = (ln for ln in lines if ln["request_id"] == bad_rid)
    assert refusal["status"] == 400 and "contract" in refusal["error"] and refusal["client_request_id"] == \
        "grpc-client-8"

    after = metrics(served)
    assert metric(after, "model_infer_request_success_total", **labels) == \
        (metric(before, "model_infer_request_success_total", **labels) or 0) + 1
    assert metric(after, "model_infer_request_client_error_total", **labels) == \
        (metric(before, "model_infer_request_client_error_total", **labels) or 0) + 1
    assert (metric(after, "mlops_prediction_count", **labels) or 0) >= \
        (metric(before, "mlops_prediction_count", **labels) or 0) + 4
    ok = {"grpc_method": "ModelInfer", "grpc_code": "OK", "grpc_service": "inference.GRPCInferenceService"}
    assert metric(after, "grpc_server_handled_total", **ok) == (metric(before, "grpc_server_handled_total", **ok)
                                                                 or 0) + 1
    # gRPC calls are not counted as REST requests
    infer = {"method": "POST", "path": "/v2/models/{name}/infer", "status_code": "200"}
    assert metric(after, "rest_server_requests_total", **infer) == metric(before, "rest_server_requests_total",
                                                                          **infer)


def test_the_canary_split_is_the_same_for_grpc_and_rest(served: Served) -> None:
    assert admin(served.server.port, "load", {"version": "v1.1.0", "role": "canary", "percent": 50}).status == 200
    try:
        seen = set()
        req = infer_request(served.records[:1], served.inputs)
        for k in range(24):
            rid = f"order-{k}"
            _, trailer = rpc(served, "ModelInfer", req, pb.ModelInferResponse, metadata=(("x-request-id", rid),))
            rest = call(served.server.port, "POST", f"/v2/models/{MODEL}/infer",
                        {"inputs": tensors(served.records[:1], served.inputs)}, headers={"x-request-id": rid})
            assert trailer["x-model-version"] == rest.version, rid
            seen.add(rest.version)
        assert seen == {"v1.0.0", "v1.1.0"}
    finally:
        assert admin(served.server.port, "rollback").status == 200


def test_a_taken_grpc_port_stops_the_server_before_any_worker(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "mlops", "serve", "--store", str(tmp_path / "store"),
                               "--port", "0", "--grpc-port", str(port)], capture_output=True, text=True,
                              timeout=60, check=False, env={**os.environ, "MLOPS_ADMIN_TOKEN": TOKEN})
    assert proc.returncode == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port} for gRPC" in proc.stderr + proc.stdout


def test_the_grpc_port_must_be_a_port_other_than_the_rest_one() -> None:
    from mlops.errors import ServeError
    from mlops.serve.settings import ServeSettings

    for bad in (8080, 70000, -1):
        with pytest.raises(ServeError, match="--grpc-port"):
            ServeSettings(port=8080, grpc_port=bad).check()
    assert ServeSettings(port=0, grpc_port=0).check().grpc_port == 0  # both free ports, chosen at start
