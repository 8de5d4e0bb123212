"""`mlops predict` locally: a promoted, tagged churn version fetched from the DVC remote and verified, scored in
record batches from Parquet and CSV; bad rows refused or written to a rejects file with their row numbers; the
output read back by `mlops monitor --current`; a LightGBM multiclass package from tests/examples.py scored as its
framework scores it; memory bounded by the batch size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mlops.cli import app
from tests.deploy_helpers import template_env
from tests.helpers import commit_all, dvc, init_repo, runner

CHURN = "churn-model@v1.0.0"
WINE = "wine-model@v1.0.0"


def release_churn(template: Path, dest: Path) -> Path:
    """A copy of the trained project with its model registered (churn-model@v1.0.0), pushed to the project's DVC
    remote, and the local DVC cache removed: predict fetches from the remote, as on a fresh runner."""
    from mlops.jobs.promote import PromoteOptions, promote

    shutil.copytree(template, dest, symlinks=True)
    raw = yaml.safe_load((dest / "params.yaml").read_text())
    raw["registry"]["promote_identities"] = [{"name": "Test Committer", "email": "committer@example.com"}]
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    commit_all(dest, "registry identities")
    assert promote(dest, PromoteOptions(push=False)).version == "v1.0.0"
    dvc(dest, "push", "-q")
    shutil.rmtree(dest / ".dvc" / "cache")
    return dest


@pytest.fixture(scope="module")
def churn(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("predict-home")
    with template_env(home):
        return release_churn(_trained_template, tmp_path_factory.mktemp("predict") / "project")


@pytest.fixture(scope="module")
def churn_rows(churn: Path) -> pd.DataFrame:
    """The held-out split as raw typed columns (what a table to score holds), label column included."""
    return pd.read_csv(churn / "data/prepared/test.csv")


def write_parquet(frame: pd.DataFrame, path: Path, row_group: int = 500) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group)
    return path


def runtime_probabilities(root: Path, frame: pd.DataFrame) -> np.ndarray:
    """The physical answer: the model file of the workspace, through the same runtime, on columns in memory."""
    from mlops.features import read_model_interface
    from mlops.predict.model import ModelSource, legacy_manifest
    from mlops.runtimes import load_runtime

    d = root / "models"
    src = ModelSource("churn-model", "v1.0.0", {}, classes=("No", "Yes"))
    rt = load_runtime(d, legacy_manifest(d, src))
    iface = read_model_interface(d / "feature_schema.json")
    cols = {n: frame[n].tolist() for n in iface.names}
    return rt.predict_columns(cols).values


def predict_cli(root: Path, *args: str) -> object:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return runner.invoke(app, ["predict", *args])
    finally:
        os.chdir(cwd)


@pytest.mark.slow
def test_parquet_in_parquet_out_equals_the_runtime_and_reads_in_monitor(churn: Path, churn_rows: pd.DataFrame,
                                                                        tmp_path: Path) -> None:
    src = write_parquet(churn_rows, tmp_path / "in/data.parquet")
    out = tmp_path / "scored.parquet"
    res = predict_cli(churn, "--ref", CHURN, "--input", str(src), "--output", str(out), "--batch-rows", "300",
                      "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["rows"], summary["written"], summary["rejected"]) == (len(churn_rows), len(churn_rows), 0)
    got = pq.read_table(out).to_pandas()
    assert got["row"].tolist() == list(range(len(churn_rows)))  # every row once, in order, across batches
    assert set(got["model_version"]) == {"v1.0.0"} and set(got["model"]) == {"churn-model"}
    # the runtime's own predict on the same rows in memory: exactly the same numbers
    assert np.array_equal(got["probability"].to_numpy(), runtime_probabilities(churn, churn_rows))
    threshold = json.loads((churn / "models/reference.json").read_text())["threshold"]
    assert got["label"].tolist() == ["Yes" if p >= threshold else "No" for p in got["probability"]]
    assert got["churn"].tolist() == churn_rows["churn"].tolist()  # input columns kept (the label for monitor)

    cwd = os.getcwd()
    os.chdir(churn)
    try:
        mon = runner.invoke(app, ["monitor", "--current", str(out), "--out", str(tmp_path / "mon"), "--json"])
    finally:
        os.chdir(cwd)
    assert mon.exit_code in (0, 1), mon.output
    found = json.loads(mon.stdout[mon.stdout.index("{"):])
    assert found["window"]["rows"] == len(churn_rows)
    assert found["window"]["scored"] == len(churn_rows)  # the probability column was read as the scores
    assert found["performance"]["labelled"] == len(churn_rows)  # and the label column as the labels


@pytest.mark.slow
def test_bad_rows_are_refused_or_written_with_their_row_numbers(churn: Path, churn_rows: pd.DataFrame,
                                                                tmp_path: Path) -> None:
    frame = churn_rows.head(200).astype({"tenure": object, "contract": object})
    frame.loc[3, "tenure"] = "abc"
    frame.loc[150, "contract"] = "Ten year"
    csv_dir = tmp_path / "in"
    csv_dir.mkdir()
    frame.iloc[:100].to_csv(csv_dir / "a.csv", index=False)
    frame.iloc[100:].to_csv(csv_dir / "b.csv", index=False)
    out = tmp_path / "out"

    refused = predict_cli(churn, "--ref", CHURN, "--input", str(csv_dir), "--output", str(out))
    assert refused.exit_code == 1
    assert "row 3: field 'tenure': expected int" in refused.output
    assert "--rejects" in refused.output
    assert not out.exists() and not list(tmp_path.glob("out.staging-*"))  # nothing half-written

    rejects = tmp_path / "rejects.csv"
    ok = predict_cli(churn, "--ref", CHURN, "--input", str(csv_dir), "--output", str(out), "--rejects",
                     str(rejects), "--json")
    assert ok.exit_code == 0, ok.output
    bad = pd.read_csv(rejects)
    assert bad["row"].tolist() == [3, 150]
    assert bad["field"].tolist() == ["tenure", "contract"]
    assert "unknown category" in bad["error"][1]
    got = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet"))], ignore_index=True)
    assert got["row"].tolist() == [i for i in range(200) if i not in (3, 150)]
    good = churn_rows.head(200).drop(index=[3, 150])
    assert np.array_equal(got["probability"].to_numpy(), runtime_probabilities(churn, good))
    assert got["tenure"].dtype.kind == "i"  # CSV text typed as the model reads it


# --- a non-xgboost model -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A DVC project whose `models` output is the package of tests/examples.py's LightGBM multiclass model,
    registered as wine-model@v1.0.0 and pushed to its remote."""
    from mlops.jobs.promote import PromoteOptions, promote
    from tests.examples import build

    home = tmp_path_factory.mktemp("wine-home")
    base = tmp_path_factory.mktemp("wine")
    ex = build("lightgbm-multiclass", base / "example")
    with template_env(home):
        repo = init_repo(base / "work")
        res = runner.invoke(app, ex.cli_args(repo / "package"))
        assert res.exit_code == 0, res.output
        (repo / "dvc.yaml").write_text(yaml.safe_dump({
            "stages": {"package": {"cmd": "rm -rf models && cp -r package models", "deps": ["package"],
                                   "outs": ["models"]}},
            "artifacts": {"wine-model": {"path": "models", "type": "model"}}}))
        (repo / "params.yaml").write_text(yaml.safe_dump({"registry": {
            "artifact": "wine-model", "model_file": "mlops-model.yaml",
            "promote_identities": [{"name": "Test Committer", "email": "committer@example.com"}]}}))
        dvc(repo, "init", "-q")
        dvc(repo, "remote", "add", "-d", "store", "../dvcstore")
        dvc(repo, "repro", "-q")
        commit_all(repo, "wine model")
        assert promote(repo, PromoteOptions(push=False)).version == "v1.0.0"
        dvc(repo, "push", "-q")
        shutil.rmtree(repo / ".dvc" / "cache")
    return repo, ex


@pytest.mark.slow
def test_a_lightgbm_multiclass_package_scores_as_its_framework(wine: tuple[Path, object], tmp_path: Path) -> None:
    repo, ex = wine
    frame = ex.features()  # type: ignore[attr-defined]
    out = tmp_path / "wine.csv"
    res = predict_cli(repo, "--ref", WINE, "--input", str(ex.data), "--output", str(out))  # type: ignore[attr-defined]
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out, dtype={"label": str})
    classes = [c.removeprefix("probability_") for c in got.columns if c.startswith("probability_")]
    assert len(classes) == 3
    probs = got[[f"probability_{c}" for c in classes]].to_numpy()
    assert np.allclose(probs, ex.offline(frame), atol=1e-12)  # type: ignore[attr-defined]
    assert got["label"].tolist() == [classes[k] for k in probs.argmax(axis=1)]
    assert set(got["model_version"]) == {"v1.0.0"}


# --- memory ------------------------------------------------------------------------------------------------------

PEAK = """
import resource, sys
from pathlib import Path
from mlops.jobs.predict import PredictOptions, predict
predict(Path(sys.argv[1]), PredictOptions(input=sys.argv[2], output=sys.argv[3], ref=sys.argv[4], batch_rows=20_000))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_memory_is_bounded_by_the_batch_not_the_input(churn: Path, churn_rows: pd.DataFrame, tmp_path: Path) -> None:
    """Four times the rows, about the same peak memory: the input is read and written one batch at a time."""
    peaks = []
    for times in (40, 160):  # about 56,000 and 225,000 rows: 3 and 12 batches
        big = pd.concat([churn_rows] * times, ignore_index=True)
        src = write_parquet(big, tmp_path / f"in{times}.parquet", row_group=20_000)
        proc = subprocess.run([sys.executable, "-c", PEAK, str(churn), str(src), str(tmp_path / f"o{times}"), CHURN],
                              capture_output=True, text=True, check=False, cwd=churn)
        assert proc.returncode == 0, proc.stderr
        peaks.append(int(proc.stdout.split()[-1]) * 1024)
        assert pq.read_metadata(next((tmp_path / f"o{times}").glob("*.parquet"))).num_rows == len(big)
    small, large = peaks
    # 170,000 rows more (held, 100+ MiB of Python values and Arrow buffers): about the same peak
    assert large - small < 32 * 2**20, (small, large)


# --- the bulk encoder against the per-row rules -----------------------------------------------------------------


def _arrow_cases() -> list[pa.Array]:
    """Arrow columns of every type a table may hold for a feature, with the values the rules care about."""
    big = 2**53
    return [
        pa.array([0, 1, 2, -3, big, big + 1, -big, -big - 1, None, 2**63 - 1], pa.int64()),
        pa.array([0, 1, 7, None], pa.int8()),
        pa.array([0, 1, big, big + 1, 2**64 - 1, None], pa.uint64()),
        pa.array([0.0, 1.0, 3.0, 3.5, -2.0, float("nan"), float("inf"), -float("inf"), None, 1e300, 3.4e38,
                  3.5e38, float(big), float(big) * 2, -0.0], pa.float64()),
        pa.array([0.0, 1.0, 2.5, float("nan"), None, float("inf")], pa.float32()),
        pa.array([True, False, None], pa.bool_()),
        pa.array(["No", "Yes", "yes", "", "No phone service", None, "3"], pa.string()),
        pa.array(["No", "Maybe", None], pa.large_string()),
        pa.array(["Yes", "No", None, "Other"], pa.string()).dictionary_encode(),
        pa.array([b"No", None], pa.binary()),
        pa.array([np.float16(1.5), None], pa.float16()),
        pa.array([1, None], pa.decimal128(5, 0)),
    ]


@pytest.mark.parametrize("ftype", ["int", "float", "bool", "category"])
@pytest.mark.parametrize("nullable", [False, True])
def test_bulk_encoder_accepts_only_what_the_rules_accept_with_the_same_code(ftype: str, nullable: bool) -> None:
    """Every row the bulk encoder does not mark suspect is accepted by the feature's own converter, with the very
    same code (float32 as in the matrix); the rows it marks go to the per-row rules, so nothing else can differ."""
    from mlops.features import ModelInterface
    from mlops.formats.manifest import Input
    from mlops.predict.encode import arrow_values, encode_column

    cats = ("No", "No phone service", "Yes") if ftype == "category" else None
    spec = ModelInterface.of([Input("x", ftype, cats, None, nullable)], {}).features[0]  # type: ignore[arg-type]
    conv = spec.converter()
    fast = 0
    for col in _arrow_cases():
        arr = arrow_values(col, spec.type, "parquet")
        assert arr is not None
        codes, suspect = encode_column(spec, arr)
        for i, v in enumerate(col.to_pylist()):
            try:
                want: float | None = conv(v)
            except Exception:  # the rule refuses v: the bulk encoder must have left it to the rule
                want = None
            if suspect[i]:
                continue
            fast += 1
            assert want is not None, (col.type, v)
            assert np.array_equal(np.float32(codes[i]), np.float32(want), equal_nan=True), (col.type, v)
    assert fast > 0  # the bulk path is taken for the ordinary values


def _churn_runtime(template: Path) -> tuple[object, object]:
    from mlops.predict import load, source_from_directory

    src = source_from_directory(template / "models", "churn-model", "v1.0.0", classes=("No", "Yes"))
    return load(src), src


def _both_paths(rt: object, src: object, table: pa.Table, fmt: str, offset: int = 0) -> tuple[object, object]:
    """score_table through the bulk path and through the per-row path (output table, rejects), or the error."""
    from mlops.errors import MlopsError
    from mlops.predict import OutputSpec
    from mlops.predict.batch import score_table

    got = []
    for bulk in (True, False):
        try:
            out, rejects = score_table(rt, src, table, offset, OutputSpec(url="unused"), fmt, "in.x",  # type: ignore[arg-type]
                                       bulk=bulk)
            got.append((out, rejects))
        except MlopsError as exc:
            got.append((type(exc).__name__, exc.message, exc.hint))
    return got[0], got[1]


def _assert_same(a: object, b: object) -> None:
    if isinstance(a, tuple) and isinstance(a[0], pa.Table):
        assert isinstance(b, tuple) and isinstance(b[0], pa.Table)
        assert a[0].schema == b[0].schema
        assert a[0].equals(b[0])
        assert a[1] == b[1]
    else:
        assert a == b


@pytest.mark.slow
def test_bulk_path_equals_the_per_row_path_on_churn_rows_with_planted_bad_values(_trained_template: Path,  # noqa: PT019
                                                                                 tmp_path: Path) -> None:
    from mlops.predict.batch import _refuse
    from mlops.predict.encode import bulk_capable

    rt, src = _churn_runtime(_trained_template)
    assert bulk_capable(rt)  # type: ignore[arg-type]
    rows = pd.read_csv(_trained_template / "data/prepared/test.csv").head(400)
    bad = rows.astype({"contract": object, "tenure": float, "monthly_charges": float})
    bad.loc[3, "contract"] = "Ten year"  # unknown category
    bad.loc[5, "tenure"] = 3.5  # not an int
    bad.loc[6, "tenure"] = 7.0  # an integral float: an int
    bad.loc[9, "monthly_charges"] = np.nan  # NaN
    bad.loc[10, "monthly_charges"] = np.inf
    bad.loc[11, "contract"] = None  # null
    bad.loc[12, "tenure"] = 2.0**60  # out of range
    bad.loc[13, "contract"] = "Ten year"
    bad.loc[13, "tenure"] = 1.5  # two bad fields: the first in the interface's order is named
    cases = {"planted": bad, "clean": rows,
             "wrong type": rows.astype({"tenure": str}),  # a text column for an int feature: every row refused
             "missing column": rows.drop(columns=["payment_method"])}
    for name, frame in cases.items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        a, b = _both_paths(rt, src, table, "parquet", offset=1000)
        _assert_same(a, b)
        if name == "planted":
            assert isinstance(a, tuple) and [r.row for r in a[1]] == [1003, 1005, 1009, 1010, 1011, 1012, 1013]
            assert a[1][-1].field == "tenure" and "expected int, got 1.5" in a[1][-1].error
            assert _refuse(a[1], "in.x").message == _refuse(b[1], "in.x").message  # type: ignore[index]
        if name == "missing column":
            assert a[0] == "PredictError" and "'payment_method'" in a[1]  # type: ignore[index]
        # the same rows as CSV text (read as `mlops predict` reads CSV)
        csv = tmp_path / f"{name.replace(' ', '-')}.csv"
        frame.to_csv(csv, index=False)
        from mlops.predict.tables import Partition, read_batches

        text = next(read_batches(Partition(0, str(csv), "csv", None, 0, None)))
        _assert_same(*_both_paths(rt, src, text, "csv"))
    # more bad rows than good: the per-row path names them all, the bulk path too
    worse = bad.copy()
    worse.loc[20:300, "contract"] = "Ten year"
    a, b = _both_paths(rt, src, pa.Table.from_pandas(worse, preserve_index=False), "parquet")
    _assert_same(a, b)
    assert isinstance(a, tuple) and len(a[1]) == 7 + 281  # the 7 planted rows, then rows 20..300


@pytest.mark.slow
def test_bulk_path_equals_the_per_row_path_on_a_lightgbm_multiclass_package(tmp_path: Path) -> None:
    """A non-xgboost runtime (LightGBM, float64 matrix, three classes) with planted bad values."""
    from mlops.predict import ModelSource
    from mlops.runtimes import load_runtime
    from tests.examples import build

    ex = build("lightgbm-multiclass", tmp_path / "example")
    res = runner.invoke(app, ex.cli_args(tmp_path / "package"))
    assert res.exit_code == 0, res.output
    rt = load_runtime(tmp_path / "package")
    src = ModelSource("wine-model", "v1.0.0", {})
    frame = ex.features()
    first = rt.interface.features[0].name
    planted = frame.copy()
    planted.loc[2, first] = np.nan
    planted.loc[4, first] = 1e39  # beyond float32
    planted.loc[7, first] = -np.inf
    ints = frame.copy()
    ints[first] = ints[first].round().astype("int64")  # ints for a float feature: accepted as numbers
    for f in (frame, planted, ints, frame.astype({first: str})):
        a, b = _both_paths(rt, src, pa.Table.from_pandas(f, preserve_index=False), "parquet", offset=5)
        _assert_same(a, b)
    a, _ = _both_paths(rt, src, pa.Table.from_pandas(planted, preserve_index=False), "parquet", offset=5)
    assert isinstance(a, tuple) and [r.row for r in a[1]] == [7, 9, 12]
    assert a[0].column_names[-6:-3] == [c for c in a[0].column_names if c.startswith("probability_")]
