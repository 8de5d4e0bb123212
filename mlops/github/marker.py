"""The hidden marker that makes a GitHub comment or issue "ours", and whose it may be: shared by the sticky
pull-request comment and the sticky alarm issue.

The marker is CML's watermark (`![](https://cml.dev/watermark.png#SHA "CML watermark LABEL")`), so `cml comment
update` and `mlops comment` edit each other's comment. A marker alone proves nothing (anyone can paste it): an item
is ours only when it carries the marker with our LABEL *and* was written by our identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from mlops.errors import GitHubError

WATERMARK_RE = re.compile(r'!\[\]\(https://cml\.dev/watermark\.png#[^\s)]*\s+"CML watermark ?([^"]*)"\)')
_LABEL_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f\u2028\u2029]')

T = TypeVar("T")


def check_label(label: str) -> str:
    """LABEL if it can sit in the watermark's markdown title and be matched again; GitHubError otherwise."""
    if _LABEL_UNSAFE.search(label):
        raise GitHubError(f"--watermark-title {label!r}: must not contain a double quote, a backslash or a line "
                          "break (they break the marker's markdown title, and the next run would add a second "
                          "comment)", hint="use letters, digits, spaces and simple punctuation")
    return label


def watermark(sha: str, label: str = "") -> str:
    title = f"CML watermark {check_label(label)}".strip()
    return f'![](https://cml.dev/watermark.png#{sha} "{title}")'


def is_ours(body: str | None, label: str = "") -> bool:
    return any(m.group(1).strip() == label.strip() for m in WATERMARK_RE.finditer(body or ""))


@dataclass(frozen=True)
class Identity:
    """Whose comments and issues mlops may edit: one login, or any bot (installation tokens cannot ask /user)."""

    login: str | None  # None: any author of type Bot (github-actions[bot], a GitHub App's bot)

    def owns(self, item: Any) -> bool:
        user = getattr(item, "user", None)
        if user is None:
            return False
        if self.login is not None:
            return str(getattr(user, "login", "")).lower() == self.login.lower()
        return getattr(user, "type", None) == "Bot"

    def __str__(self) -> str:
        return self.login or "a bot account (the token cannot read GET /user)"


def ours(items: Iterable[T], label: str, identity: Callable[[], Identity]) -> list[T]:
    """The ITEMS (comments or issues, anything with `.body` and `.user`) that carry our marker with LABEL and were
    written by IDENTITY; IDENTITY is asked only when some item carries the marker (it may cost a request)."""
    marked = [i for i in items if is_ours(getattr(i, "body", None), label)]
    if not marked:
        return []
    me = identity()
    return [i for i in marked if me.owns(i)]


def newest(items: list[Any]) -> Any:
    """The newest of ITEMS (by creation time, then id): the one a sticky update edits."""
    return max(items, key=lambda i: (i.created_at, i.id))
