"""Monitoring: drift, decay and staleness of a served model's traffic against its reference profile.

One pass over the window (request logs or a file of raw records, in chunks), counted against the reference
profile's cells (mlops.profile); then two-sample tests with false-alarm control across features, effect sizes,
confidence-based performance estimates, and alarms. The job (mlops.jobs.monitor) picks the inputs; this package
never reads the registry or git.
"""

from mlops.config import MonitorParams
from mlops.monitor.accumulators import Accumulator, Scorer
from mlops.monitor.check import accumulate, evaluate, run
from mlops.monitor.render import write_reports
from mlops.monitor.result import (
    Alarm,
    FeatureReport,
    MonitorAlert,
    MonitorResult,
    Performance,
    PredictionReport,
    SegmentReport,
    Staleness,
    WindowInfo,
)
from mlops.monitor.sources import (
    Chunk,
    MonitorInputError,
    ReadStats,
    iso_z,
    parse_duration,
    read_labels,
    read_logs,
    read_record_chunks,
)

__all__ = ["Accumulator", "Alarm", "Chunk", "FeatureReport", "MonitorAlert", "MonitorInputError", "MonitorParams",
           "MonitorResult", "Performance", "PredictionReport", "ReadStats", "Scorer", "SegmentReport", "Staleness",
           "WindowInfo", "accumulate", "evaluate", "iso_z", "parse_duration", "read_labels",
           "read_logs", "read_record_chunks", "run", "write_reports"]
