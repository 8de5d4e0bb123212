"""deploy capability: deliver a registered model version to serving (local `mlops serve`, or KServe).

Knows neither the registry nor GitHub: the job resolves NAME@vX.Y.Z (or a stage) to a `Release` from its tag,
and assigns the stage tag once this capability says the candidate passed.
"""

from mlops.deploy.client import Server, ServerState
from mlops.deploy.cluster import KServePlan, apply_kserve, plan_kserve
from mlops.deploy.fetch import FetchedArtifact, Release, fetch_release, release_from_block
from mlops.deploy.kserve import Delivered, Manifest
from mlops.deploy.local import CanaryFailed, LocalOutcome, LocalPlan, apply_local, plan_local
from mlops.deploy.smoke import Check

__all__ = ["CanaryFailed", "Check", "Delivered", "FetchedArtifact", "KServePlan", "LocalOutcome", "LocalPlan",
           "Manifest", "Release", "Server", "ServerState", "apply_kserve", "apply_local", "fetch_release",
           "plan_kserve", "plan_local", "release_from_block"]
