"""Does hardening the server cost throughput? `mlops serve` of an earlier commit (before the trust-boundary limits:
Host allow-list, content-type check, receive timeouts, connection and row caps, server-issued ids, bounded
request log) against this checkout's, same churn model, same machine, rounds alternated. Prints JSON figures.

    .venv/bin/python bench/serving_limits.py [--base 5887b15] [--rounds 4] [--duration 8]
    .venv/bin/python bench/serving_limits.py --limits-off [--rounds 3]   # this code with and without the limits

The earlier commit runs from a temporary git worktree with this venv (PYTHONPATH): only the toolkit's code differs.
`--limits-off` isolates the limits' own cost: "before" is HEAD with the limits switched off in its worktree (receive
deadlines, the connection cap, the Host and content-type checks and the row cap; a server without them is never
offered as a setting), "after" this checkout as it is. Target (issue 18): no more than 5% lower with the limits on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # bench/serving.py: payloads, wrk, process control

REPO = Path(__file__).resolve().parents[1]
# (file, as it is, without the limit): what --limits-off changes in the "before" worktree, each must apply once
LIMITS_OFF = [
    ("mlops/serve/server.py", "    http = GuardedProtocol.configured(settings.header_timeout, settings.body_timeout)",
     '    http = "httptools"'),
    ("mlops/serve/server.py", "limit_concurrency=settings.max_connections)", "limit_concurrency=None)"),
    ("mlops/serve/app.py", "            if host is not None and not self._host_allowed(host):",
     "            if False and host is not None and not self._host_allowed(host):"),
    ("mlops/serve/app.py", '            if method == "POST" and hlen is None and not is_json(ctype)',
     '            if False and method == "POST" and hlen is None and not is_json(ctype)'),
    ("mlops/serve/app.py", "        if rows > self._max_rows:", "        if False and rows > self._max_rows:"),
]


def switch_limits_off(tree: Path) -> None:
    for rel, old, new in LIMITS_OFF:
        text = (tree / rel).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"--limits-off: {rel} no longer has {old.strip()!r}: update LIMITS_OFF")
        (tree / rel).write_text(text.replace(old, new))


def start(code: Path, store: Path, models: Path, work: Path, tag: str, workers: int) -> tuple[Any, str]:
    """Install the model into STORE with CODE's own model store, then run CODE's `mlops serve` on it."""
    env = {**os.environ, "PYTHONPATH": str(code), "MLOPS_ADMIN_TOKEN": "bench-token-" + "x" * 32}
    install = ("from pathlib import Path; from mlops import modelstore; from mlops.files import sha256_file; "
               f"m = Path({str(models)!r}); modelstore.install(Path({str(store)!r}), {serving.MODEL!r}, "
               f"{serving.VERSION!r}, m, model_file='model.ubj', model_sha256=sha256_file(m / 'model.ubj'), meta={{}})")
    subprocess.run([sys.executable, "-c", install], env=env, check=True, cwd=work)
    port = serving.free_port()
    log = (work / f"{tag}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlops", "serve", "--store", str(store), "--model", serving.MODEL,
                             "--port", str(port), "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    serving.wait_ready(f"{base}/v2/health/ready", proc, 90)
    return proc, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="5887b15", help="the commit before the limits (default: main before issue 18)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", type=Path, default=REPO / "models", help="a trained churn models/ directory")
    ap.add_argument("--limits-off", action="store_true", help="before = HEAD with the limits switched off")
    args = ap.parse_args()
    if args.limits_off:
        args.base = "HEAD"

    work = Path(tempfile.mkdtemp(prefix="mlops-limits-"))
    old = work / "old"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.base], cwd=REPO, check=True)
    try:
        if args.limits_off:
            switch_limits_off(old)
        files = serving.payloads(args.models, work, REPO / "data/prepared/test.csv")["files"]
        sides = {"before": old, "after": REPO}
        results: dict[str, dict[str, list[dict[str, Any]]]] = {s: {"v2": [], "records": []} for s in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for side in order:
                proc, base = start(sides[side], work / f"store-{side}-{r}", args.models, work, f"{side}-{r}",
                                   args.workers)
                try:
                    for kind, path in (("v2", f"/v2/models/{serving.MODEL}/infer"),
                                       ("records", f"/v1/models/{serving.MODEL}/predict")):
                        results[side][kind].append(serving.run_wrk(base + path, files[(kind, 1)][1],
                                                                   args.connections, args.duration))
                finally:
                    serving.stop_group(proc, 20)
        summary: dict[str, Any] = {"base": args.base, "limits_off": args.limits_off,
                                   "rounds": args.rounds, "duration_s": args.duration,
                                   "connections": args.connections, "workers": args.workers,
                                   "load_average": os.getloadavg(), "cases": {}}
        for kind in ("v2", "records"):
            med = {s: {k: serving.median([x[k] for x in results[s][kind]]) for k in ("rps", "p50_ms", "p99_ms")}
                   for s in sides}
            errors = {s: sum(x["errors"] for x in results[s][kind]) for s in sides}
            change = round(100 * (med["after"]["rps"] / med["before"]["rps"] - 1), 1)
            summary["cases"][kind] = {**{s: {**med[s], "errors": errors[s]} for s in sides}, "rps_change_pct": change}
        print(json.dumps(summary, indent=2))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, check=False)


if __name__ == "__main__":
    main()
