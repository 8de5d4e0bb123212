"""Time to build the report (md + html + json + PNGs) on the example project with all outputs present, intervals
(paired bootstrap, `report.resamples`, 1,000 by default) and prediction diffs included; the budget is 3 s from a cold
process (`cold_total_s`).

Run from the repo root after `mlops run` (so the workspace and main's outputs are in the local DVC cache):
    .venv/bin/python bench/report.py [--repeat 5]
Prints JSON. The report goes to a temporary folder; the workspace is not touched.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--root", default=".")
    args = ap.parse_args()
    t0 = time.perf_counter()
    from mlops.jobs.report import build

    import_s = time.perf_counter() - t0
    runs, no_png = [], []
    with tempfile.TemporaryDirectory() as tmp:
        result = None
        for i in range(args.repeat):
            t = time.perf_counter()
            result = build(Path(args.root), out=Path(tmp) / f"r{i}")
            runs.append(time.perf_counter() - t)
        for i in range(args.repeat):
            t = time.perf_counter()
            build(Path(args.root), out=Path(tmp) / f"n{i}", pngs=False)
            no_png.append(time.perf_counter() - t)
        assert result is not None
        md = result.markdown
        # the evidence alone: intervals and the prediction diff against each side that was read
        from dataclasses import replace

        from mlops.jobs.report import load_report_config, with_headline
        from mlops.report import compare

        report = result.report
        cfg = with_headline(load_report_config(Path(args.root).resolve()), report.head.metrics).report
        evidence_s = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            for ref in (report.base, report.production):
                if ref is not None:
                    compare(cfg, report.head, replace(ref), "base")
            evidence_s.append(time.perf_counter() - t)
    print(json.dumps({
        "benchmark": "report build, all outputs present (example project, base read from the local DVC cache)",
        "import_s": round(import_s, 3),
        "first_build_s": round(runs[0], 3),
        "build_median_s": round(statistics.median(runs), 3),
        "build_without_png_median_s": round(statistics.median(no_png), 3),
        "cold_total_s": round(import_s + runs[0], 3),
        "repeat": args.repeat,
        "charts": len(result.report.charts),
        "evidence_median_s": round(statistics.median(evidence_s), 3),
        "comparisons": [{"against": c.against, "rows": c.rows, "intervals": len(c.intervals),
                         "resamples": next(iter(c.intervals.values())).resamples if c.intervals else 0,
                         "flips": c.diff.flips if c.diff else None} for c in result.report.comparisons],
        "cold_under_3s": import_s + runs[0] < 3.0,
        "markdown_chars": len(md),
        "base_source": result.report.base.source if result.report.base else None,
        "python": sys.version.split()[0],
    }, indent=2))


if __name__ == "__main__":
    main()
