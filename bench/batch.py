"""Batch scoring: rows/s of `mlops predict`'s engine end to end (read Parquet, validate, predict, write Parquet)
against the physical limit (the runtime's own predict on the same rows already encoded in memory, in the same
process, runs interleaved with the end-to-end ones: the best of each), its peak memory on a large input (goal:
under 1 GiB for 10,000,000 rows), and a 2-worker Dask LocalCluster against a 1-worker one (one thread each, the
same partitions, runs interleaved, the best of each).

    .venv/bin/python bench/batch.py --rows 1000000 --memory-rows 10000000      # prints one JSON object

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the speed runs")
    ap.add_argument("--memory-rows", type=int, default=0, help="also score this many rows for the peak memory")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--partitions", type=int, default=8, help="partitions of the Dask runs (both the same)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of each measure (the best is kept)")
    a = ap.parse_args()
    out: dict[str, object] = {"rows": a.rows, "load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        src = make_input(a.rows, Path(tmp) / "in.parquet")
        e = run(ENGINE, str(ROOT), str(src), str(Path(tmp) / "out"), "limit", str(a.repeat))
        limit, engine = max(e["limits"]), max(e["engines"])
        out.update({"end_to_end_rows_per_s": round(engine), "physical_limit_rows_per_s": round(limit),
                    "ratio_to_limit": round(engine / limit, 3),
                    "end_to_end_runs": [round(x) for x in e["engines"]],
                    "physical_limit_runs": [round(x) for x in e["limits"]]})
        if not a.no_dask:
            d = run(DASK, str(ROOT), str(src), str(Path(tmp) / "d"), str(a.partitions), str(a.rows), str(a.repeat))
            t1, t2 = d["seconds"]["1"], d["seconds"]["2"]  # type: ignore[index]
            out["dask_partitions"] = d["partitions"]
            out["dask_1_worker_rows_per_s"] = round(d["rows"] / min(t1))
            out["dask_2_workers_rows_per_s"] = round(d["rows"] / min(t2))
            out["dask_speedup"] = round(min(t1) / min(t2), 3)
            out["dask_runs_seconds"] = {"1": [round(x, 2) for x in t1], "2": [round(x, 2) for x in t2]}
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
