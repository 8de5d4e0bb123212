"""Feedback data in prepare (`data.feedback`): the real churn data plus CSVs shaped like `mlops monitor --retrain`'s
snapshots -> the rows added under the window, de-duplication and split policies, the `feedback` block of
reports/data.json, one-line errors for a bad file, and byte-identical outputs when there is no feedback file; then
the report's `data added:` line read from both sides' data summaries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlops import dvc as mdvc
from mlops.cli import app
from mlops.config import ReportParams, load_params
from mlops.formats.datasummary import DataSummaryInvalid, FeedbackSummary, feedback_block, read_data_summary
from mlops.report import Meta, State, build_report, markdown
from mlops.report.build import data_added
from mlops.stages.prepare import prepare
from tests.helpers import REPO, runner

RAW = REPO / "data/raw/telco_churn.csv"
COLUMNS = list(yaml.safe_load((REPO / "params.yaml").read_text())["data"]["columns"])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/telco_churn.csv").write_bytes(RAW.read_bytes())
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def set_feedback(root: Path, policy: dict[str, Any] | None) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    if policy is None:
        params["data"].pop("feedback", None)
    else:
        params["data"]["feedback"] = policy
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(root: Path, name: str, rows: pd.DataFrame, ts: str | list[str] | None = None) -> Path:
    """A feedback CSV as --retrain writes it: request_id, ts, the features, the label."""
    out = rows.copy()
    if ts is not None:
        out.insert(0, "ts", ts)
    out.insert(0, "request_id", [f"{name}-{i}" for i in range(len(out))])
    path = root / "data/feedback" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def new_rows(n: int, seed: int = 1) -> pd.DataFrame:
    """N raw rows made new (monthly charges shifted, as drifted traffic): equal to no raw row."""
    raw = pd.read_csv(RAW)
    rows = raw.sample(n, random_state=seed).reset_index(drop=True)
    rows["monthly_charges"] = (rows["monthly_charges"] * 1.37 + 0.01).round(2)
    return rows


def outputs(root: Path) -> dict[str, bytes]:
    return {p: (root / p).read_bytes() for p in ("data/prepared/train.csv", "data/prepared/test.csv",
                                                 "reports/data.json")}


def data_json(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "reports/data.json").read_text()))


def dir_md5(folder: Path) -> str:
    """DVC's hash of a directory output: the md5 of its sorted JSON listing."""
    entries = [{"md5": hashlib.md5(p.read_bytes()).hexdigest(), "relpath": p.name} for p in sorted(folder.iterdir())]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


# --- no feedback: nothing changes ------------------------------------------------------------------------------

def test_no_feedback_file_prepares_the_bytes_the_committed_lock_records(workdir: Path) -> None:
    """The committed dvc.lock's prepare outputs (those the model d421579... was trained on) come out byte for byte
    with feedback off, with the folder absent, and with the folder holding only its README."""
    lock = mdvc.read_lock(REPO)
    want_json, want_dir = mdvc.output_hash(lock, "reports/data.json"), mdvc.output_hash(lock, "data/prepared")
    runs = []
    for case in ("off", "absent", "readme"):
        set_feedback(workdir, None if case == "off" else {"dir": "data/feedback", "window": "90d"})
        if case == "readme":
            (workdir / "data/feedback").mkdir(parents=True)
            (workdir / "data/feedback/README.md").write_text((REPO / "data/feedback/README.md").read_text())
        prepare(load_params(workdir / "params.yaml"), workdir)
        runs.append(outputs(workdir))
        assert hashlib.md5(runs[-1]["reports/data.json"]).hexdigest() == want_json, case
        assert dir_md5(workdir / "data/prepared") == want_dir, case
        assert "feedback" not in data_json(workdir)
    assert runs[0] == runs[1] == runs[2]


# --- the policy --------------------------------------------------------------------------------------------------

def test_train_split_adds_rows_to_train_only_and_keeps_main_test_split(workdir: Path) -> None:
    set_feedback(workdir, None)
    prepare(load_params(workdir / "params.yaml"), workdir)
    before = outputs(workdir)
    raw = pd.read_csv(RAW)
    fresh = new_rows(40)
    # 3 rows equal to raw rows, one row twice in the same file, one row again in a later file
    dupes = raw.iloc[[0, 1, 2]]
    first = pd.concat([fresh.iloc[:30], dupes, fresh.iloc[[5]]], ignore_index=True)
    snapshot(workdir, "feedback-20261201T000000Z.csv", first, ts="2026-12-01T08:00:00Z")
    snapshot(workdir, "feedback-20261202T000000Z.csv", pd.concat([fresh.iloc[30:], fresh.iloc[[7]]]),
             ts="2026-12-02T08:00:00.123Z")
    set_feedback(workdir, {"dir": "data/feedback", "window": "90d", "dedupe": True, "split": "train"})
    prepare(load_params(workdir / "params.yaml"), workdir)
    after = outputs(workdir)
    summary = data_json(workdir)
    # 45 rows read: 3 equal to raw rows, 1 repeated in its file, 1 repeated in the later file
    assert summary["feedback"] == {"dir": "data/feedback", "files": 2, "rows_read": 45, "rows_added": 40,
                                   "duplicates_dropped": 5, "outside_window": 0, "train_rows_added": 40,
                                   "test_rows_added": 0}
    # the test split is main's, byte for byte; train is main's raw rows first, then the new rows in file order
    assert after["data/prepared/test.csv"] == before["data/prepared/test.csv"]
    train = pd.read_csv(workdir / "data/prepared/train.csv")
    assert len(train) == summary["train"]["rows"] == 5634 + 40
    assert after["data/prepared/train.csv"].startswith(before["data/prepared/train.csv"])
    tail = train.iloc[-40:].reset_index(drop=True)
    assert tail["monthly_charges"].tolist() == fresh["monthly_charges"].tolist()
    assert summary["raw"] == json.loads(before["reports/data.json"])["raw"]  # raw's own profile unchanged


def test_dedupe_off_keeps_every_row(workdir: Path) -> None:
    raw = pd.read_csv(RAW)
    snapshot(workdir, "feedback-20261201T000000Z.csv", pd.concat([raw.iloc[:10], raw.iloc[:10]]))
    set_feedback(workdir, {"dedupe": False})
    prepare(load_params(workdir / "params.yaml"), workdir)
    fb = data_json(workdir)["feedback"]
    assert (fb["rows_read"], fb["rows_added"], fb["duplicates_dropped"]) == (20, 20, 0)
    set_feedback(workdir, {"dedupe": True})
    prepare(load_params(workdir / "params.yaml"), workdir)
    fb = data_json(workdir)["feedback"]
    assert (fb["rows_read"], fb["rows_added"], fb["duplicates_dropped"]) == (20, 0, 20)
    assert data_json(workdir)["train"]["rows"] == 5634


def test_window_counts_back_from_the_newest_row(workdir: Path) -> None:
    """Row times from `ts`, else the file name's stamp; the window ends at the newest row, not at the clock."""
    fresh = new_rows(30)
    snapshot(workdir, "feedback-20260101T000000Z.csv", fresh.iloc[:10])            # no ts: the stamp, 2026-01-01
    snapshot(workdir, "feedback-20261101T000000Z.csv", fresh.iloc[10:20],
             ts=["2026-11-01T00:00:00Z"] * 5 + ["2026-08-31T00:00:00Z"] * 5)      # 5 rows 92 days old
    snapshot(workdir, "feedback-20261201T000000Z.csv", fresh.iloc[20:], ts="2026-12-01T00:00:00Z")
    set_feedback(workdir, {"window": "13w", "split": "train"})                      # 91 days
    prepare(load_params(workdir / "params.yaml"), workdir)
    fb = data_json(workdir)["feedback"]
    assert (fb["files"], fb["rows_read"], fb["outside_window"], fb["rows_added"]) == (3, 30, 15, 15)
    set_feedback(workdir, {"window": "200d"})
    prepare(load_params(workdir / "params.yaml"), workdir)
    assert data_json(workdir)["feedback"]["outside_window"] == 10  # 2026-01-01 is 334 days before the newest
    set_feedback(workdir, {})
    prepare(load_params(workdir / "params.yaml"), workdir)
    assert data_json(workdir)["feedback"]["rows_added"] == 30  # no window: every row


def test_both_split_stratifies_new_rows_like_raw(workdir: Path) -> None:
    fresh = new_rows(500, seed=3)
    snapshot(workdir, "feedback-20261201T000000Z.csv", fresh)
    set_feedback(workdir, {"split": "both"})
    prepare(load_params(workdir / "params.yaml"), workdir)
    summary = data_json(workdir)
    fb = summary["feedback"]
    assert fb["rows_added"] == 500 and fb["train_rows_added"] + fb["test_rows_added"] == 500
    assert 70 <= fb["test_rows_added"] <= 130  # about test_size (0.2) of them
    assert summary["train"]["rows"] + summary["test"]["rows"] == 7043 + 500
    assert abs(summary["train"]["positive_rate"] - summary["test"]["positive_rate"]) < 0.005  # stratified


def test_joined_labels_1_0_are_named_as_the_declared_classes(workdir: Path) -> None:
    """--retrain writes labels joined by request id as the positive class or 0: prepared as Yes / No."""
    fresh = new_rows(20)
    fresh["churn"] = ["Yes" if i % 4 == 0 else 0 for i in range(20)]
    snapshot(workdir, "feedback-20261201T000000Z.csv", fresh)
    set_feedback(workdir, {})
    prepare(load_params(workdir / "params.yaml"), workdir)
    train = pd.read_csv(workdir / "data/prepared/train.csv")
    assert train["churn"].iloc[-20:].tolist() == ["Yes" if i % 4 == 0 else "No" for i in range(20)]


# --- bad feedback: one line naming file, column and line ---------------------------------------------------------

def _error(root: Path) -> str:
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 1, result.output
    errors = [x for x in result.output.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1, result.output  # one line (progress lines come before it)
    return errors[0]


def test_bad_feedback_value_names_file_column_and_line(workdir: Path) -> None:
    set_feedback(workdir, {})
    fresh = new_rows(10).astype({"contract": "object"})
    fresh.loc[6, "contract"] = "Weekly"
    snapshot(workdir, "feedback-20261201T000000Z.csv", fresh)
    msg = _error(workdir)
    assert msg.startswith("error: data/feedback/feedback-20261201T000000Z.csv: column 'contract': value 'Weekly' "
                          "on line 8 is not one of the declared categories"), msg
    assert not (workdir / "data/prepared").exists() and not (workdir / "reports/data.json").exists()


def test_bad_feedback_type_and_missing_column(workdir: Path) -> None:
    set_feedback(workdir, {})
    fresh = new_rows(10).astype({"tenure": "object"})
    fresh.loc[2, "tenure"] = "ten"
    path = snapshot(workdir, "feedback-20261201T000000Z.csv", fresh)
    assert _error(workdir) == ("error: data/feedback/feedback-20261201T000000Z.csv: column 'tenure': expected int, "
                               "found 'ten' on line 4")
    snapshot(workdir, path.name, new_rows(10).drop(columns=["churn"]))
    assert _error(workdir) == ("error: data/feedback/feedback-20261201T000000Z.csv: required column 'churn' is "
                               "missing")
    path.write_bytes(b"")
    assert _error(workdir) == "error: data/feedback/feedback-20261201T000000Z.csv: file is empty"


def test_policy_is_validated(workdir: Path) -> None:
    set_feedback(workdir, {"window": "90 days"})
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 1 and "data.feedback.window" in result.output, result.output


# --- the report's line -------------------------------------------------------------------------------------------

def state(role: str, name: str, summary: Any) -> State:
    files = {} if summary is None else {"reports/data.json": summary}
    return State(role, name, name, None, "workspace", {}, {}, {}, files)


def summary_doc(train: int, test: int, fb: FeedbackSummary | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"raw": {"rows": 7043}, "train": {"rows": train, "positive_rate": 0.26},
                           "test": {"rows": test, "positive_rate": 0.26}}
    if fb is not None:
        doc["feedback"] = feedback_block(fb)
    return doc


FB = FeedbackSummary("data/feedback", 2, 320, 312, 5, 3, 298, 14)


def test_data_added_line_says_what_came_in_and_the_split_sizes_vs_main() -> None:
    cfg = ReportParams()
    head = state("head", "this branch", summary_doc(5932, 1423, FB))
    base = state("base", "main", summary_doc(5634, 1409, None))
    assert data_added(cfg, head, base) == (
        "data added: 312 rows from data/feedback/ (298 to train, 14 to test; 5 duplicates dropped, 3 outside the "
        "window); train 5,634 → 5,932 rows, test 1,409 → 1,423 rows vs main")
    # main had feedback already: said; nothing added: said so
    earlier = FeedbackSummary("data/feedback", 1, 100, 100, 0, 0, 100, 0)
    base2 = state("base", "main", summary_doc(5734, 1409, earlier))
    assert data_added(cfg, head, base2).endswith("(main had 100 feedback rows)")  # type: ignore[union-attr]
    none = FeedbackSummary("data/feedback", 1, 7, 0, 7, 0, 0, 0)
    assert data_added(cfg, state("head", "this branch", summary_doc(5634, 1409, none)), None) == \
        "data added: none of the 7 rows from data/feedback/ (7 duplicates dropped)"


@pytest.mark.parametrize("summary", [None, {"train": {"rows": 1}}, {"anything": 1}, [1, 2],
                                     {"feedback": {"dir": "x", "files": "two"}}])
def test_no_line_without_feedback_or_for_an_adopter_summary(summary: Any) -> None:
    cfg = ReportParams()
    head = state("head", "this branch", summary)
    assert data_added(cfg, head, state("base", "main", summary)) is None


def test_reader_round_trip_and_errors() -> None:
    doc = summary_doc(5932, 1423, FB)
    read = read_data_summary(json.loads(json.dumps(doc)), "reports/data.json")
    assert (read.train_rows, read.test_rows, read.feedback) == (5932, 1423, FB)
    with pytest.raises(DataSummaryInvalid, match=r"reports/data.json: feedback: key 'rows_added' must be a count"):
        read_data_summary({"feedback": {**feedback_block(FB), "rows_added": -1}}, "reports/data.json")
    with pytest.raises(DataSummaryInvalid, match=r"key 'dir'"):
        read_data_summary({"feedback": {**feedback_block(FB), "dir": 3}}, "reports/data.json")


def test_markdown_report_shows_the_line_only_with_feedback() -> None:
    cfg = ReportParams()
    meta = Meta("0", 1.0, None, "2026-12-06T00:00:00Z", "report.html")
    base = state("base", "main", summary_doc(5634, 1409, None))
    with_fb = build_report(cfg, state("head", "this branch", summary_doc(5932, 1423, FB)), base, None, "", None, (),
                           meta)
    text = markdown(with_fb)
    line = next(x for x in text.splitlines() if x.startswith("data added:"))
    assert "312 rows from data/feedback/" in line and "train 5,634 → 5,932 rows" in line
    assert text.index("### Data changed") < text.index(line)
    plain = markdown(build_report(cfg, state("head", "this branch", summary_doc(5634, 1409, None)), base, None, "",
                                  None, (), meta))
    assert "data added" not in plain
    assert "data added" not in markdown(build_report(cfg, state("head", "this branch", None), None, None, "", None,
                                                     (), meta))
