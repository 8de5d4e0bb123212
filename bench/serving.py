"""Serving benchmark: `mlops serve` beside MLServer 1.7.1 + mlserver-xgboost 1.7.1, same model file, same load.

    .venv/bin/python bench/serving.py [--duration 5] [--rounds 3] [--connections 1,8,64] [--workers 2]
        [--mlserver-venv /work/.bench-venvs/mlserver] [--models DIR] [--no-mlserver] [--no-grpc]
    .venv/bin/python bench/serving.py --runtimes [sklearn,lightgbm,xgboost] [--duration 5] [--rounds 3] [--workers 2]
    .venv/bin/python bench/serving.py --grpc-loadgen [--concurrency 8] [--duration 5] [--rounds 3] [--workers 2]
        [--mlserver-venv /tmp/mlserver-venv]

Trains the churn model in a temporary copy of the example project (or takes --models PROJECT/models, beside its
data/prepared/test.csv), starts both servers on free loopback ports, checks that each answers 100 test rows as the
offline path does, then drives them with wrk (Debian's package: `apt-get install -y wrk`), one at a time: single
rows and 100-row batches at each connection count, --duration seconds per run after a 1 s warm-up. Each case runs
on every server back to back, --rounds times with the order rotating, so that both see the same moments of a shared
machine's background load; figures are the medians of the rounds (each round's figures are kept too). wrk's own
Lua `done()` hook reports requests, p50, p99 and errors. Prints JSON with every run and the ours/MLServer ratios.

gRPC (the Open Inference Protocol's grpc_predict_v2.proto; ours with --grpc-port, MLServer's own gRPC port): both
servers answer 100 test rows over gRPC as offline first (grpcio, the messages of mlops.serve._proto), then h2load
(Debian's nghttp2-client: `apt-get install -y nghttp2-client`; wrk speaks only HTTP/1.1) drives each with the same
framed ModelInfer message per request over h2c, one stream per connection (-m1, as wrk's one request in flight per
connection), the same connection counts and rounds; p50/p99 come from its per-request log. h2load sees HTTP statuses
only (a gRPC error is a 200 with a grpc-status trailer): each server's `grpc_server_handled_total` for ModelInfer
with another code than OK, read before and after each run, gives the errors.

Payloads, Open Inference Protocol V2 (REST and gRPC): ours gets the raw test rows, one input per feature (strings for
categories: it validates and encodes them itself); MLServer gets what mlserver-xgboost takes, one FP32 tensor of
the already encoded rows (it could not read the category strings). Ours also runs its records endpoint
(`/v1/models/NAME/predict`), reported beside. Over gRPC the same: ours gets one typed tensor per raw feature (BYTES
for categories), MLServer one FP32 tensor of the encoded rows.

--runtimes [sklearn,lightgbm,xgboost] runs another section instead (issue 16): each runtime of `mlops serve
--model-dir PACKAGE` (--workers) beside MLServer's runtime for the same model (mlserver-sklearn, mlserver-lightgbm,
mlserver-xgboost), MLServer with its defaults and tuned (`parallel_workers: 0`, `metrics_endpoint: null`); single rows
at 8 connections (wrk), --duration and --rounds as above, the three servers back to back, order rotating. Models:
the scikit-learn Pipeline and LightGBM multiclass examples of tests/examples.py (packaged with `mlops package`) and
the churn xgboost model. Every server's answers on the held-out rows must equal the offline predictions to 1e-6
before any load. What each MLServer runtime is sent is in the JSON (`request`): the Pipeline, saved with joblib for
mlserver-sklearn, gets the pandas codec (its ColumnTransformer selects columns by name); LightGBM one FP64 tensor.
mlserver-sklearn and mlserver-lightgbm 1.7.1 are added to the MLServer venv when missing, with this environment's
scikit-learn and lightgbm (the joblib pickle must load in the scikit-learn that wrote it).

--grpc-loadgen runs another section instead (issue 14): gRPC only, `mlops serve --grpc-port` beside MLServer's gRPC
port (its `grpc_port` setting; defaults otherwise, mlserver-xgboost on the same model.ubj), single rows, driven by one
load generator in this bench's own process with grpcio's asyncio API: --concurrency callers, each on its own channel
(a local subchannel pool, so its own HTTP/2 connection, like h2load's -c), one call in flight each, the same
serialized ModelInferRequest every time (bytes in, bytes out: no protobuf work in the client). The same code drives
both servers, only the address differs; both first answer 100 test rows over gRPC equal to the offline predictions.
Rounds rotate the order; figures are medians. The client's own CPU time is reported (process time / wall): near 1.0
means the client, not the server, set the pace, and the ratio is then a lower bound.

MLServer lives in its own virtual environment (created when missing: `python -m venv` + pip install mlserver==1.7.1
mlserver-xgboost==1.7.1 'uvloop<0.21'; it needs uvloop<0.21 to start) and runs with its defaults (one inference
worker) but for the ports. It can hang on SIGTERM, so it is stopped by process group, SIGKILL after 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "churn-model"
VERSION = "v1.0.0"
DEFAULT_VENV = Path("/work/.bench-venvs/mlserver")
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-xgboost==1.7.1", "uvloop<0.21"]

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("%(body)s", "rb")); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"max_us": %%d, "status_errors": %%d, "connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, timeout: float = 30) -> Any:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was ready ({url})")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"not ready after {timeout} s: {url}")


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL to it after GRACE seconds (MLServer can hang on SIGTERM)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def train(work: Path) -> Path:
    project = work / "project"
    (project / "data/raw").mkdir(parents=True)
    shutil.copy2(REPO / "params.yaml", project / "params.yaml")
    shutil.copy2(REPO / "data/raw/telco_churn.csv", project / "data/raw/telco_churn.csv")
    for stage in ("prepare", "train"):
        subprocess.run([str(BIN / "mlops"), "stage", stage], cwd=project, check=True, capture_output=True)
    return project / "models"


def payloads(models: Path, work: Path, data_csv: Path) -> dict[str, Any]:
    """Request bodies (files for wrk) and the offline predictions of the 100 rows."""
    import pandas as pd
    import xgboost as xgb

    from mlops.config import load_params
    from mlops.features import encode_records, read_model_interface, records_from_frame
    from mlops.stages.data import features_and_label, load_prepared

    params = load_params(REPO / "params.yaml")
    iface = read_model_interface(models / "feature_schema.json")
    x, _ = features_and_label(load_prepared(data_csv, params.data), params.data)
    rows = records_from_frame(iface, x.iloc[:100])
    booster = xgb.Booster()
    booster.load_model(str(models / "model.ubj"))
    offline = booster.predict(xgb.DMatrix(pd.DataFrame(x.iloc[:100][iface.names]), enable_categorical=True))
    out: dict[str, Any] = {"offline": [float(v) for v in offline], "files": {}}
    for n in (1, 100):
        recs = rows[:n]
        v2 = {"inputs": [{"name": m["name"], "datatype": m["datatype"], "shape": [n],
                          "data": [r[m["name"]] for r in recs]} for m in iface.v2_inputs()]}
        matrix = encode_records(iface, recs)
        tensor = {"inputs": [{"name": "input-0", "shape": [n, matrix.shape[1]], "datatype": "FP32",
                              "data": matrix.ravel().tolist()}]}
        for kind, body in (("v2", v2), ("records", {"instances": recs}), ("mlserver", tensor)):
            path = work / f"{kind}-{n}.json"
            path.write_text(json.dumps(body))
            lua = work / f"{kind}-{n}.lua"
            lua.write_text(WRK_LUA % {"body": path})
            out["files"][(kind, n)] = (path, lua)
        for kind, message in grpc_bodies(iface, recs, matrix).items():
            framed = work / f"{kind}-{n}.bin"
            framed.write_bytes(grpc_frame(message))
            out["files"][(kind, n)] = (framed, message)
    return out


def grpc_frame(message: bytes) -> bytes:
    """One gRPC message on the wire: not compressed (0), its length (4 bytes, big-endian), its bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_bodies(iface: Any, recs: list[dict[str, Any]], matrix: Any) -> dict[str, bytes]:
    """The serialized ModelInferRequest of N rows for each server: ours one typed tensor per raw feature, MLServer
    one FP32 tensor of the encoded rows (typed contents both)."""
    from mlops.serve._proto import messages

    pb = messages()
    field = {"INT64": "int64_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents", "BOOL": "bool_contents"}
    ours = pb.ModelInferRequest(model_name=MODEL)
    for m in iface.v2_inputs():
        t = ours.inputs.add(name=m["name"], datatype=m["datatype"], shape=[len(recs)])
        values = [r[m["name"]] for r in recs]
        getattr(t.contents, field[m["datatype"]]).extend([v.encode() for v in values] if m["datatype"] == "BYTES"
                                                         else values)
    peer = pb.ModelInferRequest(model_name=MODEL)
    t = peer.inputs.add(name="input-0", datatype="FP32", shape=list(matrix.shape))
    t.contents.fp32_contents.extend(matrix.ravel().tolist())
    return {"grpc-v2": ours.SerializeToString(), "grpc-mlserver": peer.SerializeToString()}


def grpc_predictions(target: str, message: bytes) -> list[float]:
    """The first output of one ModelInfer call (raw or typed contents), with grpcio."""
    import grpc
    import numpy as np

    from mlops.serve._proto import messages

    pb = messages()
    with grpc.insecure_channel(target) as channel:
        fn = channel.unary_unary(GRPC_INFER, request_serializer=lambda b: b,
                                 response_deserializer=pb.ModelInferResponse.FromString)
        resp = fn(message, timeout=60)
    out = resp.outputs[0]
    if resp.raw_output_contents:
        dtype = {"FP32": "<f4", "FP64": "<f8"}[out.datatype]
        return [float(v) for v in np.frombuffer(resp.raw_output_contents[0], dtype=dtype)]
    values = out.contents.fp32_contents if out.datatype == "FP32" else out.contents.fp64_contents
    return [float(v) for v in values]


def grpc_failures(metrics_url: str | None) -> float | None:
    """ModelInfer calls answered with another gRPC code than OK so far (grpc_server_handled_total); None: unknown."""
    if metrics_url is None:
        return None
    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and 'grpc_method="ModelInfer"' in line:
            seen = True
            if 'grpc_code="OK"' not in line:
                total += float(line.rpartition(" ")[2])
    return total if seen else None


def run_h2load(url: str, body: Path, connections: int, duration: float, metrics_url: str | None
               ) -> dict[str, Any]:
    """h2load over h2c with BODY (a framed ModelInfer message) as every request; p50/p99 from its request log."""
    threads = 1 if connections == 1 else 2
    log = body.with_suffix(f".{connections}.log")
    log.unlink(missing_ok=True)
    failed_before = grpc_failures(metrics_url)
    cmd = ["h2load", f"-c{connections}", f"-t{threads}", "-m1", f"-D{duration:g}", "-d", str(body),
           "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration + 60)
    failed_after = grpc_failures(metrics_url)
    done = failed = None
    for ln in proc.stdout.splitlines():
        words = ln.replace(",", "").split()
        if ln.startswith("requests:"):
            done, failed = int(words[words.index("done") - 1]), int(words[words.index("failed") - 1]) + \
                int(words[words.index("errored") - 1]) + int(words[words.index("timeout") - 1])
    lat = sorted(int(ln.split("\t")[2]) for ln in log.read_text().splitlines() if ln.strip()) \
        if log.is_file() else []
    if done is None or not lat:
        raise SystemExit(f"h2load gave no result ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    grpc_errors = None if failed_before is None or failed_after is None else int(failed_after - failed_before)
    return {"connections": connections, "wrk_threads": threads, "requests": done, "rps": round(done / duration, 1),
            "p50_ms": round(lat[len(lat) // 2] / 1000, 3), "p99_ms": round(lat[min(len(lat) - 1,
                                                                                   int(len(lat) * 0.99))] / 1000, 3),
            "max_ms": round(lat[-1] / 1000, 3), "errors": (failed or 0) + (grpc_errors or 0),
            "grpc_errors": grpc_errors}


def run_case(case: tuple[Any, ...], connections: int, duration: float) -> dict[str, Any]:
    """A case is (url, wrk's Lua script) or (url, a framed gRPC body, "h2load", the server's metrics URL)."""
    if len(case) > 2 and case[2] == "h2load":
        return run_h2load(case[0], case[1], connections, duration, case[3])
    return run_wrk(case[0], case[1], connections, duration)


def run_wrk(url: str, lua: Path, connections: int, duration: float) -> dict[str, Any]:
    threads = 1 if connections == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(lua), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    r = json.loads(line[len("WRKJSON "):])
    errors = r["status_errors"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {"connections": connections, "wrk_threads": threads, "requests": r["requests"],
            "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1), "p50_ms": round(r["p50_us"] / 1000, 3),
            "p99_ms": round(r["p99_us"] / 1000, 3), "max_ms": round(r["max_us"] / 1000, 3), "errors": errors}


class Ours:
    """`mlops serve` on the store with the model installed as VERSION."""

    def __init__(self, models: Path, work: Path, workers: int, grpc: bool = True) -> None:
        from mlops import modelstore
        from mlops.files import sha256_file

        store = work / "store"
        sha = sha256_file(models / "model.ubj")
        modelstore.install(store, MODEL, VERSION, models, model_file="model.ubj", model_sha256=sha, meta={})
        self.port = free_port()
        self.grpc_port = free_port() if grpc else None
        self.workers = workers
        self.log = open(work / "ours.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([sys.executable, "-m", "mlops", "serve", "--store", str(store), "--model", MODEL,
                                      "--port", str(self.port), "--workers", str(workers),
                                      *(["--grpc-port", str(self.grpc_port)] if self.grpc_port else [])],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "MLOPS_ADMIN_TOKEN": "bench-" + sha[:32]})
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, files: dict, offline: list[float]) -> dict[str, Any]:
        ready_s = wait_ready(f"{self.base}/v2/health/ready", self.proc, 60)
        got = post(f"{self.base}/v2/models/{MODEL}/infer", files[("v2", 100)][0].read_bytes())["outputs"][0]["data"]
        rec = post(f"{self.base}/v1/models/{MODEL}/predict", files[("records", 100)][0].read_bytes())["predictions"]
        diffs = [max(abs(a - b) for a, b in zip(got, offline, strict=True)),
                 max(abs(a - b) for a, b in zip(rec, offline, strict=True))]
        if self.grpc_port:
            over_grpc = grpc_predictions(f"127.0.0.1:{self.grpc_port}", files[("grpc-v2", 100)][1])
            diffs.append(max(abs(a - b) for a, b in zip(over_grpc, offline, strict=True)))
        return {"workers": self.workers, "ready_s": round(ready_s, 2), "max_abs_diff_vs_offline": max(diffs),
                "grpc": bool(self.grpc_port)}

    def cases(self, files: dict) -> dict[tuple[str, str, int], tuple[Any, ...]]:
        out: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        for n in (1, 100):
            out[("mlops", "v2", n)] = (f"{self.base}/v2/models/{MODEL}/infer", files[("v2", n)][1])
            out[("mlops", "records", n)] = (f"{self.base}/v1/models/{MODEL}/predict", files[("records", n)][1])
            if self.grpc_port:
                out[("mlops", "grpc", n)] = (f"http://127.0.0.1:{self.grpc_port}{GRPC_INFER}",
                                             files[("grpc-v2", n)][0], "h2load", f"{self.base}/metrics")
        return out

    def stop(self) -> None:
        stop_group(self.proc, 20)
        self.log.close()


def ensure_venv(venv: Path) -> None:
    if (venv / "bin" / "mlserver").exists():
        return
    print(f"creating {venv} (mlserver 1.7.1)", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *MLSERVER_PINS], check=True)


class MLServer:
    """MLServer with mlserver-xgboost on the same model file, its defaults but for the ports."""

    def __init__(self, models: Path, work: Path, venv: Path, grpc: bool = True) -> None:
        ensure_venv(venv)
        self.grpc = grpc
        self.venv = venv
        root = work / "mlserver"
        (root / MODEL).mkdir(parents=True)
        shutil.copy2(models / "model.ubj", root / MODEL / "model.ubj")
        self.port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        (root / "settings.json").write_text(json.dumps({"http_port": self.port, "grpc_port": self.grpc_port,
                                                        "metrics_port": self.metrics_port,
                                                        "host": "127.0.0.1"}))
        (root / MODEL / "model-settings.json").write_text(json.dumps({
            "name": MODEL, "implementation": "mlserver_xgboost.XGBoostModel",
            "parameters": {"uri": "./model.ubj", "version": VERSION}}))
        self.log = open(work / "mlserver.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(root)], cwd=root,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, files: dict, offline: list[float]) -> dict[str, Any]:
        ready_s = wait_ready(f"{self.base}/v2/models/{MODEL}/ready", self.proc, 180)
        got = post(f"{self.base}/v2/models/{MODEL}/infer",
                   files[("mlserver", 100)][0].read_bytes())["outputs"][0]["data"]
        diff = max(abs(a - b) for a, b in zip(got, offline, strict=True))
        if self.grpc:
            over_grpc = grpc_predictions(f"127.0.0.1:{self.grpc_port}", files[("grpc-mlserver", 100)][1])
            diff = max(diff, max(abs(a - b) for a, b in zip(over_grpc, offline, strict=True)))
        version = subprocess.run([str(self.venv / "bin" / "python"), "-c", "import mlserver, xgboost; "
                                  "print(mlserver.__version__, xgboost.__version__)"],
                                 capture_output=True, text=True, check=False).stdout.split()
        return {"version": version[0] if version else None, "xgboost": version[1] if len(version) > 1 else None,
                "settings": "defaults (parallel_workers=1) but ports and host", "ready_s": round(ready_s, 2),
                "max_abs_diff_vs_offline": diff}

    def cases(self, files: dict) -> dict[tuple[str, str, int], tuple[Any, ...]]:
        out: dict[tuple[str, str, int], tuple[Any, ...]] = {
            ("mlserver", "v2", n): (f"{self.base}/v2/models/{MODEL}/infer", files[("mlserver", n)][1])
            for n in (1, 100)}
        if self.grpc:
            for n in (1, 100):
                out[("mlserver", "grpc", n)] = (f"http://127.0.0.1:{self.grpc_port}{GRPC_INFER}",
                                                files[("grpc-mlserver", n)][0], "h2load",
                                                f"http://127.0.0.1:{self.metrics_port}/metrics")
        return out

    def stop(self) -> None:
        stop_group(self.proc, 10)  # it can hang on SIGTERM ("waiting for background tasks")
        self.log.close()


def median(values: list[float]) -> float:
    v = sorted(values)
    k = len(v)
    return v[k // 2] if k % 2 else (v[k // 2 - 1] + v[k // 2]) / 2


def drive(cases: dict[tuple[str, str, int], tuple[Any, ...]], conns: list[int], duration: float,
          rounds: int) -> list[dict[str, Any]]:
    """Each (rows, connections) case runs on every server back to back, ROUNDS times, the order rotating each
    round: both servers see the same moments of a shared machine's background load."""
    for case in cases.values():
        run_case(case, 8, 1.0)  # warm-up
    raw: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    keys = list(cases)
    for r in range(rounds):
        for n in (1, 100):
            for c in conns:
                here = [k for k in keys if k[2] == n]
                if not here:  # the runtimes section drives single rows only
                    continue
                here = here[r % len(here):] + here[:r % len(here)]
                for server, endpoint, rows in here:
                    got = run_case(cases[(server, endpoint, rows)], c, duration)
                    raw.setdefault((server, endpoint, rows, c), []).append(got)
                    print(f"  round {r + 1} {server:8} {endpoint:8} rows={rows:<3} c={c:<3} {got['rps']:>9.1f} req/s"
                          f"  p50 {got['p50_ms']:.2f} ms  p99 {got['p99_ms']:.2f} ms  errors {got['errors']}",
                          file=sys.stderr)
    runs = []
    for (server, endpoint, rows, c), got in raw.items():
        runs.append({"server": server, "endpoint": endpoint, "rows": rows, "connections": c,
                     "wrk_threads": got[0]["wrk_threads"], "rounds": len(got),
                     "rps": round(median([g["rps"] for g in got]), 1),
                     "p50_ms": round(median([g["p50_ms"] for g in got]), 3),
                     "p99_ms": round(median([g["p99_ms"] for g in got]), 3),
                     "errors": sum(g["errors"] for g in got), "requests": sum(g["requests"] for g in got),
                     "rps_each": [g["rps"] for g in got], "p99_ms_each": [g["p99_ms"] for g in got]})
    return runs


def h2load_version() -> str:
    out = subprocess.run(["h2load", "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "h2load"


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    words = (out.stdout or out.stderr).split()
    return " ".join(words[:2]) if len(words) >= 2 else "wrk"


# --- gRPC, one load generator in this process (grpcio asyncio) for both servers (issue 14) ------------------------


def grpc_load(target: str, message: bytes, concurrency: int, duration: float, warmup: float = 1.0
              ) -> dict[str, Any]:
    """CONCURRENCY callers, each on its own channel (connection), calling ModelInfer with MESSAGE back to back for
    DURATION seconds after WARMUP seconds; requests/s, latency percentiles, errors by status code, client CPU."""
    import asyncio

    import grpc

    async def main() -> dict[str, Any]:
        # A local subchannel pool per channel: without it, channels with the same target share one connection.
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(concurrency)]
        try:
            for ch in channels:
                await asyncio.wait_for(ch.channel_ready(), 30)
            calls = [ch.unary_unary(GRPC_INFER) for ch in channels]  # no (de)serializers: bytes in, bytes out
            latencies: list[float] = []
            errors: dict[str, int] = {}

            async def caller(call: Any, until: float, record: bool) -> None:
                clock = time.perf_counter
                while (start := clock()) < until:
                    try:
                        await call(message, timeout=10)
                    except grpc.aio.AioRpcError as exc:
                        if record:
                            errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                        continue
                    if record:
                        latencies.append(clock() - start)

            await asyncio.gather(*(caller(c, time.perf_counter() + warmup, False) for c in calls))
            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(caller(c, t0 + duration, True) for c in calls))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            for ch in channels:
                await ch.close()
        lat = sorted(latencies)
        if not lat:
            raise SystemExit(f"no gRPC call to {target} succeeded: {errors}")
        return {"connections": concurrency, "requests": len(lat), "rps": round(len(lat) / wall, 1),
                "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 3),
                "max_ms": round(lat[-1] * 1000, 3), "errors": sum(errors.values()), "error_codes": errors,
                "client_cpu_per_wall": round(cpu / wall, 2), "wrk_threads": 0}

    return asyncio.run(main())


def run_grpc_loadgen(args: argparse.Namespace) -> None:
    """Ours over gRPC beside MLServer's gRPC, single rows, one grpcio load generator in this process for both."""
    import grpc

    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        work = Path(tmp)
        models = args.models or train(work)
        p = payloads(models, work, models.parent / "data/prepared/test.csv")
        ours = Ours(models, work, args.workers, grpc=True)
        peer = MLServer(models, work, args.mlserver_venv, grpc=True)
        servers = {"mlops": (ours, "grpc-v2"), "mlserver": (peer, "grpc-mlserver")}
        raw: dict[str, list[dict[str, Any]]] = {"mlops": [], "mlserver": []}
        try:
            info = {"mlops": ours.start(p["files"], p["offline"]), "mlserver": peer.start(p["files"], p["offline"])}
            order = list(servers)
            for r in range(args.rounds):
                for name in order[r % 2:] + order[:r % 2]:
                    srv, kind = servers[name]
                    got = grpc_load(f"127.0.0.1:{srv.grpc_port}", p["files"][(kind, 1)][1], args.concurrency,
                                    args.duration)
                    got["load_average"] = round(os.getloadavg()[0], 2)
                    raw[name].append(got)
                    print(f"  round {r + 1} {name:8} grpc rows=1 c={args.concurrency:<3} {got['rps']:>9.1f} req/s  "
                          f"p50 {got['p50_ms']:.2f} ms  p99 {got['p99_ms']:.2f} ms  errors {got['errors']}  client "
                          f"cpu {got['client_cpu_per_wall']}  load {got['load_average']}", file=sys.stderr)
        finally:
            ours.stop()
            peer.stop()
    figures = {}
    for name, got in raw.items():
        figures[name] = {"rps": round(median([g["rps"] for g in got]), 1),
                         "p50_ms": round(median([g["p50_ms"] for g in got]), 3),
                         "p99_ms": round(median([g["p99_ms"] for g in got]), 3),
                         "errors": sum(g["errors"] for g in got), "requests": sum(g["requests"] for g in got),
                         "rps_each": [g["rps"] for g in got], "p99_ms_each": [g["p99_ms"] for g in got],
                         "client_cpu_per_wall_each": [g["client_cpu_per_wall"] for g in got],
                         "load_average_each": [g["load_average"] for g in got]}
    ratio = round(figures["mlops"]["rps"] / max(figures["mlserver"]["rps"], 1e-9), 1)
    print(json.dumps({
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "section": "grpc-loadgen", "rows": 1, "concurrency": args.concurrency, "duration_s": args.duration,
        "rounds": args.rounds, "workers": args.workers,
        "load_generator": f"grpcio {grpc.__version__} asyncio, in the bench's process, one channel per caller",
        "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "ours": info["mlops"], "mlserver": info["mlserver"], "figures": figures,
        "rps_ratio": ratio,
        "rps_ratio_each_round": [round(a / max(b, 1e-9), 1) for a, b in
                                 zip(figures["mlops"]["rps_each"], figures["mlserver"]["rps_each"], strict=True)],
        "targets": {"grpc_single_rows_5x_mlserver": ratio >= 5},
    }, indent=2))


# --- runtimes vs MLServer's runtime for the same model (issue 16) ------------------------------------------------

RUNTIMES = ("sklearn", "lightgbm", "xgboost")
TOLERANCE = 1e-6  # both servers' answers against the offline predictions, before any load


def mlserver_runtime_pins() -> list[str]:
    """MLServer's sklearn and lightgbm runtimes, with this environment's scikit-learn and lightgbm: the joblib
    pickle of the Pipeline must load in the scikit-learn that wrote it."""
    from importlib.metadata import version

    return ["mlserver-sklearn==1.7.1", "mlserver-lightgbm==1.7.1", f"scikit-learn=={version('scikit-learn')}",
            f"lightgbm=={version('lightgbm')}"]


def ensure_runtimes_venv(venv: Path) -> None:
    """The MLServer venv with mlserver-sklearn and mlserver-lightgbm too (added to an existing venv if missing; a
    venv made by uv has no pip: uv installs then)."""
    ensure_venv(venv)
    py = venv / "bin" / "python"
    probe = subprocess.run([str(py), "-c", "import mlserver_sklearn, mlserver_lightgbm"], capture_output=True,
                           check=False)
    if probe.returncode == 0:
        return
    print(f"installing mlserver-sklearn and mlserver-lightgbm 1.7.1 into {venv}", file=sys.stderr)
    if (venv / "bin" / "pip").exists():
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *mlserver_runtime_pins()], check=True)
    else:
        uv = shutil.which("uv") or str(BIN / "uv")
        subprocess.run([uv, "pip", "install", "-q", "--python", str(py), *mlserver_runtime_pins()], check=True)


class BenchModel:
    """One model as both servers get it: our package directory (its name is the served name), MLServer's model
    directory (its model file and model-settings), the request bodies of each (1 row for the load, N rows for the
    check) and the offline predictions of the N rows, flat (a multiclass row is its K probabilities)."""

    def __init__(self, name: str, package: Path, peer_impl: str, peer_files: dict[str, Path],
                 peer_params: dict[str, Any], offline: list[float], ours_bodies: dict[str, Any],
                 peer_bodies: dict[str, Any], peer_output: Any, note: str, same_request: bool = False) -> None:
        self.name, self.package, self.peer_impl, self.peer_files = name, package, peer_impl, peer_files
        self.peer_params, self.offline, self.note, self.peer_output = peer_params, offline, note, peer_output
        self.ours_bodies, self.peer_bodies = ours_bodies, peer_bodies
        # whether ours also serves MLServer's own request (a numeric model's one [rows, k] tensor): then ours is
        # driven with both bodies, and the ratio on the same request is reported beside the per-input one
        self.same_request = same_request


def _v2_columns(iface: Any, recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Our V2 body: one tensor per raw feature (category strings as BYTES), as the tests' clients send it."""
    from tests.serve_helpers import v2_body

    return v2_body(recs, iface.v2_inputs())


def _write_bodies(work: Path, tag: str, bodies: dict[str, Any]) -> dict[str, tuple[Path, Path]]:
    out = {}
    for key, body in bodies.items():
        path = work / f"{tag}-{key}.json"
        path.write_text(json.dumps(body))
        lua = work / f"{tag}-{key}.lua"
        lua.write_text(WRK_LUA % {"body": path})
        out[key] = (path, lua)
    return out


def _package(model: Path, data: Path, target: str, task: str, runtime: str, out: Path) -> None:
    subprocess.run([str(BIN / "mlops"), "package", "--model", str(model), "--data", str(data), "--target", target,
                    "--task", task, "--runtime", runtime, "--out", str(out)], check=True, capture_output=True)


def sklearn_model(work: Path) -> BenchModel:
    """The scikit-learn Pipeline example (ColumnTransformer: scaled numbers + one-hot of a category; logistic
    regression), breast-cancer data. Ours: its .skops package. MLServer: the same fitted Pipeline saved with joblib
    (mlserver-sklearn loads joblib/pickle only); its ColumnTransformer selects columns by name, so MLServer must
    decode the request into a DataFrame: the pandas codec (`"parameters": {"content_type": "pd"}`, one input per
    column, the category column BYTES with `content_type: str`), and `predict_fn: predict_proba` in its
    model-settings (its default output is `predict`, the label)."""
    import joblib

    from mlops.features import interface_of, records_from_frame
    from mlops.formats.manifest import read_manifest
    from mlops.runtimes.sklearn import load_skops
    from tests.examples import sklearn_binary

    ex = sklearn_binary(work / "src-sklearn")
    package = work / "sklearn-binary"
    _package(ex.model, ex.data, ex.target, ex.task, "sklearn", package)
    pipe = load_skops(ex.model, ())
    peer = work / "peer-sklearn.joblib"
    joblib.dump(pipe, peer)
    iface = interface_of(read_manifest(package).interface)
    x = ex.features()
    recs = records_from_frame(iface, x)
    dtypes = {m["name"]: m["datatype"] for m in iface.v2_inputs()}

    def pandas_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
        inputs = []
        for name in x.columns:
            t: dict[str, Any] = {"name": name, "shape": [len(rows)], "datatype": dtypes[name],
                                 "data": [r[name] for r in rows]}
            if dtypes[name] == "BYTES":
                t["parameters"] = {"content_type": "str"}
            inputs.append(t)
        return {"parameters": {"content_type": "pd"}, "inputs": inputs}

    offline = [float(v) for v in ex.offline(x)]
    bodies = _write_bodies(work, "sklearn", {"v2-1": _v2_columns(iface, recs[:1]),
                                             "v2-n": _v2_columns(iface, recs),
                                             "records-n": {"instances": recs}})
    peer_bodies = _write_bodies(work, "sklearn-peer", {"1": pandas_body(recs[:1]), "n": pandas_body(recs)})
    # predict_proba gives [P(benign), P(malignant)] per row: the second is the package's binary probability
    return BenchModel("sklearn-binary", package, "mlserver_sklearn.SKLearnModel", {"model.joblib": peer},
                      {"extra": {"predict_fn": "predict_proba"}}, offline, bodies, peer_bodies,
                      lambda out: [row[1] for row in _rows(out)],
                      "MLServer: pandas codec (one input per column, content_type pd; the category as BYTES str), "
                      "predict_fn predict_proba; the same fitted Pipeline saved with joblib")


def _rows(out: dict[str, Any]) -> list[list[float]]:
    """A V2 output tensor of shape [n, k] as n rows."""
    n, k = out["shape"][0], (out["shape"][1] if len(out["shape"]) > 1 else 1)
    data = [float(v) for v in out["data"]]
    return [data[i * k:(i + 1) * k] for i in range(n)]


def lightgbm_model(work: Path) -> BenchModel:
    """The LightGBM multiclass example (wine, 13 numeric features, 3 classes; no categoricals, so nothing to
    encode). Both load the same Booster text file; MLServer (mlserver-lightgbm) takes one numeric tensor of the
    rows: FP64 here (FP32 would round the inputs: its answers would differ from the offline ones near a split)."""
    from mlops.features import interface_of, records_from_frame
    from mlops.formats.manifest import read_manifest
    from tests.examples import lightgbm_multiclass

    ex = lightgbm_multiclass(work / "src-lightgbm")
    package = work / "lightgbm-multiclass"
    _package(ex.model, ex.data, ex.target, ex.task, "lightgbm", package)
    iface = interface_of(read_manifest(package).interface)
    x = ex.features()[iface.names]
    recs = records_from_frame(iface, x)
    matrix = x.to_numpy(dtype="float64")

    def tensor(m: Any) -> dict[str, Any]:
        return {"inputs": [{"name": "input-0", "shape": list(m.shape), "datatype": "FP64",
                            "data": m.ravel().tolist()}]}

    offline = [float(v) for v in ex.offline(x).ravel()]
    bodies = _write_bodies(work, "lightgbm", {"v2-1": _v2_columns(iface, recs[:1]),
                                              "v2-n": _v2_columns(iface, recs),
                                              "records-n": {"instances": recs}})
    peer_bodies = _write_bodies(work, "lightgbm-peer", {"1": tensor(matrix[:1]), "n": tensor(matrix)})
    return BenchModel("lightgbm-multiclass", package, "mlserver_lightgbm.LightGBMModel",
                      {"model.txt": ex.model}, {}, offline, bodies, peer_bodies,
                      lambda out: [v for row in _rows(out) for v in row],
                      "MLServer: one FP64 tensor [n, 13] of the rows (numeric-only model); the same Booster file. "
                      "Ours: one tensor per input (`mlops`), and MLServer's own body (`mlops-same-request`)",
                      same_request=True)


def xgboost_model(work: Path, models: Path | None) -> BenchModel:
    """The churn xgboost model (trained here unless --models): ours its package (models/), MLServer
    (mlserver-xgboost) the same model.ubj and one FP32 tensor of the rows already encoded, as in the main bench."""
    target = work / "xgb"
    target.mkdir()
    models = models or train(target)
    package = work / MODEL
    shutil.copytree(models, package)
    p = payloads(package, target, models.parent / "data/prepared/test.csv")
    f = p["files"]
    bodies = {"v2-1": f[("v2", 1)], "v2-n": f[("v2", 100)], "records-n": f[("records", 100)]}
    peer_bodies = {"1": f[("mlserver", 1)], "n": f[("mlserver", 100)]}
    return BenchModel(MODEL, package, "mlserver_xgboost.XGBoostModel", {"model.ubj": models / "model.ubj"}, {},
                      p["offline"], bodies, peer_bodies, lambda out: [float(v) for v in out["data"]],
                      "MLServer: one FP32 tensor of the encoded rows (category codes); the same model.ubj")


def _max_diff(got: list[float], want: list[float], who: str) -> float:
    if len(got) != len(want):
        raise SystemExit(f"{who}: {len(got)} values, the offline path gives {len(want)}")
    diff = max(abs(a - b) for a, b in zip(got, want, strict=True))
    if diff > TOLERANCE:
        raise SystemExit(f"{who}: answers differ from the offline predictions by {diff:.3g} (> {TOLERANCE})")
    return diff


class OursPackage:
    """`mlops serve --model-dir PACKAGE` (the package's directory name is the served name)."""

    def __init__(self, bm: BenchModel, work: Path, workers: int) -> None:
        self.bm, self.workers, self.port = bm, workers, free_port()
        self.log = open(work / f"ours-{bm.name}.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([str(BIN / "mlops"), "serve", "--model-dir", str(bm.package), "--store",
                                      str(work / f"store-{bm.name}"), "--port", str(self.port),
                                      "--workers", str(workers)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> dict[str, Any]:
        ready_s = wait_ready(f"{self.base}/v2/health/ready", self.proc, 120)
        b = self.bm.ours_bodies
        out = post(f"{self.base}/v2/models/{self.bm.name}/infer", b["v2-n"][0].read_bytes())["outputs"][0]
        rec = post(f"{self.base}/v1/models/{self.bm.name}/predict", b["records-n"][0].read_bytes())["predictions"]
        flat = [float(v) for v in out["data"]]
        flat_rec = [float(v) for r in rec for v in (r if isinstance(r, list) else [r])]
        diff = max(_max_diff(flat, self.bm.offline, f"mlops serve V2 ({self.bm.name})"),
                   _max_diff(flat_rec, self.bm.offline, f"mlops serve records ({self.bm.name})"))
        if self.bm.same_request:  # MLServer's body, answered by ours as the per-input one is
            same = post(f"{self.base}/v2/models/{self.bm.name}/infer", self.bm.peer_bodies["n"][0].read_bytes())
            diff = max(diff, _max_diff([float(v) for v in same["outputs"][0]["data"]], self.bm.offline,
                                       f"mlops serve V2, MLServer's request ({self.bm.name})"))
        return {"command": f"mlops serve --model-dir {self.bm.name} --workers {self.workers}",
                "ready_s": round(ready_s, 2), "max_abs_diff_vs_offline": diff}

    def cases(self) -> dict[tuple[str, str, int], tuple[Any, ...]]:
        url = f"{self.base}/v2/models/{self.bm.name}/infer"
        out: dict[tuple[str, str, int], tuple[Any, ...]] = {("mlops", "v2", 1): (url, self.bm.ours_bodies["v2-1"][1])}
        if self.bm.same_request:
            out[("mlops-same-request", "v2", 1)] = (url, self.bm.peer_bodies["1"][1])
        return out

    def stop(self) -> None:
        stop_group(self.proc, 20)
        self.log.close()


class MLServerRuntime:
    """MLServer 1.7.1 with the runtime for BM's format: its defaults but for the ports (one inference worker
    process), or tuned: `parallel_workers: 0` (inference in the server's own process) and `metrics_endpoint: null`
    (no Prometheus middleware on every request), what a careful user would run."""

    def __init__(self, bm: BenchModel, work: Path, venv: Path, tuned: bool) -> None:
        self.bm, self.venv, self.tuned = bm, venv, tuned
        self.label = "mlserver-tuned" if tuned else "mlserver-default"
        root = work / self.label / bm.name
        (root / bm.name).mkdir(parents=True)
        for name, src in bm.peer_files.items():
            shutil.copy2(src, root / bm.name / name)
        self.port, grpc_port, metrics_port = free_port(), free_port(), free_port()
        settings: dict[str, Any] = {"http_port": self.port, "grpc_port": grpc_port, "metrics_port": metrics_port,
                                    "host": "127.0.0.1"}
        if tuned:
            settings.update({"parallel_workers": 0, "metrics_endpoint": None})
        self.settings = settings
        (root / "settings.json").write_text(json.dumps(settings))
        (root / bm.name / "model-settings.json").write_text(json.dumps({
            "name": bm.name, "implementation": bm.peer_impl,
            "parameters": {"uri": f"./{next(iter(bm.peer_files))}", "version": VERSION, **bm.peer_params}}))
        self.log = open(work / f"{self.label}-{bm.name}.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(root)], cwd=root,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> dict[str, Any]:
        ready_s = wait_ready(f"{self.base}/v2/models/{self.bm.name}/ready", self.proc, 180)
        out = post(f"{self.base}/v2/models/{self.bm.name}/infer", self.bm.peer_bodies["n"][0].read_bytes())
        diff = _max_diff(self.bm.peer_output(out["outputs"][0]), self.bm.offline, f"{self.label} ({self.bm.name})")
        shown = {k: v for k, v in self.settings.items() if k in ("parallel_workers", "metrics_endpoint")}
        return {"settings": shown or "defaults (parallel_workers=1, metrics on) but ports and host",
                "implementation": self.bm.peer_impl, "ready_s": round(ready_s, 2), "max_abs_diff_vs_offline": diff}

    def cases(self) -> dict[tuple[str, str, int], tuple[Any, ...]]:
        return {(self.label, "v2", 1): (f"{self.base}/v2/models/{self.bm.name}/infer", self.bm.peer_bodies["1"][1])}

    def stop(self) -> None:
        stop_group(self.proc, 10)
        self.log.close()


def run_runtimes(args: argparse.Namespace, names: list[str]) -> None:
    """Each runtime: `mlops serve` beside MLServer's runtime for the same model, defaults and tuned; single rows at
    8 connections (wrk), every round on the three servers back to back, the order rotating."""
    sys.path.insert(0, str(REPO))  # tests/examples.py builds the example models
    ensure_runtimes_venv(args.mlserver_venv)
    versions = subprocess.run([str(args.mlserver_venv / "bin" / "python"), "-c",
                               "from importlib.metadata import version as v; print(' '.join(p + '=' + v(p) for p in "
                               "('mlserver', 'mlserver-sklearn', 'mlserver-lightgbm', 'mlserver-xgboost', "
                               "'scikit-learn', 'lightgbm', 'xgboost')))"],
                              capture_output=True, text=True, check=True).stdout.split()
    load_before = [round(v, 2) for v in os.getloadavg()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
        work = Path(tmp)
        for name in names:
            bm = {"sklearn": lambda: sklearn_model(work), "lightgbm": lambda: lightgbm_model(work),
                  "xgboost": lambda: xgboost_model(work, args.models)}[name]()
            servers: list[Any] = [OursPackage(bm, work, args.workers),
                                  MLServerRuntime(bm, work, args.mlserver_venv, tuned=False),
                                  MLServerRuntime(bm, work, args.mlserver_venv, tuned=True)]
            load = [round(v, 2) for v in os.getloadavg()]
            try:
                info = [srv.start() for srv in servers]
                cases: dict[tuple[str, str, int], tuple[Any, ...]] = {}
                for srv in servers:
                    cases.update(srv.cases())
                print(f"{name}: {bm.name}", file=sys.stderr)
                runs = drive(cases, [8], args.duration, args.rounds)
            finally:
                for srv in servers:
                    srv.stop()
            by = {r["server"]: r for r in runs}
            ours = by["mlops"]
            ratios: dict[str, Any] = {}
            for peer in ("mlserver-default", "mlserver-tuned"):
                b = by[peer]
                for label in ("mlops", "mlops-same-request"):
                    if label not in by:
                        continue
                    key = peer if label == "mlops" else f"{peer} (same request)"
                    ratios[key] = {"rps_ratio": round(by[label]["rps"] / max(b["rps"], 1e-9), 1),
                                   "rps_ratio_each_round": [round(x / max(y, 1e-9), 1) for x, y in
                                                            zip(by[label]["rps_each"], b["rps_each"], strict=True)]}
            results[name] = {
                "model": bm.name, "request": bm.note, "load_average_before": load,
                "load_average_after": [round(v, 2) for v in os.getloadavg()],
                "ours": info[0], "mlserver_default": info[1], "mlserver_tuned": info[2], "runs": runs,
                "ratios": ratios,
                "targets": {"5x_tuned_mlserver_rps": ratios["mlserver-tuned"]["rps_ratio"] >= 5,
                            "p99_under_10ms": ours["p99_ms"] < 10,
                            **({"5x_tuned_mlserver_rps_same_request":
                                ratios["mlserver-tuned (same request)"]["rps_ratio"] >= 5,
                                "p99_under_10ms_same_request": by["mlops-same-request"]["p99_ms"] < 10}
                               if "mlops-same-request" in by else {})},
            }
    print(json.dumps({
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "section": "runtimes", "rows": 1, "connections": 8, "duration_s": args.duration, "rounds": args.rounds,
        "workers": args.workers, "load_generator": wrk_version(), "mlserver_venv": versions,
        "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "runtimes": results,
        "targets_met": all(all(r["targets"].values()) for r in results.values()),
    }, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--connections", default="1,8,64")
    ap.add_argument("--workers", type=int, default=2, help="our worker processes")
    ap.add_argument("--mlserver-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--models", type=Path, help="a trained models/ directory (default: train one)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per case (figures are medians)")
    ap.add_argument("--no-mlserver", action="store_true")
    ap.add_argument("--no-grpc", action="store_true", help="REST only (no h2load, no --grpc-port)")
    ap.add_argument("--runtimes", nargs="?", const=",".join(RUNTIMES), default=None, metavar="LIST",
                    help="instead: each runtime (sklearn,lightgbm,xgboost) beside MLServer's runtime for the same "
                         "model, MLServer with its defaults and tuned; single rows at 8 connections")
    ap.add_argument("--grpc-loadgen", action="store_true",
                    help="instead: gRPC only, ours beside MLServer's gRPC, single rows, one grpcio load generator "
                         "in this process for both (--concurrency callers)")
    ap.add_argument("--concurrency", type=int, default=8, help="callers of --grpc-loadgen")
    args = ap.parse_args()
    if args.grpc_loadgen:
        run_grpc_loadgen(args)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    if args.runtimes is not None:
        names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
        unknown = [n for n in names if n not in RUNTIMES]
        if unknown or not names:
            raise SystemExit(f"--runtimes: {', '.join(unknown) or 'none given'}: choose from {', '.join(RUNTIMES)}")
        run_runtimes(args, names)
        return
    if not args.no_grpc and shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install -y nghttp2-client (or --no-grpc)")
    conns = [int(c) for c in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        models = args.models or train(work)
        model_sha256 = hashlib.sha256((models / "model.ubj").read_bytes()).hexdigest()
        p = payloads(models, work, models.parent / "data/prepared/test.csv")
        servers: list[Any] = [Ours(models, work, args.workers, grpc=not args.no_grpc)]
        if not args.no_mlserver:
            servers.append(MLServer(models, work, args.mlserver_venv, grpc=not args.no_grpc))
        try:
            info = [srv.start(p["files"], p["offline"]) for srv in servers]
            cases: dict[tuple[str, str, int], tuple[Any, ...]] = {}
            for srv in servers:
                cases.update(srv.cases(p["files"]))
            runs = drive(cases, conns, args.duration, args.rounds)
        finally:
            for srv in servers:
                srv.stop()
        ours, peer = info[0], (info[1] if len(info) > 1 else None)
    ratios = []
    for endpoint in ("v2", "grpc"):  # ours against MLServer on the same protocol
        for n in (1, 100):
            for c in conns:
                a = next((r for r in runs if r["server"] == "mlops" and r["endpoint"] == endpoint and r["rows"] == n
                          and r["connections"] == c), None)
                b = next((r for r in runs if r["server"] == "mlserver" and r["endpoint"] == endpoint
                          and r["rows"] == n and r["connections"] == c), None)
                if a is not None and b is not None:
                    paired = [round(x / max(y, 1e-9), 1) for x, y in zip(a["rps_each"], b["rps_each"], strict=True)]
                    ratios.append({"endpoint": endpoint, "rows": n, "connections": c,
                                   "rps_ratio": round(a["rps"] / max(b["rps"], 1e-9), 1),
                                   "rps_ratio_each_round": paired, "p99_ms_ours": a["p99_ms"],
                                   "p99_ms_mlserver": b["p99_ms"]})

    def ratio(n: int, c: int, endpoint: str = "v2") -> dict[str, Any] | None:
        return next((r for r in ratios if r["endpoint"] == endpoint and r["rows"] == n and r["connections"] == c),
                    None)

    r8, r64, g8 = ratio(1, 8), ratio(100, 64), ratio(1, 8, "grpc")
    targets = {
        "single_rows_8_connections_5x_and_lower_p99": None if r8 is None else
        r8["rps_ratio"] >= 5 and r8["p99_ms_ours"] < r8["p99_ms_mlserver"],
        "goal_8x_and_p99_under_10ms": None if r8 is None else r8["rps_ratio"] >= 8 and r8["p99_ms_ours"] < 10,
        "batches_100_rows_64_connections_3x": None if r64 is None else r64["rps_ratio"] >= 3,
        "grpc_single_rows_8_connections_5x": None if g8 is None else g8["rps_ratio"] >= 5,
    }
    print(json.dumps({
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "model_sha256": model_sha256, "duration_s": args.duration, "rounds": args.rounds,
        "load_generator": wrk_version() + ("" if args.no_grpc else f"; gRPC: {h2load_version()}"),
        "load_average_after": os.getloadavg()[0],
        "ours": ours, "mlserver": peer, "runs": runs, "ratios": ratios, "targets": targets,
    }, indent=2))


if __name__ == "__main__":
    main()
