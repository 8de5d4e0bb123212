"""validate: data integrity of the raw data and train/test drift with deepchecks, on a curated set of checks.

The default suites take minutes and fail on this clean real data (their conditions do not fit it); these checks
carry conditions that do, run in about a second, and catch the faults that matter (label leak, duplicated block,
drifted feature, new category, numbers turned to text). deepchecks is imported lazily: it costs seconds.
"""

from __future__ import annotations

import base64
import random
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlops.config import DataParams, Params, ValidateParams
from mlops.errors import ValidationFailed
from mlops.progress import Progress, silent
from mlops.stages.data import TEST_FILE, TRAIN_FILE, load_prepared, read_raw, write_json

VALIDATION_JSON = Path("reports/validation.json")
VALIDATION_HTML = Path("reports/validation.html")


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    dataset: str  # "raw" or "train/test"
    status: str  # "pass", "warn", "fail" or "error" (the check did not run)
    finding: str

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "warn")


@dataclass(frozen=True)
class ValidationReport:
    passed: bool
    checks: tuple[CheckOutcome, ...]

    def failures(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [
            {"name": c.name, "dataset": c.dataset, "status": c.status, "passed": c.passed, "finding": c.finding}
            for c in self.checks]}


def _schema_types_check(data: DataParams) -> Any:
    """A deepchecks check (their SingleDatasetCheck API) that each declared column has its declared kind.

    deepchecks' MixedDataTypes counts numeric-looking strings as numbers, so a numeric column that arrives
    as text passes it; this one does not.
    """
    from deepchecks.core import CheckResult, ConditionCategory, ConditionResult
    from deepchecks.tabular import SingleDatasetCheck

    expected = {name: spec.type for name, spec in data.columns.items() if name != data.target}

    class SchemaTypes(SingleDatasetCheck):  # type: ignore[misc]
        def run_logic(self, context: Any, dataset_kind: Any) -> Any:
            df = context.get_data_by_kind(dataset_kind).data
            found: dict[str, dict[str, str]] = {}
            for name, kind in expected.items():
                if name not in df.columns:
                    found[name] = {"expected": kind, "found": "missing"}
                    continue
                col = df[name]
                numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
                if kind in ("int", "float", "bool") and not numeric:
                    found[name] = {"expected": kind, "found": str(col.dtype)}
            return CheckResult({"mismatched": found, "columns": len(expected)}, header="Schema Types")

        def add_condition_types_match(self) -> Any:
            def condition(value: dict[str, Any]) -> Any:
                bad = value["mismatched"]
                if bad:
                    desc = ", ".join(f"'{k}' expected {v['expected']} found {v['found']}" for k, v in bad.items())
                    return ConditionResult(ConditionCategory.FAIL, f"Column type differs from schema: {desc}")
                return ConditionResult(ConditionCategory.PASS, f"Passed for {value['columns']} columns")

            return self.add_condition("Column types match the declared schema", condition)

    return SchemaTypes().add_condition_types_match()


def integrity_checks(data: DataParams, v: ValidateParams) -> list[Any]:
    from deepchecks.tabular import checks as c

    return [
        _schema_types_check(data),
        c.IsSingleValue().add_condition_not_single_value(),
        c.MixedNulls().add_condition_different_nulls_less_equal_to(1),
        c.MixedDataTypes().add_condition_rare_type_ratio_not_in_range((0.0, 0.1)),
        c.StringMismatch().add_condition_no_variants(),
        c.DataDuplicates().add_condition_ratio_less_or_equal(v.max_duplicate_ratio),
        c.FeatureLabelCorrelation(ppscore_params={"sample": v.pps_sample}, random_state=0)
        .add_condition_feature_pps_less_than(v.max_feature_pps),
    ]


def drift_checks(v: ValidateParams) -> list[Any]:
    from deepchecks.tabular import checks as c

    return [
        c.FeatureDrift(random_state=0).add_condition_drift_score_less_than(
            max_allowed_categorical_score=v.max_categorical_drift, max_allowed_numeric_score=v.max_numeric_drift),
        c.LabelDrift(random_state=0).add_condition_drift_score_less_than(max_allowed_drift_score=v.max_label_drift),
        c.NewCategoryTrainTest().add_condition_new_categories_less_or_equal(v.max_new_categories),
    ]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _outcomes(suite_result: Any, dataset: str, warn_only: tuple[str, ...]) -> list[CheckOutcome]:
    from deepchecks.core import CheckFailure, ConditionCategory

    out = []
    for r in suite_result.results:
        if isinstance(r, CheckFailure):
            out.append(CheckOutcome(r.header, dataset, "error", _one_line(f"check did not run: {r.exception}")))
            continue
        conds = r.conditions_results
        worst = "pass"
        findings = []
        for cond in conds:
            if cond.category == ConditionCategory.FAIL:
                worst = "fail"
            elif cond.category == ConditionCategory.WARN and worst == "pass":
                worst = "warn"
            elif cond.category == ConditionCategory.ERROR:
                worst = "error"
            findings.append(_one_line(cond.details))
        name = r.get_header()
        if worst == "warn" and name not in warn_only:
            worst = "fail"
        out.append(CheckOutcome(name, dataset, worst, "; ".join(findings) or "no condition"))
    return out


_BIG_SCRIPT = 100_000
_SCRIPT_RE = re.compile(r"<script\b[^>]*>.*?</script>", re.S)
# Random ids in deepchecks' export: plotly's div uuids, pandas Styler table ids, deepchecks' section ids.
_RANDOM_IDS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
     lambda n: f"a0000000-0000-4000-8000-{n:012d}"),
    (re.compile(r"(?<=T_)[0-9a-f]{5}(?![0-9a-zA-Z])"), lambda n: f"{n:05x}"),
    # Only after "_" (summary_X, DataDuplicates_X): a bare 25-letter pattern also matches inside plotly's base64
    # figure data ("bdata"), which base64 never writes with "_".
    (re.compile(r"(?<=_)[A-Z0-9]{25}(?![A-Za-z0-9])"), lambda n: f"ID{n:023d}"),
)


def _normalise_ids(text: str, seen: list[dict[str, str]]) -> str:
    """Renumber random ids in TEXT; SEEN (one map per pattern) is shared by every chunk of a page, so a chart's
    <div id> and the script that draws into it keep matching."""
    for (pattern, make), mapping in zip(_RANDOM_IDS, seen, strict=True):

        def stable(m: re.Match[str], mapping: dict[str, str] = mapping, make: Callable[[int], str] = make) -> str:
            return mapping.setdefault(m.group(0), make(len(mapping)))

        text = pattern.sub(stable, text)
    return text


# Significant digits kept in chart data: plenty for a plot or its hover text, and far coarser than the last-bit
# differences that the CPU's BLAS kernels and SIMD paths leave in the same computation on another machine.
CHART_DIGITS = 6


def _round_number(value: float) -> float:
    return float(f"{value:.{CHART_DIGITS}g}")  # correctly rounded: equal inputs up to the digits give equal output


def _round_array(values: NDArray[Any]) -> NDArray[Any]:
    return np.array([_round_number(v) for v in values.ravel().tolist()], dtype=values.dtype).reshape(values.shape)


def _round_floats(value: Any) -> Any:
    """VALUE (a plotly figure's JSON tree) with every float rounded to CHART_DIGITS significant digits."""
    if isinstance(value, float):
        return _round_number(value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return _round_array(value)
    if isinstance(value, np.floating):
        return _round_number(float(value))
    if isinstance(value, dict) and isinstance(value.get("bdata"), str) and str(value.get("dtype", "")).startswith("f"):
        # plotly's typed array: {"dtype": "f8", "bdata": base64 of the raw little-endian values[, "shape": ...]}
        raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype("<" + value["dtype"]))
        return {**value, "bdata": base64.b64encode(_round_array(raw).tobytes()).decode("ascii")}
    if isinstance(value, dict):
        return {k: _round_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_round_floats(v) for v in value)
    return value


def _round_display(item: Any) -> Any:
    if hasattr(item, "to_plotly_json"):  # a plotly figure: rebuilt from its rounded JSON tree
        return type(item)(_round_floats(item.to_plotly_json()))
    if isinstance(item, dict):  # deepchecks' DisplayMap (tabs): name -> display items
        for key, items in item.items():
            item[key] = [_round_display(i) for i in items]
    return item


def round_chart_data(results: list[Any]) -> None:
    """Round the numbers in the charts of deepchecks RESULTS (in place), so the page is the same on every machine.

    deepchecks plots kernel density estimates and the like at full float64 precision, and their last bits depend
    on the CPU: OpenBLAS picks its kernels by CPU model (SkylakeX with AVX-512, Haswell with AVX2...), and another
    kernel sums in another order. A page written where OpenBLAS ran its Haswell kernels differed by 29 bytes of
    digits from one written with its SkylakeX kernels, from the same data: a dirty dvc.lock in a fresh clone.
    """
    for result in results:
        display = getattr(result, "display", None)  # a CheckFailure has none
        if display:
            result.display = [_round_display(item) for item in display]


@contextmanager
def _stable_sorts() -> Iterator[None]:
    """Make DataFrame.sort_values stable by default for the duration (the export runs on this one thread).

    deepchecks orders its summary table with an unstable sort over equal priorities (every passing check has the
    same one), and numpy's unstable sort is a different algorithm on a CPU with AVX-512 (x86-simd-sort) than
    without: the rows came out in another order on such a machine. A stable sort keeps the suite's order anywhere.
    """
    original = pd.DataFrame.sort_values

    def stable(self: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("kind", "stable")
        return original(self, *args, **kwargs)

    setattr(pd.DataFrame, "sort_values", stable)  # noqa: B010 (mypy forbids assigning to a method)
    try:
        yield
    finally:
        setattr(pd.DataFrame, "sort_values", original)  # noqa: B010


_PROLOGUE = re.compile(r"The suite is composed of various checks such as: [^<]*?, etc\.\.\.")


def stabilise_html(html: str, check_names: list[str] | None = None) -> str:
    """Make deepchecks' HTML export small and byte-reproducible, so dvc.lock does not change on every run.

    - Exact repeats of large inline scripts are dropped: deepchecks inlines plotly.js (4.8 MB) once per chart
      section, and the first copy defines the global `Plotly` that every later chart uses (self-contained page).
    - The copy deepchecks wraps in a requirejs `define` is dropped: we export without requirejs, so it never runs.
    - Random ids (uuid4 div ids, Styler table ids, section ids) are renumbered in order of first appearance,
      consistently across the page; library scripts are left untouched.
    - The prologue's sample of check names (a `set` in iteration order, which differs per process) becomes the
      sorted list of all of them.
    """
    if check_names:
        names = ", ".join(sorted(set(check_names)))
        html = _PROLOGUE.sub(lambda _m: f"The suite is composed of these checks: {names}.", html, count=1)
    seen: set[int] = set()
    ids: list[dict[str, str]] = [{} for _ in _RANDOM_IDS]
    parts: list[str] = []
    last = 0
    for m in _SCRIPT_RE.finditer(html):
        parts.append(_normalise_ids(html[last:m.start()], ids))
        block = m.group(0)
        head = block[:2000]
        if len(block) < _BIG_SCRIPT or ("plotly.js v" not in head and "define('plotly'" not in head):
            parts.append(_normalise_ids(block, ids))  # a chart's own script, however large its data
        elif "define('plotly'" in head:
            pass  # requirejs-only wrapper: inert in a page without requirejs
        elif hash(block) not in seen:
            seen.add(hash(block))
            parts.append(block)
        last = m.end()
    parts.append(_normalise_ids(html[last:], ids))
    return "".join(parts)


def run_checks(raw: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, data: DataParams,
               v: ValidateParams, html: Path | None = None) -> ValidationReport:
    """Run the curated checks on RAW (integrity) and TRAIN vs TEST (drift); optionally write the HTML."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging

        from deepchecks.tabular import Dataset, Suite
        from deepchecks.tabular.suite import SuiteResult
        from deepchecks.utils.logger import set_verbosity

        set_verbosity(logging.WARNING)  # no tqdm bars: progress goes through our callback

        cats = [n for n, s in data.columns.items() if s.type == "category" and n != data.target]

        def ds(df: pd.DataFrame) -> Any:
            return Dataset(df, label=data.target, cat_features=[c for c in cats if c in df.columns])

        integrity = Suite("Data integrity (raw)", *integrity_checks(data, v)).run(
            train_dataset=ds(raw), run_single_dataset="Train")
        drift = Suite("Train/test drift", *drift_checks(v)).run(train_dataset=ds(train), test_dataset=ds(test))
        # deepchecks' verdict, with checks that did not run counted as failures (its default counts them passed)...
        strict = bool(integrity.passed(fail_if_check_not_run=True) and drift.passed(fail_if_check_not_run=True))
        outcomes = _outcomes(integrity, "raw", v.warn_only) + _outcomes(drift, "train/test", v.warn_only)
        if html is not None:
            round_chart_data(integrity.results + drift.results)
            combined = SuiteResult("mlops validation", integrity.results + drift.results)
            html.parent.mkdir(parents=True, exist_ok=True)
            tmp = html.with_name(html.name + ".tmp.html")
            # deepchecks samples check names for its summary with the global `random`: seed it for this call only.
            saved = random.getstate()
            random.seed(0)
            try:
                with _stable_sorts():
                    combined.save_as_html(str(tmp), as_widget=False, requirejs=False)
            finally:
                random.setstate(saved)
            names = [r.check.name() for r in combined.results]
            tmp.write_text(stabilise_html(tmp.read_text(encoding="utf-8"), names), encoding="utf-8")
            tmp.replace(html)
    # ...is stricter than ours only through warnings (it fails a WARN); ours passes a WARN for warn_only checks.
    passed = all(o.passed for o in outcomes)
    if not strict and passed and not any(o.status == "warn" for o in outcomes):
        passed = False  # deepchecks saw a failure we did not map: never pass silently
    return ValidationReport(passed=passed, checks=tuple(outcomes))


def validate(params: Params, root: Path = Path("."), progress: Progress = silent) -> ValidationReport:
    raw = read_raw(root / params.data.raw)
    train = load_prepared(root / TRAIN_FILE, params.data)
    test = load_prepared(root / TEST_FILE, params.data)
    report = run_checks(raw, train, test, params.data, params.validate_, html=root / VALIDATION_HTML)
    # The results are written either way: the report needs them most when a check failed.
    write_json(root / VALIDATION_JSON, report.to_json())
    failures = report.failures()
    progress(f"validate: {len(report.checks) - len(failures)}/{len(report.checks)} checks passed")
    if failures:
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise ValidationFailed(f"validation failed: check '{first.name}' on {first.dataset} data: "
                               f"{first.finding}{more}", hint=f"details in {VALIDATION_JSON} and {VALIDATION_HTML}")
    return report
