"""The model package: manifest, interface, golden records and reference profile, written for any model.

    from mlops.package import PackageRequest, package_model
    package_model(PackageRequest(Path("models/model.skops"), Path("data/test.csv"), target="churn", task="binary"))

See mlops.packaging (the one writer, which the churn train stage calls too) for what is inferred and how, and
mlops.formats.manifest for the files' contract.
"""

from mlops.package.build import PackageRequest, PackageResult, infer_runtime, package_model, read_table

__all__ = ["PackageRequest", "PackageResult", "infer_runtime", "package_model", "read_table"]
