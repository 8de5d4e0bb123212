"""Prometheus metrics under the names MLServer and KServe users already graph, correct with several workers.

Each worker process writes its samples to memory-mapped files in the server's own directory
(PROMETHEUS_MULTIPROC_DIR, set by the supervisor before the workers start); /metrics, answered by any worker,
adds them up. Names:

- `model_infer_request_success_total`, `model_infer_request_failure_total` {model, version} (MLServer): failures
  are the server's and the model's (5xx, a prediction that raised), what a canary is judged on
- `model_infer_request_client_error_total` {model, version}: requests refused for the client's input (4xx: bad
  input, over a limit, a client that went away), counted apart so that no client can fail a canary
- `model_infer_request_duration` {model, version} (seconds): the whole request, body read to response (histogram)
- `request_predict_seconds` {model_name}: the model's own prediction time (KServe)
- `mlops_prediction` {model, version}: the distribution of predicted probabilities (histogram, 0.05 buckets)
- `mlops_model_version_info` {model, version, role}: 1 for each version in a role, 0 once it left it
- `mlops_request_log_dropped_total`: request-log lines dropped because the writer fell behind
- `rest_server_requests_total` {method, path, status_code}: every HTTP request, path as its route template
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# Fine below 10 ms, where this server answers; coarse above, where a peer or an overload would show.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)
PREDICTION_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class ModelMetrics:
    """The label-bound children of one model version (bound once: `labels()` costs a lock and a dict lookup)."""

    success: Any
    failure: Any
    client_error: Any
    duration: Any
    predict: Any
    prediction: Any

    def observe_predictions(self, values: NDArray[np.float32] | list[float]) -> None:
        """All predictions of a batch in one pass: per-bucket counts, not one observe() per row. A list (a few
        rows) is counted without numpy."""
        import numpy as np

        hist = self.prediction
        buckets = getattr(hist, "_buckets", None)
        total = getattr(hist, "_sum", None)
        if buckets is None or total is None or len(buckets) != len(PREDICTION_BUCKETS) + 1:
            for v in (values if isinstance(values, list) else values.tolist()):
                hist.observe(v)
            return
        if isinstance(values, list):
            few: dict[int, int] = {}
            top = len(PREDICTION_BUCKETS)
            for v in values:  # searchsorted's side="left", NaN in the +Inf bucket
                i = bisect_left(PREDICTION_BUCKETS, v) if v == v else top
                few[i] = few.get(i, 0) + 1
            for i, c in few.items():
                buckets[i].inc(c)
            total.inc(sum(values))
            return
        idx = np.searchsorted(np.asarray(PREDICTION_BUCKETS, dtype=np.float64), values.astype(np.float64),
                              side="left")
        counts = np.bincount(idx, minlength=len(buckets))
        for i in np.flatnonzero(counts).tolist():
            buckets[i].inc(int(counts[i]))
        total.inc(float(values.sum(dtype=np.float64)))


class Metrics:
    def __init__(self) -> None:
        import prometheus_client as pc

        self._pc = pc
        self.registry = pc.CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.success = pc.Counter("model_infer_request_success", "Successful inference requests",
                                  ["model", "version"], registry=reg)
        self.failure = pc.Counter("model_infer_request_failure", "Failed inference requests (5xx, model errors)",
                                  ["model", "version"], registry=reg)
        self.client_error = pc.Counter("model_infer_request_client_error",
                                       "Inference requests refused for the client's input (4xx)",
                                       ["model", "version"], registry=reg)
        self.duration = pc.Histogram("model_infer_request_duration", "Inference request duration in seconds",
                                     ["model", "version"], buckets=LATENCY_BUCKETS, registry=reg)
        self.predict = pc.Histogram("request_predict_seconds", "Model prediction time", ["model_name"],
                                    buckets=LATENCY_BUCKETS, registry=reg)
        self.prediction = pc.Histogram("mlops_prediction", "Predicted probabilities", ["model", "version"],
                                       buckets=PREDICTION_BUCKETS, registry=reg)
        self.version_info = pc.Gauge("mlops_model_version_info", "Versions loaded, by role (1: in that role)",
                                     ["model", "version", "role"], registry=reg, multiprocess_mode="livemax")
        self.dropped = pc.Counter("mlops_request_log_dropped", "Request-log lines dropped (writer behind)",
                                  registry=reg)
        self.http = pc.Counter("rest_server_requests", "HTTP requests", ["method", "path", "status_code"],
                               registry=reg)
        self._children: dict[tuple[str, str], ModelMetrics] = {}
        self._http: dict[tuple[str, str, int], Any] = {}
        self._roles: dict[str, set[tuple[str, str]]] = {}

    def model(self, name: str, version: str) -> ModelMetrics:
        key = (name, version)
        found = self._children.get(key)
        if found is None:
            found = ModelMetrics(self.success.labels(name, version), self.failure.labels(name, version),
                                 self.client_error.labels(name, version), self.duration.labels(name, version),
                                 self.predict.labels(name), self.prediction.labels(name, version))
            self._children[key] = found
        return found

    def count_http(self, method: str, path: str, status: int) -> None:
        key = (method, path, status)
        child = self._http.get(key)
        if child is None:
            child = self._http[key] = self.http.labels(method, path, str(status))
        child.inc()

    def set_roles(self, name: str, roles: dict[str, str]) -> None:
        """NAME's versions by role now (version -> role): 1 for those, 0 for pairs that left."""
        now = {(v, r) for v, r in roles.items()}
        for version, role in self._roles.get(name, set()) - now:
            self.version_info.labels(name, version, role).set(0)
        for version, role in now:
            self.version_info.labels(name, version, role).set(1)
        self._roles[name] = now

    def render(self) -> bytes:
        pc = self._pc
        if self.multiprocess:
            from prometheus_client import multiprocess

            reg = pc.CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
            return bytes(pc.generate_latest(reg))
        return bytes(pc.generate_latest(self.registry))
