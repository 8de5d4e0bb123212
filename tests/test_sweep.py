"""`mlops sweep`: settings and their names, params.yaml edited in place, the strict `/mlops` comment commands, who
may ask on GitHub (write access, same-repository pull requests; a refusal only answers why), `/mlops apply`
committing exactly the params, and real sweeps as DVC experiments on the churn project and on a regression project
of another shape, with the one sticky leaderboard comment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.errors import SweepError
from mlops.github import CIContext
from mlops.jobs.comment import marked_body
from mlops.jobs.sweep import apply, apply_from_event, plan, request, sweep, sweep_from_event
from mlops.sweep import (
    MARKER_LABEL,
    Board,
    Delta,
    Entry,
    GateVerdict,
    board_markdown,
    expand,
    is_command,
    make_spec,
    name_of,
    parse_command,
    set_params_text,
    settings_from_markdown,
)
from tests.github_double import GitHubDoubleWithPermissions
from tests.helpers import REPO, commit_all, dvc, git, init_repo, runner

PARAMS = (REPO / "params.yaml").read_text()
RAW = yaml.safe_load(PARAMS)


# --- settings ------------------------------------------------------------------------------------------------------

def test_a_grid_is_every_combination_with_names_that_do_not_depend_on_order() -> None:
    a = expand(make_spec(["train.max_depth=3,4,5", "train.learning_rate=0.03,0.1"]), RAW)
    b = expand(make_spec(["train.learning_rate=0.03,0.1", "train.max_depth=3,4,5"]), RAW)
    assert len(a) == 6 and sorted(a) == sorted(b)
    assert {name_of(s) for s in a} == {name_of(s) for s in b} and len({name_of(s) for s in a}) == 6
    assert (("train.learning_rate", 0.1), ("train.max_depth", 5)) in a
    # a float key given an integer value is a float; the same setting is the same name
    one = expand(make_spec(["train.learning_rate=1"]), RAW)[0]
    assert one == (("train.learning_rate", 1.0),) and isinstance(one[0][1], float)
    assert name_of(one) == name_of((("train.learning_rate", 1.0),))


def test_random_search_is_seeded_distinct_and_inside_its_ranges() -> None:
    spec = make_spec(["train.max_depth=2..8", "train.learning_rate=0.01..0.3", "train.subsample=0.7,0.9"],
                     random_n=8, seed=3)
    a, b = expand(spec, RAW), expand(spec, RAW)
    assert a == b and len(a) == 8 and len(set(a)) == 8
    for s in a:
        d = dict(s)
        assert isinstance(d["train.max_depth"], int) and 2 <= d["train.max_depth"] <= 8
        assert isinstance(d["train.learning_rate"], float) and 0.01 <= d["train.learning_rate"] <= 0.3
        assert d["train.subsample"] in (0.7, 0.9)
    assert expand(make_spec(["train.max_depth=2..8"], random_n=8, seed=4), RAW) != a[:8]


@pytest.mark.parametrize(("sets", "kwargs", "message"), [
    (["train.max_dept=3,4"], {}, "key 'train.max_dept': not in params.yaml ('train' has no 'max_dept')"),
    (["trian.max_depth=3"], {}, "key 'trian.max_depth': not in params.yaml"),
    (["train=3"], {}, "key 'train': a mapping in params.yaml, not a single value"),
    (["evaluate.segments=a"], {}, "key 'evaluate.segments': a list in params.yaml"),
    (["train.max_depth=deep"], {}, "key 'train.max_depth': 'deep' is not an integer"),
    (["train.max_depth=3.5"], {}, "key 'train.max_depth': '3.5' is not an integer"),
    (["train.learning_rate=fast"], {}, "key 'train.learning_rate': 'fast' is not a number"),
    (["train.max_depth=2..8"], {}, "key 'train.max_depth': a range (LOW..HIGH) needs --random N"),
    (["train.max_depth=2.5..8"], {"random_n": 2}, "key 'train.max_depth': integer in params.yaml"),
    (["train.max_depth=1,2,3", "train.learning_rate=0.1,0.2,0.3,0.4,0.5"], {}, "15 settings: more than --max 12"),
])
def test_a_bad_key_or_value_is_one_line_naming_the_key(sets: list[str], kwargs: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(SweepError) as exc:
        expand(make_spec(sets, **kwargs), RAW)
    assert message in exc.value.message and "\n" not in exc.value.message


def test_the_projects_own_schema_refuses_a_value_before_anything_runs(project: Path) -> None:
    with pytest.raises(SweepError, match=r"train.max_depth=0: key 'train.max_depth': value out of range"):
        plan(project, make_spec(["train.max_depth=0,3"]))
    # the CLI: one line naming the key, exit 1, and nothing queued or changed
    result = runner.invoke(_app(), ["sweep", "--root", str(project), "--set", "train.max_dept=3,4"])
    assert result.exit_code == 1
    assert "error: key 'train.max_dept': not in params.yaml" in result.output
    assert git(project, "status", "--porcelain") == "" and not (project / "reports").exists()
    assert git(project, "for-each-ref", "refs/exps/") == ""


def _app() -> Any:
    from mlops.cli import app

    return app


# --- params.yaml edited in place ------------------------------------------------------------------------------------

def test_params_yaml_changes_exactly_the_swept_lines() -> None:
    setting = (("report.headline", "test.pr_auc"), ("train.learning_rate", 0.1), ("train.max_depth", 6))
    new = set_params_text(PARAMS, setting)
    old_lines, new_lines = PARAMS.splitlines(), new.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [("  max_depth: 4", "  max_depth: 6"), ("  learning_rate: 0.03", "  learning_rate: 0.1"),
                       ("  headline: test.roc_auc", "  headline: test.pr_auc")]
    data = yaml.safe_load(new)
    assert data["data"]["positive"] == "Yes"  # still a string for YAML 1.1 readers (dvc exp run -S broke this)
    # comments stay, and a value that YAML would read as something else is quoted
    line = set_params_text(PARAMS, (("train.device", "yes"),)).splitlines()
    assert any(ln.startswith('  device: "yes"') and "# auto:" in ln for ln in line)
    assert yaml.safe_load(set_params_text(PARAMS, (("train.device", "yes"),)))["train"]["device"] == "yes"


def test_a_key_in_flow_style_cannot_be_edited_in_place() -> None:
    text = "train: {max_depth: 4}\n"
    with pytest.raises(SweepError, match=r"key 'train\.max_depth'"):
        set_params_text(text, (("train.max_depth", 5),))


# --- the comment commands ----------------------------------------------------------------------------------------

def test_comment_commands_parse_strictly() -> None:
    c = parse_command("/mlops sweep --set train.max_depth=3,4,5 -S train.learning_rate=0.03,0.1\nthanks!")
    assert (c.action, c.sets, c.random, c.max) == ("sweep", ("train.max_depth=3,4,5", "train.learning_rate=0.03,0.1"),
                                                   None, 12)
    c = parse_command("  /mlops sweep --set train.max_depth=2..8 --random 5 --seed 7 --max 10")
    assert (c.random, c.seed, c.max) == (5, 7, 10)
    assert parse_command("/mlops apply sw-0a1b2c3").name == "sw-0a1b2c3"
    assert is_command("/mlops sweep") and not is_command("/mlopsx sweep") and not is_command("lgtm /mlops sweep")
    for body, why in [
        ("/mlops sweep --set train.max_depth=3;rm -rf /", "unexpected characters"),
        ("/mlops sweep --set train.max_depth=$(id)", "unexpected characters"),
        ("/mlops sweep --set `id`", "unexpected characters"),
        ("/mlops sweep --set train.max_depth='3'", "unexpected characters"),
        ("/mlops sweep --jobs 8 --set train.max_depth=3", "unknown option '--jobs'"),
        ("/mlops sweep --set", "--set needs a value"),
        ("/mlops sweep --random five --set train.max_depth=1..3", "--random 'five': expected a whole number"),
        ("/mlops sweep --set train.max_depth=3 --max 40", "at most 16 settings"),
        ("/mlops sweep", "no parameters to sweep"),
        ("/mlops sweep --set max_depth", "expected KEY=VALUE"),
        ("/mlops deploy production", "unknown command"),
        ("/mlops apply", "one experiment name"),
        ("/mlops apply ../../etc", "unexpected characters"),
        ("/mlops apply sw-12 extra", "one experiment name"),
    ]:
        with pytest.raises(SweepError) as exc:
            parse_command(body)
        assert why in exc.value.message, (body, exc.value.message)


# --- the leaderboard ---------------------------------------------------------------------------------------------

def _board() -> Board:
    good = (("train.max_depth", 3),)
    bad = (("train.max_depth", 9),)
    return Board("a" * 40, "test.roc_auc", True, ("test.roc_auc",), (
        Entry(name_of(bad), bad, "success", (Delta("test.roc_auc", 0.80, 0.84, -0.04, -0.05, -0.03, "worse"),),
              (GateVerdict("test.roc_auc", "max_drop", False, True, "dropped"),)),
        Entry(name_of(good), good, "success", (Delta("test.roc_auc", 0.85, 0.84, 0.01, -0.002, 0.02,
                                                     "within noise"),),
              (GateVerdict("test.roc_auc", "min", True, True, "ok"),)),
        Entry("sw-0000000", (("train.max_depth", 7),), "failed", note="train failed: out of memory <b>@team</b>"),
    ), {"test.roc_auc": 0.84}, 2, 12.0, (), 1000)


def test_the_leaderboard_ranks_and_carries_the_settings_for_apply() -> None:
    text = board_markdown(_board())
    rows = [ln for ln in text.splitlines() if ln.startswith("| `sw-")]
    assert rows[0].startswith(f"| `{name_of((('train.max_depth', 3),))}`")  # best headline first
    assert "+0.0100 \\[-0.0020, +0.0200\\] within noise" in rows[0] and "✅ pass" in rows[0]
    assert "-0.0400 \\[-0.0500, -0.0300\\] worse" in rows[1] and "❌ test.roc\\_auc" in rows[1]
    assert "failed" in rows[2] and "<b>" not in text and "@team" not in text  # untrusted text made inert
    baseline, settings = settings_from_markdown(text)
    assert baseline == "a" * 40
    assert settings == {name_of((("train.max_depth", 3),)): (("train.max_depth", 3),),
                        name_of((("train.max_depth", 9),)): (("train.max_depth", 9),)}  # failed ones: not appliable


# --- GitHub: who may ask ---------------------------------------------------------------------------------------------

@pytest.fixture
def double() -> Iterator[GitHubDoubleWithPermissions]:
    d = GitHubDoubleWithPermissions().start()
    d.roles.update({"alice": "write", "olga": "admin", "tom": "triage", "rita": "read"})
    d.pulls[7] = ("b" * 40, "acme/churn")
    d.pulls[8] = ("c" * 40, "mallory/churn")
    try:
        yield d
    finally:
        d.stop()


def _comment_event(tmp_path: Path, body: str, login: str, association: str, number: int = 7) -> Path:
    event = {"action": "created", "issue": {"number": number, "pull_request": {"url": "https://x/pulls/7"}},
             "comment": {"id": 1, "body": body, "user": {"login": login}, "author_association": association},
             "repository": {"full_name": "acme/churn"}, "sender": {"login": login}}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return path


def _label_event(tmp_path: Path, body: str, login: str, head_repo: str = "acme/churn",
                 label: str = "mlops-sweep") -> Path:
    side = {"ref": "branch-7", "sha": "b" * 40, "repo": {"full_name": head_repo}}
    event = {"action": "labeled", "label": {"name": label}, "sender": {"login": login},
             "pull_request": {"number": 7, "body": body, "state": "open", "head": side,
                              "base": {"ref": "main", "sha": "d" * 40, "repo": {"full_name": "acme/churn"}}}}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return path


def _ci(double: GitHubDoubleWithPermissions, event: Path) -> CIContext:
    return CIContext(token="ghs_installation", repository="acme/churn", api_url=double.url, event_path=str(event))


def _replies(double: GitHubDoubleWithPermissions, number: int = 7) -> list[str]:
    return [c["body"] for c in double.comments_on(number)]


@pytest.mark.parametrize(("login", "association", "number", "why"), [
    ("eve", "NONE", 7, "eve is none of acme/churn"),
    ("carl", "CONTRIBUTOR", 7, "carl is contributor of acme/churn"),
    ("rita", "COLLABORATOR", 7, "rita has read access to acme/churn"),  # a collaborator, but read-only
    ("tom", "MEMBER", 7, "tom has read access"),  # triage: GitHub's legacy permission reads "read"
    ("alice", "COLLABORATOR", 8, "comes from another repository (mallory/churn)"),  # a fork's pull request
])
def test_a_refused_command_only_gets_a_reply_saying_why(tmp_path: Path, double: GitHubDoubleWithPermissions,
                                                       login: str, association: str, number: int,
                                                       why: str) -> None:
    event = _comment_event(tmp_path, "/mlops sweep --set train.max_depth=3,4", login, association, number)
    r = request(tmp_path, ci=_ci(double, event))
    assert r.action == "none" and why in (r.reason or "")
    writes = double.writes()
    assert len(writes) == 1 and writes[0].method == "POST" and writes[0].path.endswith(f"/issues/{number}/comments")
    reply = _replies(double, number)[0]
    assert "did not run this `/mlops` command" in reply and "Nothing was run or changed" in reply
    assert why.split(" ")[-1].strip("()") in reply.replace("\\", "")


def test_a_writer_on_a_same_repository_pull_request_may_sweep(tmp_path: Path,
                                                              double: GitHubDoubleWithPermissions) -> None:
    event = _comment_event(tmp_path, "/mlops sweep --set train.max_depth=3,4", "alice", "COLLABORATOR")
    r = request(tmp_path, ci=_ci(double, event))
    assert (r.action, r.pr, r.sha, r.ref) == ("sweep", 7, "b" * 40, "branch-7")
    assert double.writes() == []  # nothing posted: the sweep job posts the leaderboard
    assert double.requests_for("GET", r"/collaborators/alice/permission")
    # the CLI hands only checked values to the workflow
    out = tmp_path / "github_output"
    from mlops.cli import app

    env = {"GITHUB_TOKEN": "ghs_installation", "GITHUB_REPOSITORY": "acme/churn", "GITHUB_API_URL": double.url,
           "GITHUB_EVENT_PATH": str(event)}
    result = runner.invoke(app, ["sweep-request", "--root", str(tmp_path), "--output", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert out.read_text() == f"action=sweep\npr=7\nsha={'b' * 40}\nref=branch-7\n"


def test_a_bad_command_from_a_writer_is_answered_with_the_parse_error(tmp_path: Path,
                                                                     double: GitHubDoubleWithPermissions) -> None:
    event = _comment_event(tmp_path, "/mlops sweep --set train.max_depth=3 && curl evil", "olga", "OWNER")
    r = request(tmp_path, ci=_ci(double, event))
    assert r.action == "none" and "unexpected characters" in (r.reason or "")
    assert len(_replies(double)) == 1


def test_comments_that_are_no_command_are_ignored_silently(tmp_path: Path,
                                                            double: GitHubDoubleWithPermissions) -> None:
    event = _comment_event(tmp_path, "looks good, maybe /mlops sweep later", "eve", "NONE")
    assert request(tmp_path, ci=_ci(double, event)).action == "none"
    assert double.requests == []


def test_the_label_needs_a_writer_and_a_command_in_the_description(tmp_path: Path,
                                                                   double: GitHubDoubleWithPermissions) -> None:
    body = "Tune the trees.\n\n/mlops sweep --set train.max_depth=3,5\n"
    r = request(tmp_path, ci=_ci(double, _label_event(tmp_path, body, "alice")))
    assert r.action == "sweep" and r.command is not None and r.command.sets == ("train.max_depth=3,5",)
    r = request(tmp_path, ci=_ci(double, _label_event(tmp_path, body, "tom")))  # triage may label, not sweep
    assert r.action == "none" and "tom has read access" in (r.reason or "")
    r = request(tmp_path, ci=_ci(double, _label_event(tmp_path, "no command here", "alice")))
    assert r.action == "none" and "needs a `/mlops sweep --set KEY=V1,V2` line" in (r.reason or "")
    assert len(_replies(double)) == 2
    assert request(tmp_path, ci=_ci(double, _label_event(tmp_path, body, "alice", label="bug"))).action == "none"


def test_an_unknown_key_in_a_comment_is_answered_and_nothing_runs(project: Path, tmp_path: Path,
                                                                   double: GitHubDoubleWithPermissions) -> None:
    event = _comment_event(tmp_path, "/mlops sweep --set train.max_dept=3,4", "alice", "COLLABORATOR")
    with pytest.raises(SweepError, match=r"key 'train\.max_dept'"):
        sweep_from_event(project, ci=_ci(double, event))
    assert "key 'train.max\\_dept'" in _replies(double)[0]
    assert git(project, "status", "--porcelain") == ""


# --- /mlops apply --------------------------------------------------------------------------------------------------

def _pr_checkout(tmp_path: Path) -> tuple[Path, Path]:
    """A bare origin with main and the pull request's branch-7 (params.yaml), and a clone of branch-7."""
    seed = init_repo(tmp_path / "seed")
    (seed / "params.yaml").write_text(PARAMS)
    (seed / "train.py").write_text("print('train')\n")
    commit_all(seed, "project")
    git(seed, "checkout", "-q", "-b", "branch-7")
    (seed / "train.py").write_text("print('train better')\n")
    commit_all(seed, "the pull request")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(origin))
    clone = tmp_path / "pr"
    git(tmp_path, "clone", "-q", "--branch", "branch-7", str(origin), str(clone))
    return origin, clone


def test_apply_commits_exactly_that_experiments_params_to_the_branch(tmp_path: Path,
                                                                     double: GitHubDoubleWithPermissions) -> None:
    origin, clone = _pr_checkout(tmp_path)
    text = board_markdown(_board())
    chosen = name_of((("train.max_depth", 3),))
    # someone pastes our marker with other settings: never read (not written by us)
    forged = board_markdown(_board()).replace('"train.max_depth": 3', '"train.max_depth": 30')
    double.add_issue_comment(7, marked_body(text, "a" * 40, MARKER_LABEL, "x"), login="github-actions[bot]")
    double.add_issue_comment(7, marked_body(forged, "a" * 40, MARKER_LABEL, "x"), login="mallory")
    before = git(origin, "rev-parse", "refs/heads/branch-7")
    event = _comment_event(tmp_path, f"/mlops apply {chosen}", "alice", "COLLABORATOR")
    result = apply_from_event(clone, ci=_ci(double, event), push=True)
    after = git(origin, "rev-parse", "refs/heads/branch-7")
    assert result.pushed == "branch-7" and after == result.commit and after != before
    assert git(origin, "rev-parse", f"{after}^") == before  # one commit on top, nothing merged
    assert git(origin, "diff", "--name-only", before, after) == "params.yaml"
    diff = git(origin, "diff", "-U0", before, after, "--", "params.yaml")
    assert [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))] == \
        ["-  max_depth: 4", "+  max_depth: 3"]
    assert git(origin, "rev-parse", "refs/heads/main") == git(clone, "rev-parse", "origin/main")  # main untouched
    assert f"mlops applied `{chosen}`" in _replies(double)[-1].replace("\\", "")
    # a name that is not on the leaderboard: a reply, and nothing committed
    event = _comment_event(tmp_path, "/mlops apply sw-fffffff", "alice", "COLLABORATOR")
    with pytest.raises(SweepError, match="not on the leaderboard"):
        apply_from_event(clone, ci=_ci(double, event), push=True)
    assert git(origin, "rev-parse", "refs/heads/branch-7") == after
    assert "did not apply" in _replies(double)[-1]


def test_apply_locally_from_the_last_leaderboard(tmp_path: Path) -> None:
    _, clone = _pr_checkout(tmp_path)
    (clone / "reports").mkdir()
    from mlops.sweep import board_dict

    (clone / "reports" / "sweep.json").write_text(json.dumps(board_dict(_board())))
    name = name_of((("train.max_depth", 9),))
    result = apply(clone, name, commit=True)
    assert yaml.safe_load((clone / "params.yaml").read_text())["train"]["max_depth"] == 9
    assert git(clone, "show", "--name-only", "--format=%s", "HEAD").splitlines() == \
        [f"mlops sweep: apply {name}", "", "params.yaml"] and result.commit
    with pytest.raises(SweepError, match="already holds"):
        apply(clone, name)


# --- real sweeps ---------------------------------------------------------------------------------------------------

def _exp_names(root: Path) -> set[str]:
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/exps/")
    return {r.rsplit("/", 1)[-1] for r in refs.splitlines()}


@pytest.mark.slow
def test_a_sweep_on_the_churn_project_posts_one_leaderboard(trained_project: Path, tmp_path: Path) -> None:
    root = trained_project
    params_before = (root / "params.yaml").read_bytes()
    d = GitHubDoubleWithPermissions().start()
    try:
        ci = CIContext(token="ghs_installation", repository="acme/churn", api_url=d.url)
        spec = make_spec(["train.n_estimators=60,120"])
        first = sweep(root, spec, jobs=2, comment=True, pr=5, ci=ci)
        board = first.board
        assert [e.state for e in board.entries] == ["success", "success"], board.entries
        assert _exp_names(root) == {e.name for e in board.entries}
        assert (root / "params.yaml").read_bytes() == params_before  # put back byte for byte
        assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
        head = board.baseline_metrics["test.roc_auc"]
        for e in board.entries:
            lead = e.deltas[0]
            assert lead.metric == "test.roc_auc" and lead.baseline == head
            assert lead.low is not None and lead.high is not None and lead.low <= lead.delta <= lead.high  # type: ignore[operator]
            assert lead.verdict in ("better", "worse", "within noise")
            assert {g.metric for g in e.gates} == {"checks.baseline_lift", "test.roc_auc", "test.pr_auc",
                                                   "test.log_loss"}
            # what the experiment's own params.yaml and metrics say
            ref = next(r for r in git(root, "for-each-ref", "--format=%(refname)", "refs/exps/").splitlines()
                       if r.endswith(e.name))
            exp_params = yaml.safe_load(git(root, "show", f"{ref}:params.yaml"))
            assert exp_params["train"]["n_estimators"] == dict(e.setting)["train.n_estimators"]
            assert exp_params["data"]["positive"] == "Yes"
        data = json.loads((root / "reports" / "sweep.json").read_text())
        assert {x["name"] for x in data["experiments"]} == {e.name for e in board.entries}
        assert first.posted.action == "created"
        # a second sweep (one setting reused, one new) edits the same comment: never a second one
        second = sweep(root, make_spec(["train.n_estimators=60,90"]), jobs=1, comment=True, pr=5, ci=ci)
        assert second.posted.action == "updated" and second.posted.comment_id == first.posted.comment_id
        comments = d.comments_on(5)
        assert len(comments) == 1 and name_of((("train.n_estimators", 90),)) in comments[0]["body"]
        assert 'CML watermark mlops sweep"' in comments[0]["body"]
        assert len(d.requests_for("POST", r"/issues/5/comments")) == 1
    finally:
        d.stop()


REGRESSION_TRAIN = textwrap.dedent("""\
    import csv, json
    import yaml
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.model_selection import train_test_split

    p = yaml.safe_load(open("params.yaml"))["train"]
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    model = GradientBoostingRegressor(n_estimators=p["n_estimators"], max_depth=p["max_depth"],
                                      learning_rate=p["learning_rate"], random_state=0).fit(Xtr, ytr)
    pred = model.predict(Xte)
    err = pred - yte
    rmse = float((err ** 2).mean() ** 0.5)
    mae = float(abs(err).mean())
    r2 = float(1 - (err ** 2).sum() / ((yte - yte.mean()) ** 2).sum())
    json.dump({"test": {"rmse": rmse, "mae": mae, "r2": r2}}, open("metrics.json", "w"))
    with open("predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "prediction", "label"])
        for i, (a, b) in enumerate(zip(pred, yte)):
            w.writerow([i, repr(float(a)), repr(float(b))])
""")


@pytest.mark.slow
def test_a_sweep_on_a_regression_project_of_another_shape(tmp_path: Path) -> None:
    """A project with its own params and scripts (scikit-learn, diabetes): intervals of rmse from its per-row
    predictions, lower is better, its gate judged."""
    root = init_repo(tmp_path / "regression")
    dvc(root, "init", "-q")
    (root / "train.py").write_text(REGRESSION_TRAIN)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {
        "cmd": f"{sys.executable} train.py", "deps": ["train.py"], "params": ["train"],
        "metrics": ["metrics.json"], "outs": ["predictions.csv"]}}}, sort_keys=False))
    (root / "params.yaml").write_text(textwrap.dedent("""\
        train:
          n_estimators: 60   # trees
          max_depth: 2
          learning_rate: 0.1
        report:
          headline: test.rmse
          predictions: {path: predictions.csv}
        gates:
          test.rmse: {max_rise: 1.0}
        """))
    dvc(root, "repro", "-q")
    commit_all(root, "regression project")
    result = sweep(root, make_spec(["train.max_depth=1,3"]), jobs=2)
    board = result.board
    assert board.headline == "test.rmse" and board.higher_is_better is False
    assert [e.state for e in board.entries] == ["success", "success"]
    for e in board.entries:
        lead = e.deltas[0]
        assert lead.low is not None and lead.high is not None and lead.low <= lead.delta <= lead.high  # type: ignore[operator]
        assert [g.metric for g in e.gates] == ["test.rmse"]
        assert e.gates_passed == (lead.delta <= 1.0)  # type: ignore[operator]
    ranked = board.ranked()
    assert ranked[0].deltas[0].value <= ranked[1].deltas[0].value  # type: ignore[operator]  # lower rmse first
    assert "Δ test.rmse (95% interval)" in result.markdown
    # the project's own params schema is not the toolkit's: a value of the wrong type is still refused
    with pytest.raises(SweepError, match=r"key 'train\.max_depth': 'two' is not an integer"):
        plan(root, make_spec(["train.max_depth=two"]))
    shutil.rmtree(root / "reports", ignore_errors=True)
    assert subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                          text=True, check=True).stdout == ""


# --- the workflow ----------------------------------------------------------------------------------------------------

def test_the_sweep_workflow_keeps_its_boundaries() -> None:
    """Static facts of .github/workflows/sweep.yml (zizmor and actionlint run over it in tests/e2e): who runs what,
    where, with which token; the comment reaches no shell."""
    path = REPO / ".github/workflows/sweep.yml"
    text = path.read_text()
    doc = yaml.safe_load(text)
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on` as true
    assert on == {"issue_comment": {"types": ["created"]}, "pull_request": {"types": ["labeled"]}}
    assert doc["permissions"] == {}
    jobs = doc["jobs"]
    assert set(jobs) == {"request", "sweep", "apply"}
    assert jobs["request"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["sweep"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["apply"]["permissions"] == {"contents": "write", "pull-requests": "write"}
    # the pull request's code runs only in job sweep, on the pull-request runners, after job request said so
    assert jobs["sweep"]["needs"] == "request" and jobs["sweep"]["if"] == "needs.request.outputs.action == 'sweep'"
    assert "vars.MLOPS_RUNNER_LABELS" in jobs["sweep"]["runs-on"]
    assert jobs["request"]["runs-on"] == jobs["apply"]["runs-on"] == "ubuntu-latest"
    assert jobs["apply"]["if"] == "needs.request.outputs.action == 'apply'"
    for name in ("request", "apply"):  # the write token meets only the default branch's toolkit
        first = jobs[name]["steps"][0]
        assert first["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    pr_checkout = jobs["apply"]["steps"][1]
    assert pr_checkout["with"]["path"] == "pull-request" and "--root pull-request" in jobs["apply"]["steps"][-1]["run"]
    assert jobs["sweep"]["steps"][0]["with"]["ref"] == "${{ needs.request.outputs.sha }}"
    assert "secrets." not in text
    for job in jobs.values():
        for step in job["steps"]:
            assert "github.event.comment" not in json.dumps(step), step  # the comment is read from the event file
            if "uses" in step and step["uses"].startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
