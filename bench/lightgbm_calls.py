"""CPU time per prediction call of the lightgbm runtime: the single-row C path against `Booster.predict`.

    .venv/bin/python bench/lightgbm_calls.py [--blocks 7] [--calls 3000]

The wine multiclass package of tests/examples.py (packaged with `mlops package` in a temporary folder); the same
loaded runtime predicts 1, 2, 4, 8 and 16 rows per call with its C path (`_SingleRow`, what the server's batcher
hands it) and with the C path switched off (`Booster.predict`, the runtime before it), interleaved, --blocks blocks
of --calls calls each; figures are the best block's process time per call (CPU time: far steadier than wall time on
a shared machine). Prints JSON, with the load average.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _best(f: Callable[[], object], calls: int) -> float:
    t = time.process_time()
    for _ in range(calls):
        f()
    return (time.process_time() - t) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    import numpy as np

    from mlops.features import encode_records
    from mlops.files import sha256_file
    from mlops.formats.manifest import read_manifest
    from mlops.package import PackageRequest, package_model
    from mlops.runtimes import load_runtime
    from tests.examples import as_records, lightgbm_multiclass

    with tempfile.TemporaryDirectory(prefix="bench-lgb-") as tmp:
        ex = lightgbm_multiclass(Path(tmp) / "ex")
        pkg = Path(tmp) / "pkg"
        package_model(PackageRequest(ex.model, ex.data, ex.target, "multiclass", out=pkg))
        rt: object = load_runtime(pkg, sha256={f.path: sha256_file(pkg / f.path) for f in read_manifest(pkg).files})
        fast = getattr(rt, "_fast")  # noqa: B009 (the runtime's private C path, switched off and on)
        if fast is None:
            sys.exit("the C path was not prepared (its probe differed from Booster.predict)")
        matrix = encode_records(rt.interface, as_records(ex.features()), rt.dtype)  # type: ignore[attr-defined]
        out: dict[str, dict[str, float]] = {}
        for rows in (1, 2, 4, 8, 16):
            m = np.ascontiguousarray(matrix[:rows])
            before, after = [], []
            for _ in range(args.blocks):
                setattr(rt, "_fast", None)  # noqa: B010
                before.append(_best(lambda m=m: rt.predict_matrix(m), args.calls))  # type: ignore[attr-defined]
                setattr(rt, "_fast", fast)  # noqa: B010
                after.append(_best(lambda m=m: rt.predict_matrix(m), args.calls))  # type: ignore[attr-defined]
            out[str(rows)] = {"booster_predict_us": round(min(before), 1), "c_path_us": round(min(after), 1)}
    print(json.dumps({"cpu_us_per_call_best_block": out, "blocks": args.blocks, "calls": args.calls,
                      "load_average": Path("/proc/loadavg").read_text().split()[:3]}, indent=1))


if __name__ == "__main__":
    main()
