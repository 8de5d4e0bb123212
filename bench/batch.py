"""Batch scoring: rows/s of `mlops predict`'s engine end to end (read Parquet, validate, predict, write Parquet)
against the physical limit (the runtime's own predict on the same rows already encoded in memory, in the same
process, runs interleaved with the end-to-end ones: the best of each), its peak memory on a large input (goal:
under 1 GiB for 10,000,000 rows), and a 2-worker Dask LocalCluster against a 1-worker one (one thread each, the
same partitions, runs interleaved, the best of each).

    .venv/bin/python bench/batch.py --rows 1000000 --memory-rows 10000000      # prints one JSON object
    .venv/bin/python bench/batch.py --no-dask --mlflow-venv /tmp/mlflow-venv --mlflow-rows 1000000

With --mlflow-venv (a venv holding mlflow and the same xgboost as ours; skipped with a note when absent; make one
with `uv venv DIR && uv pip install --python DIR/bin/python mlflow==3.17.2 xgboost==3.2.0 pandas==2.2.3`; 3.18.0
needs mlflow-tracing 3.18.0, which the registry here lacks): the same model file logged as an MLflow model
(mlflow.xgboost.save_model, by a script the bench runs in that venv), then
`mlflow models predict -m DIR -i in.csv -o out.json -t csv --env-manager local` timed end to end as a process
against one process of ours on the same rows (imports, read CSV, validate, encode, predict, write CSV of the row
number, the predictions and the version: `mlops predict --no-inputs` less the verified fetch), runs interleaved,
the best of each. Both read CSV: ours the raw rows (category strings, which it validates and encodes), MLflow the
same rows already encoded (its xgboost flavour builds a DMatrix from the DataFrame and cannot take the strings:
the encoding is done for it, outside the timing). MLflow writes its answers as JSON whatever -o is called. The
answers of both are compared (max difference) so that the figure is for the same work.

The model is the workspace's churn model (models/, as `mlops stage train` wrote it); the rows are the held-out
split repeated, written to Parquet in /tmp (deleted at the end). `mlops predict --ref` adds only the verified
fetch (once per run) to what is measured here. The machine is shared: the load averages are printed beside the
figures; compare ratios within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# One process: the physical limit, the engine end to end, the limit again (the machine's load drifts).
ENGINE = """
import json, resource, sys, time
from pathlib import Path
import numpy as np, pyarrow.parquet as pq
from mlops.predict import OutputSpec, load, run_local, source_from_directory
from mlops.predict.encode import arrow_values, encode_column
src = source_from_directory(Path(sys.argv[1]) / "models", "churn-model", "bench", classes=("No", "Yes"))
rt = load(src)
BATCH = 65_536
def limit(matrix):
    t = time.perf_counter()
    for start in range(0, len(matrix), BATCH):
        rt.predict_matrix(matrix[start:start + BATCH])
    return len(matrix) / (time.perf_counter() - t)
def run_engine():
    t = time.perf_counter()
    r = run_local(src, sys.argv[2], OutputSpec(url=sys.argv[3], batch_rows=BATCH))
    return r.rows / (time.perf_counter() - t)
if sys.argv[4] == "limit":
    table = pq.read_table(sys.argv[2]).slice(0, 1_000_000)
    matrix = np.stack([encode_column(f, arrow_values(table.column(f.name), f.type, "parquet"))[0]
                       for f in rt.interface.features], axis=1).astype(np.float32)
    del table
    # interleaved, REPEAT times each: the machine's load drifts; the best of each is the least disturbed
    limits, engines = [], []
    for _ in range(int(sys.argv[5])):
        limits.append(limit(matrix))
        engines.append(run_engine())
    limits.append(limit(matrix))
    print(json.dumps({"limits": limits, "engines": engines}))
else:
    engine = run_engine()
    print(json.dumps({"engine": engine, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

DASK = """
import json, sys, time
from pathlib import Path
from distributed import Client, LocalCluster
from mlops.predict import OutputSpec, run_dask, source_from_directory
if __name__ == "__main__":
    src = source_from_directory(Path(sys.argv[1]) / "models", "churn-model", "bench", classes=("No", "Yes"))
    parts = int(sys.argv[4])
    rows = int(sys.argv[5])
    spec = lambda name: OutputSpec(url=sys.argv[3] + name)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as c1, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c2, \
            Client(c1) as one, Client(c2) as two:
        times = {"1": [], "2": []}
        for k, c in (("1", one), ("2", two)):
            # warm-up: every worker imports, receives and verifies the model once (cached by its sha256)
            run_dask(c, src, sys.argv[2], spec(f"warm{k}"), partition_rows=rows // parts)
        for i in range(int(sys.argv[6])):  # interleaved: both see the same drift of the machine's load
            for k, c in (("1", one), ("2", two)):
                t = time.perf_counter()
                r = run_dask(c, src, sys.argv[2], spec(f"{k}-{i}"), partition_rows=rows // parts)
                times[k].append(time.perf_counter() - t)
        print(json.dumps({"rows": r.rows, "partitions": r.partitions, "seconds": times}))
"""


# One process of ours for the MLflow comparison, timed from outside like mlflow's: CSV in, CSV out.
OURS_CSV = """
import sys
from pathlib import Path
from mlops.predict import OutputSpec, run_local, source_from_directory
src = source_from_directory(Path(sys.argv[1]) / "models", "churn-model", "bench", classes=("No", "Yes"))
run_local(src, sys.argv[2], OutputSpec(url=sys.argv[3], format="csv", single=True, keep_inputs=False))
"""

# Run in the MLflow venv: the same model file as an MLflow model of the xgboost flavour.
MLFLOW_SAVE = """
import sys, xgboost, mlflow, mlflow.xgboost
booster = xgboost.Booster()
booster.load_model(sys.argv[1])
mlflow.xgboost.save_model(booster, sys.argv[2], model_format="ubj")
print(mlflow.__version__, xgboost.__version__)
"""


def make_encoded_csv(raw_csv: Path, path: Path) -> Path:
    """RAW_CSV's rows as the model's numeric matrix (categories as their codes), one column per feature: what
    MLflow's xgboost flavour can read."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from mlops.predict import load, source_from_directory
    from mlops.predict.encode import arrow_values, encode_column

    rt = load(source_from_directory(ROOT / "models", "churn-model", "bench", classes=("No", "Yes")))
    feats = rt.interface.features
    with pcsv.open_csv(raw_csv, read_options=pcsv.ReadOptions(block_size=1 << 24)) as reader, \
            open(path, "wb") as out:
        header = True
        for batch in reader:
            cols = [encode_column(f, arrow_values(batch.column(f.name), f.type, "csv"))[0] for f in feats]
            table = pa.table({f.name: np.asarray(c, dtype=np.float64) for f, c in zip(feats, cols, strict=True)})
            pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=header))
            header = False
    return path


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return seconds


def mlflow_compare(venv: Path, rows: int, repeat: int, tmp: Path) -> dict[str, Any]:
    """`mlflow models predict` against one process of ours on the same ROWS; see the module docstring."""
    import numpy as np
    import pandas as pd
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    python, cli = venv / "bin" / "python", venv / "bin" / "mlflow"
    model = tmp / "mlflow-model"
    saved = subprocess.run([str(python), "-c", MLFLOW_SAVE, str(ROOT / "models/model.ubj"), str(model)],
                           capture_output=True, text=True, check=False)
    if saved.returncode != 0:
        raise SystemExit(f"saving the MLflow model failed: {saved.stderr[-3000:]}")
    mlflow_version, xgb_version = saved.stdout.split()[-2:]
    raw = tmp / "raw.csv"
    pcsv.write_csv(pq.read_table(make_input(rows, tmp / "mlflow-in.parquet")), raw)
    encoded = make_encoded_csv(raw, tmp / "encoded.csv")
    ours_out, theirs_out = tmp / "ours.csv", tmp / "mlflow-out.json"
    ours_cmd = [sys.executable, "-c", OURS_CSV, str(ROOT), str(raw), str(ours_out)]
    theirs_cmd = [str(cli), "models", "predict", "-m", str(model), "-i", str(encoded), "-o", str(theirs_out),
                  "-t", "csv", "--env-manager", "local"]
    ours_s, theirs_s = [], []
    for _ in range(repeat):  # interleaved: both see the same drift of the machine's load
        ours_s.append(timed(ours_cmd))
        theirs_s.append(timed(theirs_cmd))
    got = pd.read_csv(ours_out)["probability"].to_numpy()
    theirs = np.asarray(json.loads(theirs_out.read_text())["predictions"], dtype=np.float64)
    best_ours, best_theirs = min(ours_s), min(theirs_s)
    return {"mlflow": mlflow_version, "mlflow_xgboost": xgb_version, "mlflow_rows": rows,
            "mlflow_input_mib": round(encoded.stat().st_size / 2**20, 1),
            "ours_input_mib": round(raw.stat().st_size / 2**20, 1),
            "ours_csv_process_s": round(best_ours, 2), "mlflow_process_s": round(best_theirs, 2),
            "ours_csv_rows_per_s": round(rows / best_ours), "mlflow_rows_per_s": round(rows / best_theirs),
            "ratio_to_mlflow": round(best_theirs / best_ours, 2),
            "ours_csv_runs_s": [round(x, 2) for x in ours_s], "mlflow_runs_s": [round(x, 2) for x in theirs_s],
            "answers_max_abs_diff": float(np.max(np.abs(got - theirs))) if len(got) == len(theirs) else None,
            "answers_rows": [len(got), len(theirs)]}


def make_input(rows: int, path: Path, row_group: int = 50_000) -> Path:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = pd.read_csv(ROOT / "data/prepared/test.csv")
    table = pa.Table.from_pandas(base, preserve_index=False)
    block = pa.concat_tables([table] * (-(-200_000 // len(base)))).slice(0, 200_000)
    with pq.ParquetWriter(path, table.schema) as w:
        done = 0
        while done < rows:
            n = min(rows - done, len(block))
            w.write_table(block.slice(0, n), row_group_size=row_group)
            done += n
    return path


def run(script: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def speed(a: argparse.Namespace, out: dict[str, object], tmp: Path) -> None:
    """End to end against the physical limit, and Dask 2 workers against 1, on --rows rows."""
    src = make_input(a.rows, tmp / "in.parquet")
    e = run(ENGINE, str(ROOT), str(src), str(tmp / "out"), "limit", str(a.repeat))
    limit, engine = max(e["limits"]), max(e["engines"])
    out.update({"end_to_end_rows_per_s": round(engine), "physical_limit_rows_per_s": round(limit),
                "ratio_to_limit": round(engine / limit, 3),
                "end_to_end_runs": [round(x) for x in e["engines"]],
                "physical_limit_runs": [round(x) for x in e["limits"]]})
    if not a.no_dask:
        d = run(DASK, str(ROOT), str(src), str(tmp / "d"), str(a.partitions), str(a.rows), str(a.repeat))
        t1, t2 = d["seconds"]["1"], d["seconds"]["2"]
        out["dask_partitions"] = d["partitions"]
        out["dask_1_worker_rows_per_s"] = round(d["rows"] / min(t1))
        out["dask_2_workers_rows_per_s"] = round(d["rows"] / min(t2))
        out["dask_speedup"] = round(min(t1) / min(t2), 3)
        out["dask_runs_seconds"] = {"1": [round(x, 2) for x in t1], "2": [round(x, 2) for x in t2]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the speed runs")
    ap.add_argument("--memory-rows", type=int, default=0, help="also score this many rows for the peak memory")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--partitions", type=int, default=8, help="partitions of the Dask runs (both the same)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of each measure (the best is kept)")
    ap.add_argument("--mlflow-venv", type=Path, default=None,
                    help="a venv with mlflow and xgboost: compare with `mlflow models predict` (see the docstring)")
    ap.add_argument("--mlflow-rows", type=int, default=1_000_000, help="rows of the MLflow comparison")
    ap.add_argument("--no-speed", action="store_true", help="skip the end-to-end/limit runs (e.g. MLflow only)")
    a = ap.parse_args()
    out: dict[str, object] = {"rows": a.rows, "load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        if a.mlflow_venv is None:
            out["mlflow_note"] = "skipped: pass --mlflow-venv DIR (a venv with mlflow and xgboost)"
        elif not (a.mlflow_venv / "bin" / "mlflow").is_file():
            out["mlflow_note"] = (f"skipped: {a.mlflow_venv} has no bin/mlflow (uv venv {a.mlflow_venv} && uv pip "
                                  f"install --python {a.mlflow_venv}/bin/python mlflow==3.17.2 xgboost==3.2.0)")
        else:
            out.update(mlflow_compare(a.mlflow_venv, a.mlflow_rows, a.repeat, Path(tmp)))
            out["load_average_after_mlflow"] = os.getloadavg()
    if not a.no_speed:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            speed(a, out, Path(tmp))
    if a.memory_rows:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            src = make_input(a.memory_rows, Path(tmp) / "big.parquet", row_group=100_000)
            out["memory_input_mib"] = round(src.stat().st_size / 2**20)
            m = run(ENGINE, str(ROOT), str(src), str(Path(tmp) / "out"), "memory", "1")
            out.update({"memory_rows": a.memory_rows, "memory_rows_per_s": round(m["engine"]),
                        "peak_rss_mib": round(m["peak_rss_mib"]),
                        "peak_rss_children_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                                       / 1024)})
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
