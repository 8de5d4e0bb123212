"""The curated deepchecks checks: pass on the clean real data, fail on each injected fault."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from mlops.config import Params, load_params
from mlops.errors import ValidationFailed
from mlops.stages.data import apply_schema, read_raw
from mlops.stages.validate import ValidationReport, round_chart_data, run_checks, stabilise_html, validate
from tests.helpers import REPO


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="module")
def clean(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    raw = read_raw(REPO / params.data.raw)
    typed = apply_schema(raw, params.data, "raw")
    train, test = train_test_split(typed, test_size=0.2, random_state=42, stratify=typed["churn"])
    return raw, train, test


def _failed(report: ValidationReport) -> dict[str, str]:
    return {c.name: c.finding for c in report.failures()}


def test_clean_data_passes(params: Params, clean: tuple[pd.DataFrame, ...]) -> None:
    raw, train, test = clean
    report = run_checks(raw, train, test, params.data, params.validate_)
    assert report.passed, _failed(report)
    assert len(report.checks) == 10
    assert {c.dataset for c in report.checks} == {"raw", "train/test"}


def test_label_leak_column_fails(params: Params, clean: tuple[pd.DataFrame, ...]) -> None:
    raw, train, test = clean
    leaky = raw.assign(cancel_code=np.where(raw["churn"] == "Yes", 1, 0))
    report = run_checks(leaky, train, test, params.data, params.validate_)
    failed = _failed(report)
    assert not report.passed
    assert list(failed) == ["Feature Label Correlation"]
    assert "cancel_code" in failed["Feature Label Correlation"]


def test_duplicated_block_fails(params: Params, clean: tuple[pd.DataFrame, ...]) -> None:
    raw, train, test = clean
    duplicated = pd.concat([raw, raw.iloc[1000:1400]], ignore_index=True)
    failed = _failed(run_checks(duplicated, train, test, params.data, params.validate_))
    assert list(failed) == ["Data Duplicates"]
    assert "duplicate data" in failed["Data Duplicates"]


def test_drifted_feature_in_test_fails(params: Params, clean: tuple[pd.DataFrame, ...]) -> None:
    raw, train, test = clean
    drifted = test.assign(monthly_charges=test["monthly_charges"] * 1.3)
    failed = _failed(run_checks(raw, train, drifted, params.data, params.validate_))
    assert list(failed) == ["Feature Drift"]
    assert "monthly_charges" in failed["Feature Drift"]


def test_new_category_in_test_fails(params: Params, clean: tuple[pd.DataFrame, ...]) -> None:
    raw, train, test = clean
    novel = test.copy()
    novel["payment_method"] = novel["payment_method"].astype(str)
    novel.loc[novel.index[:40], "payment_method"] = "Crypto wallet"
    failed = _failed(run_checks(raw, train, novel, params.data, params.validate_))
    assert "New Category Train Test" in failed
    assert "payment_method" in failed["New Category Train Test"]


def test_numeric_column_as_strings_fails(params: Params, clean: tuple[pd.DataFrame, ...]) -> None:
    raw, train, test = clean
    texty = raw.assign(monthly_charges=raw["monthly_charges"].map(lambda v: f"{v:.2f}"))
    failed = _failed(run_checks(texty, train, test, params.data, params.validate_))
    assert list(failed) == ["Schema Types"]
    assert "'monthly_charges' expected float found object" in failed["Schema Types"]


def test_stage_writes_results_and_fails_naming_check_and_column(
        params: Params, clean: tuple[pd.DataFrame, ...], tmp_path: Path) -> None:
    raw, train, test = clean
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/prepared").mkdir(parents=True)
    raw.to_csv(tmp_path / params.data.raw, index=False)
    train.to_csv(tmp_path / "data/prepared/train.csv", index=False)
    test.assign(monthly_charges=test["monthly_charges"] * 1.3).to_csv(tmp_path / "data/prepared/test.csv",
                                                                      index=False)
    with pytest.raises(ValidationFailed, match=r"check 'Feature Drift' on train/test data: .*monthly_charges"):
        validate(params, tmp_path)
    written = json.loads((tmp_path / "reports/validation.json").read_text())
    assert written["passed"] is False
    assert [c["name"] for c in written["checks"] if not c["passed"]] == ["Feature Drift"]
    html = (tmp_path / "reports/validation.html").read_text()
    assert "<html" in html.lower() and "Feature Drift" in html
    # Self-contained: plotly.js is inlined (not fetched from a CDN), and inlined once, not once per section.
    assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", html)
    assert html.count("Plotly.register") <= 2


# What another machine's CPU changes, forced on this one: OpenBLAS's kernels (it picks them by CPU model; the
# committed page once came from a machine where it ran its Haswell ones) and numpy's SIMD paths (its unstable sort
# is another algorithm with AVX-512). Prescott's SSE3 kernels run on any x86-64 CPU; disabling a feature the CPU
# lacks is a no-op for numpy.
OTHER_CPU = {"OPENBLAS_CORETYPE": "Prescott",
             "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"}


def test_html_is_byte_reproducible(params: Params, clean: tuple[pd.DataFrame, ...], tmp_path: Path) -> None:
    """Same inputs, same HTML bytes (with the hash seed dvc.yaml fixes), so dvc.lock stays put between runs,
    also when the second run gets other BLAS kernels and SIMD paths, as on another machine."""
    import platform
    import subprocess
    import sys

    raw, train, test = clean
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/prepared").mkdir(parents=True)
    raw.to_csv(tmp_path / params.data.raw, index=False)
    train.to_csv(tmp_path / "data/prepared/train.csv", index=False)
    test.to_csv(tmp_path / "data/prepared/test.csv", index=False)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    other_cpu = OTHER_CPU if platform.machine() in ("x86_64", "AMD64") else {}
    pages = []
    for extra in ({}, other_cpu):
        env = {k: v for k, v in os.environ.items() if k not in OTHER_CPU}
        proc = subprocess.run([sys.executable, "-m", "mlops", "stage", "validate"], cwd=tmp_path, check=False,
                              capture_output=True, text=True, env={**env, **extra, "PYTHONHASHSEED": "0"})
        assert proc.returncode == 0, proc.stderr
        pages.append((tmp_path / "reports/validation.html").read_bytes())
    assert pages[0] == pages[1]
    assert not re.search(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", pages[0][:4_000_000])


def test_stabilise_html_renumbers_ids_consistently() -> None:
    """Each chart's <div id> and the script drawing into it (separate chunks of the page) keep matching ids."""
    u1, u2 = "3f2b8c1e-1a2b-4c3d-8e9f-0123456789ab", "9c8d7e6f-5a4b-4c3d-9e8f-abcdefabcdef"
    page = (f'<div id="{u1}"></div><script>Plotly.newPlot("{u1}")</script>'
            f'<p>between</p><div id="{u2}"></div><script>Plotly.newPlot("{u2}")</script>'
            '<table id="T_9af3c"><td id="T_9af3c_row0_col0"></td></table>'
            '<h1 id="summary_KD7EAASX8NVD93VRLHRP6KB2K">x</h1><a href="#summary_KD7EAASX8NVD93VRLHRP6KB2K">top</a>'
            '<script>var fig = {"bdata": "AAAAAAAAAAAAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAAAAAAAAAAAA+"}</script>')
    out = stabilise_html(page)
    first, second = "a0000000-0000-4000-8000-000000000000", "a0000000-0000-4000-8000-000000000001"
    assert f'<div id="{first}"></div><script>Plotly.newPlot("{first}")</script>' in out
    assert f'<div id="{second}"></div><script>Plotly.newPlot("{second}")</script>' in out
    assert 'id="T_00000"' in out and 'id="T_00000_row0_col0"' in out
    assert out.count("summary_ID00000000000000000000000") == 2
    assert "3f2b8c1e" not in out and "9af3c" not in out
    # Base64 figure data is not an id: it stays byte for byte.
    assert '"AAAAAAAAAAAAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAAAAAAAAAAAA+"' in out


def test_stabilise_html_keeps_one_plotly_and_drops_the_requirejs_wrapper() -> None:
    lib = "/** plotly.js v4.1.1 */" + "x" * 200_000
    wrapped = "if (typeof require !== 'undefined') { define('plotly', function(require, exports, module) {" + lib
    page = f"<script>{wrapped}</script><script>{lib}</script><div></div><script>{lib}</script><script>go()</script>"
    out = stabilise_html(page)
    assert out.count(lib) == 1
    assert "define('plotly'" not in out
    assert out.endswith("<div></div><script>go()</script>")


def test_stabilise_html_renumbers_ids_inside_a_large_chart_script() -> None:
    uid = "3f2b8c1e-1a2b-4c3d-8e9f-0123456789ab"
    page = f'<div id="{uid}"></div><script>Plotly.newPlot("{uid}", {{"x": [{"1," * 60_000}1]}})</script>'
    out = stabilise_html(page)
    assert uid not in out
    assert out.count("a0000000-0000-4000-8000-000000000000") == 2


def test_chart_numbers_that_differ_in_the_last_bits_give_the_same_page() -> None:
    """A density curve computed with other BLAS kernels differs in its last bits: after rounding, the figures
    (plotly's typed arrays and plain lists, in a result's display and in deepchecks' tabs) serialise the same."""
    import plotly.graph_objects as go
    from deepchecks.core.check_result import DisplayMap

    x = np.linspace(18.25, 118.75, 200)
    density = np.exp(-((x - 70.0) / 30.0) ** 2) / 53.17
    other = np.nextafter(density, np.inf)  # one ulp away: what a different summation order leaves

    def result(y: np.ndarray) -> SimpleNamespace:
        figure = go.Figure([go.Scatter(x=x, y=y), go.Bar(x=["a", "b"], y=[float(y[0]), float(y[1])])])
        tabs = DisplayMap({"tab": [go.Figure(go.Scatter(x=x, y=y * 2))]})
        return SimpleNamespace(display=["header", figure, tabs])

    here, there = result(density), result(other)
    assert here.display[1].to_json() != there.display[1].to_json()
    round_chart_data([here, there, SimpleNamespace(exception=ValueError("a check that did not run"))])
    assert here.display[1].to_json() == there.display[1].to_json()
    assert here.display[2]["tab"][0].to_json() == there.display[2]["tab"][0].to_json()
    assert here.display[0] == "header"
    typed = here.display[1].to_plotly_json()["data"][0]["y"]
    assert typed["dtype"] == "f8"  # still a typed array (base64) in the page, not a list of decimal strings
    shown = np.frombuffer(base64.b64decode(typed["bdata"]), dtype="<f8")
    assert np.allclose(shown, density, rtol=5e-6, atol=0) and not np.array_equal(shown, density)  # 6 digits


def test_equal_priority_rows_keep_the_suite_order_in_the_summary() -> None:
    """deepchecks sorts its summary by priority, equal for every passing check: a stable sort keeps the suite's
    order whatever algorithm numpy's unstable sort would use on this CPU; outside the export nothing changes."""
    from mlops.stages.validate import _stable_sorts

    original = pd.DataFrame.sort_values
    rows = pd.DataFrame({"$priority": [4.0] * 40 + [1.0], "check": range(41)})
    with _stable_sorts():
        ordered = rows.sort_values(by=["$priority"])["check"].tolist()
        assert rows.sort_values(by=["$priority"], kind="quicksort")["check"].iloc[0] == 40  # an explicit kind wins
    assert ordered == [40, *range(40)]
    assert pd.DataFrame.sort_values is original
