"""Check and neutralise the report a fork's pull-request run handed over, before a privileged job posts it.

Usage: untrusted.py ARTIFACT_DIR SAFE_DIR. Prints the pull request's number; writes SAFE_DIR/report.md.

Everything in ARTIFACT_DIR was written by code from the fork: it is data, never trusted. It must hold exactly
`report.md` and `pr-number`, both regular files within their size limits; the number must be a plain integer, and
the pull request it names must be open and have, as its head, the commit and the repository the triggering run built
(MLOPS_HEAD_SHA and MLOPS_HEAD_REPO, from the `workflow_run` event, which GitHub writes), and that repository must be
a fork: a report cannot be steered onto another pull request (a same-repository one that carries the same commit
included), nor a stale one onto a pull request that moved on. The text is then made inert: @mentions and issue
references (also entity-encoded ones: every `&` outside the few entities the report itself writes is escaped),
HTML other than the report's own few tags, and link-reference definitions (which render as nothing) are shown as
text, and every sticky marker is dropped, however it is nested (`mlops comment` appends the real one, with a label of
its own for fork reports). Standard library only: it runs before anything else is trusted.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path

EXPECTED = {"report.md", "pr-number"}
NUMBER = re.compile(r"[1-9][0-9]{0,9}")
SHA = re.compile(r"[0-9a-f]{40}")
ZWSP = "\u200b"
# The HTML the report template itself writes; any other tag is shown as text.
ALLOWED_TAGS = re.compile(r"<(/?)(details|summary|sub|sup|br)\s*/?>", re.IGNORECASE)
ALLOWED_COMMENT = "<!-- mlops:footer -->"
WATERMARK = re.compile(r"!\[[^\]]*\]\(\s*https?://cml\.dev/watermark\.png[^)]*\)", re.IGNORECASE)
# What is left of a marker after the removal (a reference-style image, a title elsewhere) is broken up so that no
# marker parser (ours: mlops.github.client.WATERMARK_RE, CML's) can match it again.
WATERMARK_WORD = re.compile(r"(?i)(water)(mark)")
# `&` starts an entity, and GitHub finds mentions and references after decoding them (`&#64;user`, `&#x23;12`,
# `&commat;`): escaped, except the entities the report's own escaping (mlops.markdown.md) writes, which decode to
# nothing that pings: a `#` only ever followed by a zero-width space.
AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt|quot|#8203);|#35;&#8203;)")
# A link-reference definition (`[x]: https://… "text"`) renders as nothing: a backslash shows it as text.
LINK_DEFINITION = re.compile(r"(?m)^((?:[ \t]*>)*[ \t]{0,3})\[(?=[^\]\n]*\]:)")
MENTION = re.compile(r"@(?=[A-Za-z0-9_\-])")
# `#12`, `GH-12`, `owner/repo#12` link (and notify) issues; `&#35;` style entities are left alone.
ISSUE_REF = re.compile(r"(?<!&)#(?=[0-9])")
GH_REF = re.compile(r"(?i)\b(gh-)(?=[0-9])")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class Refused(Exception):
    """The artifact is not what a pull-request run of ours uploads: nothing is posted."""


def read_artifact(folder: Path, max_bytes: int) -> tuple[int, str]:
    if not folder.is_dir() or folder.is_symlink():
        raise Refused(f"no artifact folder at {folder}")
    found = {p.name: p for p in folder.iterdir()}
    if set(found) != EXPECTED:
        raise Refused(f"the artifact must hold exactly {sorted(EXPECTED)}, it holds {sorted(found)[:10]}")
    limits = {"report.md": max_bytes, "pr-number": 16}
    for name, path in found.items():
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{name} is not a regular file")
        if info.st_size > limits[name]:
            raise Refused(f"{name} has {info.st_size} bytes, more than the {limits[name]} accepted")
    raw_number = found["pr-number"].read_text(encoding="ascii", errors="replace").strip()
    if not NUMBER.fullmatch(raw_number):
        raise Refused(f"pr-number is not a positive integer: {raw_number[:20]!r}")
    try:
        text = found["report.md"].read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("report.md is not UTF-8 text") from None
    return int(raw_number), text


def pull_request_head(number: int) -> tuple[str, str, str]:
    """(head sha, head repository's full name, state) of pull request NUMBER, from the API with the job's token."""
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    if not api.startswith(("https://", "http://")):
        raise Refused(f"GITHUB_API_URL {api!r} is not an http(s) URL")
    repo = os.environ["GITHUB_REPOSITORY"]
    request = urllib.request.Request(f"{api}/repos/{repo}/pulls/{number}", headers={  # noqa: S310 (http(s) only)
        "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
        "Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}", "User-Agent": "mlops-report-action"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (http(s) only)
            data = json.loads(response.read(1_000_000))
    except urllib.error.HTTPError as exc:
        raise Refused(f"pull request #{number} cannot be read ({exc.code}): the artifact names no pull request "
                      "of this repository") from None
    head = data.get("head") or {}
    return (str(head.get("sha") or ""), str((head.get("repo") or {}).get("full_name") or ""),
            str(data.get("state") or ""))


def neutralise(text: str) -> str:
    """TEXT with nothing that pings, links an issue, hides content or fakes the sticky marker."""
    text = CONTROL.sub(" ", text)
    while True:  # to a fixed point: removing one marker must not join the pieces of another
        stripped = WATERMARK.sub("", text)
        if stripped == text:
            break
        text = stripped
    text = WATERMARK_WORD.sub("\\1" + ZWSP + "\\2", text)
    text = AMPERSAND.sub("&amp;", text)
    text = LINK_DEFINITION.sub(lambda m: m.group(1) + "\\[", text)
    kept: list[str] = []

    def shield(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = ALLOWED_TAGS.sub(shield, text.replace(ALLOWED_COMMENT, "\x00c\x00"))
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text).replace("\x00c\x00", ALLOWED_COMMENT)
    text = MENTION.sub("@" + ZWSP, text)
    text = ISSUE_REF.sub("#" + ZWSP, text)
    return GH_REF.sub(r"\1" + ZWSP, text)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: untrusted.py ARTIFACT_DIR SAFE_DIR", file=sys.stderr)
        return 2
    folder, safe = Path(argv[1]), Path(argv[2])
    expected = os.environ.get("MLOPS_HEAD_SHA", "")
    expected_repo = os.environ.get("MLOPS_HEAD_REPO", "")
    this_repo = os.environ.get("GITHUB_REPOSITORY", "")
    try:
        if not SHA.fullmatch(expected):
            raise Refused("MLOPS_HEAD_SHA (the triggering run's head commit) is not a commit SHA")
        if not expected_repo or expected_repo.lower() == this_repo.lower():
            raise Refused(f"MLOPS_HEAD_REPO (the triggering run's head repository) is {expected_repo or 'empty'}: "
                          "this path posts the reports of forks only")
        max_bytes = int(os.environ.get("MLOPS_MAX_BYTES", "65536"))
        number, text = read_artifact(folder, max_bytes)
        head, head_repo, state = pull_request_head(number)
        if head != expected:
            raise Refused(f"pull request #{number} has head {head[:12] or 'none'}, but the run that uploaded the "
                          f"artifact built {expected[:12]}: not its report (forged, or the PR moved on)")
        # The same commit can head several pull requests (a maintainer pushes a contributor's commit to a branch
        # here): the repository binds the report to the fork's own pull request, never a same-repository one.
        if head_repo.lower() != expected_repo.lower():
            raise Refused(f"pull request #{number} comes from {head_repo or 'no repository'}, but the run that "
                          f"uploaded the artifact built {expected_repo}: not its report")
        if state != "open":
            raise Refused(f"pull request #{number} is {state or 'in no state'}, not open")
        print(f"mlops report: artifact checked: pull request #{number} ({head_repo}) at {expected[:12]}",
              file=sys.stderr)
    except Refused as exc:
        print(f"::error title=mlops report::untrusted artifact refused: {exc}", file=sys.stderr)
        return 1
    safe.mkdir(parents=True, exist_ok=True)
    (safe / "report.md").write_text(neutralise(text), encoding="utf-8")
    print(number)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
