"""SemVer for model versions (`vX.Y.Z[-pre][+build]`): the one parser and the one precedence order.

Registry tags (`NAME@vX.Y.Z`), the model store's version directories, `registry.first_version` and every sort of
versions go through this module, so that the registry's "latest" and the store's "latest" cannot disagree.

- Parsing is strict (SemVer 2.0.0's grammar, ASCII only, the whole string: `v1.0.0\n` is refused) and the `v` is
  required: it is part of GTO's tag names.
- Precedence is SemVer 2.0.0 §11: major, minor, patch numerically; a pre-release sorts before its release;
  pre-release identifiers compare numerically when both are numeric, numeric before alphanumeric, otherwise in
  ASCII order, and a longer list wins when the shorter is its prefix (`rc.2 < rc.10`, `alpha < alpha.1`); build
  metadata is ignored.
- A bump drops pre-release and build parts: `v1.2.3-rc.1` + minor is `v1.3.0` (what `mlops promote` has always done).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mlops.errors import MlopsError

Bump = Literal["patch", "minor", "major"]
BUMPS: tuple[Bump, ...] = ("patch", "minor", "major")

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
PATTERN = (rf"v(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
           rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?")
"""The grammar as a regular expression (no anchors), for callers that embed it in a larger pattern (tag names)."""
_VERSION = re.compile(PATTERN, re.ASCII)
_MAX_LEN = 128  # a longer "version" is not a version anyone meant; it also bounds what a tag name can carry


class InvalidVersion(MlopsError, ValueError):
    """A string is not a SemVer version `vX.Y.Z[-pre][+build]` (a ValueError too, for pydantic validators)."""


@dataclass(frozen=True, slots=True)
class Version:
    """One parsed version. `==` compares all parts (build included); order and `compare` follow SemVer precedence,
    which ignores build metadata."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """TEXT as a Version; InvalidVersion naming it when it does not match the grammar exactly."""
        if not isinstance(text, str) or len(text) > _MAX_LEN:
            raise InvalidVersion(f"{text!r} is not a version (vX.Y.Z[-pre][+build])")
        m = _VERSION.fullmatch(text)
        if m is None:
            raise InvalidVersion(f"{text!r} is not a version (vX.Y.Z[-pre][+build])",
                                 hint="SemVer with a leading v, e.g. v1.2.0 or v1.2.0-rc.1")
        pre, build = m["pre"], m["build"]
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), tuple(pre.split(".")) if pre else (),
                   tuple(build.split(".")) if build else ())

    def __str__(self) -> str:
        text = f"v{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """The precedence sort key (build metadata left out)."""
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key

    def __le__(self, other: Version) -> bool:
        return self.key <= other.key

    def __gt__(self, other: Version) -> bool:
        return self.key > other.key

    def __ge__(self, other: Version) -> bool:
        return self.key >= other.key

    def bump(self, part: str) -> Version:
        """The next version after this one by PART (patch, minor or major); pre-release and build dropped."""
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        if part == "patch":
            return Version(self.major, self.minor, self.patch + 1)
        raise InvalidVersion(f"cannot bump {self} by {part!r}", hint=f"one of {', '.join(BUMPS)}")


def parse(text: str) -> Version:
    return Version.parse(text)


def is_valid(text: object) -> bool:
    return isinstance(text, str) and len(text) <= _MAX_LEN and _VERSION.fullmatch(text) is not None


def check(text: str) -> str:
    """TEXT unchanged when it is a version; InvalidVersion otherwise."""
    Version.parse(text)
    return text


def key(text: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    """Sort key of a version string in SemVer precedence (InvalidVersion when it is not one)."""
    return Version.parse(text).key


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as A has lower, equal or higher precedence than B (build metadata ignored)."""
    ka, kb = key(a), key(b)
    return (ka > kb) - (ka < kb)


def bump(text: str, part: str) -> str:
    """`v1.2.3` + `minor` -> `v1.3.0`."""
    return str(Version.parse(text).bump(part))


def latest(texts: Iterable[str]) -> str | None:
    """The highest of TEXTS in precedence (the first of equals), or None when empty."""
    return max(texts, key=key, default=None)


def ordered(texts: Iterable[str]) -> list[str]:
    """TEXTS sorted oldest first in precedence (stable for equals)."""
    return sorted(texts, key=key)
