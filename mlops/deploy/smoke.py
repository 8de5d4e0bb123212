"""The smoke test of a candidate on the running server: golden predictions on the exact version, then a canary
window under replayed traffic, measured per version by the responses' `x-model-version` and cross-checked
against the server's own /metrics counters.

A canary is judged on what the candidate can be blamed for: server errors (5xx), model failures and requests of
the replay (the deploy's own known-good records) that got no answer or a refusal. Other clients' bad requests
(4xx, `model_infer_request_client_error_total`) are reported beside the verdict and never fail it: anyone who can
reach the server can send them, so counting them would hand every client a veto on every deploy.

The golden file (golden.json in the model package, mlops.formats.golden): records, the predictions the saved model
gave them (a probability, a list per class or a value, by task), the output they are of and the model's sha256.
The golden check sends the records to the versioned V2 path (`/v2/models/NAME/versions/V/infer`, one input per
raw feature as the model's metadata lists them), so it tests the candidate whatever the traffic split says.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.deploy.client import Endpoint, Server, request
from mlops.errors import DeployError
from mlops.formats.golden import Golden, GoldenInvalid
from mlops.formats.golden import read_golden as _read_golden

Figure = float | int | str | None


@dataclass(frozen=True)
class Check:
    """One smoke-test finding: what was checked, whether it passed, the figures behind it."""

    name: str  # golden | canary_error_rate | canary_p99 | metrics
    passed: bool
    detail: str
    figures: dict[str, Figure] = field(default_factory=dict)


def read_golden(path: Path) -> Golden:
    """The golden records of an artifact (mlops.formats.golden, the one reader); DeployError naming the file when
    missing or malformed."""
    try:
        return _read_golden(path)
    except GoldenInvalid as exc:
        if not path.is_file():
            raise DeployError(f"{path.name}: the artifact has no golden records, so the candidate cannot be "
                              "smoke-tested", hint="package the model with `mlops package` (it writes golden.json "
                                                   "beside the model)") from None
        raise DeployError(exc.message, hint=exc.hint) from None


# --- golden ------------------------------------------------------------------------------------------------------


def v2_request(records: Sequence[Mapping[str, Any]], inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An Open Inference Protocol request: one input per raw feature (column), as the model's metadata lists them."""
    n = len(records)
    body: list[dict[str, Any]] = []
    for meta in inputs:
        name = str(meta.get("name"))
        shape = [int(d) for d in meta.get("shape") or [-1]]
        dims = [n if i == 0 or d == -1 else d for i, d in enumerate(shape)]
        body.append({"name": name, "datatype": str(meta.get("datatype", "BYTES")), "shape": dims,
                     "data": [r.get(name) for r in records]})
    return {"inputs": body}


def _answers(outputs: Any, name: str, golden: Golden) -> list[Any] | None:
    """The answer per record in the V2 output tensor NAME: a number, or (multiclass) the list of its row."""
    tensor = next((o for o in outputs if isinstance(o, dict) and o.get("name") == name), None)
    if tensor is None:
        return None
    data = tensor.get("data")
    shape = tensor.get("shape")
    if not isinstance(data, list):
        return None
    if data and isinstance(data[0], list):  # nested rows
        flat = [x for row in data for x in (row if isinstance(row, list) else [row])]
    else:
        flat = data
    n = len(golden.records)
    if golden.task == "multiclass":
        k = int(shape[1]) if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) else \
            (len(flat) // n if n else 0)
        if k <= 0 or len(flat) != n * k:
            return None
        return [flat[i * k:(i + 1) * k] for i in range(n)]
    return flat


def golden_check(server: Server, name: str, version: str, golden: Golden, tolerance: float,
                 output: str | None = None) -> Check:
    """The candidate's answers to the golden records against the recorded predictions (Golden.compare: within
    TOLERANCE, relative for values above 1; per class for a multiclass model)."""
    meta = server.model_metadata(name, version)
    inputs = meta.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return Check("golden", False, f"the server's metadata of {name} {version} lists no inputs")
    resp = server.infer(name, version, v2_request(golden.records, inputs))
    served = resp.headers.get("x-model-version")
    if resp.status != 200:
        return Check("golden", False, f"the candidate answered the golden records with HTTP {resp.status}: "
                     f"{resp.error()}", {"records": len(golden.records), "status": resp.status})
    if served is not None and served != version:
        return Check("golden", False, f"asked {version}, answered by {served}", {"served_by": served})
    outputs = (resp.json() or {}).get("outputs") or []
    wanted = output or golden.output
    got = _answers(outputs, wanted, golden) if wanted else None
    if got is None and outputs:  # an answer under another name: the first tensor (one-output models)
        first = outputs[0].get("name") if isinstance(outputs[0], dict) else None
        got = _answers(outputs, str(first), golden)
    if got is None or len(got) != len(golden.predictions):
        return Check("golden", False, f"expected {len(golden.predictions)} predictions"
                     f"{f' in output {wanted!r}' if wanted else ''}, got {len(got) if got is not None else 0}",
                     {"records": len(golden.records)})
    checked = dataclasses.replace(golden, tolerance=tolerance)
    try:
        bad = checked.compare(got)
    except GoldenInvalid as exc:
        return Check("golden", False, f"the answers do not fit the golden records: {exc.message}",
                     {"records": len(golden.records)})
    worst = max((m.diff for m in bad), default=0.0)
    if not bad:
        diffs = [abs(float(g) - e) for g, e in zip(_flat_all(got), golden.flat(), strict=False)]
        worst = max(diffs, default=0.0)
    figures: dict[str, Figure] = {"records": len(golden.records), "max_abs_diff": worst, "tolerance": tolerance,
                                  "mismatches": len(bad)}
    if bad:
        m = max(bad, key=lambda x: x.diff)
        return Check("golden", False, f"{len(bad)} of {len(golden.records)} golden predictions differ by more than "
                     f"{tolerance:g} (worst: record {m.record}, {_shown(m.got)} vs {_shown(m.expected)})", figures)
    return Check("golden", True, f"{len(golden.records)} golden predictions match within {tolerance:g} "
                 f"(max diff {worst:.2g})", figures)


def _flat_all(rows: Sequence[Any]) -> list[Any]:
    return [x for r in rows for x in (r if isinstance(r, list | tuple) else [r])]


def _shown(v: Any) -> str:
    if isinstance(v, tuple | list):
        return "[" + ", ".join(f"{float(x):.6f}" for x in v) + "]"
    return f"{float(v):.6f}"


# --- the canary window -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    version: str | None  # x-model-version of the response; None when there was no response
    ok: bool
    latency_ms: float


def replay(endpoint: Endpoint, name: str, records: Sequence[Mapping[str, Any]], requests: int, seconds: float,
           concurrency: int = 8, timeout: float = 10.0) -> list[Sample]:
    """REQUESTS single-record predictions on the records endpoint, spread evenly over SECONDS, from CONCURRENCY
    keep-alive connections: the split between stable and canary is the server's, as for real traffic."""
    path = f"{endpoint.base}/v1/models/{name}/predict"
    start = time.monotonic() + 0.05
    gap = seconds / requests if requests else 0.0
    counter = itertools.count()
    lock = threading.Lock()
    samples: list[Sample] = []

    def worker() -> None:
        conn = endpoint.connect(timeout)
        try:
            while True:
                with lock:
                    i = next(counter)
                if i >= requests:
                    return
                delay = start + i * gap - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                try:
                    resp = request(conn, "POST", path, {"instances": [dict(records[i % len(records)])]})
                    sample = Sample(resp.headers.get("x-model-version"), resp.status == 200,
                                    (time.perf_counter() - t0) * 1000)
                except OSError:
                    conn.close()
                    conn = endpoint.connect(timeout)
                    sample = Sample(None, False, (time.perf_counter() - t0) * 1000)
                except Exception:  # an http.client protocol error: a failed request all the same
                    conn.close()
                    conn = endpoint.connect(timeout)
                    sample = Sample(None, False, (time.perf_counter() - t0) * 1000)
                with lock:
                    samples.append(sample)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(concurrency, requests)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


def percentile(values: Sequence[float], q: float) -> float:
    """The Q-quantile (0..1) by the nearest-rank method: with few samples it is the worst of them, not less."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


# --- /metrics ----------------------------------------------------------------------------------------------------

_LINE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Series:
    """Prometheus text exposition -> {(name, labels): value}."""
    out: Series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        labels = frozenset(_LABEL.findall(m["labels"] or ""))
        out[(m["name"], labels)] = out.get((m["name"], labels), 0.0) + value
    return out


def counter(series: Series, name: str, **labels: str) -> float:
    """Sum of counter NAME (or NAME_total, as prometheus_client writes it) over series with LABELS."""
    want = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n in (name, f"{name}_total") and want <= ls)


def histogram_quantile(before: Series, after: Series, name: str, q: float, **labels: str) -> float | None:
    """The upper bound (ms) of the bucket holding the Q-quantile of NAME's observations between two scrapes."""
    want = set(labels.items())
    buckets: dict[float, float] = {}
    for series, sign in ((after, 1.0), (before, -1.0)):
        for (n, ls), v in series.items():
            if n == f"{name}_bucket" and want <= ls:
                le = dict(ls).get("le", "")
                bound = math.inf if le in ("+Inf", "Inf") else float(le)
                buckets[bound] = buckets.get(bound, 0.0) + sign * v
    if not buckets:
        return None
    total = buckets.get(math.inf, max(buckets.values()))
    if total <= 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound * 1000 if math.isfinite(bound) else math.inf
    return math.inf


# --- the verdict -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float
    max_p99_ms: float
    canary_percent: float


def window_checks(samples: Sequence[Sample], candidate: str, thresholds: Thresholds, metrics_before: Series | None,
                  metrics_after: Series | None, model: str) -> list[Check]:
    """The canary window's verdict on CANDIDATE: error rate and p99 by response version, then /metrics."""
    mine = [s for s in samples if s.version == candidate]
    orphans = [s for s in samples if s.version is None]  # no response at all: counted against the candidate
    others = [s for s in samples if s.version not in (candidate, None)]
    n = len(mine) + len(orphans)
    failed = sum(not s.ok for s in mine) + len(orphans)
    checks: list[Check] = []
    share = len(mine) / len(samples) if samples else 0.0
    base: dict[str, Figure] = {"requests": len(samples), "candidate_requests": len(mine),
                               "candidate_share": round(share, 4), "stable_requests": len(others),
                               "no_response": len(orphans)}
    expected = len(samples) * thresholds.canary_percent / 100
    if not mine and expected >= 5:
        checks.append(Check("canary_traffic", False, f"the candidate answered none of {len(samples)} requests "
                            f"(expected about {expected:.0f} at {thresholds.canary_percent:g}%)", base))
    rate = failed / n if n else 0.0
    checks.append(Check("canary_error_rate", rate <= thresholds.max_error_rate,
                        f"{failed} of {n} candidate requests failed ({rate:.2%}; at most "
                        f"{thresholds.max_error_rate:.2%})", {**base, "failed": failed, "error_rate": rate,
                                                              "max_error_rate": thresholds.max_error_rate}))
    p99 = percentile([s.latency_ms for s in mine], 0.99)
    p50 = percentile([s.latency_ms for s in mine], 0.5)
    if mine:
        checks.append(Check("canary_p99", p99 <= thresholds.max_p99_ms,
                            f"candidate p99 {p99:.1f} ms over {len(mine)} requests (at most "
                            f"{thresholds.max_p99_ms:g} ms)", {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                                                               "max_p99_ms": thresholds.max_p99_ms,
                                                               "requests": len(mine)}))
    if metrics_before is None or metrics_after is None:
        checks.append(Check("metrics", True, "the server exposes no /metrics: not cross-checked", {}))
        return checks
    ok_d = counter(metrics_after, "model_infer_request_success", model=model, version=candidate) - \
        counter(metrics_before, "model_infer_request_success", model=model, version=candidate)
    fail_d = counter(metrics_after, "model_infer_request_failure", model=model, version=candidate) - \
        counter(metrics_before, "model_infer_request_failure", model=model, version=candidate)
    # Reported, not judged: what clients got wrong says nothing of the candidate.
    client_d = counter(metrics_after, "model_infer_request_client_error", model=model, version=candidate) - \
        counter(metrics_before, "model_infer_request_client_error", model=model, version=candidate)
    seen = ok_d + fail_d
    server_rate = fail_d / seen if seen else 0.0
    server_p99 = histogram_quantile(metrics_before, metrics_after, "model_infer_request_duration", 0.99,
                                    model=model, version=candidate)
    figures: dict[str, Figure] = {"server_success": ok_d, "server_failure": fail_d, "server_error_rate": server_rate,
                                  "server_client_errors": client_d, "server_p99_ms_at_most": server_p99,
                                  "replay_candidate_requests": len(mine)}
    apart = f"; {client_d:g} client errors (bad requests, not counted)" if client_d else ""
    if seen < len(mine):
        checks.append(Check("metrics", False, f"/metrics counts {seen:g} candidate requests in the window, the "
                            f"replay got {len(mine)} answers from it: the server's metrics disagree", figures))
    elif server_rate > thresholds.max_error_rate:
        checks.append(Check("metrics", False, f"/metrics: {fail_d:g} of {seen:g} candidate requests failed "
                            f"({server_rate:.2%}; at most {thresholds.max_error_rate:.2%}){apart}", figures))
    else:
        checks.append(Check("metrics", True, f"/metrics agrees: {seen:g} candidate requests, {fail_d:g} failed"
                            f"{apart}", figures))
    return checks
