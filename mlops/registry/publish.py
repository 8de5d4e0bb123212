"""The registry's write side: create annotated tags, push them atomically, never move or delete a published one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops import git
from mlops.errors import PushRejected, TagConflict

_LOST = ("already exists", "stale info", "fetch first", "up to date")
_CONTENDED = ("atomic transaction failed", "failed to lock", "cannot lock", "unable to lock", "failed to update ref")


@dataclass(frozen=True)
class NewTag:
    name: str
    commit: str
    message: str
    date: str | None = None  # tagger date, "@<epoch> +0000"; None: now


def check_free(tags: list[NewTag], root: Path) -> None:
    """TagConflict when a tag name is taken (by any tag, lightweight included) at another commit."""
    for t in tags:
        existing = git.tag_commit(t.name, root)
        if existing is not None and existing != t.commit:
            raise TagConflict(f"tag '{t.name}' already exists and points at {existing[:12]}, not {t.commit[:12]}",
                              hint="registry tags are never moved: remove the stray tag if it is not a release, "
                                   "or choose another version with --bump")


def signing_configured(root: Path) -> bool:
    return git.config_get("user.signingkey", root) is not None


def create_local(tags: list[NewTag], root: Path) -> list[str]:
    """Create TAGS (signed when a signing key is configured); all or none: on failure the ones made are dropped."""
    check_free(tags, root)
    sign = signing_configured(root)
    made: list[str] = []
    try:
        for t in tags:
            if git.tag_commit(t.name, root) == t.commit:
                continue  # already there, pointing at the right commit
            git.create_annotated_tag(t.name, t.commit, t.message, root, sign=sign, date=t.date)
            made.append(t.name)
    except Exception:
        for name in made:
            git.delete_unpublished_tag(name, root)
        raise
    return made


def push(tags: list[str], made: list[str], remote: str, root: Path) -> bool:
    """Push TAGS atomically. True: pushed. False: the remote already has one of those names (a concurrent
    promotion won the race); the tags this process MADE are dropped locally so that fetching theirs works.
    PushRejected for any other refusal (the tags made here are dropped too: nothing half-done is left)."""
    ok, rejected, first = git.push_atomic(remote, [f"refs/tags/{t}:refs/tags/{t}" for t in tags], root)
    if ok and len(rejected) < len(tags):
        return True
    for name in made:
        git.delete_unpublished_tag(name, root)
    if ok:
        # the remote had every one of them already, byte for byte: another runner made the very same tags in
        # the same second; they are its registration, not ours (the caller refetches and reports it)
        return False
    lost = [r for r, why in rejected if any(w in why for w in _LOST)]
    # two pushes landing at once: the loser's ref transaction cannot take the lock ("atomic transaction failed")
    contended = rejected and all(any(w in why for w in _CONTENDED) for _, why in rejected)
    if lost or contended:
        return False
    reasons = "; ".join(f"{r.removeprefix('refs/tags/')}: {why}" for r, why in rejected) or first
    raise PushRejected(f"{remote} refused the push: {reasons or 'unknown reason'}",
                       hint=f"check your permissions and protected-tag rules on '{remote}'; nothing was tagged")
