"""The data summary (`reports/data.json`, `report.data_summary`): what prepare writes about the data it prepared,
and what the pull-request report reads of it. Only the parts read across capabilities are typed here:

    {"raw": {...profile...},
     "train": {"rows": 5634, "positive_rate": 0.265353},
     "test": {"rows": 1409, "positive_rate": 0.265436},
     "feedback": {                              present only when feedback files were read (data.feedback)
        "dir": "data/feedback", "files": 3,
        "rows_read": 320,                       rows in the files
        "rows_added": 312,                      rows prepare added to the data
        "duplicates_dropped": 5,                equal (features and label) to a raw row or an earlier one
        "outside_window": 3,                    older than data.feedback.window before the newest row
        "train_rows_added": 298, "test_rows_added": 14}}

Any other project's summary (an adopter's) may have none of these keys: the reader then gives Nones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mlops.errors import DataInvalid


class DataSummaryInvalid(DataInvalid):
    """A data summary's `feedback` block (or its split counts) is not what prepare writes; names file and key."""


@dataclass(frozen=True)
class FeedbackSummary:
    dir: str
    files: int
    rows_read: int
    rows_added: int
    duplicates_dropped: int
    outside_window: int
    train_rows_added: int
    test_rows_added: int


@dataclass(frozen=True)
class DataSummary:
    train_rows: int | None
    test_rows: int | None
    feedback: FeedbackSummary | None


def _count(doc: Mapping[str, Any], key: str, where: str) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise DataSummaryInvalid(f"{where}: key '{key}' must be a count (a whole number >= 0), not {v!r}")
    return v


def _rows(doc: Mapping[str, Any], split: str, where: str) -> int | None:
    block = doc.get(split)
    if not isinstance(block, Mapping) or "rows" not in block:
        return None
    return _count(block, "rows", f"{where}: {split}")


def read_data_summary(doc: Any, source: str) -> DataSummary:
    """DOC (parsed JSON) as a DataSummary: Nones where a project writes no such key; DataSummaryInvalid when a key
    is there but malformed."""
    if not isinstance(doc, Mapping):
        return DataSummary(None, None, None)
    fb = doc.get("feedback")
    feedback = None
    if fb is not None:
        where = f"{source}: feedback"
        if not isinstance(fb, Mapping):
            raise DataSummaryInvalid(f"{where}: must be an object")
        d = fb.get("dir")
        if not isinstance(d, str) or not d:
            raise DataSummaryInvalid(f"{where}: key 'dir' must be a folder name")
        feedback = FeedbackSummary(d, *(_count(fb, k, where) for k in (
            "files", "rows_read", "rows_added", "duplicates_dropped", "outside_window", "train_rows_added",
            "test_rows_added")))
    return DataSummary(_rows(doc, "train", source), _rows(doc, "test", source), feedback)


def feedback_block(summary: FeedbackSummary) -> dict[str, Any]:
    """The `feedback` block as prepare writes it (key order as above)."""
    return asdict(summary)
