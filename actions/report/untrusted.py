"""Check and neutralise the report a fork's pull-request run handed over, before a privileged job posts it.

Usage: untrusted.py ARTIFACT_DIR SAFE_DIR. Prints the pull request's number; writes SAFE_DIR/report.md.

Everything in ARTIFACT_DIR was written by code from the fork: it is data, never trusted. It must hold exactly
`report.md` and `pr-number`, both regular files within their size limits; the number must be a plain integer, and
the pull request it names must have, as its head, the commit the triggering run built (MLOPS_HEAD_SHA, from the
`workflow_run` event, which GitHub writes): a report cannot be steered onto another pull request, nor a stale one
onto a pull request that moved on. The text is then made inert: @mentions, issue references and HTML other than the
report's own few tags cannot ping anyone or hide anything, and a forged sticky marker is dropped (`mlops comment`
appends the real one). Standard library only: it runs before anything else is trusted.
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


def pull_request_head(number: int) -> tuple[str, str | None]:
    """(head sha, head repository's full name) of pull request NUMBER, from the API with the job's token."""
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
    return str(head.get("sha") or ""), ((head.get("repo") or {}).get("full_name"))


def neutralise(text: str) -> str:
    """TEXT with nothing that pings, links an issue, hides content or fakes the sticky marker."""
    text = CONTROL.sub(" ", text)
    text = WATERMARK.sub("", text)
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
    try:
        if not SHA.fullmatch(expected):
            raise Refused("MLOPS_HEAD_SHA (the triggering run's head commit) is not a commit SHA")
        max_bytes = int(os.environ.get("MLOPS_MAX_BYTES", "65536"))
        number, text = read_artifact(folder, max_bytes)
        head, head_repo = pull_request_head(number)
        if head != expected:
            raise Refused(f"pull request #{number} has head {head[:12] or 'none'}, but the run that uploaded the "
                          f"artifact built {expected[:12]}: not its report (forged, or the PR moved on)")
        print(f"mlops report: artifact checked: pull request #{number} ({head_repo or 'unknown repository'}) at "
              f"{expected[:12]}", file=sys.stderr)
    except Refused as exc:
        print(f"::error title=mlops report::untrusted artifact refused: {exc}", file=sys.stderr)
        return 1
    safe.mkdir(parents=True, exist_ok=True)
    (safe / "report.md").write_text(neutralise(text), encoding="utf-8")
    print(number)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
