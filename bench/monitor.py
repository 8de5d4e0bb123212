"""Monitoring on 200,000 and 1,000,000 rows: `mlops monitor` against Evidently 0.7.23's DataDriftPreset.

    .venv/bin/python bench/monitor.py [--rows 200000 1000000] [--project DIR] [--evidently-venv DIR]

Data: rows resampled (seeded) from the churn data (train + test split of a trained example project), with two
shifts injected: monthly_charges scaled by 1.3, and the contract mix moved towards month-to-month (30% of the
other contracts relabelled). The model's scores are computed for the shifted rows, as the server would log them.
The reference is the held-out test split (1,409 rows): our profile is built from it, Evidently gets its rows.

Each side runs in its own process (ours in this venv, Evidently in its own venv because it needs pandas<3; created
with `uv` when missing), timed inside from the first byte read to the findings, and measured for peak memory
(ru_maxrss). Ours reads the request logs the server writes (JSON lines, two worker files) and, separately, the
same rows as CSV; Evidently reads the CSV with pandas (read time shown apart from its report time). Prints JSON.
Without --project it builds a trained copy of the example project in a temporary folder (dvc repro, ~20 s).

--dask-rows N (e.g. 10000000) adds the scale-out section (issue 14): N rows, made as above in part files of
--dask-part-rows rows each (Parquet, features and the model's probability: what `mlops predict` writes, read with
`--current DIR`, one task per part file), checked by one process against a 2-worker Dask cluster on the same
folder: --dask-cluster processes (default: a real `dask scheduler` and two `dask worker --nthreads 1` processes that
the bench starts on loopback and stops) or local (LocalCluster(n_workers=2, threads_per_worker=1)). Each side runs
--dask-repeat times (the first Dask run pays the workers' imports; the best is reported, each run is kept), rows/s
from the check's own time, peak memory: the single process's VmHWM; on the cluster the client's and each worker's
(read on the workers), summed. The findings must agree: every count in them equal (rows, category frequencies,
histogram counts), the same flagged features and alarms, and the largest difference of any other figure printed.
--no-evidently skips Evidently; `--rows` with no value skips the 200,000/1,000,000-row section (e.g. scale-out only:
`--rows --no-evidently --dask-rows 10000000`). Worker and client CPU per wall second are printed: a worker well
under 1.0 waited (for a core on a loaded machine, or for the scheduler).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVIDENTLY = "evidently==0.7.23"
DEFAULT_VENV = Path("/work/.bench-venvs/evidently")
SHIFTED = ("monthly_charges", "contract")


# --- data ----------------------------------------------------------------------------------------------------------


def trained_project(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from tests.helpers import copy_project, dvc

    root = copy_project(tmp / "project")
    env_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = env_path
    dvc(root, "repro")
    return root


def _reference(project: Path, work: Path) -> tuple[Any, Any, Any, Any]:
    """The churn project's model (bound to its interface), its interface, the test split, and train + test (what
    the benches resample); the reference profile of the test split written to WORK/reference.json."""
    import pandas as pd

    from mlops.config import load_params
    from mlops.features import bind_booster, parse_model_interface
    from mlops.profile import build_profile, save_profile
    from mlops.stages.data import features_and_label, load_prepared
    from mlops.stages.evaluate import predict_proba
    from mlops.stages.train import load_trained

    params = load_params(project / "params.yaml")
    booster, schema = load_trained(project)
    iface = parse_model_interface(schema)
    test = load_prepared(project / "data/prepared/test.csv", params.data)
    train = load_prepared(project / "data/prepared/train.csv", params.data)
    x_test, y_test = features_and_label(test, params.data)
    profile = build_profile(test, schema, predict_proba(booster, x_test[iface.names]), y_test,
                            params.evaluate.segments, threshold=params.evaluate.threshold)
    save_profile(work / "reference.json", profile)
    bind_booster(booster, iface)
    return booster, iface, test, pd.concat([train, test], ignore_index=True)


def build_parts(project: Path, work: Path, rows: int, part_rows: int, seed: int = 11) -> dict[str, Any]:
    """ROWS shifted and scored rows (the shifts of build_inputs) in Parquet part files of PART_ROWS, made one part
    at a time (memory bounded), and the reference profile."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops.features import encode_frame, predict

    booster, iface, _, base = _reference(project, work)
    names = iface.names
    rng = np.random.default_rng(seed)
    parts = work / f"parts{rows}"
    parts.mkdir(parents=True, exist_ok=True)
    categories = iface.features[names.index("contract")].categories
    done = index = 0
    while done < rows:
        n = min(part_rows, rows - done)
        frame = base.iloc[rng.integers(0, len(base), n)][names].reset_index(drop=True)
        frame["monthly_charges"] = frame["monthly_charges"] * 1.3
        contract = frame["contract"].astype(str)
        move = (contract != "Month-to-month").to_numpy() & (rng.random(n) < 0.3)
        contract[move] = "Month-to-month"
        frame["contract"] = pd.Categorical(contract, categories=categories)
        frame["probability"] = np.concatenate([predict(booster, encode_frame(iface, frame.iloc[i:i + 100_000]))
                                               for i in range(0, n, 100_000)])
        for c in frame.columns:  # plain strings, as `mlops predict` writes them
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].astype(str)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parts / f"part-{index:05d}.parquet",
                       row_group_size=100_000)
        done += n
        index += 1
    return {"reference": str(work / "reference.json"), "parts": str(parts), "files": index,
            "bytes": sum(p.stat().st_size for p in parts.iterdir())}


def build_inputs(project: Path, work: Path, sizes: list[int], seed: int = 7) -> dict[str, Any]:
    """The reference profile, and per size: request logs (2 worker files) and a CSV of the same rows."""
    import numpy as np
    import orjson
    import pandas as pd

    from mlops.features import predict, records_from_frame

    booster, iface, test, base = _reference(project, work)
    names = iface.names
    test[names].to_csv(work / "reference.csv", index=False)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"reference": str(work / "reference.json"), "reference_csv": str(work / "reference.csv"),
                           "reference_rows": len(test), "sizes": {}}
    for n in sizes:
        frame = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        frame["monthly_charges"] = frame["monthly_charges"] * 1.3
        contract = frame["contract"].astype(str)
        move = (contract != "Month-to-month").to_numpy() & (rng.random(n) < 0.3)
        contract[move] = "Month-to-month"
        frame["contract"] = pd.Categorical(contract, categories=iface.features[names.index("contract")].categories)
        from mlops.features import encode_frame

        probs = np.concatenate([predict(booster, encode_frame(iface, frame.iloc[i:i + 100_000]))
                                for i in range(0, n, 100_000)])
        d = work / f"n{n}"
        logs = d / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        records = records_from_frame(iface, frame)
        start = time.time() - 86_400
        step = 86_400 / n
        files = [open(logs / f"requests-w{w}.jsonl", "wb") for w in (0, 1)]  # noqa: SIM115
        try:
            for i, (rec, p) in enumerate(zip(records, probs.tolist(), strict=True)):
                ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * step)) + \
                    f".{int((start + i * step) % 1 * 1e6):06d}Z"
                line = {"ts": ts, "request_id": f"r{i:08d}", "model": "churn-model", "version": "v1.0.0",
                        "role": "stable", "endpoint": "v2", "row": 0, "rows": 1, "latency_ms": 0.4, "status": 200,
                        "inputs": rec, "outputs": {"probability": p}}
                files[i % 2].write(orjson.dumps(line) + b"\n")
        finally:
            for f in files:
                f.close()
        csv = frame[names].copy()
        csv["probability"] = probs
        csv.to_csv(d / "current.csv", index=False)
        out["sizes"][str(n)] = {"logs": str(logs), "csv": str(d / "current.csv"),
                                "log_bytes": sum(p.stat().st_size for p in logs.iterdir()),
                                "csv_bytes": (d / "current.csv").stat().st_size}
    return out


# --- the two sides (each in its own process) -------------------------------------------------------------------


def peak_mib() -> float:
    """This process's own peak resident memory (VmHWM: reset by exec, unlike ru_maxrss, which a process started
    by a large parent inherits)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def side_ours(reference: str, source: str, path: str, out: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    from mlops.jobs.monitor import monitor
    from mlops.monitor import MonitorAlert, MonitorParams

    imported = time.perf_counter()
    cpu0 = _cpu()
    kwargs: dict[str, Any] = {"log": Path(path)} if source == "logs" else {"current": Path(path)}
    try:
        result = monitor(Path(out), reference=Path(reference), out=Path(out), registered=None,
                         params=MonitorParams(), **kwargs)
    except MonitorAlert as alert:
        result = alert.result
    done = time.perf_counter()
    me = peak_mib()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest reading process
    processes = 2 if source == "logs" and (os.cpu_count() or 1) >= 2 else 1
    return {"check_s": round(result.seconds, 3), "with_reports_s": round(done - imported, 3),
            "import_s": round(imported - t0, 3), "cpu_s": round(_cpu() - cpu0, 2), "rows": result.window.rows,
            "maxrss_mib": round(me, 1), "reader_maxrss_mib": round(children, 1),
            "peak_mib_bound": round(me + (processes * children if children else 0), 1),
            "flagged": sorted(result.drifted_features),
            "alarms": [f"{a.check} {a.subject}" for a in result.alarms]}


def _findings(result: Any) -> dict[str, Any]:
    doc = result.as_json()
    return {"rows": result.window.rows, "flagged": sorted(result.drifted_features),
            "alarms": sorted(f"{a.check} {a.subject}" for a in result.alarms), "doc": doc}


def _check(reference: str, parts: str, out: str, client: Any) -> tuple[float, Any]:
    from mlops.jobs.monitor import monitor
    from mlops.monitor import MonitorAlert, MonitorParams

    t = time.perf_counter()
    try:
        result = monitor(Path(out), current=Path(parts), reference=Path(reference), out=Path(out), registered=None,
                         params=MonitorParams(), alarm_issue=False, client=client)
    except MonitorAlert as alert:
        result = alert.result
    return time.perf_counter() - t, result


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def side_scale(reference: str, parts: str, out: str, mode: str, repeat: str) -> dict[str, Any]:
    """One side of the scale-out section: MODE single (this process) or processes / local (a 2-worker cluster)."""
    t0 = time.perf_counter()
    import mlops.jobs.monitor  # noqa: F401  (the imports are timed apart)

    imported = time.perf_counter() - t0
    procs: list[subprocess.Popen[bytes]] = []
    client: Any = None
    cluster: Any = None
    started = 0.0
    try:
        if mode != "single":
            from distributed import Client, LocalCluster

            t = time.perf_counter()
            if mode == "local":
                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
                client = Client(cluster)
            else:
                procs, address = start_cluster()
                client = Client(address, timeout=60)
                client.wait_for_workers(2, timeout=120)
            started = time.perf_counter() - t
        runs, result = [], None
        workers0 = client.run(_own_cpu) if client is not None else {}
        cpu0 = _cpu()
        for _ in range(int(repeat)):
            seconds, result = _check(reference, parts, out, client)
            runs.append(seconds)
        cpu = _cpu() - cpu0  # this process's threads (on a cluster: the client's share only)
        assert result is not None
        res: dict[str, Any] = {"mode": mode, "import_s": round(imported, 2), "runs_s": [round(x, 2) for x in runs],
                               "best_s": round(min(runs), 2), "rows_per_s": round(result.window.rows / min(runs)),
                               "cpu_per_wall": round(cpu / sum(runs), 2),
                               "client_peak_mib": round(peak_mib(), 1), **_findings(result)}
        if client is not None:
            spent = client.run(_own_cpu)
            res["worker_cpu_per_wall"] = sorted(round((spent[w] - workers0[w]) / sum(runs), 2) for w in spent)
            workers = client.run(peak_mib)
            res.update({"cluster_start_s": round(started, 2), "workers": len(workers),
                        "worker_peak_mib": sorted(round(v, 1) for v in workers.values()),
                        "peak_mib_total": round(peak_mib() + sum(workers.values()), 1)})
        else:
            res["peak_mib_total"] = res["client_peak_mib"]
        return res
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        for proc in reversed(procs):
            stop_group(proc)


def start_cluster() -> tuple[list[subprocess.Popen[bytes]], str]:
    """`dask scheduler` and two `dask worker --nthreads 1` processes on loopback, each in its own process group."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=env, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    for _ in range(2):
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard", "--host", "127.0.0.1"], env=env, cwd=REPO,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs, address


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    import contextlib
    import signal

    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def compare(a: Any, b: Any, path: str = "") -> tuple[list[str], float]:
    """Where two findings documents differ: counts (ints) and strings must be equal (listed when not); the largest
    difference of the floats is returned. Times and paths are left out."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs, worst = [], 0.0
        for k in sorted(set(a) | set(b)):
            if k in ("seconds", "path", "reference", "files", "summary", "generated") or k.endswith(("_s", "_at")):
                continue
            d, w = compare(a.get(k), b.get(k), f"{path}.{k}")
            diffs += d
            worst = max(worst, w)
        return diffs, worst
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        diffs, worst = [], 0.0
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d, w = compare(x, y, f"{path}[{i}]")
            diffs += d
            worst = max(worst, w)
        return diffs, worst
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        return [], abs(a - b)
    if isinstance(b, float) and isinstance(a, int) and not isinstance(a, bool):
        return [], abs(a - b)
    return ([] if a == b else [f"{path}: {a!r} != {b!r}"]), 0.0


def scale_section(project: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    made = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--side", "parts", "--args", str(project),
                           str(work), str(args.dask_rows), str(args.dask_part_rows)], capture_output=True, text=True,
                          check=True, cwd=REPO)
    info = json.loads(made.stdout.strip().splitlines()[-1])
    me = [sys.executable, str(Path(__file__).resolve()), "--side", "scale", "--args", info["reference"],
          info["parts"]]
    load = {"before": [round(v, 2) for v in os.getloadavg()]}
    (work / "out-single").mkdir()
    single = run_side([*me, str(work / "out-single"), "single", str(args.dask_repeat)])
    load["after_single"] = [round(v, 2) for v in os.getloadavg()]
    (work / "out-dask").mkdir()
    dask = run_side([*me, str(work / "out-dask"), args.dask_cluster, str(args.dask_repeat)])
    load["after_dask"] = [round(v, 2) for v in os.getloadavg()]
    if "error" in single or "error" in dask:
        return {"single": single, "dask": dask, "load_average": load}
    diffs, worst = compare(single.pop("doc"), dask.pop("doc"))
    return {"rows": args.dask_rows, "part_files": info["files"], "parquet_mib": round(info["bytes"] / 2**20, 1),
            "cluster": args.dask_cluster, "single": single, "dask_2_workers": dask,
            "speedup": round(single["best_s"] / dask["best_s"], 2),
            "check": {"counts_and_strings_equal": not diffs, "differences": diffs[:20],
                      "flagged_equal": single["flagged"] == dask["flagged"],
                      "alarms_equal": single["alarms"] == dask["alarms"],
                      "rows_equal": single["rows"] == dask["rows"] == args.dask_rows,
                      "max_abs_diff_other_figures": worst},
            "load_average": load}


EVIDENTLY_SIDE = r"""
import json, os, resource, sys, time
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
imported = time.perf_counter()
c0 = sum(os.times()[:4])
ref = pd.read_csv(sys.argv[1])
cur = pd.read_csv(sys.argv[2], usecols=list(ref.columns))
read = time.perf_counter()
snap = Report([DataDriftPreset()]).run(cur, ref)
flagged = []
for m in snap.dict()["metrics"]:
    cfg = m.get("config") or {}
    if cfg.get("type", "").endswith("ValueDrift"):
        method, value, th = str(cfg.get("method")), m["value"], cfg.get("threshold")
        drifted = value < th if "p_value" in method else value >= th
        if drifted:
            flagged.append(cfg["column"])
done = time.perf_counter()
print(json.dumps({"read_s": round(read - imported, 3), "report_s": round(done - read, 3),
                  "total_s": round(done - imported, 3), "import_s": round(imported - t0, 3),
                  "cpu_s": round(sum(os.times()[:4]) - c0, 2),
                  "maxrss_mib": round(peak_mib(), 1), "flagged": sorted(flagged)}))
"""


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.is_file():
        return python
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", str(venv), "--python", sys.executable], check=True, capture_output=True)
    subprocess.run([uv, "pip", "install", "--python", str(python), EVIDENTLY, "pandas<3"], check=True,
                   capture_output=True)
    return python


def run_side(cmd: list[str]) -> dict[str, Any]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "process_s": round(wall, 2)}
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_s"] = round(wall, 2)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[200_000, 1_000_000])
    ap.add_argument("--project", type=Path, default=None, help="a trained example project (default: build one)")
    ap.add_argument("--evidently-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--no-evidently", action="store_true", help="skip Evidently")
    ap.add_argument("--dask-rows", type=int, default=0, help="also: this many rows, one process vs 2 Dask workers")
    ap.add_argument("--dask-part-rows", type=int, default=1_000_000, help="rows per part file of --dask-rows")
    ap.add_argument("--dask-cluster", choices=["processes", "local"], default="processes",
                    help="processes: dask scheduler + 2 dask worker processes; local: LocalCluster(n_workers=2)")
    ap.add_argument("--dask-repeat", type=int, default=2, help="runs of each side (the best is reported)")
    ap.add_argument("--side", choices=["ours", "prepare", "parts", "scale"], help=argparse.SUPPRESS)
    ap.add_argument("--args", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side == "ours":
        print(json.dumps(side_ours(*args.args)))
        return
    if args.side == "scale":
        print(json.dumps(side_scale(*args.args)))
        return
    if args.side == "parts":
        project, work, rows, part_rows = args.args
        print(json.dumps(build_parts(Path(project), Path(work), int(rows), int(part_rows))))
        return
    if args.side == "prepare":
        project, work, *sizes = args.args
        print(json.dumps(build_inputs(Path(project), Path(work), [int(n) for n in sizes])))
        return
    scale: dict[str, Any] | None = None
    inputs: dict[str, Any] = {"reference_rows": None}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        project = args.project or trained_project(work)
        if args.rows:
            # The data is made in a process of its own: the measured processes must not inherit a large parent.
            made = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--side", "prepare", "--args",
                                   str(project), str(work), *map(str, args.rows)], capture_output=True, text=True,
                                  check=True, cwd=REPO)
            inputs = json.loads(made.stdout.strip().splitlines()[-1])
        prepared_s = time.perf_counter() - t
        ev_python = None if args.no_evidently else ensure_venv(args.evidently_venv)
        for n in args.rows:
            size = inputs["sizes"][str(n)]
            out = work / f"out{n}"
            out.mkdir()
            me = [sys.executable, str(Path(__file__).resolve()), "--side", "ours", "--args", inputs["reference"]]
            results[str(n)] = {
                "log_mib": round(size["log_bytes"] / 2**20, 1), "csv_mib": round(size["csv_bytes"] / 2**20, 1),
                "ours_logs": run_side([*me, "logs", size["logs"], str(out)]),
                "ours_csv": run_side([*me, "file", size["csv"], str(out)]),
            }
            if ev_python is not None:
                results[str(n)]["evidently"] = run_side([str(ev_python), "-c", EVIDENTLY_SIDE,
                                                         inputs["reference_csv"], size["csv"]])
        if args.dask_rows:
            scale = scale_section(project, work, args)
    print(json.dumps({
        "benchmark": "monitor: drift check of N rows against the 1,409-row reference (churn test split); shifts "
                     "injected: monthly_charges x1.3, contract mix towards month-to-month",
        "shifted": list(SHIFTED), "reference_rows": inputs["reference_rows"],
        "note": "2-core VM shared with other agents while measured: times vary between runs",
        "data_prepared_s": round(prepared_s, 1), "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "results": results, **({"scale_out": scale} if scale is not None else {}),
    }, indent=2))


if __name__ == "__main__":
    main()
