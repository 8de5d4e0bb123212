"""Serving benchmark: `mlops serve` beside MLServer 1.7.1 + mlserver-xgboost 1.7.1, same model file, same load.

    .venv/bin/python bench/serving.py [--duration 5] [--rounds 3] [--connections 1,8,64] [--workers 2]
        [--mlserver-venv /work/.bench-venvs/mlserver] [--models DIR] [--no-mlserver]

Trains the churn model in a temporary copy of the example project (or takes --models PROJECT/models, beside its
data/prepared/test.csv), starts both servers on free loopback ports, checks that each answers 100 test rows as the
offline path does, then drives them with wrk (Debian's package: `apt-get install -y wrk`), one at a time: single
rows and 100-row batches at each connection count, --duration seconds per run after a 1 s warm-up. Each case runs
on every server back to back, --rounds times with the order rotating, so that both see the same moments of a shared
machine's background load; figures are the medians of the rounds (each round's figures are kept too). wrk's own
Lua `done()` hook reports requests, p50, p99 and errors. Prints JSON with every run and the ours/MLServer ratios.

Payloads, both Open Inference Protocol V2 REST: ours gets the raw test rows, one input per feature (strings for
categories: it validates and encodes them itself); MLServer gets what mlserver-xgboost takes, one FP32 tensor of
the already encoded rows (it could not read the category strings). Ours also runs its records endpoint
(`/v1/models/NAME/predict`), reported beside.

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
    from mlops.features import encode_records, read_interface, records_from_frame
    from mlops.stages.data import features_and_label, load_prepared

    params = load_params(REPO / "params.yaml")
    iface = read_interface(models / "feature_schema.json")
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
    return out


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

    def __init__(self, models: Path, work: Path, workers: int) -> None:
        from mlops import modelstore
        from mlops.files import sha256_file

        store = work / "store"
        sha = sha256_file(models / "model.ubj")
        modelstore.install(store, MODEL, VERSION, models, model_file="model.ubj", model_sha256=sha, meta={})
        self.port = free_port()
        self.workers = workers
        self.log = open(work / "ours.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([sys.executable, "-m", "mlops", "serve", "--store", str(store), "--model", MODEL,
                                      "--port", str(self.port), "--workers", str(workers)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "MLOPS_ADMIN_TOKEN": "bench-" + sha[:16]})
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, files: dict, offline: list[float]) -> dict[str, Any]:
        ready_s = wait_ready(f"{self.base}/v2/health/ready", self.proc, 60)
        got = post(f"{self.base}/v2/models/{MODEL}/infer", files[("v2", 100)][0].read_bytes())["outputs"][0]["data"]
        rec = post(f"{self.base}/v1/models/{MODEL}/predict", files[("records", 100)][0].read_bytes())["predictions"]
        diff = max(max(abs(a - b) for a, b in zip(got, offline, strict=True)),
                   max(abs(a - b) for a, b in zip(rec, offline, strict=True)))
        return {"workers": self.workers, "ready_s": round(ready_s, 2), "max_abs_diff_vs_offline": diff}

    def cases(self, files: dict) -> dict[tuple[str, str, int], tuple[str, Path]]:
        out = {}
        for n in (1, 100):
            out[("mlops", "v2", n)] = (f"{self.base}/v2/models/{MODEL}/infer", files[("v2", n)][1])
            out[("mlops", "records", n)] = (f"{self.base}/v1/models/{MODEL}/predict", files[("records", n)][1])
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

    def __init__(self, models: Path, work: Path, venv: Path) -> None:
        ensure_venv(venv)
        self.venv = venv
        root = work / "mlserver"
        (root / MODEL).mkdir(parents=True)
        shutil.copy2(models / "model.ubj", root / MODEL / "model.ubj")
        self.port, grpc, metrics = free_port(), free_port(), free_port()
        (root / "settings.json").write_text(json.dumps({"http_port": self.port, "grpc_port": grpc,
                                                        "metrics_port": metrics, "host": "127.0.0.1"}))
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
        version = subprocess.run([str(self.venv / "bin" / "python"), "-c", "import mlserver, xgboost; "
                                  "print(mlserver.__version__, xgboost.__version__)"],
                                 capture_output=True, text=True, check=False).stdout.split()
        return {"version": version[0] if version else None, "xgboost": version[1] if len(version) > 1 else None,
                "settings": "defaults (parallel_workers=1) but ports and host", "ready_s": round(ready_s, 2),
                "max_abs_diff_vs_offline": diff}

    def cases(self, files: dict) -> dict[tuple[str, str, int], tuple[str, Path]]:
        return {("mlserver", "v2", n): (f"{self.base}/v2/models/{MODEL}/infer", files[("mlserver", n)][1])
                for n in (1, 100)}

    def stop(self) -> None:
        stop_group(self.proc, 10)  # it can hang on SIGTERM ("waiting for background tasks")
        self.log.close()


def median(values: list[float]) -> float:
    v = sorted(values)
    k = len(v)
    return v[k // 2] if k % 2 else (v[k // 2 - 1] + v[k // 2]) / 2


def drive(cases: dict[tuple[str, str, int], tuple[str, Path]], conns: list[int], duration: float,
          rounds: int) -> list[dict[str, Any]]:
    """Each (rows, connections) case runs on every server back to back, ROUNDS times, the order rotating each
    round: both servers see the same moments of a shared machine's background load."""
    for url, lua in cases.values():
        run_wrk(url, lua, 8, 1.0)  # warm-up
    raw: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    keys = list(cases)
    for r in range(rounds):
        for n in (1, 100):
            for c in conns:
                here = [k for k in keys if k[2] == n]
                here = here[r % len(here):] + here[:r % len(here)]
                for server, endpoint, rows in here:
                    url, lua = cases[(server, endpoint, rows)]
                    got = run_wrk(url, lua, c, duration)
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


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    words = (out.stdout or out.stderr).split()
    return " ".join(words[:2]) if len(words) >= 2 else "wrk"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--connections", default="1,8,64")
    ap.add_argument("--workers", type=int, default=2, help="our worker processes")
    ap.add_argument("--mlserver-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--models", type=Path, help="a trained models/ directory (default: train one)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per case (figures are medians)")
    ap.add_argument("--no-mlserver", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    conns = [int(c) for c in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        models = args.models or train(work)
        model_sha256 = hashlib.sha256((models / "model.ubj").read_bytes()).hexdigest()
        p = payloads(models, work, models.parent / "data/prepared/test.csv")
        servers: list[Any] = [Ours(models, work, args.workers)]
        if not args.no_mlserver:
            servers.append(MLServer(models, work, args.mlserver_venv))
        try:
            info = [srv.start(p["files"], p["offline"]) for srv in servers]
            cases: dict[tuple[str, str, int], tuple[str, Path]] = {}
            for srv in servers:
                cases.update(srv.cases(p["files"]))
            runs = drive(cases, conns, args.duration, args.rounds)
        finally:
            for srv in servers:
                srv.stop()
        ours, peer = info[0], (info[1] if len(info) > 1 else None)
    ratios = []
    for n in (1, 100):
        for c in conns:
            a = next(r for r in runs if r["server"] == "mlops" and r["endpoint"] == "v2" and r["rows"] == n
                     and r["connections"] == c)
            b = next((r for r in runs if r["server"] == "mlserver" and r["rows"] == n and r["connections"] == c),
                     None)
            if b is not None:
                paired = [round(x / max(y, 1e-9), 1) for x, y in zip(a["rps_each"], b["rps_each"], strict=True)]
                ratios.append({"rows": n, "connections": c, "rps_ratio": round(a["rps"] / max(b["rps"], 1e-9), 1),
                               "rps_ratio_each_round": paired, "p99_ms_ours": a["p99_ms"],
                               "p99_ms_mlserver": b["p99_ms"]})

    def ratio(n: int, c: int) -> dict[str, Any] | None:
        return next((r for r in ratios if r["rows"] == n and r["connections"] == c), None)

    r8, r64 = ratio(1, 8), ratio(100, 64)
    targets = {
        "single_rows_8_connections_5x_and_lower_p99": None if r8 is None else
        r8["rps_ratio"] >= 5 and r8["p99_ms_ours"] < r8["p99_ms_mlserver"],
        "goal_8x_and_p99_under_10ms": None if r8 is None else r8["rps_ratio"] >= 8 and r8["p99_ms_ours"] < 10,
        "batches_100_rows_64_connections_3x": None if r64 is None else r64["rps_ratio"] >= 3,
    }
    print(json.dumps({
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "model_sha256": model_sha256, "duration_s": args.duration, "rounds": args.rounds,
        "load_generator": wrk_version(), "load_average_after": os.getloadavg()[0],
        "ours": ours, "mlserver": peer, "runs": runs, "ratios": ratios, "targets": targets,
    }, indent=2))


if __name__ == "__main__":
    main()
