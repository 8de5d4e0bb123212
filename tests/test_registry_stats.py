"""`mlops registry stats`: delivery figures from real registry tags made at chosen dates (GIT_COMMITTER_DATE), and
from the GitHub double's pull requests and alarm issues."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops import modelstore
from mlops.cli import app
from mlops.formats import tagmeta
from mlops.github.alarm import ALARM_LABEL, marker_label
from mlops.github.marker import watermark
from mlops.jobs.stats import delivery_stats
from mlops.registry.stats import compute, parse_time
from mlops.registry.tags import read_events
from tests.github_double import GitHubDoubleWithIssues
from tests.helpers import commit_all, git, init_repo, runner

NAME = "churn-model"
UNTIL = datetime(2026, 1, 29, tzinfo=UTC)


def tag(repo: Path, name: str, commit: str, date: str, meta: tagmeta.TagMeta | None, headline: str = "") -> None:
    """An annotated tag made by git at DATE, with the metadata block mlops' writer makes (none: a GTO tag)."""
    message = tagmeta.write(headline or name, meta) if meta is not None else (headline or name) + "\n"
    env = {**os.environ, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "tag", "-a", name, commit, "-F", "-"], cwd=repo, input=message, text=True, check=True,
                   env=env, capture_output=True)


def register(repo: Path, version: str, commit: str, date: str, pr: int | None) -> None:
    tag(repo, f"{NAME}@{version}", commit, date,
        tagmeta.TagMeta(action="register", artifact=NAME, version=version, commit=commit, pr=pr))


def assign(repo: Path, stage: str, number: int, version: str, commit: str, date: str, reason: str = "promote",
           previous: str | None = None) -> None:
    tag(repo, f"{NAME}#{stage}#{number}", commit, date,
        tagmeta.TagMeta(action="assign", artifact=NAME, stage=stage, version=version, number=number,
                        commit=commit, reason=reason, previous=previous))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Three versions: v1.0.0 deployed; v1.1.0 deployed and rolled back 4 h later; v1.2.0 deployed; staging aside."""
    root = init_repo(tmp_path / "repo")
    commits = []
    for i in range(3):
        (root / "model.txt").write_text(f"model {i}\n")
        commits.append(commit_all(root, f"Merge pull request #{i + 1} from team/change-{i}"))
    c1, c2, c3 = commits
    register(root, "v1.0.0", c1, "2026-01-01T10:00:00+00:00", pr=1)
    assign(root, "production", 1, "v1.0.0", c1, "2026-01-01T12:00:00+00:00")
    register(root, "v1.1.0", c2, "2026-01-08T10:00:00+00:00", pr=2)
    assign(root, "staging", 2, "v1.1.0", c2, "2026-01-08T10:30:00+00:00")
    assign(root, "production", 3, "v1.1.0", c2, "2026-01-08T11:00:00+00:00", previous="v1.0.0")
    assign(root, "production", 4, "v1.0.0", c1, "2026-01-08T15:00:00+00:00", reason="rollback from v1.1.0",
           previous="v1.1.0")
    register(root, "v1.2.0", c3, "2026-01-15T09:00:00+00:00", pr=3)
    assign(root, "production", 5, "v1.2.0", c3, "2026-01-15T10:00:00+00:00", previous="v1.0.0")
    return root


@pytest.fixture
def gh() -> Iterator[GitHubDoubleWithIssues]:
    double = GitHubDoubleWithIssues().start()
    double.pull_commits = {1: [("a" * 40, "2025-12-30T10:00:00Z")],   # lead time 50 h
                           2: [("b" * 40, "2026-01-07T11:00:00Z"), ("c" * 40, "2026-01-08T09:00:00Z")],  # 24 h
                           3: [("d" * 40, "2026-01-14T10:00:00Z")]}   # 24 h
    yield double
    double.stop()


def figures(data: dict[str, object]) -> dict[str, object]:
    return {k: v["value"] for k, v in data["figures"].items()}  # type: ignore[attr-defined]


def test_offline_figures_from_tags_alone(repo: Path) -> None:
    stats = delivery_stats(repo, NAME, now=UNTIL)
    assert [(d.version, d.rollback, d.failed) for d in stats.deployments] == [
        ("v1.0.0", False, False), ("v1.1.0", False, True), ("v1.0.0", True, False), ("v1.2.0", False, False)]
    # three deployments (the rollback is not one) over 27.5 days since the first
    assert stats.deployment_frequency.value == pytest.approx(3 / 27.5 * 7)
    assert stats.change_failure_rate.value == pytest.approx(1 / 3)
    assert stats.registration_to_production.value == pytest.approx(1.0)  # median of 2 h, 1 h, 1 h
    assert stats.lead_time.value is None and "GitHub" in (stats.lead_time.why or "")
    assert stats.time_to_restore.value == pytest.approx(4.0)  # v1.1.0 deployed 11:00, rolled back 15:00
    assert "alarm issues need GitHub" in (stats.time_to_restore.why or "")
    assert stats.sources == {"tags": True, "pull_requests": False, "alarm_issues": False}


def test_a_rollback_is_an_older_version_even_without_metadata(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "gto")
    (root / "f").write_text("1")
    c1 = commit_all(root, "one")
    (root / "f").write_text("2")
    c2 = commit_all(root, "two")
    # GTO's own tags: no mlops metadata block at all
    tag(root, f"{NAME}@v0.1.0", c1, "2026-02-01T00:00:00+00:00", None)
    tag(root, f"{NAME}@v0.2.0", c2, "2026-02-02T00:00:00+00:00", None)
    tag(root, f"{NAME}#production#1", c1, "2026-02-01T01:00:00+00:00", None)
    tag(root, f"{NAME}#production#2", c2, "2026-02-02T01:00:00+00:00", None)
    tag(root, f"{NAME}#production#3", c1, "2026-02-02T03:30:00+00:00", None)
    events, _ = read_events(root)
    stats = compute(events, NAME, "production", until=datetime(2026, 2, 10, tzinfo=UTC))
    assert [d.rollback for d in stats.deployments] == [False, False, True]
    assert stats.change_failure_rate.value == pytest.approx(0.5)
    assert stats.time_to_restore.value == pytest.approx(2.5)
    assert stats.incidents[0].ref == f"{NAME}#production#2"


def test_with_github_lead_time_and_alarm_issues(repo: Path, gh: GitHubDoubleWithIssues,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    label = marker_label(NAME)
    ours = gh.add_issue("Monitoring alarm: churn-model", "report\n\n" + watermark("0" * 40, label),
                        login="github-actions[bot]", labels=[ALARM_LABEL], created_at="2026-01-12T00:00:00Z",
                        state="closed", closed_at="2026-01-16T00:00:00Z")
    # the same marker in an issue someone else opened, and an alarm issue of another model: neither counts
    gh.add_issue("fake", "x\n\n" + watermark("0" * 40, label), login="mallory", labels=[ALARM_LABEL],
                 created_at="2026-01-13T00:00:00Z")
    gh.add_issue("other", "x\n\n" + watermark("0" * 40, marker_label("other-model")), login="github-actions[bot]",
                 labels=[ALARM_LABEL], created_at="2026-01-13T00:00:00Z")
    gh.add_pull("mlops/retrain-1")  # pull requests are listed among issues by GitHub: never counted
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
    monkeypatch.setenv("GITHUB_REPOSITORY", f"{gh.owner}/{gh.repo}")
    monkeypatch.setenv("GITHUB_API_URL", gh.url)
    res = runner.invoke(app, ["registry", "stats", NAME, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["sources"] == {"tags": True, "pull_requests": True, "alarm_issues": True}
    values = figures(data)
    assert values["lead_time"] == pytest.approx(24.0)  # median of 50, 24, 24 h: the first commit of each PR
    # incidents: the failed deploy (4 h) and the alarm opened 01-12 00:00, restored by v1.2.0 at 01-15 10:00 (82 h)
    assert [(i["kind"], i["ref"]) for i in data["incidents"]] == [
        ("failed_deploy", f"{NAME}#production#3"), ("alarm", ours["html_url"])]
    assert values["time_to_restore"] == pytest.approx((4 + 82) / 2)
    assert gh.requests_for("GET", r"/pulls/1/commits") and gh.requests_for("GET", r"/issues$")
    assert not gh.writes()  # stats only reads


def test_since_narrows_the_window_and_text_output(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    res = runner.invoke(app, ["registry", "stats", NAME, "--since", "2026-01-10", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [d["version"] for d in data["deployments"]] == ["v1.2.0"]
    assert figures(data)["change_failure_rate"] == 0.0 and data["incidents"] == []
    assert data["figures"]["lead_time"]["why"].startswith("needs the pull requests' first commits")
    text = runner.invoke(app, ["registry", "stats", NAME])
    assert text.exit_code == 0, text.output
    assert "3 deployments, 1 rollbacks, 1 incidents" in text.output
    assert "change failure rate: 33% over 3" in text.output and "lead time for changes (median): unavailable" \
        in text.output
    bad = runner.invoke(app, ["registry", "stats", NAME, "--since", "last tuesday"])
    assert bad.exit_code == 1 and "--since 'last tuesday': not an ISO 8601 date" in bad.output


def test_no_deployment_and_unknown_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = init_repo(tmp_path / "empty")
    (root / "f").write_text("1")
    c1 = commit_all(root, "one")
    register(root, "v1.0.0", c1, "2026-03-01T00:00:00+00:00", pr=None)
    stats = delivery_stats(root, NAME, now=UNTIL)
    assert stats.deployment_frequency.value is None and "never been assigned production" in \
        (stats.deployment_frequency.why or "")
    assert stats.change_failure_rate.value is None
    monkeypatch.chdir(root)
    git(root, "tag", "-a", "other@v1.0.0", "-m", "x")  # two artifacts, no project to say which
    res = runner.invoke(app, ["registry", "stats"])
    assert res.exit_code == 1 and "which artifact?" in res.output


def test_gauges_reach_the_servers_metrics_text(repo: Path, tmp_path: Path) -> None:
    stats = delivery_stats(repo, NAME, now=UNTIL)
    store = tmp_path / "store"
    modelstore.write_gauges(store, NAME, stats.gauges(), "2026-01-29T00:00:00Z")
    text = modelstore.gauges_text(store, [NAME])
    assert f'mlops_delivery_change_failure_rate{{model="{NAME}"}} 0.333' in text
    assert f'mlops_delivery_time_to_restore_hours{{model="{NAME}"}} 4.0' in text
    assert "mlops_delivery_lead_time_hours" not in text  # unavailable offline: absent, never a false zero
    assert parse_time("2026-01-02").tzinfo is not None
