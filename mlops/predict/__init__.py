"""Batch scoring (`mlops predict`): a registered model version over a table too big for one request, locally in
record batches or on a Dask cluster, one task per partition.

The job (mlops.jobs.predict) resolves the version and fetches it through deploy's verified fetch; this package
gets the verified files as a ModelSource (bytes or a URL, and the sha256 of each) and never reads the registry,
git or DVC. Every process that predicts loads the model itself and checks it against those hashes first.
"""

from mlops.predict.batch import BatchResult, OutputSpec, Reject, run_dask, run_local, score_partition
from mlops.predict.model import ModelSource, ModelTampered, PredictError, load, source_from_directory
from mlops.predict.tables import Partition, format_of, normalise, plan_partitions

__all__ = ["BatchResult", "ModelSource", "ModelTampered", "OutputSpec", "Partition", "PredictError", "Reject",
           "format_of", "load", "normalise", "plan_partitions", "run_dask", "run_local", "score_partition",
           "source_from_directory"]
