"""Plan, then push with retries: the one write loop of promote, rollback and deploy's stage assignment.

Each attempt fetches the artifact's tags, plans from what the registry says now, creates the plan's tags and
pushes them (with any tag the plan stands on that the remote lacks) in one `git push --atomic`. A push that loses
a race to a concurrent promotion drops what it made, fetches and plans again, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from mlops import git
from mlops.errors import GitError, RegistryError, TagConflict
from mlops.progress import Progress
from mlops.registry import publish
from mlops.registry.publish import NewTag
from mlops.registry.tags import TagEvent, read_events

T = TypeVar("T")


@dataclass(frozen=True)
class Plan(Generic[T]):
    outcome: T  # what the caller reports when the plan is carried out
    tags: list[NewTag]  # tags to create
    relies: tuple[str, ...] = ()  # existing tags the outcome stands on: published with the new ones if needed


@dataclass(frozen=True)
class Applied(Generic[T]):
    outcome: T
    created: tuple[str, ...]
    pushed: bool  # False: --no-push, or nothing to push
    attempts: int
    published: tuple[str, ...]  # tags made earlier (e.g. with --no-push) that this run pushed


def check_remote(remote: str | None, root: Path) -> str | None:
    """REMOTE when pushing (None: --no-push); RegistryError when it does not exist."""
    if remote is not None and not git.remote_exists(remote, root):
        raise RegistryError(f"no git remote '{remote}' to push the registry tags to",
                            hint="add the remote, pass --remote NAME, or --no-push to tag locally only")
    return remote


def _fetch(remote: str | None, root: Path, progress: Progress, artifact: str) -> None:
    if remote is None:
        return
    progress(f"registry: fetching {artifact}'s tags from {remote}")
    try:
        git.fetch_tags(remote, root, [artifact])
    except GitError as exc:
        raise TagConflict(f"cannot fetch the registry tags from {remote}: {exc.message}",
                          hint="a local tag differs from the remote's one of the same name (tags are never moved: "
                               "delete the local one if it was never published), or the remote is unreachable"
                          ) from None


def _unpublished(plan: Plan[T], remote: str | None, root: Path) -> tuple[str, ...]:
    """The existing tags PLAN's outcome stands on that REMOTE lacks (made with --no-push, say): pushed with the
    plan's new tags, so the remote never gets an assignment of a version it does not know."""
    new = {t.name for t in plan.tags}
    wanted = [n for n in dict.fromkeys(plan.relies) if n and n not in new]
    if remote is None or not wanted:
        return ()
    try:
        have = git.remote_tags(remote, wanted, root)
    except GitError as exc:
        raise RegistryError(f"cannot list the registry tags of {remote}: {exc.message}",
                            hint="check that the remote is reachable") from None
    return tuple(n for n in wanted if n not in have)


def apply_with_retries(make_plan: Callable[[list[TagEvent]], Plan[T]], *, root: Path, remote: str | None,
                       artifact: str, attempts: int, progress: Progress, what: str) -> Applied[T]:
    """Fetch, plan (MAKE_PLAN from the registry's events), create, push atomically; retry a lost race.

    WHAT names the tag kind in the error after ATTEMPTS lost races ("registry tag", "stage tag")."""
    for attempt in range(1, attempts + 1):
        _fetch(remote, root, progress, artifact)
        events, _ = read_events(root)
        plan = make_plan(events)
        pending = _unpublished(plan, remote, root)
        created = tuple(t.name for t in plan.tags)
        if not plan.tags and not pending:
            return Applied(plan.outcome, created, False, attempt, ())
        if plan.tags:
            progress(f"registry: creating {', '.join(created)}")
        if pending:
            progress(f"registry: publishing {', '.join(pending)} (made earlier, never pushed)")
        made = publish.create_local(plan.tags, root)
        if remote is None:
            return Applied(plan.outcome, created, False, attempt, ())
        names = [*created, *(p for p in pending if p not in created)]
        if publish.push(names, made, remote, root):
            return Applied(plan.outcome, created, True, attempt, pending)
        progress(f"registry: {remote} already has {' or '.join(names)} (a concurrent promotion won); fetching "
                 f"and recomputing ({attempt}/{attempts})")
    raise RegistryError(f"lost {attempts} races for the next {what} in a row; nothing was tagged",
                        hint="rerun it (it is idempotent), or serialise promotions with a concurrency group")
