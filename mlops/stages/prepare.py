"""prepare: typed schema, cleaning, deterministic stratified split; the feedback rows of `data.feedback` added."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops.config import Params
from mlops.files import sha256_file
from mlops.formats.datasummary import FeedbackSummary, feedback_block
from mlops.progress import Progress, silent
from mlops.stages.data import (
    PREPARED_DIR,
    TEST_FILE,
    TRAIN_FILE,
    apply_schema,
    profile,
    read_raw,
    write_json,
)
from mlops.stages.feedback import read_feedback

DATA_REPORT = Path("reports/data.json")


@dataclass(frozen=True)
class PrepareResult:
    rows: int
    train_rows: int
    test_rows: int
    data_sha256: str


def prepare(params: Params, root: Path = Path("."), progress: Progress = silent) -> PrepareResult:
    raw_path = root / params.data.raw
    df = read_raw(raw_path)
    typed = apply_schema(df, params.data, params.data.raw)
    progress(f"prepare: {len(typed)} rows, {len(params.data.columns)} columns typed")
    policy = params.data.feedback
    fb = read_feedback(root, policy, params.data, typed) if policy is not None else None
    summary = None
    if fb is not None and policy is not None and fb.files:
        progress(f"prepare: {len(fb.rows)} of {fb.rows_read} feedback rows from {fb.files} file(s) under "
                 f"{policy.dir} ({fb.duplicates_dropped} duplicates, {fb.outside_window} outside the window)")
    # Feedback rows numbered after the raw ones: sorted by row, the prepared files keep raw rows first.
    added = typed.iloc[0:0] if fb is None else fb.rows.set_axis(range(len(typed), len(typed) + len(fb.rows)), axis=0)
    if policy is not None and policy.split == "both" and len(added):
        whole = pd.concat([typed, added])
        train, test = train_test_split(whole, test_size=params.split.test_size, random_state=params.split.seed,
                                       stratify=whole[params.data.target])
    else:
        # The raw rows split exactly as without feedback: the test split stays main's, so metrics compare.
        train, test = train_test_split(typed, test_size=params.split.test_size, random_state=params.split.seed,
                                       stratify=typed[params.data.target])
        if len(added):
            train = pd.concat([train, added])
    if fb is not None and policy is not None and fb.files:
        summary = FeedbackSummary(policy.dir, fb.files, fb.rows_read, len(added), fb.duplicates_dropped,
                                  fb.outside_window, int((train.index >= len(typed)).sum()),
                                  int((test.index >= len(typed)).sum()))
    (root / PREPARED_DIR).mkdir(parents=True, exist_ok=True)
    digest = sha256_file(raw_path)
    # Sorted by original row so the file bytes depend only on the split, not on the shuffle order.
    for frame, path in ((train, TRAIN_FILE), (test, TEST_FILE)):
        tmp = root / path.with_name(path.name + ".tmp")
        frame.sort_index().to_csv(tmp, index=False, lineterminator="\n")
        tmp.replace(root / path)
    write_json(root / DATA_REPORT, {
        "raw": {"path": params.data.raw, **profile(typed, params.data, digest)},
        "train": {"rows": len(train), "positive_rate": round(float(
            (train[params.data.target].astype(str) == params.data.positive).mean()), 6)},
        "test": {"rows": len(test), "positive_rate": round(float(
            (test[params.data.target].astype(str) == params.data.positive).mean()), 6)},
        # Only when feedback files were read: without any, data.json (and dvc.lock) stay as before feedback.
        **({"feedback": feedback_block(summary)} if summary is not None else {}),
    })
    return PrepareResult(len(typed), len(train), len(test), digest)
