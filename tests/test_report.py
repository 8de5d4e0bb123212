"""`mlops report`, `mlops run --base`: three states diffed; a second DVC project; untrusted text made inert."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mlops.cli import app
from mlops.config import ReportParams
from mlops.gates import GateReport
from mlops.report import Meta, State, build_report, escape_md, fit, markdown
from mlops.report.charts import mermaid
from tests.helpers import commit_all, dvc, git, runner
from tests.report_helpers import branch, set_param, small_project

INJECTION = "x<img src=x onerror=alert(1)>@octocat#1|`](http://evil)*"


def _state(role: str, ref: str = "main", params: dict[str, str] | None = None, **metrics: float) -> State:
    return State(role, "this branch" if role == "head" else "main", ref, "a" * 40, "workspace", metrics,
                 params or {}, {}, {})


def _md(head: State, base: State) -> str:
    meta = Meta("0.1.0", 0.1, None, "2024-01-01T00:00:00+00:00", "reports/report.html")
    report = build_report(ReportParams(headline="acc"), head, base, None, "No production model yet.",
                          GateReport("base", ()), [], meta)
    return markdown(report)


def _inert(md: str) -> None:
    assert "<img" not in md
    assert "@octocat" not in md  # a zero-width space follows every @
    assert not re.search(r"#1(?![0-9a-f])", md)
    assert "](http" not in md
    for line in md.splitlines():
        if line.startswith("| ") and "param" not in line and "metric" not in line:
            # every table row keeps its column count: an injected | is escaped
            assert len(re.findall(r"(?<!\\)\|", line)) in (4, 5, 6, 7), line


def test_escape_makes_markup_inert() -> None:
    out = escape_md(INJECTION)
    assert "<" not in out and ">" not in out
    assert "@&#8203;octocat" in out and "&#35;&#8203;1" in out
    assert "\\|" in out and "\\`" in out and "\\]\\(" in out and "\\*" in out
    assert "\n" not in escape_md("a\nb\r\nc")


@pytest.mark.parametrize("url", ["https://evil.example/login", "see www.evil.example now", "HTTP://EVIL.example",
                                 "WWW.Evil.example"])
def test_bare_urls_do_not_become_autolinks(url: str) -> None:
    out = escape_md(url)
    # GFM autolinks `scheme://domain` and `www.domain`: a zero-width space right after `://` and inside `www.`
    # leaves no valid domain where the autolink would start.
    assert not re.search(r"(?i)(https?|ftp)://[a-z0-9]", out)
    assert not re.search(r"(?i)www\.", out)
    assert out.replace("&#8203;", "") == url


def test_injection_in_branch_name_is_inert() -> None:
    md = _md(_state("head", ref=INJECTION, acc=0.8), _state("base", acc=0.7))
    footer = md.split("<!-- mlops:footer -->")[1]
    assert ("x&lt;img src=x onerror=alert\\(1\\)&gt;@&#8203;octocat&#35;&#8203;1\\|\\`\\]\\(http://&#8203;evil\\)\\*"
            in footer)
    _inert(md)


def test_injection_in_param_value_is_inert() -> None:
    head = _state("head", params={"model.name": INJECTION, "model.a|b": "1"}, acc=0.8)
    md = _md(head, _state("base", params={"model.name": "plain"}, acc=0.8))
    row = next(line for line in md.splitlines() if line.startswith("| model.name"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 4  # three cells, no escape from the table
    assert "<img" not in md and "@octocat" not in md and not re.search(r"#1(?![0-9a-f])", md)
    assert "model.a\\|b" in md


def test_markdown_is_cut_under_the_limit_at_a_block_boundary() -> None:
    blocks = ["## title\n\n"] + [f"```mermaid\n{'x' * 500}\n```\n\n" for _ in range(200)]
    text = "".join(blocks) + "<!-- mlops:footer -->\n---\nfooter line\n"
    cut = fit(text, 10_000, "the workflow run's artifact")
    assert len(cut) <= 10_000
    assert cut.count("```") % 2 == 0  # no code fence cut open
    assert "did not fit in a GitHub comment: see the full report (the workflow run's artifact)" in cut
    assert cut.endswith("footer line\n")
    assert fit("short", 10_000, "x") == "short"


def test_mermaid_line_chart_resamples_both_curves_on_one_axis() -> None:
    from mlops.report.model import Chart, Series

    chart = Chart("ROC", 'R"O]C', "line", "fpr", "tpr", series=(
        Series("base", "main", (0.0, 0.5, 1.0), (0.0, 0.7, 1.0)),
        Series("head", "this branch", (0.0, 0.2, 1.0), (0.0, 0.6, 1.0))))
    src = mermaid(chart)
    assert src.splitlines()[1] == "xychart-beta"
    assert 'title "R_O_C"' in src
    lines = [ln for ln in src.splitlines() if ln.strip().startswith("line [")]
    assert len(lines) == 2 and all(ln.count(",") == 20 for ln in lines)
    assert "0.35" in lines[0]  # base interpolated at x=0.25


# --- a second, small DVC project (real git, real DVC) ------------------------------------------------------------

@pytest.fixture(scope="module")
def _small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("small-home")
    os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "T",
                       "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T",
                       "GIT_COMMITTER_EMAIL": "t@example.com", "DVC_NO_ANALYTICS": "1"})
    try:
        return small_project(tmp_path_factory.mktemp("small") / "repo")
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def small(_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(_small, dest, symlinks=True)
    shutil.copytree(_small.parent / "store", tmp_path / "store")
    monkeypatch.chdir(dest)
    return dest


@pytest.mark.slow
def test_other_dvc_project_gets_a_correct_report(small: Path) -> None:
    branch(small, "feature/alpha")
    set_param(small, "alpha: 0.5", "alpha: 0.8")
    dvc(small, "repro", "-q")
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    md = (small / "reports" / "report.md").read_text()
    data = json.loads((small / "reports" / "report.json").read_text())
    rows = {m["name"]: m for m in data["metrics"]}
    assert set(rows) == {"quality.accuracy", "quality.rmse"}
    assert rows["quality.accuracy"]["vs_base"]["reference"] == 0.55
    assert rows["quality.accuracy"]["head"] == 0.58
    assert rows["quality.rmse"]["higher_is_better"] is False  # rmse defaults to lower-is-better
    assert rows["quality.rmse"]["vs_base"]["verdict"] == "better"
    assert "| quality.accuracy | 0.5500 | 0.5800 | 🟢 ▲ +0.0300 |" in md
    assert "| model.alpha | 0.5 | 0.8 |" in md
    charts = {c["id"]: c for c in data["charts"]}
    assert charts["eval/curve.csv"]["kind"] == "line"
    assert {s["role"] for s in charts["eval/curve.csv"]["series"]} == {"base", "head"}
    assert charts["Confusion"]["kind"] == "confusion" and charts["Confusion"]["categories"] == ["cat", "dog"]
    assert "```mermaid" in md and "xychart-beta" in md
    assert data["base"]["source"] == "local DVC cache"
    assert "No production model: no model artifact is declared" in md  # said plainly, not an error
    assert "+0.0300\n\n" in md  # the verdict is its own paragraph
    assert (small / "reports" / "report-plots" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    html = (small / "reports" / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    gate = runner.invoke(app, ["gate"])
    assert gate.exit_code == 0, gate.output
    assert "pass:" in _row(gate.output, "quality.accuracy", "min")


@pytest.mark.slow
def test_base_outputs_fetched_from_remote_else_reproduced(small: Path) -> None:
    base_sha = git(small, "rev-parse", "HEAD")
    shutil.rmtree(small / ".dvc" / "cache")
    branch(small, "feature/x")
    result = runner.invoke(app, ["report", "--production", "none"])
    assert result.exit_code == 0, result.output
    data = json.loads((small / "reports" / "report.json").read_text())
    assert data["base"]["source"] == "fetched from the DVC remote"
    assert data["base"]["commit"] == base_sha
    assert "Production comparison turned off" in (small / "reports" / "report.md").read_text()
    shutil.rmtree(small / ".dvc" / "cache")
    shutil.rmtree(small.parent / "store")
    dvc(small, "remote", "remove", "store")
    result = runner.invoke(app, ["report", "--production", "none"])
    assert result.exit_code == 0, result.output
    data = json.loads((small / "reports" / "report.json").read_text())
    assert data["base"]["source"] == "recomputed in a temporary worktree: fit (outputs not in the cache)"
    assert {m["name"]: m["vs_base"]["reference"] for m in data["metrics"]}["quality.accuracy"] == 0.55
    assert not git(small, "worktree", "list").count("\n")  # the temporary worktree is gone


@pytest.mark.slow
def test_injection_end_to_end_in_branch_and_param(small: Path) -> None:
    branch(small, "x<b>@octocat#1|y")
    set_param(small, 'name: "plain"', 'name: "<img src=x onerror=alert(1)>@octocat #1 | `x`"')
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    md = (small / "reports" / "report.md").read_text()
    assert "<img" not in md and "<b>" not in md
    assert "@octocat" not in md and not re.search(r"#1(?![0-9a-f])", md)  # colours like #1f6feb are ours
    row = next(line for line in md.splitlines() if line.startswith("| model.name"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 4
    html = (small / "reports" / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x" in html


@pytest.mark.slow
def test_gate_fails_with_exit_1_and_a_table(small: Path) -> None:
    branch(small, "worse")
    set_param(small, "alpha: 0.5", "alpha: 0.2")
    dvc(small, "repro", "-q")
    result = runner.invoke(app, ["gate"])
    assert result.exit_code == 1, result.output
    assert "FAIL:" in _row(result.output, "quality.accuracy", "max_drop")
    assert "pass:" in _row(result.output, "quality.accuracy", "min")
    assert "error: 2 of 3 gate(s) failed against base: quality.accuracy (max_drop), quality.rmse (max_rise)" \
        in result.output
    report = runner.invoke(app, ["report"])
    assert "❌ mlops report: 2 of 3 gates failed" in (small / "reports" / "report.md").read_text()
    assert report.exit_code == 0


def test_bad_base_ref_is_one_line_error(small: Path) -> None:
    (small / "eval").mkdir(exist_ok=True)
    result = runner.invoke(app, ["report", "--base", "no-such-branch"])
    assert result.exit_code == 1
    assert "error: git ref 'no-such-branch' not found" in result.output


# --- the example project: a branch that changes one training param -----------------------------------------------

@pytest.mark.slow
def test_run_on_a_branch_reports_metrics_and_param_change(trained_project: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = trained_project
    main_metrics = json.loads((root / "reports" / "metrics.json").read_text())
    git(root, "checkout", "-q", "-b", "deeper-trees")
    set_param(root, "max_depth: 4", "max_depth: 3")
    commit_all(root, "try shallower trees")
    monkeypatch.chdir(root)
    result = runner.invoke(app, ["run", "--base", "main"])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.html", "report.json"):
        assert (root / "reports" / name).is_file()
    md = (root / "reports" / "report.md").read_text()
    data = json.loads((root / "reports" / "report.json").read_text())
    new = json.loads((root / "reports" / "metrics.json").read_text())
    roc = next(m for m in data["metrics"] if m["name"] == "test.roc_auc")
    assert roc["vs_base"]["reference"] == main_metrics["test"]["roc_auc"]
    assert roc["head"] == new["test"]["roc_auc"]
    assert roc["vs_base"]["delta"] == pytest.approx(new["test"]["roc_auc"] - main_metrics["test"]["roc_auc"])
    assert f"| test.roc\\_auc | {main_metrics['test']['roc_auc']:.4f} | {new['test']['roc_auc']:.4f} |" in md
    assert "| train.max\\_depth | 4 | 3 |" in md
    assert "headline: test.roc_auc" in result.output
    assert len(md) < 65_536
    assert md.index("### Gates") < md.index("### Metrics") < md.index("### Params changed") \
        < md.index("### Data changed") < md.index("### Validation") < md.index("### Plots")


def _row(output: str, metric: str, rule: str) -> str:
    """The gate table's row for METRIC's RULE (the terminal rendering: columns separated by spaces)."""
    return next(line for line in output.splitlines() if line.split()[:2] == [metric, rule])


def test_gate_against_an_unknown_reference_is_a_usage_error() -> None:
    result = runner.invoke(app, ["gate", "--against", "prod"])
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output
    assert "'prod'" in result.output and "base" in result.output and "production" in result.output


def test_report_summary_says_when_no_gates_are_configured(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops.cli.report import print_report
    from mlops.jobs.report import ReportResult

    meta = Meta("0.1.0", 0.1, None, "2024-01-01T00:00:00+00:00", "reports/report.html")
    for gates in (GateReport("base", ()), None):
        report = build_report(ReportParams(headline="acc"), _state("head", acc=0.8), _state("base", acc=0.7), None,
                              "", gates, [], meta)
        print_report(ReportResult(report, (), ""))
        out = capsys.readouterr().out
        assert "gates: none configured" in out and "gates: passed" not in out


@pytest.mark.slow
def test_failed_pipeline_still_writes_a_report_that_says_so(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = project / "data/raw/telco_churn.csv"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines + lines[1:500]))  # a duplicated block of 499 rows
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 1, result.output
    assert "error: dvc repro failed: validation failed: check 'Data Duplicates'" in result.output
    md = (project / "reports/report.md").read_text()
    assert md.startswith("## ❌ mlops report: the pipeline failed at stage validate\n")
    assert "**The pipeline failed:** dvc repro failed: validation failed: check 'Data Duplicates'" in md
    validation = md.index("### Validation")
    assert md.index("| Data Duplicates |") > validation  # failed checks first, in the table at the top
    assert validation < md.index("### Metrics")
    assert "The metrics were not reproduced" in md
    data = json.loads((project / "reports/report.json").read_text())
    assert data["pipeline"]["failed"] is True and data["pipeline"]["stage"] == "validate"
    assert data["pipeline"]["metrics_reproduced"] is False
    assert "reports/metrics.json" in data["pipeline"]["not_reproduced"]
    assert data["gates"] is None
    assert [c["name"] for c in data["checks"] if c["status"] == "fail"] == ["Data Duplicates"]
    assert not (project / "models/model.ubj").exists()


def test_stale_metrics_are_not_shown_as_this_branchs(tmp_path: Path) -> None:
    """A metrics file left by an earlier run is not this branch's when the stage writing it did not run."""
    from mlops.jobs.report import _without_stale
    from mlops.report import PipelineFailure

    head = State("head", "this branch", "b", None, "workspace", {"acc": 0.9}, {}, {},
                 {"m.json": {"acc": 0.9}, "reports/plots/roc.json": [], "reports/validation.json": {}})
    failed = PipelineFailure("boom", "validate", True, ("m.json", "reports/plots"))
    stale_head, failure = _without_stale(head, failed, ["m.json"])
    assert stale_head.metrics == {} and failure.metrics_reproduced is False
    assert set(stale_head.files) == {"reports/validation.json"}
    base = _state("base", acc=0.7)
    meta = Meta("0.1.0", 0.1, None, "2024-01-01T00:00:00+00:00", "reports/report.html")
    md = markdown(build_report(ReportParams(headline="acc"), stale_head, base, None, "", None, [], meta,
                               pipeline=failure))
    assert "| acc | 0.7000 | not reproduced | – |" in md
    assert "0.9000" not in md
    fresh, ok = _without_stale(head, PipelineFailure("boom", "late", True, ("other.json",)), ["m.json"])
    assert fresh.metrics == {"acc": 0.9} and ok.metrics_reproduced is True
    # The stage that writes the metrics is the one that failed: DVC deleted its outputs, nothing is reproduced.
    gone = replace(head, files={"reports/validation.json": {}}, metrics={})
    none, failure = _without_stale(gone, PipelineFailure("boom", "evaluate", True, ()), ["m.json"])
    assert none.metrics == {} and failure.metrics_reproduced is False


def test_a_report_that_cannot_be_built_never_masks_the_pipeline_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops.errors import DvcError
    from mlops.jobs import report as jobs_report
    from mlops.jobs import run as pipeline

    def failing_pipeline(*args: object, **kwargs: object) -> None:
        raise DvcError("dvc repro failed: validation failed: check 'Data Duplicates'")

    def broken_build(*args: object, **kwargs: object) -> None:
        raise RuntimeError("template exploded")

    said: list[str] = []
    monkeypatch.setattr(pipeline, "run_pipeline", failing_pipeline)
    monkeypatch.setattr(jobs_report, "build", broken_build)
    with pytest.raises(DvcError, match="Data Duplicates"):
        pipeline.run_with_report(tmp_path, said.append)
    assert any("could not be built" in line and "template exploded" in line for line in said)


def test_mlops_run_on_another_projects_pipeline(small: Path) -> None:
    """Its params.yaml is its own: `mlops run` checks our schema only for stages that run `mlops stage`."""
    set_param(small, "alpha: 0.5", "alpha: 0.6")
    result = runner.invoke(app, ["run", "--base", "main"])
    assert result.exit_code == 0, result.output
    assert "stages run: fit" in result.output
    assert (small / "reports" / "report.md").is_file()


def test_gh_issue_references_are_inert() -> None:
    assert escape_md("GH-123 fixes gh-7") == "GH&#8203;-123 fixes gh&#8203;-7"
    assert escape_md("high-5 GH-x") == "high-5 GH-x"


@pytest.mark.slow
def test_a_malformed_dvc_lock_at_the_base_commit_is_a_one_line_error(small: Path) -> None:
    """The base's dvc.lock goes through the same validator as the workspace's: exit 1 naming it, not a crash."""
    good = (small / "dvc.lock").read_text()
    (small / "dvc.lock").write_text("schema: '2.0'\nstages:\n  make:\n    outs: 7\n")
    commit_all(small, "a broken lock on main")
    branch(small, "fix")
    (small / "dvc.lock").write_text(good)
    commit_all(small, "restore the lock")
    result = runner.invoke(app, ["report", "--base", "main"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "dvc.lock at main (" in errors[0]
    assert "key 'stages.make.outs' must be a list, got int" in errors[0]
    assert "internal error" not in result.output
