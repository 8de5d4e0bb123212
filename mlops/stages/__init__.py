"""Pipeline stages: prepare, validate, train, evaluate; `dvc.yaml` reaches each via `mlops stage NAME`."""

STAGES = ("prepare", "validate", "train", "evaluate")
