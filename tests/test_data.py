"""Raw data errors: missing, empty, column missing, wrong type, single class, too many missing values."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops.cli import app
from mlops.config import load_params
from mlops.errors import DataInvalid
from mlops.stages.data import apply_schema, read_raw
from mlops.stages.prepare import prepare
from tests.helpers import REPO, runner

RAW = REPO / "data/raw/telco_churn.csv"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write_raw(root: Path, df: pd.DataFrame) -> None:
    df.to_csv(root / "data/raw/telco_churn.csv", index=False)


def _raw() -> pd.DataFrame:
    return pd.read_csv(RAW)


def _prepare_error(root: Path) -> str:
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 1, result.output
    first = result.output.strip().splitlines()[0]
    assert first.startswith("error: ")
    return first


def test_real_data_keeps_its_missing_total_charges() -> None:
    df = _raw()
    assert df["total_charges"].isna().sum() == 11
    assert (df.loc[df["total_charges"].isna(), "tenure"] == 0).all()


def test_prepare_fills_and_splits_deterministically(workdir: Path) -> None:
    _write_raw(workdir, _raw())
    params = load_params()
    first = prepare(params, workdir)
    a = (workdir / "data/prepared/train.csv").read_bytes()
    second = prepare(params, workdir)
    assert a == (workdir / "data/prepared/train.csv").read_bytes()
    assert first == second
    assert (first.train_rows, first.test_rows) == (5634, 1409)
    train = pd.read_csv(workdir / "data/prepared/train.csv")
    test = pd.read_csv(workdir / "data/prepared/test.csv")
    assert train["total_charges"].notna().all() and test["total_charges"].notna().all()
    # Stratified: both splits keep the 26.5% churn rate to within half a point.
    for df in (train, test):
        assert abs((df["churn"] == "Yes").mean() - 0.2654) < 0.005
    report = json.loads((workdir / "reports/data.json").read_text())
    assert report["raw"]["sha256"] == "863e369c3a03cea2bd20d696e572eb5fb064e04657744504deb7b6249b92f66e"


def test_raw_missing(workdir: Path) -> None:
    assert _prepare_error(workdir) == "error: data/raw/telco_churn.csv: raw data file not found"


def test_raw_empty_file(workdir: Path) -> None:
    (workdir / "data/raw/telco_churn.csv").write_text("")
    assert _prepare_error(workdir) == "error: data/raw/telco_churn.csv: file is empty"


def test_raw_header_only(workdir: Path) -> None:
    (workdir / "data/raw/telco_churn.csv").write_text(RAW.read_text().splitlines()[0] + "\n")
    assert "no data rows" in _prepare_error(workdir)


def test_required_column_missing(workdir: Path) -> None:
    _write_raw(workdir, _raw().drop(columns=["tenure"]))
    assert _prepare_error(workdir) == "error: data/raw/telco_churn.csv: required column 'tenure' is missing"


def test_numeric_column_with_text(workdir: Path) -> None:
    df = _raw().astype({"monthly_charges": object})
    df.loc[4, "monthly_charges"] = "seventy"
    _write_raw(workdir, df)
    msg = _prepare_error(workdir)
    assert "column 'monthly_charges': expected float, found 'seventy' on line 6" in msg


def test_int_column_with_fraction(workdir: Path) -> None:
    df = _raw().astype({"tenure": float})
    df.loc[0, "tenure"] = 1.5
    _write_raw(workdir, df)
    assert "column 'tenure': expected int, found 1.5 on line 2" in _prepare_error(workdir)


def test_unknown_category(workdir: Path) -> None:
    df = _raw()
    df.loc[2, "contract"] = "Lifetime"
    _write_raw(workdir, df)
    assert "column 'contract': value 'Lifetime' on line 4 is not one of the declared categories" in (
        _prepare_error(workdir))


def test_label_single_class(workdir: Path) -> None:
    df = _raw()
    df["churn"] = "No"
    _write_raw(workdir, df)
    assert "label column 'churn' has a single class (No)" in _prepare_error(workdir)


def test_too_many_missing(workdir: Path) -> None:
    df = _raw()
    df.loc[:200, "monthly_charges"] = None
    _write_raw(workdir, df)
    msg = _prepare_error(workdir)
    assert "column 'monthly_charges': 2.85% of values are missing" in msg
    assert "data.max_missing_fraction=0.01" in msg


def test_missing_in_non_nullable_column(workdir: Path) -> None:
    df = _raw()
    df.loc[9, "tenure"] = None
    _write_raw(workdir, df)
    assert "column 'tenure': missing value on line 11 but the column is not nullable" in _prepare_error(workdir)


def test_missing_limit_is_configurable(workdir: Path) -> None:
    df = _raw()
    df.loc[:200, "monthly_charges"] = None
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["data"]["max_missing_fraction"] = 0.05
    params["data"]["columns"]["monthly_charges"]["nullable"] = True
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    typed = apply_schema(df, load_params().data, "raw.csv")
    assert typed["monthly_charges"].isna().sum() == 201


def test_not_a_csv(workdir: Path) -> None:
    (workdir / "data/raw/telco_churn.csv").write_bytes(b"\xff\xfe\x00garbage\x00\x01")
    with pytest.raises(DataInvalid, match=r"telco_churn\.csv"):
        read_raw(workdir / "data/raw/telco_churn.csv")


def test_non_finite_number(workdir: Path) -> None:
    df = _raw().astype({"monthly_charges": object})
    df.loc[7, "monthly_charges"] = "inf"
    _write_raw(workdir, df)
    assert "column 'monthly_charges': expected a finite number, found inf on line 9" in _prepare_error(workdir)
