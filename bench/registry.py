"""Registry read benchmark: `mlops registry show --json` against `gto show --json` on a repo with N registry tags.

    .venv/bin/python bench/registry.py [--tags 10000] [--artifacts 10] [--no-gto] [--keep DIR]

Builds the repo with one `git fast-import` (commits + annotated tags, no `git tag` process per tag): each
artifact gets versions NAME@vX.Y.Z at their own commits, carrying mlops' metadata block like real promotions,
plus stage assignments NAME#STAGE#N (about one tag in five). Then times each command as a user runs it (a fresh
process, wall clock, best of --repeat), checks that both list the same latest versions and stages, and prints
JSON. GTO is the slow side (about 53 s for 10,000 tags on a 2-core machine): --no-gto skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
STAGES = ("dev", "staging", "production")


def _block(name: str, version: str, i: int) -> str:
    meta = {"format": "mlops.registry/1", "action": "register", "artifact": name, "version": version,
            "path": "models", "dvc_md5": f"{i:032x}.dir", "model_sha256": f"{i:064x}", "bump": "patch",
            "metrics": {"test.roc_auc": 0.84, "test.pr_auc": 0.66, "test.log_loss": 0.41},
            "interface": {"features": [{"name": f"f{k}", "type": "float"} for k in range(19)],
                          "output": {"name": "probability", "type": "float"}},
            "commit": "0" * 40, "pr": i, "run_url": None}
    return (f"{name} {version} (patch: interface unchanged)\n\n-----BEGIN MLOPS METADATA-----\n"
            f"{json.dumps(meta, indent=2, sort_keys=True)}\n-----END MLOPS METADATA-----\n")


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n" % len(raw) + raw + b"\n"


def build(repo: Path, n_tags: int, n_artifacts: int) -> dict[str, Any]:
    """One fast-import stream: a commit per version, an annotated tag per version and per assignment."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    per_artifact = n_tags // n_artifacts
    assigns_every = 5  # after every 4th version, one stage assignment: 1 tag in 5
    stream: list[bytes] = []
    when = 1_700_000_000
    mark = 0
    expected: dict[str, dict[str, Any]] = {}
    made = 0
    for a in range(n_artifacts):
        name = f"model-{a:02d}"
        counter = 0
        versions: list[tuple[str, int]] = []
        stages: dict[str, str] = {}
        for j in range(per_artifact):
            when += 1
            if j % assigns_every == assigns_every - 1 and versions:
                counter += 1
                stage = STAGES[counter % len(STAGES)]
                version, vmark = versions[-1 - (counter % 3 if len(versions) > 3 else 0)]
                stream.append(f"tag {name}#{stage}#{counter}\nfrom :{vmark}\n"
                              f"tagger Bench <bench@example.com> {when} +0000\n".encode())
                stream.append(_data(f"{name}: {stage} -> {version} (promote)\n"))
                stages[stage] = version
            else:
                mark += 1
                version = f"v1.{len(versions) // 100}.{len(versions) % 100}"
                stream.append(f"commit refs/heads/main\nmark :{mark}\n"
                              f"committer Bench <bench@example.com> {when} +0000\n".encode())
                stream.append(_data(f"{name} {version}"))
                stream.append(b"M 644 inline version.txt\n" + _data(f"{name} {version}"))
                stream.append(f"tag {name}@{version}\nfrom :{mark}\n"
                              f"tagger Bench <bench@example.com> {when} +0000\n".encode())
                stream.append(_data(_block(name, version, mark)))
                versions.append((version, mark))
            made += 1
        expected[name] = {"latest": versions[-1][0], "stages": stages}
    t0 = time.perf_counter()
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
    subprocess.run(["git", "pack-refs", "--all"], cwd=repo, check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
    return {"tags": made, "build_s": round(time.perf_counter() - t0, 2), "expected": expected}


def timed(cmd: list[str], cwd: Path, repeat: int, timeout: float) -> tuple[float | None, str]:
    best = None
    out = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            return None, ""
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
        out = proc.stdout
    return (round(best, 3) if best is not None else None), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument("--artifacts", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for mlops and git (GTO runs once)")
    ap.add_argument("--no-gto", action="store_true", help="skip GTO (it takes about a minute on 10,000 tags)")
    ap.add_argument("--gto-timeout", type=float, default=600)
    ap.add_argument("--keep", type=Path, help="build the repo here and keep it")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    repo = args.keep or tmp / "repo"
    env_keys = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    os.environ.update({k: os.environ.get(k, v) for k, v in env_keys.items()})
    try:
        built = build(repo, args.tags, args.artifacts)
        expected = built.pop("expected")
        result: dict[str, Any] = {"bench": "registry show", **built, "artifacts": args.artifacts,
                                  "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
        fer, _ = timed(["git", "for-each-ref", "--format=%(refname)%(objecttype)%(*objectname)%(taggerdate)"
                        "%(contents)", "refs/tags"], repo, args.repeat, 60)
        result["git_for_each_ref_s"] = fer
        ours_s, ours_out = timed([str(BIN / "mlops"), "registry", "show", "--json"], repo, args.repeat, 120)
        ours = json.loads(ours_out)["artifacts"]
        result["mlops_show_s"] = ours_s
        result["mlops_matches_expected"] = all(
            ours[n]["latest"] == e["latest"] and ours[n]["stages"] == e["stages"] for n, e in expected.items())
        start, _ = timed([str(BIN / "mlops"), "--version"], repo, args.repeat, 60)
        result["mlops_startup_s"] = start
        if not args.no_gto:
            gto_s, gto_out = timed([str(BIN / "gto"), "show", "--json"], repo, 1, args.gto_timeout)
            result["gto_show_s"] = gto_s
            if gto_out:
                theirs = json.loads(gto_out)
                result["gto_agrees"] = all(
                    theirs[n]["version"] == a["latest"]
                    and {s: v for s, v in theirs[n]["stage"].items() if v} == a["stages"] for n, a in ours.items())
            if gto_s and ours_s:
                result["speedup"] = round(gto_s / ours_s, 1)
        print(json.dumps(result, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
