"""`mlops monitor`'s sticky alarm issue and job summary, against the GitHub double (real HTTP, PyGithub): one issue
per model while it alarms, a comment when the alarm recurs, closed once healthy; found by the PR comment's marker
and ownership rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops.errors import GitHubError
from mlops.github import CIContext
from mlops.github.alarm import ALARM_LABEL, marker_label
from mlops.github.marker import is_ours, watermark
from mlops.jobs import alarm
from mlops.monitor import MonitorResult, Performance, WindowInfo
from mlops.monitor.render import write_reports
from mlops.monitor.result import Alarm
from tests.github_double import GitHubDoubleWithIssues
from tests.registry_helpers import fake_project

NAME = "churn-model"
NOW = datetime(2026, 1, 20, 6, 0, tzinfo=UTC)


def result(out: Path, alarms: tuple[Alarm, ...] = ()) -> MonitorResult:
    """A monitoring result with its reports written by the real renderer."""
    window = WindowInfo("logs", "logs", (), None, "2026-01-20T00:00:00Z", "2026-01-20T05:59:00Z", 1200, 1200, 0, 0,
                        {}, {})
    perf = Performance({"roc_auc": 0.84}, {"roc_auc": 0.83}, {"roc_auc": 0.82}, None, 0, True, 0.5)
    r = MonitorResult(window, "models/reference.json", 1409, (), None, perf, (), None, alarms, (),
                      "2026-01-20T06:00:00Z", 0.1)
    files = write_reports(r, out, plots=False, delivery=[("deployment frequency", "1.00 per week over 1")])
    return MonitorResult(**{**r.__dict__, "files": files})


DRIFT = (Alarm("drift", "monthly_charges", "monthly_charges drifted (PSI 0.31)", 0.31, 0.2),)


@pytest.fixture
def gh() -> Iterator[GitHubDoubleWithIssues]:
    double = GitHubDoubleWithIssues().start()
    yield double
    double.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return fake_project(tmp_path)


def ci(gh: GitHubDoubleWithIssues, tmp_path: Path, token: str = "ghs_test") -> CIContext:
    return CIContext(token=token, repository=f"{gh.owner}/{gh.repo}", api_url=gh.url, run_id="77",
                     server_url="https://github.example", step_summary=str(tmp_path / "summary.md"))


def ours(gh: GitHubDoubleWithIssues) -> list[dict[str, object]]:
    return [i for i in gh.issues.values() if is_ours(str(i["body"]), marker_label(NAME))]


def test_open_update_close_then_a_new_incident(project: Path, gh: GitHubDoubleWithIssues, tmp_path: Path) -> None:
    ctx = ci(gh, tmp_path)
    lines: list[str] = []
    first = alarm.publish(project, result(tmp_path / "r1", DRIFT), ctx, issue=True, now=NOW, progress=lines.append)
    assert first is not None and first.action == "opened"
    issue = gh.issues[first.number or 0]
    assert issue["title"] == f"Monitoring alarm: {NAME}" and [lab["name"] for lab in issue["labels"]] == [ALARM_LABEL]
    assert "🔴 Monitoring: 1 alarm" in str(issue["body"]) and "### Delivery" in str(issue["body"])
    assert issue["user"]["login"] == "github-actions[bot]"
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("🔴 Monitoring: 1 alarm") == 1  # the job summary of this run
    assert any("alarm issue: opened #" in line for line in lines)

    again = alarm.publish(project, result(tmp_path / "r2", DRIFT * 2), ctx, issue=True, now=NOW, progress=print)
    assert again is not None and (again.action, again.number) == ("updated", first.number)
    assert "🔴 Monitoring: 2 alarms" in str(issue["body"]) and len(ours(gh)) == 1
    [recurred] = gh.comments_on(first.number or 0)
    assert recurred["body"].startswith("🔴 The alarm recurred: monitor: 2 alarms")
    assert "https://github.example/acme/churn/actions/runs/77" in recurred["body"]

    healthy = alarm.publish(project, result(tmp_path / "r3"), ctx, issue=True, now=NOW)
    assert healthy is not None and healthy.action == "closed"
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    assert gh.comments_on(first.number or 0)[-1]["body"].startswith("🟢 Healthy again: monitor: healthy")
    assert (tmp_path / "summary.md").read_text().count("## ") >= 3  # every run wrote its report

    quiet = alarm.publish(project, result(tmp_path / "r4"), ctx, issue=True, now=NOW)
    assert quiet is not None and quiet.action == "none"
    later = alarm.publish(project, result(tmp_path / "r5", DRIFT), ctx, issue=True, now=NOW)
    assert later is not None and later.action == "opened" and later.number != first.number
    assert [i["state"] for i in ours(gh)] == ["closed", "open"]  # one issue per incident


def test_a_copied_marker_in_someone_elses_issue_is_never_edited(project: Path, gh: GitHubDoubleWithIssues,
                                                                tmp_path: Path) -> None:
    fake = gh.add_issue("looks like ours", "x\n\n" + watermark("0" * 40, marker_label(NAME)), login="mallory",
                        labels=[ALARM_LABEL])
    done = alarm.publish(project, result(tmp_path / "r", DRIFT), ci(gh, tmp_path), issue=True, now=NOW)
    assert done is not None and done.action == "opened" and done.number != fake["number"]
    assert fake["body"].startswith("x") and not gh.comments_on(fake["number"])
    closed = alarm.publish(project, result(tmp_path / "h"), ci(gh, tmp_path), issue=True, now=NOW)
    assert closed is not None and closed.number == done.number and fake["state"] == "open"


def test_a_create_that_failed_after_storing_is_not_repeated(project: Path, gh: GitHubDoubleWithIssues,
                                                            tmp_path: Path) -> None:
    gh.create_then_fail = 1  # a proxy's 502 after GitHub made the issue
    done = alarm.publish(project, result(tmp_path / "r", DRIFT), ci(gh, tmp_path), issue=True, now=NOW)
    assert done is not None and done.action == "opened"
    assert len(ours(gh)) == 1 and len(gh.requests_for("POST", r"/issues$")) == 1


def test_github_failures(project: Path, gh: GitHubDoubleWithIssues, tmp_path: Path) -> None:
    with pytest.raises(GitHubError, match="--alarm-issue needs a GitHub token"):
        alarm.wanted(CIContext(), True)
    assert alarm.wanted(CIContext(), None) is False and alarm.wanted(ci(gh, tmp_path), None) is True
    assert alarm.wanted(ci(gh, tmp_path), False) is False
    gh.issues_disabled = True
    lines: list[str] = []
    # while alarming, a GitHub failure is reported and the alarm's own exit stands
    assert alarm.publish(project, result(tmp_path / "r", DRIFT), ci(gh, tmp_path), issue=True, now=NOW,
                         progress=lines.append) is None
    assert any("issues are disabled on acme/churn" in line for line in lines)
    gh.issues_disabled = False
    opened = alarm.publish(project, result(tmp_path / "r", DRIFT), ci(gh, tmp_path), issue=True, now=NOW)
    assert opened is not None
    gh.read_only = True  # healthy, but the issue cannot be closed: an error, or it would stay open unnoticed
    with pytest.raises(GitHubError, match=r"lacks issues: write"):
        alarm.publish(project, result(tmp_path / "h"), ci(gh, tmp_path), issue=True, now=NOW)


def test_the_cli_refuses_alarm_issue_without_token_before_checking(project: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops.cli import app
    from tests.helpers import runner

    monkeypatch.chdir(project)
    res = runner.invoke(app, ["monitor", "--current", str(tmp_path / "absent.csv"), "--alarm-issue",
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 1 and "--alarm-issue needs a GitHub token" in res.output
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_summary_without_issue_and_json_report_untouched(project: Path, tmp_path: Path) -> None:
    ctx = CIContext(step_summary=str(tmp_path / "s.md"))
    r = result(tmp_path / "r", DRIFT)
    assert alarm.publish(project, r, ctx, issue=False, now=NOW) is None
    assert "🔴 Monitoring: 1 alarm" in (tmp_path / "s.md").read_text()
    data = json.loads((tmp_path / "r" / "monitor.json").read_text())
    assert data["healthy"] is False and "delivery" not in data  # the JSON shape of mlops.monitor/1 is unchanged
    assert "Delivery (registry, last 90 days)" in (tmp_path / "r" / "monitor.html").read_text()


@pytest.fixture
def trained(_trained_template: Path, tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "project"
    shutil.copytree(_trained_template, root, symlinks=True)
    return root


@pytest.mark.slow
def test_monitor_cli_in_actions_opens_then_closes_the_issue(trained: Path, tmp_path: Path,
                                                            gh: GitHubDoubleWithIssues,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole command on a trained project: in Actions with a token, the alarm issue is on by default."""
    from mlops.cli import app
    from tests.helpers import runner
    from tests.monitor_helpers import load_churn, shifted, to_csv

    root = trained
    churn = load_churn(root, root / "models" / "reference.json")
    clean = to_csv(churn, churn.test, tmp_path / "clean.csv", labels=churn.y)
    frame = shifted(churn.test, "monthly_charges")
    bad = to_csv(churn, frame, tmp_path / "shifted.csv", scores=churn.score(frame))
    monkeypatch.chdir(root)
    for key, value in {"GITHUB_TOKEN": "ghs_test", "GITHUB_REPOSITORY": f"{gh.owner}/{gh.repo}",
                       "GITHUB_API_URL": gh.url, "GITHUB_RUN_ID": "91", "GITHUB_SERVER_URL": "https://github.example",
                       "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}.items():
        monkeypatch.setenv(key, value)
    res = runner.invoke(app, ["monitor", "--current", str(bad), "--out", str(tmp_path / "bad")])
    assert res.exit_code == 1 and "alarm issue: opened #" in res.output, res.output
    [issue] = ours(gh)
    assert "monthly\\_charges" in str(issue["body"]) and "### Delivery (registry, last 90 days)" in str(issue["body"])
    res = runner.invoke(app, ["monitor", "--current", str(clean), "--out", str(tmp_path / "ok")])
    assert res.exit_code == 0 and "alarm issue: closed #" in res.output, res.output
    assert issue["state"] == "closed"
    summary = (tmp_path / "summary.md").read_text()
    assert "🔴 Monitoring: 1 alarm" in summary and "🟢 Monitoring: healthy" in summary
    res = runner.invoke(app, ["monitor", "--current", str(bad), "--no-alarm-issue", "--out", str(tmp_path / "b2")])
    assert res.exit_code == 1 and "alarm issue" not in res.output and len(ours(gh)) == 1
