"""The server's trust boundaries, probed on real `mlops serve` processes on loopback (issue 18): what any client can
send must not veto a canary, enumerate versions, flood the request log, put labels on other rows, hold
connections, reach the server under a foreign Host name, post non-JSON, guess the admin token, or slip a newline
past a name check.

One server per module with small limits (the churn model as v1.0.0 and, same bytes, v1.1.0), one bare server for
the admin throttle (it locks loopback out of its admin API), and unit tests of the request-log format.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlops.deploy.client import Endpoint
from mlops.deploy.smoke import Thresholds, counter, parse_metrics, replay, window_checks
from mlops.errors import MlopsError
from mlops.formats import requestlog
from mlops.serve.settings import ServeSettings, resolve_token, strict_name, strict_version
from tests.serve_helpers import TOKEN, Server, admin, call, install, v2_body

MODEL = "churn-model"
MAX_ROWS = 300
LOG_BYTES_PER_REQUEST = 128 * 1024  # the default of ServeSettings.log_bytes_per_request


@dataclass(frozen=True)
class Served:
    server: Server
    store: Path
    logs: Path
    records: list[dict[str, Any]]
    inputs: list[dict[str, Any]]

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="module")
def served(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("guarded")
    store, logs = root / "store", root / "logs"
    models = _trained_template / "models"
    install(store, models, "v1.0.0")
    install(store, models, "v1.1.0")
    server = Server(store, workers=1, log_dir=logs,
                    extra=["--model", MODEL, "--version", "v1.0.0", "--max-rows", str(MAX_ROWS),
                           "--header-timeout", "1", "--body-timeout", "1"])
    try:
        server.wait("/v2/health/ready")
        records = json.loads((models / "golden.json").read_text())["records"]
        inputs = call(server.port, "GET", f"/v2/models/{MODEL}").json()["inputs"]
        yield Served(server, store, logs, records, inputs)
    finally:
        code = server.stop()
    assert code == 0, server.log()


def rows(served: Served, n: int) -> list[dict[str, Any]]:
    return [served.records[i % len(served.records)] for i in range(n)]


def log_lines(logs: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(logs.glob("requests-*.jsonl")) for line in f.read_text().splitlines()
            if line.strip()]


def wait_for(cond: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def predict(port: int, records: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Any:
    return call(port, "POST", f"/v1/models/{MODEL}/predict", {"instances": records}, headers=headers)


# --- 1. client errors do not fail a canary -----------------------------------------------------------------------


@pytest.mark.slow
def test_malformed_requests_during_a_canary_window_do_not_fail_it(served: Served) -> None:
    port = served.port
    assert admin(port, "load", {"version": "v1.1.0", "role": "canary", "percent": 50}).status == 200
    try:
        before = parse_metrics(call(port, "GET", "/metrics").body.decode())
        samples: list[Any] = []
        worker = threading.Thread(target=lambda: samples.extend(
            replay(Endpoint.parse(f"http://127.0.0.1:{port}"), MODEL, served.records, 60, 1.5, 4)))
        worker.start()
        bad = 0
        for i in range(12):  # what any client can send, aimed at the candidate and at the routed path
            path = f"/v2/models/{MODEL}/versions/v1.1.0/infer" if i % 2 else f"/v1/models/{MODEL}/predict"
            reply = call(port, "POST", path, {})
            assert reply.status == 400
            bad += reply.version == "v1.1.0"
        worker.join(30)
        seen = sum(s.version == "v1.1.0" for s in samples)

        def settled() -> Any:  # the replay's answers are all counted (a worker counts after responding)
            after = parse_metrics(call(port, "GET", "/metrics").body.decode())
            ok = [counter(m, "model_infer_request_success", model=MODEL, version="v1.1.0") for m in (before, after)]
            return after if ok[1] - ok[0] >= seen else None

        after = wait_for(settled)
        checks = window_checks(samples, "v1.1.0", Thresholds(0.0, 10_000.0, 50), before, after, MODEL)
        assert all(c.passed for c in checks), [(c.name, c.detail) for c in checks]
        metrics = next(c for c in checks if c.name == "metrics")
        assert metrics.figures["server_failure"] == 0
        assert metrics.figures["server_client_errors"] >= bad >= 6  # reported apart, not judged
        assert "client errors (bad requests, not counted)" in metrics.detail
        text = call(port, "GET", "/metrics").body.decode()
        assert 'model_infer_request_client_error_total{model="churn-model",version="v1.1.0"}' in text
    finally:
        assert admin(port, "rollback").status == 200


# --- 2. a 404 lists nothing --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_404_does_not_list_what_is_loaded(served: Served) -> None:
    assert admin(served.port, "load", {"version": "v1.1.0", "role": "canary", "percent": 1}).status == 200
    try:
        for method, path in (("GET", f"/v2/models/{MODEL}/versions/v0.0.0"),
                             ("POST", f"/v2/models/{MODEL}/versions/v0.0.0/infer"),
                             ("POST", f"/v1/models/{MODEL}/versions/v0.0.0/predict"),
                             ("GET", "/v2/models/other-model/ready")):
            reply = call(served.port, method, path, {} if method == "POST" else None)
            assert reply.status == 404, (path, reply.body)
            assert b"v1.0.0" not in reply.body and b"v1.1.0" not in reply.body, reply.body
            assert b"loaded:" not in reply.body and b"models:" not in reply.body
    finally:
        assert admin(served.port, "rollback").status == 200


# --- 3. one request writes a bounded share of the request log ----------------------------------------------------


@pytest.mark.slow
def test_request_log_growth_per_request_is_bounded(served: Served) -> None:
    padded = [{**r, "evil": "x" * 2000, f"key-{i}": "y" * 500} for i, r in enumerate(rows(served, MAX_ROWS))]
    ids = []
    for _ in range(3):
        reply = predict(served.port, padded)
        assert reply.status == 200 and len(reply.json()["predictions"]) == MAX_ROWS
        ids.append(reply.headers["x-request-id"])
    mine = wait_for(lambda: (got := [x for x in log_lines(served.logs) if x["request_id"] in ids])
                    and len({x["request_id"] for x in got}) == 3 and got)
    for rid in ids:
        lines = [x for x in mine if x["request_id"] == rid]
        written = sum(len(json.dumps(x, separators=(",", ":"))) + 1 for x in lines)
        assert written <= LOG_BYTES_PER_REQUEST + 2048  # not 300 rows of 2.5 KB each
        assert 0 < len(lines) <= 100 and all(x["truncated"] and x["rows"] == MAX_ROWS for x in lines)
        assert [x["row"] for x in lines] == list(range(len(lines)))
        assert all(set(x["inputs"]) == set(served.records[0]) for x in lines)  # unknown keys are not logged


# --- 4. request ids are the server's; a label joins one row -------------------------------------------------------


@pytest.mark.slow
def test_a_spoofed_request_id_carries_no_label_and_a_label_joins_one_row(served: Served, tmp_path: Path) -> None:
    from mlops.jobs.retrain import _chunk_labels
    from mlops.monitor.sources import read_labels, read_logs

    port = served.port
    spoofed = [predict(port, served.records[:1], headers={"x-request-id": "order-1001"}) for _ in range(5)]
    assert {r.headers["x-client-request-id"] for r in spoofed} == {"order-1001"}
    issued = {r.headers["x-request-id"] for r in spoofed}
    assert len(issued) == 5 and "order-1001" not in issued
    batch = predict(port, served.records[:3])
    rid = batch.headers["x-request-id"]
    wanted = issued | {rid}
    lines = wait_for(lambda: (got := [x for x in log_lines(served.logs) if x["request_id"] in wanted])
                     and len(got) == 8 and got)
    assert {x["client_request_id"] for x in lines if x["request_id"] in issued} == {"order-1001"}
    assert all(x["format"] == requestlog.FORMAT for x in lines)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"request_id,label\norder-1001,1\n{rid},1\n")  # no row: the label of row 0
    label_map = read_labels(labels, None, None)
    names = [m["name"] for m in served.inputs]
    joined = []
    for chunk in read_logs(served.logs, names, "probability", keep_ids=True, roles=("stable", "canary")):
        codes = _chunk_labels(chunk, label_map, None)
        joined += [(chunk.request_ids[i], chunk.row_index[i]) for i in np.flatnonzero(codes >= 0).tolist()]
    assert joined == [(rid, 0)]


def test_format_1_lines_are_read_but_join_no_label() -> None:
    old = {"ts": "2026-01-01T00:00:00.000000Z", "request_id": "order-1001", "model": MODEL, "version": "v1.0.0",
           "role": "stable", "endpoint": "v1", "row": 0, "rows": 1, "latency_ms": 0.5, "status": 200,
           "inputs": {"tenure": 1}, "outputs": {"probability": 0.5}}
    raw = json.dumps(old).encode()
    line = requestlog.read_line(raw)
    assert line.format == 1 and line.join_key is None and requestlog.join_id(json.loads(raw)) is None
    new = requestlog.RequestLine(**{**old, "client_request_id": "order-1001"})  # type: ignore[arg-type]
    again = requestlog.read_line(requestlog.write_line(new))
    assert again == new and again.join_key == ("order-1001", 0)
    assert requestlog.decode(b'{"ts": "2026", "inputs": {"tenure"') is None
    with pytest.raises(requestlog.RequestLogError, match="key 'truncated'"):
        requestlog.read_line(json.dumps({**old, "truncated": "yes"}))


def test_the_writer_bounds_rows_and_bytes_of_one_request() -> None:
    recs = [{"a": i, "b": "x" * 50, "junk": "z" * 1000} for i in range(50)]
    preds = [0.5] * 50

    def lines(**kw: Any) -> list[dict[str, Any]]:
        out = requestlog.encode_request(0.0, "r1", None, MODEL, "v1", "stable", "v1", 1.0, 200, recs, None, preds,
                                        "p", None, features=("a", "b"), **kw)
        return [json.loads(x) for x in out.splitlines()]

    by_rows = lines(max_rows=10, max_bytes=1 << 20)
    assert len(by_rows) == 10 and all(x["truncated"] for x in by_rows)
    assert by_rows[0]["inputs"] == {"a": 0, "b": "x" * 50}  # keys the model does not read are dropped
    by_bytes = lines(max_rows=50, max_bytes=2000)
    assert 1 <= len(by_bytes) < 50 and all(x["truncated"] for x in by_bytes)
    whole = lines(max_rows=50, max_bytes=1 << 20)
    assert len(whole) == 50 and not any(x["truncated"] for x in whole)
    error = requestlog.encode_request(0.0, "r2", "c", MODEL, "v1", "stable", "v1", 1.0, 400, None, None, None, "",
                                      "e" * 5000)
    assert len(error) < 1000 and json.loads(error)["client_request_id"] == "c"


# --- 5. slow clients, the row cap, big batches --------------------------------------------------------------------


def _closed_with(port: int, sent: bytes) -> bytes:
    """What the server answers to SENT before it closes the connection (a bounded wait: a hang fails)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        if sent:
            s.sendall(sent)
        got = b""
        while chunk := s.recv(4096):
            got += chunk
        return got


@pytest.mark.slow
def test_slow_and_silent_clients_are_closed_with_a_408(served: Served) -> None:
    head = _closed_with(served.port, b"POST /v1/models/churn-model/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"--header-timeout" in head
    body = _closed_with(served.port, b"POST /v1/models/churn-model/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inst")
    assert body.startswith(b"HTTP/1.1 408") and b"--body-timeout" in body
    assert _closed_with(served.port, b"").startswith(b"HTTP/1.1 408")  # a connection that never says anything
    # a keep-alive connection that starts its next request and stalls
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    assert call(served.port, "GET", "/v2/health/live", conn=conn).status == 200
    assert conn.sock is not None
    conn.sock.sendall(b"GET /v2/hea")
    rest = b""
    while chunk := conn.sock.recv(4096):
        rest += chunk
    conn.close()
    assert rest.startswith(b"HTTP/1.1 408")
    assert call(served.port, "GET", "/v2/health/live").status == 200  # the server itself is fine


@pytest.mark.slow
def test_a_request_over_the_row_cap_gets_413_naming_the_limit(served: Served) -> None:
    over = rows(served, MAX_ROWS + 1)
    for path, body in ((f"/v1/models/{MODEL}/predict", {"instances": over}),
                       (f"/v2/models/{MODEL}/infer", v2_body(over, served.inputs))):
        reply = call(served.port, "POST", path, body)
        assert reply.status == 413, reply.body
        assert f"limit of {MAX_ROWS} rows" in reply.json()["error"] and "--max-rows" in reply.json()["error"]


@pytest.mark.slow
def test_a_big_batch_predicted_in_a_thread_equals_small_ones(served: Served) -> None:
    big = rows(served, MAX_ROWS)  # over the default offload_rows (256): encoded and predicted off the event loop
    whole = predict(served.port, big).json()["predictions"]
    v2 = call(served.port, "POST", f"/v2/models/{MODEL}/infer", v2_body(big, served.inputs)).json()
    parts = [p for i in range(0, MAX_ROWS, 50) for p in predict(served.port, big[i:i + 50]).json()["predictions"]]
    assert whole == parts == v2["outputs"][0]["data"]


# --- 6. Host allow-list and content types ------------------------------------------------------------------------


@pytest.mark.slow
def test_foreign_host_names_and_non_json_posts_are_refused(served: Served) -> None:
    port = served.port
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io", "localhost.evil"):
        reply = call(port, "GET", "/v2/health/live", headers={"Host": host})
        assert reply.status == 400 and "--allowed-host" in reply.json()["error"], host
        assert predict(port, served.records[:1], {"Host": host}).status == 400
    for host in (f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert call(port, "GET", "/v2/health/live", headers={"Host": host}).status == 200, host
    body = json.dumps({"instances": served.records[:1]}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.putrequest("POST", f"/v1/models/{MODEL}/predict")
        if ctype is not None:
            conn.putheader("Content-Type", ctype)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        assert resp.status == 415 and b"application/json" in resp.read(), ctype
        conn.close()
    ok = call(port, "POST", f"/v1/models/{MODEL}/predict", raw=body,
              headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status == 200
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # an admin call with no body needs no type
    conn.request("POST", f"/admin/models/{MODEL}/promote", headers={"Authorization": f"Bearer {TOKEN}"})
    assert conn.getresponse().status == 409  # nothing to promote: past the content-type check
    conn.close()


def test_host_allow_list_settings() -> None:
    assert ServeSettings().hosts() == frozenset({"127.0.0.1", "localhost", "::1"})
    assert ServeSettings(host="0.0.0.0").hosts() is None
    assert ServeSettings(allowed_hosts=("Models.Example.COM", "[::1]")).hosts() == {"models.example.com", "::1"}
    assert ServeSettings(allowed_hosts=("*",)).hosts() is None
    with pytest.raises(MlopsError, match="--allowed-host"):
        ServeSettings(allowed_hosts=("http://x/",)).check()


# --- 7. admin token length and throttled failures ----------------------------------------------------------------


def test_a_short_admin_token_stops_the_start_with_one_line(tmp_path: Path) -> None:
    for token in ("a", "x" * 31):
        proc = subprocess.run([sys.executable, "-m", "mlops", "serve", "--store", str(tmp_path / "store"),
                               "--port", "0"], env={**os.environ, "MLOPS_ADMIN_TOKEN": token},
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 1, proc.stderr
        assert f"the admin token has {len(token)} characters, at least 32 are required" in proc.stderr
        assert "Traceback" not in proc.stderr
    with pytest.raises(MlopsError, match="at least 32"):
        ServeSettings(admin_token="short-but-printable").check()
    (tmp_path / "token").write_text("tiny\n")
    with pytest.raises(MlopsError, match=r"--admin-token-file .*4 characters"):
        resolve_token(tmp_path / "token", {})
    assert resolve_token(None, {"MLOPS_ADMIN_TOKEN": TOKEN}) == TOKEN


@pytest.mark.slow
def test_admin_failures_are_throttled(tmp_path: Path) -> None:
    server = Server(tmp_path / "store", workers=1)
    try:
        server.wait()
        statuses = [call(server.port, "GET", f"/admin/models/{MODEL}", token="w" * 40).status for _ in range(10)]
        assert statuses == [401] * 10
        locked = call(server.port, "GET", f"/admin/models/{MODEL}", token="w" * 40)
        assert locked.status == 429 and int(locked.headers["retry-after"]) > 0
        assert "too many refused admin tokens" in locked.json()["error"]
        assert call(server.port, "GET", f"/admin/models/{MODEL}", token=TOKEN).status == 429  # no guess counts
        assert call(server.port, "GET", "/v2/health/live").status == 200  # inference is not affected
    finally:
        assert server.stop() == 0


# --- 8. names and versions: no trailing newline ------------------------------------------------------------------


def test_names_and_versions_with_a_trailing_newline_are_refused() -> None:
    for bad in ("churn-model\n", "churn-model\r", "churn model", "\tchurn-model"):
        with pytest.raises(MlopsError, match="not a valid store name"):
            strict_name(bad)
        with pytest.raises(MlopsError, match="not a valid store name"):
            ServeSettings(model=bad).check()
    with pytest.raises(MlopsError, match="not a SemVer version"):
        strict_version("v1.0.0\n")
    assert strict_name("churn-model") == "churn-model" and strict_version("v1.0.0") == "v1.0.0"


@pytest.mark.slow
def test_admin_refuses_a_newline_in_a_name_or_version_and_creates_nothing(served: Served) -> None:
    port = served.port
    before = sorted(p.name for p in served.store.iterdir())
    reply = call(port, "GET", f"/admin/models/{MODEL}%0A", token=TOKEN)
    assert reply.status == 404 and "not a valid store name" in reply.json()["error"]
    for path, body in ((f"/admin/models/{MODEL}%0A/load", {"version": "v1.0.0"}),
                       (f"/admin/models/{MODEL}/load", {"version": "v1.0.0\n"}),
                       ("/admin/models/never-installed/load", {"version": "v1.0.0"})):
        reply = call(port, "POST", path, body, token=TOKEN)
        assert reply.status in (400, 404), (path, reply.body)
    assert sorted(p.name for p in served.store.iterdir()) == before  # no lock file, no folder for any of them
    assert admin(port, "").json()["stable"] == "v1.0.0"
