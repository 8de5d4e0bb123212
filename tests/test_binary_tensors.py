"""The binary tensor extension on V2 REST (mlops.serve.binary): the codec on its own, then a real `mlops serve`
(churn v1.0.0) answering Triton's HTTP client in its default mode (binary tensors both ways) and hand-built binary
requests (written here from the extension's text with struct, not with the codec) as it answers JSON ones: the
same predictions, validation, client-error accounting and request log.
"""

from __future__ import annotations

import http.client
import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.config import load_params
from mlops.features import FeatureError, read_model_interface, records_from_frame
from mlops.serve.binary import BinaryCodec, decode_tensor, encode_tensor
from mlops.stages.data import features_and_label, load_prepared
from tests.serve_helpers import Server, call, clients_python, install, metric, run_clients, tensors

MODEL = "churn-model"


# --- the codec --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("datatype", "values"), [
    ("BOOL", [True, False, True]), ("INT8", [-128, 0, 127]), ("INT16", [-32768, 7]), ("INT32", [-(2**31), 2**31 - 1]),
    ("INT64", [-(2**63), 2**53 + 1]), ("UINT8", [0, 255]), ("UINT16", [65535]), ("UINT32", [2**32 - 1]),
    ("UINT64", [2**64 - 1, 0]), ("FP16", [0.5, -2.0]), ("FP32", [0.1, -3.0e38]), ("FP64", [0.1, 1e300]),
    ("BYTES", ["Month-to-month", "", "naïve"]),
])
def test_raw_tensors_round_trip_every_datatype(datatype: str, values: list[Any]) -> None:
    raw = encode_tensor(values, datatype)
    got = decode_tensor(raw, datatype, [len(values)], "x")
    if datatype == "FP32":
        assert got == [float(np.float32(v)) for v in values]
    else:
        assert got == values
    assert decode_tensor(memoryview(raw), datatype, [1, len(values)], "x") == got


def test_raw_tensor_layout_is_the_extensions() -> None:
    assert encode_tensor([1, 2], "INT32") == b"\x01\x00\x00\x00\x02\x00\x00\x00"  # little-endian
    assert encode_tensor([[1.0, 2.0], [3.0, 4.0]], "FP64") == struct.pack("<4d", 1, 2, 3, 4)  # row-major
    assert encode_tensor(["ab", "c"], "BYTES") == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert encode_tensor(np.array([True, False]), "BOOL") == b"\x01\x00"
    assert decode_tensor(struct.pack("<2H", 0x3F80, 0xC000), "BF16", [2], "x") == [1.0, -2.0]


@pytest.mark.parametrize(("raw", "datatype", "shape", "needle"), [
    (b"\x00" * 7, "FP64", [1], "7 bytes of binary data for shape [1] of FP64 (expected 8)"),
    (b"\x02", "BOOL", [1], "not 0 or 1"),
    (b"\x05\x00\x00\x00ab", "BYTES", [1], "says 5 bytes, 2 are left"),
    (b"\x01\x00", "BYTES", [1], "cut short"),
    (b"\x02\x00\x00\x00\xff\xfe", "BYTES", [1], "not UTF-8"),
    (b"\x01\x00\x00\x00a", "BYTES", [2], "1 BYTES elements for 2"),
    (b"\x00" * 8, "FP128", [1], "not an Open Inference Protocol datatype"),
    (b"\x00" * 8, "FP64", [-1], "non-negative integers"),
])
def test_a_raw_tensor_that_does_not_fit_names_its_input(raw: bytes, datatype: str, shape: list[int],
                                                        needle: str) -> None:
    with pytest.raises(FeatureError) as info:
        decode_tensor(raw, datatype, shape, "tenure")
    assert info.value.field == "tenure" and "input 'tenure'" in info.value.message and needle in info.value.message


def binary_body(header: dict[str, Any], chunks: list[bytes]) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + b"".join(chunks), len(head)


@pytest.mark.parametrize(("header", "chunks", "length", "needle"), [
    ({"inputs": []}, [], "x12", "Inference-Header-Content-Length"),
    ({"inputs": []}, [], "9999", "Inference-Header-Content-Length"),
    ({"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 16}}]},
     [b"\x00" * 8], None, "input 'a': binary_data_size 16 goes past the end"),
    ({"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 8}}]},
     [b"\x00" * 12], None, "4 bytes after the JSON header belong to no input"),
    ({"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "data": [1],
                  "parameters": {"binary_data_size": 8}}]}, [b"\x00" * 8], None, "both given"),
    ({"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": "8"}}]},
     [b"\x00" * 8], None, "must be a byte count"),
    ({"inputs": [], "outputs": [{"name": "p", "parameters": {"binary_data": "yes"}}]}, [], None,
     "parameter 'binary_data' must be true or false"),
    ({"inputs": [], "outputs": [{"name": "p", "parameters": {"classification": 2}}]}, [], None,
     "classification extension is not supported"),
])
def test_a_binary_request_that_does_not_fit_is_a_feature_error(header: dict[str, Any], chunks: list[bytes],
                                                               length: str | None, needle: str) -> None:
    body, n = binary_body(header, chunks)
    with pytest.raises(FeatureError) as info:
        BinaryCodec((length or str(n)).encode()).decode(body)
    assert needle in info.value.message


def test_the_codec_fills_data_and_answers_raw_only_what_was_asked() -> None:
    header = {"inputs": [{"name": "a", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}},
                         {"name": "b", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]},
                         {"name": "c", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 10}}],
              "outputs": [{"name": "p", "parameters": {"binary_data": True}}, {"name": "label"}]}
    body, n = binary_body(header, [struct.pack("<2q", 3, -4), b"\x01\x00\x00\x00u\x01\x00\x00\x00v"])
    codec = BinaryCodec(str(n).encode())
    doc = codec.decode(body)
    assert [t["data"] for t in doc["inputs"]] == [[3, -4], ["x", "y"], ["u", "v"]]
    payload = {"model_name": "m", "outputs": [
        {"name": "p", "shape": [2], "datatype": "FP32", "data": np.array([0.25, 0.5], dtype=np.float32)},
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["no", "yes"]}]}
    out, ctype, headers = codec.encode(payload)
    assert ctype == b"application/octet-stream"
    (key, value), = headers
    assert key == b"inference-header-content-length"
    head = json.loads(out[:int(value)])
    assert head["outputs"][0] == {"name": "p", "shape": [2], "datatype": "FP32",
                                  "parameters": {"binary_data_size": 8}}
    assert head["outputs"][1]["data"] == ["no", "yes"]  # not asked raw: JSON
    assert out[int(value):] == struct.pack("<2f", 0.25, 0.5)
    # a plain JSON request that asks nothing raw is answered JSON
    plain = BinaryCodec(None)
    plain.decode(json.dumps({"inputs": []}).encode())
    assert plain.encode(payload)[1:] == (b"application/json", [])
    # binary_data_output: every output raw, unless an output says no
    every = BinaryCodec(None)
    every.decode(json.dumps({"parameters": {"binary_data_output": True},
                             "outputs": [{"name": "label", "parameters": {"binary_data": False}}]}).encode())
    head2 = every.encode(payload)
    assert head2[1] == b"application/octet-stream"


# --- a real server ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    server: Server
    logs: Path
    records: list[dict[str, Any]]
    offline: np.ndarray
    inputs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def served(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("binary")
    store, logs = root / "store", root / "logs"
    models = _trained_template / "models"
    install(store, models, "v1.0.0")
    server = Server(store, workers=1, log_dir=logs, extra=["--model", MODEL])
    try:
        server.wait("/v2/health/ready")
        params = load_params(_trained_template / "params.yaml")
        test = load_prepared(_trained_template / "data/prepared/test.csv", params.data)
        iface = read_model_interface(models / "feature_schema.json")
        records = records_from_frame(iface, features_and_label(test, params.data)[0])
        offline = pd.read_csv(_trained_template / "reports/predictions.csv")["probability"].to_numpy()
        inputs = call(server.port, "GET", f"/v2/models/{MODEL}").json()["inputs"]
        yield Served(server, logs, records, offline, inputs)
    finally:
        code = server.stop()
    assert code == 0, server.log()


def raw_tensor(t: dict[str, Any]) -> bytes:
    """A tensor's binary data as the extension describes it, written here without the server's codec."""
    if t["datatype"] == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in (str(v).encode() for v in t["data"]))
    code = {"INT64": "q", "FP64": "d", "BOOL": "?"}[t["datatype"]]
    return struct.pack(f"<{len(t['data'])}{code}", *t["data"])


def binary_request(s: Served, records: list[dict[str, Any]], *, outputs: Any = None,
                   sizes: dict[str, int] | None = None) -> tuple[bytes, int]:
    inputs, chunks = [], []
    for t in tensors(records, s.inputs):
        chunk = raw_tensor(t)
        chunks.append(chunk)
        inputs.append({"name": t["name"], "datatype": t["datatype"], "shape": t["shape"],
                       "parameters": {"binary_data_size": (sizes or {}).get(t["name"], len(chunk))}})
    header: dict[str, Any] = {"inputs": inputs}
    if outputs is not None:
        header["outputs"] = outputs
    return binary_body(header, chunks)


def post_binary(s: Served, body: bytes, length: int | None, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    """POST as tritonclient does: the header length, no Content-Type."""
    conn = http.client.HTTPConnection("127.0.0.1", s.server.port, timeout=30)
    try:
        hdrs = {**({"Inference-Header-Content-Length": str(length)} if length is not None else {}),
                **(headers or {})}
        conn.request("POST", f"/v2/models/{MODEL}/infer", body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def split(headers: dict[str, str], body: bytes) -> tuple[dict[str, Any], bytes]:
    n = int(headers["inference-header-content-length"])
    return json.loads(body[:n]), body[n:]


@pytest.mark.slow
@pytest.mark.e2e
def test_triton_http_client_in_its_default_mode_gets_the_offline_predictions(served: Served) -> None:
    python = clients_python()
    if python is None:
        pytest.skip("the V2 clients' venv could not be made (see tests/serve_helpers.py CLIENTS_VENV)")
    url = f"127.0.0.1:{served.server.port}"
    ops = [{"op": "infer", "client": c, "url": url, "model": MODEL, "inputs": tensors(served.records, served.inputs),
            **extra} for c in ("triton-http", "triton-http-json")
           for extra in ({}, {"outputs": ["probability"]})]
    for op, got in zip(ops, run_clients(python, ops), strict=True):
        assert "error" not in got, (op["client"], got)
        np.testing.assert_allclose(got["outputs"]["probability"], served.offline, rtol=0, atol=1e-6,
                                   err_msg=op["client"])
        assert got["model_version"] == "v1.0.0"
    assert "binary_tensor_data" in call(served.server.port, "GET", "/v2").json()["extensions"]


@pytest.mark.slow
@pytest.mark.e2e
def test_binary_inputs_and_outputs_equal_the_json_answer(served: Served) -> None:
    records = served.records[:50]
    body, n = binary_request(served, records, outputs=[{"name": "probability", "parameters": {"binary_data": True}}])
    status, headers, raw = post_binary(served, body, n)
    assert status == 200, raw
    assert headers["content-type"] == "application/octet-stream" and headers["x-model-version"] == "v1.0.0"
    head, rest = split(headers, raw)
    (out,) = head["outputs"]
    assert out["name"] == "probability" and out["datatype"] == "FP32" and out["shape"] == [50]
    assert out["parameters"]["binary_data_size"] == len(rest) == 200 and "data" not in out
    got = np.frombuffer(rest, dtype="<f4")
    np.testing.assert_allclose(got, served.offline[:50], rtol=0, atol=1e-6)
    as_json = call(served.server.port, "POST", f"/v2/models/{MODEL}/infer", {"inputs": tensors(records,
                                                                                               served.inputs)})
    np.testing.assert_array_equal(got, np.asarray(as_json.json()["outputs"][0]["data"], dtype=np.float32))
    # binary inputs, JSON outputs (nothing asked raw); and JSON inputs with every output asked raw
    status, headers, raw = post_binary(served, *binary_request(served, records))
    assert status == 200 and headers["content-type"] == "application/json"
    np.testing.assert_allclose(json.loads(raw)["outputs"][0]["data"], served.offline[:50], rtol=0, atol=1e-6)
    rep = call(served.server.port, "POST", f"/v2/models/{MODEL}/infer",
               {"inputs": tensors(records, served.inputs), "parameters": {"binary_data_output": True}})
    assert rep.status == 200 and rep.headers["content-type"] == "application/octet-stream"
    head, rest = split(rep.headers, rep.body)
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]  # in order: probability, then label
    assert [o["name"] for o in head["outputs"]] == ["probability", "label"] and sum(sizes) == len(rest)
    np.testing.assert_array_equal(np.frombuffer(rest[:sizes[0]], dtype="<f4"), got)


@pytest.mark.slow
@pytest.mark.e2e
def test_a_malformed_binary_request_is_a_400_naming_the_input_and_a_client_error(served: Served) -> None:
    labels = {"model": MODEL, "version": "v1.0.0"}
    before = call(served.server.port, "GET", "/metrics").body.decode()
    records = served.records[:2]
    body, n = binary_request(served, records, sizes={"tenure": 12})  # 16 bytes sent, 12 declared
    status, headers, raw = post_binary(served, body, n, {"x-request-id": "bin-bad-1"})
    assert status == 400 and "input 'tenure'" in json.loads(raw)["error"], raw
    status, _, raw = post_binary(served, body[:n] + b"\x00", n)  # binary data cut short
    assert status == 400 and "goes past the end" in json.loads(raw)["error"]
    status, _, raw = post_binary(served, body, n + 10_000)
    assert status == 400 and "Inference-Header-Content-Length" in json.loads(raw)["error"]
    # the binary body without its header: not JSON, refused as before
    status, _, raw = post_binary(served, body, None, {"Content-Type": "application/octet-stream"})
    assert status == 415 and "Inference-Header-Content-Length" in json.loads(raw)["error"]
    after = call(served.server.port, "GET", "/metrics").body.decode()
    assert metric(after, "model_infer_request_client_error_total", **labels) == \
        (metric(before, "model_infer_request_client_error_total", **labels) or 0) + 3
    assert (metric(after, "model_infer_request_failure_total", **labels) or 0) == \
        (metric(before, "model_infer_request_failure_total", **labels) or 0)
    rid = headers["x-request-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(ln) for f in served.logs.glob("requests-*.jsonl") for ln in f.read_text().splitlines()]
        mine = [ln for ln in lines if ln["request_id"] == rid]
        if mine:
            break
        time.sleep(0.05)
    assert len(mine) == 1 and mine[0]["status"] == 400 and mine[0]["client_request_id"] == "bin-bad-1"
    assert "tenure" in mine[0]["error"]


@pytest.mark.slow
@pytest.mark.e2e
def test_a_binary_request_is_logged_like_a_json_one(served: Served) -> None:
    records = served.records[:3]
    status, headers, raw = post_binary(served, *binary_request(served, records), {"x-request-id": "bin-ok-1"})
    assert status == 200, raw
    rid = headers["x-request-id"]
    deadline = time.monotonic() + 10
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(mine) < 3:
        lines = [json.loads(ln) for f in served.logs.glob("requests-*.jsonl") for ln in f.read_text().splitlines()]
        mine = sorted((ln for ln in lines if ln["request_id"] == rid), key=lambda ln: ln["row"])
        time.sleep(0.05)
    assert [ln["row"] for ln in mine] == [0, 1, 2]
    assert {(ln["endpoint"], ln["status"], ln["client_request_id"]) for ln in mine} == {("v2", 200, "bin-ok-1")}
    assert [ln["inputs"] for ln in mine] == [{k: r[k] for k in ln["inputs"]} for ln, r in zip(mine, records,
                                                                                                 strict=True)]
    np.testing.assert_allclose([ln["outputs"]["probability"] for ln in mine], served.offline[:3], rtol=0,
                               atol=1e-6)
