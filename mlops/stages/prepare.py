"""prepare: typed schema, cleaning, deterministic stratified split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from mlops.config import Params
from mlops.files import sha256_file
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
    train, test = train_test_split(typed, test_size=params.split.test_size, random_state=params.split.seed,
                                   stratify=typed[params.data.target])
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
    })
    return PrepareResult(len(typed), len(train), len(test), digest)
