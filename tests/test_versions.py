"""mlops.versions, the one SemVer: strict parsing, SemVer 2.0 precedence, bumps; and every other place that orders
or checks versions (registry, model store, params.yaml) agrees with it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mlops import modelstore, versions
from mlops.config import RegistryParams
from mlops.errors import ModelStoreError
from mlops.registry.tags import ArtifactState, VersionInfo
from mlops.versions import InvalidVersion, Version

# SemVer 2.0.0 §11's own example, in precedence order, then more releases
ORDERED = ["v1.0.0-alpha", "v1.0.0-alpha.1", "v1.0.0-alpha.beta", "v1.0.0-beta", "v1.0.0-beta.2", "v1.0.0-beta.11",
           "v1.0.0-rc.1", "v1.0.0", "v1.0.1", "v1.2.0", "v1.10.0", "v2.0.0-0", "v2.0.0"]


def test_parse_and_render_round_trip() -> None:
    v = Version.parse("v1.2.3-rc.1.x-y+build.7")
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == (1, 2, 3, ("rc", "1", "x-y"), ("build", "7"))
    assert str(v) == "v1.2.3-rc.1.x-y+build.7"
    assert str(Version.parse("v0.0.0")) == "v0.0.0"


@pytest.mark.parametrize("text", [
    "1.0.0", "v1.0", "v1.0.0\n", "v1.0.0 ", " v1.0.0", "v01.0.0", "v1.00.0", "v1.0.0-", "v1.0.0-01",
    "v1.0.0-rc..1", "v1.0.0+", "v1.0.0+a..b", "v1.0.0-rc_1", "V1.0.0", "v1.0.0-\u0661", "v\u0661.0.0",
    "v1.0.0/../x", "", "v" + "1" * 200 + ".0.0",
])
def test_strict_parsing_refuses(text: str) -> None:
    assert not versions.is_valid(text)
    with pytest.raises(InvalidVersion):
        Version.parse(text)
    with pytest.raises(ValueError):  # usable in pydantic validators
        versions.check(text)


def test_precedence_is_semver_2() -> None:
    shuffled = ORDERED[:]
    random.Random(7).shuffle(shuffled)
    assert versions.ordered(shuffled) == ORDERED
    assert versions.compare("v1.0.0-rc.2", "v1.0.0-rc.10") == -1  # numerically, not as strings
    assert versions.compare("v1.0.0+build.1", "v1.0.0+build.2") == 0  # build metadata is ignored
    assert versions.compare("v1.0.0", "v1.0.0-rc.1") == 1
    assert Version.parse("v1.0.0+a") != Version.parse("v1.0.0+b")  # different versions, same precedence
    assert versions.latest(["v1.0.0-rc.2", "v1.0.0-rc.10", "v0.9.0"]) == "v1.0.0-rc.10"
    assert versions.latest([]) is None


@pytest.mark.parametrize(("version", "part", "expected"), [
    ("v1.2.3", "patch", "v1.2.4"), ("v1.2.3", "minor", "v1.3.0"), ("v1.2.3", "major", "v2.0.0"),
    ("v1.2.3-rc.1+b", "minor", "v1.3.0"),
])
def test_bump(version: str, part: str, expected: str) -> None:
    assert versions.bump(version, part) == expected


def test_bump_refuses_unknown_parts_and_versions() -> None:
    with pytest.raises(InvalidVersion):
        versions.bump("v1.0.0", "mega")
    with pytest.raises(InvalidVersion):
        versions.bump("1.0.0", "patch")


def _info(version: str) -> VersionInfo:
    return VersionInfo("m", version, f"m@{version}", "c" * 40, "", "", "")


def test_registry_and_store_agree_on_latest_with_pre_releases(tmp_path: Path) -> None:
    """The registry compared pre-releases as strings (rc.10 < rc.2) and the store numerically: the registry's
    latest and the server's first version disagreed."""
    found = ["v1.0.0-rc.2", "v1.0.0-rc.10", "v1.0.0-rc.9"]
    art = ArtifactState("m", {v: _info(v) for v in found})
    latest = art.latest()
    assert latest is not None and latest.version == "v1.0.0-rc.10"
    for v in found:
        d = tmp_path / "m" / v
        d.mkdir(parents=True)
        (d / modelstore.META_FILE).write_text("{}")
    assert modelstore.latest(tmp_path, "m") == "v1.0.0-rc.10"
    assert modelstore.versions(tmp_path, "m") == ["v1.0.0-rc.2", "v1.0.0-rc.9", "v1.0.0-rc.10"]


def test_store_and_params_use_the_strict_grammar() -> None:
    for bad in ("v1.0.0\n", "1.0.0", "v1.0.0-01"):
        with pytest.raises(ModelStoreError):
            modelstore.check_version(bad)
    assert modelstore.check_version("v1.0.0-rc.1+b") == "v1.0.0-rc.1+b"
    assert RegistryParams(first_version="v0.1.0-rc.1").first_version == "v0.1.0-rc.1"
    with pytest.raises(ValueError, match="first_version"):
        RegistryParams(first_version="v1.0.0\n")
