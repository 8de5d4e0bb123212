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


def build_inputs(project: Path, work: Path, sizes: list[int], seed: int = 7) -> dict[str, Any]:
    """The reference profile, and per size: request logs (2 worker files) and a CSV of the same rows."""
    import numpy as np
    import orjson
    import pandas as pd

    from mlops.config import load_params
    from mlops.features import bind_booster, parse_model_interface, predict, records_from_frame
    from mlops.profile import build_profile, save_profile
    from mlops.stages.data import features_and_label, load_prepared
    from mlops.stages.evaluate import predict_proba
    from mlops.stages.train import load_model

    params = load_params(project / "params.yaml")
    booster, schema = load_model(project)
    iface = parse_model_interface(schema)
    names = iface.names
    test = load_prepared(project / "data/prepared/test.csv", params.data)
    train = load_prepared(project / "data/prepared/train.csv", params.data)
    x_test, y_test = features_and_label(test, params.data)
    scores = predict_proba(booster, x_test[names])
    profile = build_profile(test, schema, scores, y_test, params.evaluate.segments,
                            threshold=params.evaluate.threshold)
    save_profile(work / "reference.json", profile)
    test[names].to_csv(work / "reference.csv", index=False)

    base = pd.concat([train, test], ignore_index=True)
    bind_booster(booster, iface)
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
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--project", type=Path, default=None, help="a trained example project (default: build one)")
    ap.add_argument("--evidently-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--side", choices=["ours", "prepare"], help=argparse.SUPPRESS)
    ap.add_argument("--args", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side == "ours":
        print(json.dumps(side_ours(*args.args)))
        return
    if args.side == "prepare":
        project, work, *sizes = args.args
        print(json.dumps(build_inputs(Path(project), Path(work), [int(n) for n in sizes])))
        return
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        project = args.project or trained_project(work)
        # The data is made in a process of its own: the measured processes must not inherit a large parent.
        made = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--side", "prepare", "--args",
                               str(project), str(work), *map(str, args.rows)], capture_output=True, text=True,
                              check=True, cwd=REPO)
        inputs = json.loads(made.stdout.strip().splitlines()[-1])
        prepared_s = time.perf_counter() - t
        ev_python = ensure_venv(args.evidently_venv)
        results: dict[str, Any] = {}
        for n in args.rows:
            size = inputs["sizes"][str(n)]
            out = work / f"out{n}"
            out.mkdir()
            me = [sys.executable, str(Path(__file__).resolve()), "--side", "ours", "--args", inputs["reference"]]
            results[str(n)] = {
                "log_mib": round(size["log_bytes"] / 2**20, 1), "csv_mib": round(size["csv_bytes"] / 2**20, 1),
                "ours_logs": run_side([*me, "logs", size["logs"], str(out)]),
                "ours_csv": run_side([*me, "file", size["csv"], str(out)]),
                "evidently": run_side([str(ev_python), "-c", EVIDENTLY_SIDE, inputs["reference_csv"], size["csv"]]),
            }
    print(json.dumps({
        "benchmark": "monitor: drift check of N rows against the 1,409-row reference (churn test split); shifts "
                     "injected: monthly_charges x1.3, contract mix towards month-to-month",
        "shifted": list(SHIFTED), "reference_rows": inputs["reference_rows"],
        "note": "2-core VM shared with other agents while measured: times vary between runs",
        "data_prepared_s": round(prepared_s, 1), "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
