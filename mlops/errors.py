"""One error root; the CLI's single handler maps these to exit codes and one-line messages."""

from __future__ import annotations

from typing import Any


class MlopsError(Exception):
    """An expected failure: bad input, a failed gate, a refused push. Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ParamsInvalid(MlopsError):
    """params.yaml (or another config file) is missing, unreadable or fails its schema."""


class DataInvalid(MlopsError):
    """The raw data breaks its declared schema or limits."""


class ValidationFailed(MlopsError):
    """A data or model validation check failed its condition."""


class ModelInvalid(MlopsError):
    """A saved model or its feature schema is missing or does not match."""


class GateFailed(MlopsError):
    """A promotion gate failed. Carries the gate report (a `mlops.gates.GateReport`, typed loosely because this
    module sits below it), which the CLI's one handler renders as a table for `gate` and `promote` alike."""

    def __init__(self, message: str, *, hint: str | None = None, report: Any = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


class RefNotFound(MlopsError):
    """A git ref, revision or tag does not exist."""


class GitError(MlopsError):
    """A git command failed."""


class DvcError(MlopsError):
    """A DVC command failed or a DVC file is missing or malformed."""


class ReproFailed(DvcError):
    """`dvc repro` failed; carries what it got to (a `mlops.dvc.ReproResult`) so the report can say so."""

    def __init__(self, message: str, *, hint: str | None = None, result: Any = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


class RegistryError(MlopsError):
    """The registry refused an operation (dirty tree, wrong branch, tag conflict...)."""


class PushRejected(RegistryError):
    """The remote refused a push."""


class GitHubError(MlopsError):
    """The GitHub API refused a request or is unreachable."""


class ReportError(MlopsError):
    """A report could not be built or its inputs are malformed."""


class SideUnavailable(ReportError):
    """One side of the comparison (main, production) cannot be had: its outputs are in neither the cache nor the
    remote and recomputing them failed. The report goes on without that side and says why."""


class TagConflict(RegistryError):
    """A registry tag name already exists and points at another commit (tags are never moved)."""


class NothingToRollBack(RegistryError):
    """No earlier version to roll a stage back to."""


class GitHubPermissionError(GitHubError):
    """The GitHub token lacks a permission (401/403) or cannot see the repository or pull request (404)."""


class MissingExtra(MlopsError):
    """A command needs an optional part of the toolkit that is not installed (`pip install "mlops[EXTRA]"`)."""


class ArtifactNotFound(MlopsError):
    """No model artifact can be resolved from params.yaml and dvc.yaml (or the named one is not declared)."""


class ModelStoreError(MlopsError):
    """The model store refused a model: missing files, a checksum that does not match its tag, a bad layout."""


class ServeError(MlopsError):
    """The model server cannot start or refused an operation (no model, bad settings, admin call failed)."""


class DeployError(MlopsError):
    """A deployment could not be planned or applied (target unreachable, artifact not fetched, manifest invalid)."""


class SmokeTestFailed(DeployError):
    """The candidate failed its smoke test or canary window: traffic stays on the old version."""


class InitError(MlopsError):
    """The project cannot take the mlops workflows as it is (not a DVC repo, params.yaml unreadable...)."""


class SweepError(MlopsError):
    """A parameter sweep cannot run as asked: a key params.yaml lacks, a value of the wrong type, bad syntax in a
    `/mlops` comment, more settings than allowed, or an experiment that is not on the leaderboard."""
