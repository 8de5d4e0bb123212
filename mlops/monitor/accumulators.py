"""One pass over the window: every chunk is encoded once and counted against the reference's cells.

Everything kept is counts and sums of a fixed size (per feature: the reference grid's cells, the tails beyond it,
missing/unseen/violation counts; per score cell: counts and calibrated weights; per segment value and per time
window: the same at a coarser size), so memory does not grow with the rows, and two accumulators merge by adding.

Encoding, per chunk and per feature: numbers through one numpy conversion (None -> NaN), with a per-element path
only when that fails (a string or an object where a number belongs); categories through one dict lookup per value
(request logs arrive coded already: see sources.read_logs; files through pandas' categorical codes). Numeric
values are binned arithmetically on the uniform grid.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

from mlops.monitor.sources import Chunk, label_codes
from mlops.profile import SCORE_CELLS, bin_numeric, calibrate

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

Scorer = Callable[["NDArray[np.float32]"], "NDArray[Any]"]
COARSE_CELLS = 1_000   # score cells of the per-segment and per-window accumulators
MAX_UNSEEN_KINDS = 1_000
MISSING, UNSEEN, VIOLATION = -2, -1, -3


# --- encoding ----------------------------------------------------------------------------------------------------


def encode_numeric(col: Any, ftype: str, n: int) -> tuple[NDArray[np.float64], int, int, int]:
    """(values with NaN where unusable, missing, NaN/Inf, violations) of one raw column."""
    import numpy as np

    if col is None:
        return np.full(n, np.nan), n, 0, 0
    violations = 0
    if isinstance(col, np.ndarray) and col.dtype == np.float64:  # a column of the logs' matrix (None -> NaN)
        x = col
        missing_mask = np.isnan(x)
    elif hasattr(col, "dtype"):  # a pandas Series (files)
        if col.dtype.kind in "biuf":
            x = col.to_numpy(dtype=np.float64, na_value=np.nan)
            missing_mask = np.isnan(x)
        else:
            import pandas as pd

            missing_mask = col.isna().to_numpy()
            x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.isnan(x) & ~missing_mask
            violations += int(bad.sum())
    else:
        try:
            x = np.array(col, dtype=np.float64)  # None -> NaN
            missing_mask = np.isnan(x)
        except (TypeError, ValueError):
            x = np.empty(n, dtype=np.float64)
            missing_mask = np.zeros(n, dtype=bool)
            for i, v in enumerate(col):
                t = type(v)
                if v is None:
                    x[i] = np.nan
                    missing_mask[i] = True
                elif t is int or t is float or (t is bool and ftype == "bool"):
                    try:
                        x[i] = float(v)
                    except OverflowError:
                        x[i] = np.inf
                else:
                    x[i] = np.nan
                    violations += 1
    missing = int(missing_mask.sum())
    infinite = np.isinf(x)
    nonfinite = int(infinite.sum())
    if nonfinite:
        x[infinite] = np.nan
    if ftype in ("int", "bool"):
        finite = ~np.isnan(x)
        bad = finite & (x != np.floor(x)) if ftype == "int" else finite & (x != 0) & (x != 1)
        nbad = int(bad.sum())
        if nbad:
            violations += nbad
            x[bad] = np.nan
    return x, missing, nonfinite, violations


def encode_category(col: Any, lookup: Mapping[Any, int], n: int,
                    unseen: Counter[str]) -> NDArray[np.int64]:
    """Codes of one raw column: the category's position, UNSEEN, MISSING or VIOLATION (not a string)."""
    import numpy as np

    if col is None:
        return np.full(n, MISSING, dtype=np.int64)
    if hasattr(col, "dtype"):  # a pandas Series of text (files)
        import pandas as pd

        cats = [c for c, k in sorted(lookup.items(), key=lambda kv: kv[1]) if isinstance(c, str)]
        missing = col.isna().to_numpy()
        codes = pd.Categorical(col, categories=cats).codes.astype(np.int64)
        codes[missing] = MISSING
        new = np.flatnonzero(codes == UNSEEN)
        if new.size:
            values = col.iloc[new].tolist()
            for i, v in zip(new, values, strict=True):
                if not isinstance(v, str):
                    codes[i] = VIOLATION
            _count_unseen(unseen, [v for v in values if isinstance(v, str)])
        return codes
    values = col if isinstance(col, list | tuple) else list(col)
    try:
        codes = np.fromiter(map(lookup.get, values, repeat(UNSEEN)), dtype=np.int64, count=n)
    except TypeError:  # an unhashable value (a list, an object): one at a time
        codes = np.empty(n, dtype=np.int64)
        for i, v in enumerate(values):
            try:
                codes[i] = lookup.get(v, UNSEEN)
            except TypeError:
                codes[i] = VIOLATION
    new = np.flatnonzero(codes == UNSEEN)
    if new.size:
        found: list[str] = []
        for i in new:
            v = values[i]
            if type(v) is str:
                found.append(v)
            elif isinstance(v, float) and math.isnan(v):
                codes[i] = MISSING
            else:
                codes[i] = VIOLATION
        _count_unseen(unseen, found)
    return codes


def _count_unseen(unseen: Counter[str], values: Sequence[str]) -> None:
    for v in values:
        if v in unseen or len(unseen) < MAX_UNSEEN_KINDS:
            unseen[v[:200]] += 1
        else:
            unseen["(other values)"] += 1


# --- accumulators ------------------------------------------------------------------------------------------------


class FeatureAcc:
    """Counts of one feature in the window, against its reference sketch."""

    def __init__(self, sketch: Mapping[str, Any]) -> None:
        import numpy as np

        self.sketch = sketch
        self.kind: str = sketch["kind"]
        self.type: str = sketch["type"]
        self.rows = 0
        self.missing = 0
        self.nonfinite = 0
        self.violations = 0
        self.unseen = 0
        self.unseen_values: Counter[str] = Counter()
        if self.kind == "numeric":
            self.counts = np.zeros(int(sketch["grid"]["cells"]), dtype=np.int64)
            self.bin_edges = np.asarray(sketch["bins"], dtype=np.int64)
            self.nbins = len(sketch["bins"]) - 1
            # cell -> coarse (PSI/segment) bin
            self.cell_bin = np.clip(np.searchsorted(self.bin_edges, np.arange(len(self.counts)), side="right") - 1,
                                    0, self.nbins - 1)
        else:
            cats = sketch["categories"]
            self.counts = np.zeros(len(cats), dtype=np.int64)
            self.nbins = len(cats)
            self.lookup: dict[Any, int] = {c: k for k, c in enumerate(cats)}
            self.lookup[None] = MISSING
        self.below = [0, 0.0]
        self.above = [0, 0.0]
        self.total = 0.0
        self.total_sq = 0.0
        self.vmin = math.inf
        self.vmax = -math.inf

    def add(self, col: Any, n: int, coded: bool = False) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Count one chunk's column (CODED: category codes already); returns (the model's value per row: NaN
        when unusable, coarse bin per row: -1 when unusable)."""
        import numpy as np

        self.rows += n
        if self.kind == "categorical":
            codes = np.array(col, dtype=np.int64) if coded and col is not None else \
                encode_category(col, self.lookup, n, self.unseen_values)
            ok = codes >= 0
            self.counts += np.bincount(codes[ok], minlength=self.nbins)
            self.missing += int((codes == MISSING).sum())
            self.unseen += int((codes == UNSEEN).sum())
            self.violations += int((codes == VIOLATION).sum())
            coarse = np.where(ok, codes, -1)
            return np.where(ok, codes, np.nan).astype(np.float64), coarse
        x, missing, nonfinite, violations = encode_numeric(col, self.type, n)
        self.missing += missing
        self.nonfinite += nonfinite
        self.violations += violations
        ok = ~np.isnan(x)
        v = x[ok]
        coarse = np.full(n, -1, dtype=np.int64)
        if v.size:
            idx, below, above = bin_numeric(v, self.sketch["grid"])
            inside = ~(below | above)
            self.counts += np.bincount(idx[inside], minlength=len(self.counts))
            lo, hi = float(self.sketch["grid"]["lo"]), float(self.sketch["grid"]["hi"])
            if below.any():
                self.below[0] += int(below.sum())
                self.below[1] += float((lo - v[below]).sum())
            if above.any():
                self.above[0] += int(above.sum())
                self.above[1] += float((v[above] - hi).sum())
            self.total += float(v.sum())
            self.total_sq += float((v * v).sum())
            self.vmin = min(self.vmin, float(v.min()))
            self.vmax = max(self.vmax, float(v.max()))
            b = self.cell_bin[idx]
            b[below] = 0
            b[above] = self.nbins - 1
            coarse[ok] = b
        return x, coarse

    @property
    def valid(self) -> int:
        return int(self.counts.sum()) + int(self.below[0]) + int(self.above[0])

    def merge(self, other: FeatureAcc) -> None:
        self.rows += other.rows
        self.missing += other.missing
        self.nonfinite += other.nonfinite
        self.violations += other.violations
        self.unseen += other.unseen
        self.unseen_values.update(other.unseen_values)
        self.counts += other.counts
        self.below = [self.below[0] + other.below[0], self.below[1] + other.below[1]]
        self.above = [self.above[0] + other.above[0], self.above[1] + other.above[1]]
        self.total += other.total
        self.total_sq += other.total_sq
        self.vmin = min(self.vmin, other.vmin)
        self.vmax = max(self.vmax, other.vmax)


class ScoreAcc:
    """Scores of some rows: a histogram, the expected confusion matrix and AUC weights of the calibrated scores,
    and, for labelled rows, the realised ones."""

    def __init__(self, cells: int, threshold: float) -> None:
        import numpy as np

        self.cells = cells
        self.threshold = threshold
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.hist = np.zeros(cells, dtype=np.int64)
        self.pos_w = np.zeros(cells)
        self.neg_w = np.zeros(cells)
        self.self_pairs = 0.0
        self.expected = np.zeros(4)   # tp, fp, fn, tn
        self.labelled = 0
        self.pos = np.zeros(cells, dtype=np.int64)
        self.neg = np.zeros(cells, dtype=np.int64)
        self.confusion = np.zeros(4, dtype=np.int64)

    def add(self, s: NDArray[np.float64], p: NDArray[np.float64], y: NDArray[np.int8] | None) -> None:
        import numpy as np

        if s.size == 0:
            return
        cells = np.minimum((s * self.cells).astype(np.int64), self.cells - 1)
        self.n += int(s.size)
        self.total += float(s.sum())
        self.total_sq += float((s * s).sum())
        self.hist += np.bincount(cells, minlength=self.cells)
        self.pos_w += np.bincount(cells, weights=p, minlength=self.cells)
        self.neg_w += np.bincount(cells, weights=1.0 - p, minlength=self.cells)
        self.self_pairs += float((p * (1.0 - p)).sum())
        pred = s >= self.threshold
        pp, pn = p[pred], p[~pred]
        self.expected += (pp.sum(), pp.size - pp.sum(), pn.sum(), pn.size - pn.sum())
        if y is not None:
            known = y >= 0
            if known.any():
                yk, ck, pk = y[known] == 1, cells[known], pred[known]
                self.labelled += int(known.sum())
                self.pos += np.bincount(ck[yk], minlength=self.cells)
                self.neg += np.bincount(ck[~yk], minlength=self.cells)
                self.confusion += ((pk & yk).sum(), (pk & ~yk).sum(), (~pk & yk).sum(), (~pk & ~yk).sum())

    def merge(self, other: ScoreAcc) -> None:
        self.n += other.n
        self.total += other.total
        self.total_sq += other.total_sq
        self.hist += other.hist
        self.pos_w += other.pos_w
        self.neg_w += other.neg_w
        self.self_pairs += other.self_pairs
        self.expected += other.expected
        self.labelled += other.labelled
        self.pos += other.pos
        self.neg += other.neg
        self.confusion += other.confusion


class SegmentAcc:
    """Per value of one segment column: rows, each feature's coarse bins, the scores."""

    def __init__(self, column: str, sketch: Mapping[str, Any], values: Sequence[str],
                 features: Mapping[str, FeatureAcc], threshold: float) -> None:
        import numpy as np

        self.column = column
        self.values = list(values)
        v = len(values)
        # reference category code / grid cell -> index of the segment value (-1: not a reference segment)
        if sketch["kind"] == "categorical":
            names = [str(c) for c in sketch["categories"]]
        else:
            lo = float(sketch["grid"]["lo"]) + 0.5
            names = []
            for k in range(int(sketch["grid"]["cells"])):
                val = lo + k
                names.append(str(int(val)) if val == int(val) else str(val))
        where = {name: i for i, name in enumerate(self.values)}
        self.map = np.asarray([where.get(name, -1) for name in names], dtype=np.int64)
        self.numeric = sketch["kind"] == "numeric"
        self.rows = np.zeros(v, dtype=np.int64)
        self.other = 0
        self.bins = {name: np.zeros((v, f.nbins + 1), dtype=np.int64) for name, f in features.items()}
        self.scores = [ScoreAcc(COARSE_CELLS, threshold) for _ in range(v)]

    def codes(self, encoded: NDArray[np.float64], grid: Mapping[str, Any] | None) -> NDArray[np.int64]:
        import numpy as np

        ok = ~np.isnan(encoded)
        out = np.full(encoded.size, -1, dtype=np.int64)
        if not ok.any():
            return out
        if self.numeric:
            assert grid is not None  # numeric segments always have a grid
            idx, below, above = bin_numeric(encoded[ok], grid)
            seg = self.map[idx]
            seg[below | above] = -1
        else:
            seg = self.map[encoded[ok].astype(np.int64)]
        out[ok] = seg
        return out

    def merge(self, other: SegmentAcc) -> None:
        self.rows += other.rows
        self.other += other.other
        for name in self.bins:
            self.bins[name] += other.bins[name]
        for mine, theirs in zip(self.scores, other.scores, strict=True):
            mine.merge(theirs)


class Accumulator:
    """Everything the check needs from the window, filled chunk by chunk."""

    def __init__(self, profile: Mapping[str, Any], *, window: str = "day", labels: Mapping[Any, int] | None = None,
                 scorer: Scorer | None = None) -> None:
        self.profile = profile
        iface = profile["interface"]
        self.names: list[str] = [str(f["name"]) for f in iface["features"]]
        self.output = str((iface.get("output") or {}).get("name") or "probability")
        self.positive: str | None = (iface.get("output") or {}).get("positive")
        self.threshold = float(profile.get("threshold") or 0.5)
        self.calibration = profile.get("calibration")
        self.features = {name: FeatureAcc(profile["features"][name]) for name in self.names}
        self.scores = ScoreAcc(SCORE_CELLS, self.threshold)
        self.segments: dict[str, SegmentAcc] = {}
        for col, per_value in (profile.get("segments") or {}).items():
            if col in self.features and per_value:
                self.segments[col] = SegmentAcc(col, profile["features"][col], list(per_value),
                                                self.features, self.threshold)
        self.window_len = 13 if window == "hour" else 10
        self.windows: dict[str, ScoreAcc] = {}
        self.window_rows: Counter[str] = Counter()
        self.labels = labels
        self.scorer = scorer
        self.rows = 0
        self.unscored = 0
        self.scored_by_model = 0
        # A multiclass or regression model's answers go to its task's accumulator (mlops.monitor.tasks), overall
        # and per time window; ScoreAcc above stays a binary classifier's.
        from mlops.monitor import tasks

        self.task = tasks.task_of(profile)
        self.task_scores = tasks.task_acc(profile)
        self.task_windows: dict[str, tasks.TaskAcc] = {}

    @property
    def scored(self) -> int:
        """Rows with a usable answer of the model."""
        return self.task_scores.n if self.task_scores is not None else self.scores.n

    def add(self, chunk: Chunk) -> None:
        import numpy as np

        n = chunk.rows
        if n == 0:
            return
        self.rows += n
        encoded: dict[str, NDArray[np.float64]] = {}
        coarse: dict[str, NDArray[np.int64]] = {}
        for name, acc in self.features.items():
            encoded[name], coarse[name] = acc.add(chunk.columns.get(name), n, name in chunk.coded)
        for name, value in chunk.unseen or ():
            _count_unseen(self.features[name].unseen_values, [value])

        if self.task_scores is not None:
            self._add_task(chunk, encoded, n)
            s = np.full(n, np.nan)  # no binary score: segments and windows count rows only
        else:
            s = self._scores(chunk, encoded, n)
        scored = ~np.isnan(s)
        if self.task_scores is None:
            self.unscored += int(n - scored.sum())
        y = self._labels(chunk, n) if self.task_scores is None else None
        p = calibrate(np.where(scored, s, 0.0), self.calibration)
        s_ok, p_ok = s[scored], p[scored]
        y_ok = y[scored] if y is not None else None
        self.scores.add(s_ok, p_ok, y_ok)

        for col, seg in self.segments.items():
            grid = self.profile["features"][col].get("grid")
            codes = seg.codes(encoded[col], grid)
            inside = codes >= 0
            seg.other += int(n - inside.sum())
            v = len(seg.values)
            seg.rows += np.bincount(codes[inside], minlength=v)
            for name, b in coarse.items():
                width = seg.bins[name].shape[1]
                key = codes[inside] * width + (b[inside] + 1)
                seg.bins[name] += np.bincount(key, minlength=v * width).reshape(v, width)
            codes_ok = codes[scored]
            for k in range(v):
                m = codes_ok == k
                if m.any():
                    seg.scores[k].add(s_ok[m], p_ok[m], y_ok[m] if y_ok is not None else None)

        if chunk.ts:
            # A fixed-width text array keeps the first characters of each timestamp: the window's key.
            keys, inv = np.unique(np.asarray(chunk.ts, dtype=f"U{self.window_len}"), return_inverse=True)
            counts = np.bincount(inv, minlength=len(keys))
            inv_ok = inv[scored]
            for i, wkey in enumerate(keys.tolist()):
                self.window_rows[wkey] += int(counts[i])
                wacc = self.windows.get(wkey)
                if wacc is None:
                    wacc = self.windows[wkey] = ScoreAcc(COARSE_CELLS, self.threshold)
                m = inv_ok == i
                wacc.add(s_ok[m], p_ok[m], y_ok[m] if y_ok is not None else None)

    def _add_task(self, chunk: Chunk, encoded: Mapping[str, NDArray[np.float64]], n: int) -> None:
        """A multiclass or regression chunk: the model's answers and the labels, read for the task."""
        import numpy as np

        from mlops.monitor import tasks

        acc = self.task_scores
        assert acc is not None  # only called for those tasks
        k = acc.k if isinstance(acc, tasks.MulticlassAcc) else 1
        if chunk.scores is not None:
            raw: Any = chunk.scores
        elif self.scorer is not None:
            # float64: the runtime casts to its own type (a float32 copy would move values a float64 model reads)
            raw = self.scorer(np.column_stack([encoded[name] for name in self.names]))
            self.scored_by_model += n
        else:
            raw = None
        values = tasks.answers(raw, n, self.task, k) if raw is not None else \
            np.full((n, k) if self.task == "multiclass" else n, np.nan)
        ok = tasks.valid_rows(values)
        self.unscored += int(n - ok.sum())
        y: NDArray[np.float64] | None = None
        if chunk.labels is not None:
            y = tasks.label_values(chunk.labels, self.profile)
        elif self.labels is not None and chunk.request_ids is not None:
            y = tasks.joined_labels(self.labels, chunk.request_ids, chunk.row_index, n)
        v_ok = values[ok]
        y_ok = y[ok] if y is not None else None
        acc.add(v_ok, y_ok)
        if chunk.ts:
            keys, inv = np.unique(np.asarray(chunk.ts, dtype=f"U{self.window_len}"), return_inverse=True)
            inv_ok = inv[ok]
            for i, wkey in enumerate(keys.tolist()):
                wacc = self.task_windows.get(wkey)
                if wacc is None:
                    wacc = self.task_windows[wkey] = tasks.task_acc(self.profile)  # type: ignore[assignment]
                    assert wacc is not None
                m = inv_ok == i
                wacc.add(v_ok[m], y_ok[m] if y_ok is not None else None)

    def _scores(self, chunk: Chunk, encoded: Mapping[str, NDArray[np.float64]], n: int) -> NDArray[np.float64]:
        import numpy as np

        if chunk.scores is not None:
            raw = chunk.scores
            if hasattr(raw, "dtype"):
                import pandas as pd

                s = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                try:
                    s = np.array(raw, dtype=np.float64)
                except (TypeError, ValueError):
                    s = np.array([v if type(v) in (int, float) else None for v in raw], dtype=np.float64)
        elif self.scorer is not None:
            matrix = np.column_stack([encoded[name] for name in self.names]).astype(np.float32)
            s = np.asarray(self.scorer(matrix), dtype=np.float64).reshape(-1)
            self.scored_by_model += n
        else:
            return np.full(n, np.nan)
        if s.shape != (n,):  # not one number per row (a list per row, a matrix): nothing here is a score
            return np.full(n, np.nan)
        s[(s < 0) | (s > 1)] = np.nan  # not a probability: not scored
        return np.asarray(s, dtype=np.float64)

    def _labels(self, chunk: Chunk, n: int) -> NDArray[np.int8] | None:
        import numpy as np

        if chunk.labels is not None:
            return label_codes(chunk.labels, self.positive)
        if self.labels is None or chunk.request_ids is None:
            return None
        lab = self.labels
        rows = chunk.row_index if chunk.row_index is not None else repeat(None)
        out = np.empty(n, dtype=np.int8)
        for i, (rid, row) in enumerate(zip(chunk.request_ids, rows, strict=False)):
            v = lab.get((rid, row))
            if v is None:
                v = lab.get((rid, None), -1)
            out[i] = v
        return out

    def __getstate__(self) -> dict[str, Any]:
        # Sent back from a reading process: the labels and the model stay where they are.
        return {**self.__dict__, "labels": None, "scorer": None}

    def merge(self, other: Accumulator) -> None:
        self.rows += other.rows
        self.unscored += other.unscored
        self.scored_by_model += other.scored_by_model
        for name, facc in self.features.items():
            facc.merge(other.features[name])
        self.scores.merge(other.scores)
        for col, seg in self.segments.items():
            seg.merge(other.segments[col])
        for wkey, wacc in other.windows.items():
            mine = self.windows.get(wkey)
            if mine is None:
                self.windows[wkey] = wacc
            else:
                mine.merge(wacc)
        self.window_rows.update(other.window_rows)
        if self.task_scores is not None and other.task_scores is not None:
            self.task_scores.merge(other.task_scores)  # type: ignore[arg-type]  # one profile: one task
        for wkey, tacc in other.task_windows.items():
            mine_t = self.task_windows.get(wkey)
            if mine_t is None:
                self.task_windows[wkey] = tacc
            else:
                mine_t.merge(tacc)  # type: ignore[arg-type]
