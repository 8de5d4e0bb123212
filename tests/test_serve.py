"""`mlops serve` as a real process on loopback: Open Inference Protocol V2, records, admin, metrics, request log.

One server with two workers per module (the churn model trained by the pipeline as v1.0.0, a retrained one as
v1.1.0), plus a small one that starts with an empty store; each test puts the serving state it needs in place
through the admin API.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.config import load_params
from mlops.errors import MlopsError, ServeError
from mlops.features import read_model_interface, records_from_frame
from mlops.serve.requestlog import RequestLog
from mlops.serve.settings import ServeSettings, resolve_token
from mlops.serve.state import (
    ServingState,
    StateConflict,
    read_serving_state,
    with_canary,
    with_load,
    with_promote,
    with_rollback,
    write_state,
)
from mlops.stages.data import features_and_label, load_prepared
from tests.serve_helpers import TOKEN, Reply, Server, admin, call, install, metric, retrain, v2_body

MODEL = "churn-model"
MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class Served:
    server: Server
    store: Path
    logs: Path
    models: dict[str, Path]
    records: list[dict[str, Any]]  # the whole test split, as raw records
    offline: np.ndarray  # evaluate's reports/predictions.csv for those rows
    inputs: list[dict[str, Any]]  # the V2 metadata's inputs

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="module")
def models(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    v2 = retrain(_trained_template, tmp_path_factory.mktemp("retrained") / "project", n_estimators=150, seed=7)
    return {"v1.0.0": _trained_template / "models", "v1.1.0": v2}


@pytest.fixture(scope="module")
def served(models: dict[str, Path], _trained_template: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    store, logs = root / "store", root / "logs"
    for version, models_dir in models.items():
        install(store, models_dir, version)
    install(store, models["v1.1.0"], "v1.2.0")  # same bytes, another version: tampered with in a test
    # the fuzzer sends wrong tokens on purpose: no admin lockout on this server (test_serve_security tests it)
    server = Server(store, workers=2, log_dir=logs, extra=["--model", MODEL, "--version", "v1.0.0",
                                                           "--max-body-bytes", str(MAX_BODY),
                                                           "--admin-max-failures", "1000000"])
    try:
        server.wait("/v2/health/ready")
        params = load_params(_trained_template / "params.yaml")
        test = load_prepared(_trained_template / "data/prepared/test.csv", params.data)
        iface = read_model_interface(models["v1.0.0"] / "feature_schema.json")
        records = records_from_frame(iface, features_and_label(test, params.data)[0])
        offline = pd.read_csv(_trained_template / "reports/predictions.csv")["probability"].to_numpy()
        inputs = call(server.port, "GET", f"/v2/models/{MODEL}").json()["inputs"]
        yield Served(server, store, logs, models, records, offline, inputs)
    finally:
        code = server.stop()
    assert code == 0, server.log()


def ensure(port: int, stable: str, *, canary: str | None = None, percent: float | None = None,
           shadow: str | None = None) -> dict[str, Any]:
    """Put the serving state in place through the admin API; returns the final state."""
    state = admin(port, "").json()
    if state["canary"] or state["shadow"]:
        assert admin(port, "rollback").status == 200
    if state["stable"] != stable:
        assert admin(port, "load", {"version": stable, "role": "stable"}).status == 200
    if canary:
        body: dict[str, Any] = {"version": canary, "role": "canary"}
        if percent is not None:
            body["percent"] = percent
        assert admin(port, "load", body).status == 200
    if shadow:
        assert admin(port, "load", {"version": shadow, "role": "shadow"}).status == 200
    final: dict[str, Any] = admin(port, "").json()
    assert final["stable"] == stable and final["canary"] == canary and final["shadow"] == shadow
    return final


def predict(port: int, records: list[dict[str, Any]], *, rid: str | None = None, path: str | None = None,
            conn: http.client.HTTPConnection | None = None) -> Reply:
    headers = {"x-request-id": rid} if rid else {}
    return call(port, "POST", path or f"/v1/models/{MODEL}/predict", {"instances": records}, headers=headers,
                conn=conn)


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


# --- a server that starts with an empty store --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fresh")
    # the token fuzzer tries wrong tokens on purpose (schemathesis' ignored_auth): no lockout here
    server = Server(root / "store", workers=1, extra=["--admin-max-failures", "1000000"])
    try:
        server.wait()
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_live_but_not_ready_until_a_verified_model_is_loaded(fresh: Server, models: dict[str, Path]) -> None:
    port = fresh.port
    assert call(port, "GET", "/v2/health/live").status == 200
    ready = call(port, "GET", "/v2/health/ready")
    assert ready.status == 503 and ready.json()["ready"] is False
    # an empty store says what fills it
    assert "holds no model" in ready.json()["reason"] and "mlops deploy --target local" in ready.json()["reason"] \
        and "mlops serve --model-dir" in ready.json()["reason"]
    assert call(port, "GET", f"/v2/models/{MODEL}/ready").status == 404
    infer = predict(port, [{}])
    assert infer.status == 404 and "not served here" in infer.json()["error"]
    missing = admin(port, "load", {"version": "v1.0.0"})
    assert missing.status == 404 and "not in the model store" in missing.json()["error"]
    install(fresh.store, models["v1.0.0"], "v1.0.0")
    loaded = admin(port, "load", {"version": "v1.0.0"})
    assert loaded.status == 200, loaded.body
    state = loaded.json()
    assert state["stable"] == "v1.0.0" and state["generation"] == 1
    assert state["workers"] == [{"index": 0, "pid": state["workers"][0]["pid"], "generation": 1,
                                 "versions": ["v1.0.0"], "ready": True}]
    assert call(port, "GET", "/v2/health/ready").status == 200
    ok = call(port, "GET", f"/v2/models/{MODEL}/ready")
    assert ok.status == 200 and ok.version == "v1.0.0"
    assert json.loads((fresh.store / MODEL / "serving.json").read_text())["stable"] == "v1.0.0"


@pytest.mark.slow
def test_admin_api_is_off_without_a_configured_token(tmp_path: Path) -> None:
    server = Server(tmp_path / "store", workers=1, token=None)
    try:
        server.wait()
        for token in (None, TOKEN, ""):
            reply = call(server.port, "POST", f"/admin/models/{MODEL}/rollback", token=token)
            assert reply.status == 401 and "admin API is off" in reply.json()["error"]
    finally:
        assert server.stop() == 0


# --- the main server ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_metadata_lists_the_raw_inputs(served: Served) -> None:
    port = served.port
    ensure(port, "v1.0.0")
    server_meta = call(port, "GET", "/v2").json()
    assert server_meta["name"] == "mlops" and isinstance(server_meta["extensions"], list)
    meta = call(port, "GET", f"/v2/models/{MODEL}")
    assert meta.status == 200 and meta.version == "v1.0.0"
    doc = meta.json()
    iface = read_model_interface(served.models["v1.0.0"] / "feature_schema.json")
    assert [(i["name"], i["datatype"], i["shape"]) for i in doc["inputs"]] == [
        (f.name, {"int": "INT64", "float": "FP64", "bool": "BOOL", "category": "BYTES"}[f.type], [-1])
        for f in iface.features]
    # the churn package (mlops-model.yaml): the probability as it always was, and the label at the threshold
    assert doc["outputs"] == [
        {"name": "probability", "datatype": "FP32", "shape": [-1], "parameters": {"positive": "Yes", "threshold": 0.4}},
        {"name": "label", "datatype": "BYTES", "shape": [-1], "parameters": {"categories": ["No", "Yes"]}}]
    assert doc["platform"] == "xgboost" and doc["versions"] == ["v1.0.0"]
    assert doc["parameters"] == {"runtime": "xgboost", "task": "binary", "classes": ["No", "Yes"], "threshold": 0.4}
    assert call(port, "GET", f"/v2/models/{MODEL}/versions/v1.0.0").json()["versions"] == ["v1.0.0"]
    for path in (f"/v2/models/{MODEL}/versions/v9.9.9", f"/v2/models/{MODEL}/versions/v9.9.9/ready",
                 "/v2/models/other", "/v2/models/other/infer", "/nope", "/v2/models/x/y/z"):
        reply = call(port, "POST" if path.endswith("infer") else "GET", path, {} if path.endswith("infer") else None)
        assert reply.status == 404 and isinstance(reply.json()["error"], str), path
    wrong = call(port, "GET", f"/v2/models/{MODEL}/infer")
    assert wrong.status == 405 and wrong.headers["allow"] == "POST"


@pytest.mark.slow
def test_served_equals_offline_predictions_on_the_whole_test_split(served: Served) -> None:
    """V2 and records endpoints against evaluate's predictions.csv, row by row, within 1e-6."""
    port = served.port
    ensure(port, "v1.0.0")
    assert len(served.records) == len(served.offline) > 1000
    v2: list[float] = []
    rec: list[float] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for start in range(0, len(served.records), 200):
        chunk = served.records[start:start + 200]
        a = call(port, "POST", f"/v2/models/{MODEL}/infer", v2_body(chunk, served.inputs), conn=conn)
        assert a.status == 200 and a.version == "v1.0.0", a.body
        out = a.json()
        assert out["model_name"] == MODEL and out["model_version"] == "v1.0.0"
        assert out["outputs"][0]["name"] == "probability" and out["outputs"][0]["shape"] == [len(chunk)]
        v2.extend(out["outputs"][0]["data"])
        b = predict(port, chunk, conn=conn)
        assert b.status == 200 and b.json()["model_version"] == "v1.0.0"
        rec.extend(b.json()["predictions"])
    conn.close()
    assert np.max(np.abs(np.array(v2) - served.offline)) <= 1e-6
    assert np.max(np.abs(np.array(rec) - served.offline)) <= 1e-6


def _bad_cases() -> list[tuple[str, str, Any, int, str]]:
    """(id, endpoint, body (dict, or bytes sent as is), expected status, text the error must contain)."""
    good: dict[str, Any] = {"female": 0, "senior_citizen": 0, "partner": 1, "dependents": 0, "tenure": 5,
                            "phone_service": 1, "multiple_lines": "No", "internet_service": "DSL",
                            "online_security": "No", "online_backup": "Yes", "device_protection": "No",
                            "tech_support": "No", "streaming_tv": "No", "streaming_movies": "No",
                            "contract": "One year", "paperless_billing": 1, "payment_method": "Mailed check",
                            "monthly_charges": 55.5, "total_charges": 270.0}
    no_tenure = {k: v for k, v in good.items() if k != "tenure"}
    raw_good = json.dumps({"instances": [good]})
    v2 = [{"name": k, "datatype": {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}[type(v)],
           "shape": [1], "data": [v]} for k, v in good.items()]

    def v2_with(name: str, **changes: Any) -> dict[str, Any]:
        return {"inputs": [{**t, **changes} if t["name"] == name else t for t in v2]}

    return [
        ("missing field", "v1", {"instances": [good, no_tenure]}, 400, "row 1: field 'tenure' is missing"),
        ("wrong type", "v1", {"instances": [{**good, "tenure": "5"}]}, 400, "field 'tenure': expected int"),
        ("unknown category", "v1", {"instances": [{**good, "contract": "Ten year"}]}, 400,
         "field 'contract': unknown category"),
        ("NaN", "v1", raw_good.replace("55.5", "NaN").encode(), 400, "field 'monthly_charges': expected a finite"),
        ("Infinity", "v1", raw_good.replace("55.5", "-Infinity").encode(), 400, "field 'monthly_charges'"),
        ("overflow", "v1", raw_good.replace("55.5", "1e999").encode(), 400, "field 'monthly_charges'"),
        ("not JSON", "v1", b'{"instances": [', 400, "not valid JSON"),
        ("no instances", "v1", {"rows": [good]}, 400, "instances"),
        ("empty instances", "v1", {"instances": []}, 400, "'instances' is empty"),
        ("not an object", "v1", [good], 400, "must be a JSON object"),
        ("record not an object", "v1", {"instances": [[1, 2]]}, 400, "row 0: expected an object"),
        ("v2 missing input", "v2", {"inputs": v2[1:]}, 400, "input 'female' is missing"),
        ("v2 wrong shape", "v2", v2_with("tenure", shape=[2]), 400, "input 'tenure': shape [2] says 2 values"),
        ("v2 wrong datatype", "v2", v2_with("contract", datatype="FP32"), 400, "input 'contract': datatype"),
        ("v2 bad element", "v2", v2_with("contract", data=["Ten year"]), 400, "input 'contract' row 0"),
        ("v2 unknown input", "v2", {"inputs": [*v2, {"name": "colour", "datatype": "BYTES", "shape": [1],
                                                      "data": ["red"]}]}, 400, "input 'colour' is not an input"),
        ("v2 inputs not a list", "v2", {"inputs": {"female": [0]}}, 400, "'inputs' must be a non-empty list"),
        ("v2 id not a string", "v2", {"id": 7, "inputs": v2}, 400, "'id' must be a string"),
        ("v2 unknown output", "v2", {"inputs": v2, "outputs": [{"name": "score"}]}, 400,
         "the outputs 'probability', 'label'"),
        ("too large", "v1", b'{"instances": [' + b" " * MAX_BODY + b"]}", 413, "over the limit"),
    ]


@pytest.mark.parametrize(("endpoint", "body", "status", "needle"), [c[1:] for c in _bad_cases()],
                         ids=[c[0] for c in _bad_cases()])
@pytest.mark.slow
def test_bad_input_is_a_4xx_naming_the_field(served: Served, endpoint: str, body: Any, status: int,
                                             needle: str) -> None:
    ensure(served.port, "v1.0.0")
    path = f"/v1/models/{MODEL}/predict" if endpoint == "v1" else f"/v2/models/{MODEL}/infer"
    reply = call(served.port, "POST", path, raw=body if isinstance(body, bytes) else json.dumps(body).encode())
    assert reply.status == status, reply.body
    assert needle in reply.json()["error"]
    assert reply.version == "v1.0.0" and reply.headers["x-request-id"]


@pytest.mark.slow
def test_request_ids_are_issued_by_the_server_and_the_clients_echoed_apart(served: Served) -> None:
    ensure(served.port, "v1.0.0")
    given = predict(served.port, served.records[:1], rid="order-42")
    assert given.headers["x-client-request-id"] == "order-42"
    assert given.headers["x-request-id"] != "order-42" and len(given.headers["x-request-id"]) == 32
    generated = predict(served.port, served.records[:1])
    assert len(generated.headers["x-request-id"]) == 32 and "x-client-request-id" not in generated.headers
    assert generated.headers["x-request-id"] != given.headers["x-request-id"]
    too_long = predict(served.port, served.records[:1], rid="x" * 500)
    assert "x-client-request-id" not in too_long.headers and too_long.status == 200
    v2 = call(served.port, "POST", f"/v2/models/{MODEL}/infer", {**v2_body(served.records[:1], served.inputs),
                                                                 "id": "my-id"}, headers={"x-request-id": "h-1"})
    assert v2.json()["id"] == "my-id" and v2.headers["x-client-request-id"] == "h-1"


@pytest.mark.slow
def test_admin_needs_the_bearer_token(served: Served) -> None:
    for token in (None, "wrong-token", TOKEN + "x"):
        for method, path in (("GET", f"/admin/models/{MODEL}"), ("POST", f"/admin/models/{MODEL}/promote")):
            reply = call(served.port, method, path, token=token)
            assert reply.status == 401 and reply.headers["www-authenticate"].startswith("Bearer"), (token, path)
    assert call(served.port, "GET", f"/admin/models/{MODEL}", token=TOKEN).status == 200


@pytest.mark.parametrize(("op", "body", "status", "needle"), [
    ("load", {"version": "v9.9.9"}, 404, "not in the model store"),
    ("load", {"version": "latest"}, 400, "field 'version'"),
    ("load", {"version": "v1.1.0", "role": "leader"}, 400, "field 'role'"),
    ("load", {"version": "v1.1.0", "role": "canary", "percent": 150}, 400, "field 'percent'"),
    ("load", {"version": "v1.1.0", "extra": 1}, 400, "field 'extra'"),
    ("load", {"version": "v1.0.0", "role": "canary"}, 409, "is the stable version"),
    ("promote", None, 409, "no canary to promote"),
    ("canary", {"percent": 20}, 409, "no canary"),
    ("canary", {}, 400, "field 'percent'"),
    ("unknown", None, 404, "no such admin path"),
])
@pytest.mark.slow
def test_admin_refusals(served: Served, op: str, body: Any, status: int, needle: str) -> None:
    ensure(served.port, "v1.0.0")
    reply = admin(served.port, op, body)
    assert reply.status == status, reply.body
    assert needle in reply.json()["error"]
    assert admin(served.port, "load", {"version": "v1.0.0"}, name="other-model").status == 404  # --model only
    assert admin(served.port, "").json()["stable"] == "v1.0.0"


@pytest.mark.slow
@pytest.mark.e2e
def test_hot_swap_under_load_fails_no_request(served: Served) -> None:
    port = served.port
    before = ensure(port, "v1.0.0")
    rows = served.records[:3]
    stop = threading.Event()
    seen: list[tuple[float, float, int, str | None]] = []  # (sent, answered, status, version)
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            sent = time.monotonic()
            try:
                r = predict(port, rows, rid=uuid.uuid4().hex, conn=conn)
                got = (sent, time.monotonic(), r.status, r.version)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            with lock:
                seen.append(got)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    swap = admin(port, "load", {"version": "v1.1.0", "role": "stable"})
    swapped_at = time.monotonic()
    time.sleep(1.2)
    stop.set()
    for t in threads:
        t.join(15)
    assert swap.status == 200, swap.body
    state = swap.json()
    assert state["stable"] == "v1.1.0" and state["previous"] == "v1.0.0"
    assert state["generation"] == before["generation"] + 1
    # the call returned once both workers serve the new version
    assert len(state["workers"]) == 2 and len({w["pid"] for w in state["workers"]}) == 2
    assert all(w["generation"] == state["generation"] and w["versions"] == ["v1.1.0"] for w in state["workers"])
    assert not errors, errors[:3]
    assert len(seen) > 100 and all(s[2] == 200 for s in seen)
    versions = {s[3] for s in seen}
    assert versions == {"v1.0.0", "v1.1.0"}
    late = [s for s in seen if s[0] > swapped_at]
    assert late and all(s[3] == "v1.1.0" for s in late)
    for _ in range(20):  # fresh connections land on either worker: every one answers with the new version
        assert predict(port, rows).version == "v1.1.0"
    text = call(port, "GET", "/metrics").body.decode()
    assert (metric(text, "model_infer_request_success_total", model=MODEL, version="v1.1.0") or 0) > 0
    assert metric(text, "mlops_model_version_info", model=MODEL, version="v1.1.0", role="stable") == 1.0
    assert metric(text, "mlops_model_version_info", model=MODEL, version="v1.0.0", role="stable") == 0.0
    back = admin(port, "rollback")
    assert back.status == 200 and back.json()["stable"] == "v1.0.0"


@pytest.mark.slow
def test_canary_share_is_respected_and_sticky_by_request_id(served: Served) -> None:
    port = served.port
    ensure(port, "v1.0.0", canary="v1.1.0", percent=30)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ids = [f"customer-{i}" for i in range(400)]
    answered = {rid: predict(port, served.records[:1], rid=rid, conn=conn).version for rid in ids}
    share = sum(v == "v1.1.0" for v in answered.values()) / len(ids)
    assert 0.2 <= share <= 0.4, share
    # the split is a pure function of the id (the same in every worker), so each id always gets its version
    assert all(v == ("v1.1.0" if zlib.crc32(rid.encode()) % 10000 < 3000 else "v1.0.0")
               for rid, v in answered.items())
    for rid in ids[:25]:
        assert {predict(port, served.records[:1], rid=rid, conn=conn).version for _ in range(4)} == {answered[rid]}
    conn.close()
    assert admin(port, "canary", {"percent": 0}).json()["canary_percent"] == 0
    assert {predict(port, served.records[:1], rid=rid).version for rid in ids[:40]} == {"v1.0.0"}
    # the versioned path reaches the canary whatever the split says (deploy's golden check)
    exact = call(port, "POST", f"/v2/models/{MODEL}/versions/v1.1.0/infer", v2_body(served.records[:2], served.inputs))
    assert exact.status == 200 and exact.version == "v1.1.0"
    promoted = admin(port, "promote").json()
    assert promoted["stable"] == "v1.1.0" and promoted["canary"] is None and promoted["previous"] == "v1.0.0"
    rolled = admin(port, "rollback").json()
    assert rolled["stable"] == "v1.0.0" and rolled["canary"] is None


@pytest.mark.slow
def test_shadow_scores_a_copy_that_is_logged_not_returned(served: Served) -> None:
    port = served.port
    ensure(port, "v1.0.0", shadow="v1.1.0")
    rows = served.records[10:12]
    expected = predict(port, rows, path=f"/v1/models/{MODEL}/versions/v1.1.0/predict").json()["predictions"]
    ids = [f"shadowed-{uuid.uuid4().hex[:8]}-{i}" for i in range(5)]
    for rid in ids:
        reply = predict(port, rows, rid=rid)
        assert reply.status == 200 and reply.version == "v1.0.0" and reply.json()["model_version"] == "v1.0.0"

    def shadow_lines() -> list[dict[str, Any]]:
        found = [x for x in log_lines(served.logs) if x["client_request_id"] in ids and x["role"] == "shadow"]
        return found if len(found) == 2 * len(ids) else []

    lines = wait_for(shadow_lines)
    assert {x["version"] for x in lines} == {"v1.1.0"}
    for x in lines:
        assert x["inputs"] == rows[x["row"]]
        assert abs(x["outputs"]["probability"] - expected[x["row"]]) <= 1e-6
    stable = [x for x in log_lines(served.logs) if x["client_request_id"] in ids and x["role"] == "stable"]
    assert len(stable) == 2 * len(ids) and {x["version"] for x in stable} == {"v1.0.0"}
    # a shadow line is the same request's: the same server-issued id and row as the stable line it copies
    assert {(x["request_id"], x["row"]) for x in stable} == {(x["request_id"], x["row"]) for x in lines}
    dropped = admin(port, "rollback").json()
    assert dropped["shadow"] is None and dropped["stable"] == "v1.0.0"


@pytest.mark.slow
def test_tampered_store_file_is_refused_and_the_old_version_keeps_serving(served: Served) -> None:
    port = served.port
    before = ensure(port, "v1.0.0")
    model_file = served.store / MODEL / "v1.2.0" / "model.ubj"
    model_file.write_bytes(model_file.read_bytes() + b"\x00")
    for role in ("stable", "canary", "shadow"):
        refused = admin(port, "load", {"version": "v1.2.0", "role": role})
        assert refused.status == 409, refused.body
        assert "sha256" in refused.json()["error"] and "changed after it was installed" in refused.json()["error"]
    after = admin(port, "").json()
    assert after["stable"] == "v1.0.0" and after["generation"] == before["generation"]
    assert predict(port, served.records[:1]).version == "v1.0.0"
    assert "admin change refused" in served.server.log()


@pytest.mark.slow
def test_request_log_lines_follow_the_documented_format(served: Served) -> None:
    ensure(served.port, "v1.0.0")
    rid = f"log-{uuid.uuid4().hex}"
    predict(served.port, served.records[:3], rid=rid)
    call(served.port, "POST", f"/v2/models/{MODEL}/infer", v2_body(served.records[:1], served.inputs),
         headers={"x-request-id": rid + "-v2"})
    predict(served.port, [{"tenure": 1}], rid=rid + "-bad")
    def mine() -> list[dict[str, Any]]:
        return [x for x in log_lines(served.logs) if (x["client_request_id"] or "").startswith(rid)]

    lines = wait_for(lambda: mine() if len(mine()) == 5 else [])
    ok = [x for x in lines if x["client_request_id"] == rid]
    assert [x["row"] for x in ok] == [0, 1, 2] and all(x["rows"] == 3 for x in ok)
    assert list(ok[0]) == ["ts", "request_id", "model", "version", "role", "endpoint", "row", "rows", "latency_ms",
                           "status", "inputs", "outputs", "client_request_id", "truncated", "format"]
    assert len({x["request_id"] for x in ok}) == 1 and ok[0]["request_id"] != rid
    assert ok[0]["format"] == 2 and not ok[0]["truncated"]
    assert ok[0]["ts"].endswith("Z") and ok[0]["endpoint"] == "v1" and ok[0]["status"] == 200
    assert ok[0]["inputs"] == served.records[0] and set(ok[0]["outputs"]) == {"probability"}
    v2 = [x for x in lines if x["client_request_id"] == rid + "-v2"]
    assert v2[0]["endpoint"] == "v2" and v2[0]["inputs"] == served.records[0]
    bad = [x for x in lines if x["client_request_id"] == rid + "-bad"]
    assert bad[0]["status"] == 400 and "is missing" in bad[0]["error"] and bad[0]["inputs"] is None


@pytest.mark.slow
def test_metrics_carry_the_names_people_graph(served: Served) -> None:
    ensure(served.port, "v1.0.0")
    before = call(served.port, "GET", "/metrics").body.decode()
    predict(served.port, [{"nope": 1}])
    predict(served.port, served.records[:4])
    labels = {"model": MODEL, "version": "v1.0.0"}
    # A success is counted just after its response is sent (metrics never delay a client), and /metrics may be
    # answered by the other worker: wait until the four predictions show, briefly.
    deadline = time.monotonic() + 5
    while True:
        reply = call(served.port, "GET", "/metrics")
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
        text = reply.body.decode()
        if (metric(text, "mlops_prediction_count", **labels) or 0) >= \
                (metric(before, "mlops_prediction_count", **labels) or 0) + 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for name in ("model_infer_request_success_total", "model_infer_request_failure_total",
                 "model_infer_request_duration_bucket", "request_predict_seconds_bucket", "mlops_prediction_bucket",
                 "mlops_model_version_info", "rest_server_requests_total"):
        assert name in text, name
    # bad input is the client's error, counted apart: it is not a failure of the model
    assert metric(text, "model_infer_request_client_error_total", **labels) == \
        (metric(before, "model_infer_request_client_error_total", **labels) or 0) + 1
    assert metric(text, "model_infer_request_failure_total", **labels) == \
        (metric(before, "model_infer_request_failure_total", **labels) or 0)
    assert metric(text, "mlops_prediction_count", **labels) >= \
        (metric(before, "mlops_prediction_count", **labels) or 0) + 4
    assert 'le="0.001"' in text and metric(text, "request_predict_seconds_count", model_name=MODEL) is not None


@pytest.mark.slow
def test_openapi_document_covers_every_endpoint(served: Served) -> None:
    doc = call(served.port, "GET", "/openapi.json").json()
    assert doc["openapi"].startswith("3.0")
    assert set(doc["paths"]) == {
        "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
        "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready", "/v2/models/{name}/versions/{version}/infer",
        "/v1/models/{name}/predict", "/v1/models/{name}/versions/{version}/predict", "/metrics", "/openapi.json",
        "/admin/models/{name}", "/admin/models/{name}/load", "/admin/models/{name}/promote",
        "/admin/models/{name}/rollback", "/admin/models/{name}/canary"}
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert all(op["security"] == [{"bearerAuth": []}] for p, item in doc["paths"].items() if p.startswith("/admin")
               for op in item.values() if isinstance(op, dict) and "responses" in op)
    record = doc["components"]["schemas"]["records_request"]["properties"]["instances"]["items"]
    assert record["properties"]["contract"]["enum"] == ["Month-to-month", "One year", "Two year"]


def _fuzz(port: int, paths: str, names: list[str], versions: list[str], token: str | None) -> dict[str, int]:
    """schemathesis over the live server's own document, positive and negative data, 30 examples per operation;
    path parameters pinned to the served model so that bodies reach the model. Returns the status counts."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    doc = call(port, "GET", "/openapi.json").json()
    doc["paths"] = {p: item for p, item in doc["paths"].items() if p.startswith(paths)}
    for item in doc["paths"].values():
        for param in item.get("parameters", []):
            if param["in"] == "path":
                param["schema"] = {"type": "string", "enum": names if param["name"] == "name" else versions}
    schema = schemathesis.openapi.from_dict(doc)
    statuses: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {token}"} if token else None
    def fuzz(op: Any) -> None:
        # The V2 request schema is the protocol's generic one: which inputs a model takes is in its metadata,
        # not in the schema, so schema-valid V2 bodies are mostly (rightly) refused with a 400.
        excluded = [positive_data_acceptance] if op.path.endswith("/infer") else []

        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(op.as_strategy(GenerationMode.POSITIVE) | op.as_strategy(GenerationMode.NEGATIVE))
        def run(case: Any) -> None:
            reply = case.call_and_validate(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                           excluded_checks=excluded)
            key = f"{op.method.upper()} {op.path} {reply.status_code}"
            statuses[key] = statuses.get(key, 0) + 1

        run()

    for result in schema.get_all_operations():
        fuzz(result.ok())
    return statuses


@pytest.mark.slow
def test_openapi_fuzzing_finds_no_server_error(served: Served) -> None:
    ensure(served.port, "v1.0.0")
    statuses = _fuzz(served.port, "/", [MODEL], ["v1.0.0"], None)
    assert not [k for k in statuses if k.endswith(tuple(f" 5{d}{e}" for d in "0123456789" for e in "0123456789"))]
    assert statuses.get("POST /v1/models/{name}/predict 200", 0) > 0  # bodies reached the model
    assert statuses.get("POST /v2/models/{name}/infer 400", 0) > 0
    assert all(k.endswith((" 401", " 415")) for k in statuses if k.split()[1].startswith("/admin"))


@pytest.mark.slow
def test_openapi_fuzzing_of_the_admin_api_with_its_token(fresh: Server, models: dict[str, Path]) -> None:
    """Last: the fuzzer may change what the fresh server serves."""
    install(fresh.store, models["v1.0.0"], "v1.0.0")
    assert admin(fresh.port, "load", {"version": "v1.0.0"}).status == 200
    statuses = _fuzz(fresh.port, "/admin", [MODEL], [], TOKEN)
    assert statuses and not [k for k in statuses if k.split()[-1].startswith("5") and k.split()[-1] != "503"]
    assert any(k.endswith(" 200") for k in statuses) and any(k.endswith(" 400") for k in statuses)


# --- processes: restarts, the supervisor's death, the persisted state --------------------------------------------


def _pids(port: int) -> list[int]:
    return [w["pid"] for w in admin(port, "").json()["workers"]]


def _workers_of(parent: int) -> list[int]:
    """The worker processes (multiprocessing spawn children, not its resource tracker) of PARENT."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmd:
            out.append(int(proc.name))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.mark.slow
@pytest.mark.e2e
def test_a_killed_worker_is_replaced_and_serves_the_current_state(served: Served) -> None:
    port = served.port
    state = ensure(port, "v1.0.0", canary="v1.1.0", percent=50)
    victim = _pids(port)[1]
    os.kill(victim, signal.SIGKILL)
    workers = wait_for(lambda: (w := admin(port, "").json()["workers"]) and w[1]["pid"] not in (None, victim)
                       and w[1]["generation"] == state["generation"] and w, timeout=30)
    assert workers[1]["versions"] == ["v1.0.0", "v1.1.0"] and workers[1]["ready"]
    for _ in range(30):  # fresh connections reach both workers, the new one included
        assert predict(port, served.records[:1]).status == 200
    assert call(port, "GET", "/metrics").status == 200
    assert "worker exited; restarting it" in served.server.log()
    admin(port, "rollback")


@pytest.mark.slow
@pytest.mark.e2e
def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    server = Server(tmp_path / "store", workers=2)
    try:
        server.wait()
        pids = wait_for(lambda: len(_workers_of(server.proc.pid)) == 2 and _workers_of(server.proc.pid))
        assert all(_alive(p) for p in pids)
        server.proc.send_signal(signal.SIGKILL)  # no chance to stop its workers itself
        server.proc.wait(10)
        wait_for(lambda: not any(_alive(p) for p in pids), timeout=15)
    finally:
        server.stop()


@pytest.mark.slow
def test_a_restart_resumes_the_persisted_serving_state(models: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    install(store, models["v1.0.0"], "v1.0.0")
    install(store, models["v1.1.0"], "v1.1.0")
    write_state(store, ServingState(MODEL, 4, stable="v1.0.0", history=("v0.9.0",)))
    server = Server(store, workers=1, extra=["--version", "v1.1.0"])
    try:
        server.wait("/v2/health/ready")
        assert predict(server.port, [json.loads((models["v1.0.0"] / "golden.json").read_text())["records"][0]]
                       ).version == "v1.0.0"
        state = admin(server.port, "").json()
        assert state["generation"] == 4 and state["previous"] == "v0.9.0"
        assert "--version ignored" in server.log()
    finally:
        assert server.stop() == 0


# --- units: state transitions, tokens, settings, the request-log writer -------------------------------------------


def test_state_transitions() -> None:
    s0 = ServingState(MODEL)
    with pytest.raises(StateConflict, match="no stable version"):
        with_load(s0, "v1.1.0", "canary", 10)
    s1 = with_load(s0, "v1.0.0", "stable", None)
    assert (s1.stable, s1.generation, s1.previous) == ("v1.0.0", 1, None)
    assert with_load(s1, "v1.0.0", "stable", None) is s1  # no change, no new generation
    s2 = with_load(s1, "v1.1.0", "canary", None)
    assert (s2.canary, s2.canary_percent, s2.generation) == ("v1.1.0", 10.0, 2)
    s3 = with_load(s2, "v1.2.0", "shadow", None)
    assert s3.versions() == {"v1.0.0": "stable", "v1.1.0": "canary", "v1.2.0": "shadow"}
    s4 = with_promote(s3)
    assert (s4.stable, s4.canary, s4.shadow, s4.previous) == ("v1.1.0", None, "v1.2.0", "v1.0.0")
    s5 = with_rollback(s4)  # drops the shadow first
    assert (s5.stable, s5.shadow) == ("v1.1.0", None)
    s6 = with_rollback(s5)  # then the previous stable comes back
    assert (s6.stable, s6.previous) == ("v1.0.0", None)
    with pytest.raises(StateConflict, match="no canary, no shadow and no previous"):
        with_rollback(s6)
    with pytest.raises(StateConflict, match="no canary to promote"):
        with_promote(s6)
    with pytest.raises(StateConflict, match="no canary"):
        with_canary(s6, 5)
    assert with_canary(with_load(s6, "v2.0.0", "canary", 1), 40).canary_percent == 40
    promoted_by_load = with_load(s2, "v1.1.0", "stable", None)  # loading the canary as stable promotes it
    assert (promoted_by_load.stable, promoted_by_load.canary, promoted_by_load.previous) == ("v1.1.0", None,
                                                                                             "v1.0.0")


def test_state_file_round_trip_and_damage(tmp_path: Path) -> None:
    state = with_load(ServingState(MODEL), "v1.0.0", "stable", None)
    write_state(tmp_path, state)
    assert read_serving_state(tmp_path, MODEL) == state
    assert read_serving_state(tmp_path, "other") is None
    (tmp_path / MODEL / "serving.json").write_text('{"format": "mlops.serving/1", "name": "x", "generation": -1}')
    with pytest.raises(ServeError, match="generation"):
        read_serving_state(tmp_path, MODEL)


def test_admin_token_sources(tmp_path: Path) -> None:
    assert resolve_token(None, {}) is None
    assert resolve_token(None, {"MLOPS_ADMIN_TOKEN": f" {'s' * 32} \n"}) == "s" * 32
    f = tmp_path / "token"
    f.write_text(f"{'f' * 40}\n")
    assert resolve_token(f, {"MLOPS_ADMIN_TOKEN": "env"}) == "f" * 40
    for bad in ("", "two words", "s3cret-token"):
        with pytest.raises(ServeError, match="admin token"):
            resolve_token(None, {"MLOPS_ADMIN_TOKEN": bad})
    with pytest.raises(ServeError, match="cannot read"):
        resolve_token(tmp_path / "missing", {})


@pytest.mark.parametrize(("changes", "needle"), [
    ({"workers": 0}, "--workers"), ({"port": 70000}, "--port"), ({"log_sample": 1.5}, "--log-sample"),
    ({"max_body_bytes": 10}, "--max-body-bytes"), ({"model": "../x"}, "not a valid store name"),
    ({"version": "latest"}, "not a SemVer version"),
])
def test_settings_are_checked(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(MlopsError, match=re.escape(needle)):
        ServeSettings(**changes).check()


def test_request_log_rotates_by_size_and_keeps_the_newest(tmp_path: Path) -> None:
    log = RequestLog(tmp_path, 3, max_bytes=2048, keep=2)
    preds = np.array([0.25, 0.5], dtype=np.float32)
    for i in range(60):
        log.submit((time.time(), f"r{i}", MODEL, "v1.0.0", "stable", "v1", 0.5, 200,
                    [{"a": i, "b": "x"}, {"a": i + 1, "b": "y"}], None, preds, "probability", None))
    log.close()
    rotated = sorted(tmp_path.glob("requests-w3-*.jsonl"))
    assert len(rotated) == 2 and (tmp_path / "requests-w3.jsonl").exists()
    lines = [json.loads(x) for f in [*rotated, tmp_path / "requests-w3.jsonl"] for x in f.read_text().splitlines()]
    assert all(f.stat().st_size < 2048 + 400 for f in rotated)
    assert lines[-1]["request_id"] == "r59" and lines[-1]["inputs"] == {"a": 60, "b": "y"}
    assert lines[-1]["outputs"] == {"probability": 0.5} and lines[-1]["row"] == 1


def test_request_log_turns_v2_columns_into_records(tmp_path: Path) -> None:
    log = RequestLog(tmp_path, 0, max_bytes=1 << 20, keep=1)
    log.submit((time.time(), "c1", MODEL, "v1.1.0", "shadow", "v2", 1.0, 200, None,
                {"a": [1, 2], "b": ["x", "y"]}, np.array([0.1, 0.9], dtype=np.float32), "probability", None))
    log.submit((time.time(), "e1", MODEL, "v1.1.0", "stable", "v2", 1.0, 400, None, None, None, "", "bad"))
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "requests-w0.jsonl").read_text().splitlines()]
    assert [x["inputs"] for x in lines[:2]] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert lines[2]["error"] == "bad" and lines[2]["row"] is None and lines[2]["status"] == 400
