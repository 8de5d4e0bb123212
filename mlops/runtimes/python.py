"""The python runtime: the escape hatch. A class of the project's own, in a module that travels in the package:

    class ChurnModel:
        @classmethod
        def load(cls, directory: pathlib.Path) -> "ChurnModel": ...   # reads its own files from the package
        def predict(self, records: list[dict]) -> list[float] | list[list[float]]: ...

`predict` gets the records checked by the interface's rules (mlops.features: ints are ints, categories are among
theirs, null only where nullable) and answers per row: binary, P(positive class); multiclass, one probability per
class in the manifest's `classes` order; regression, the value. The manifest names it `entrypoint: FILE.py:CLASS`.
Its module runs code when it is imported: mlops.runtimes imports it only after the caller's sha256 check. It is
imported under a name of its own (not on sys.path): keep the class in one module, with the packages it imports
installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.errors import ModelInvalid
from mlops.files import sha256_file
from mlops.formats.manifest import Manifest
from mlops.runtimes.base import BaseRuntime

if TYPE_CHECKING:
    from numpy.typing import NDArray


def load_class(path: Path, name: str) -> Any:
    """Class NAME of the module in PATH, imported under a name derived from its bytes."""
    module_name = f"mlops_model_{sha256_file(path)[:16]}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ModelInvalid(f"{path}: not an importable Python module")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the project's own code: any failure is its model failing to load
            raise ModelInvalid(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from None
        sys.modules[module_name] = module
    cls = getattr(module, name, None)
    if cls is None or not callable(getattr(cls, "load", None)):
        raise ModelInvalid(f"{path}: has no class '{name}' with a load(directory) method",
                           hint="see mlops/runtimes/python.py for the class the python runtime expects")
    return cls


class PythonRuntime(BaseRuntime):
    name: ClassVar[str] = "python"
    takes_matrix = False

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        super().__init__(manifest, directory)
        assert manifest.entrypoint is not None  # the manifest's reader requires it for this runtime
        file_part, _, cls_name = manifest.entrypoint.partition(":")
        cls = load_class(directory / file_part, cls_name)
        try:
            self.model = cls.load(directory)
        except Exception as exc:  # the project's own code
            raise ModelInvalid(f"{directory / file_part}: {cls_name}.load failed: {type(exc).__name__}: {exc}") \
                from None
        if not callable(getattr(self.model, "predict", None)):
            raise ModelInvalid(f"{directory / file_part}: {cls_name}.load returned an object without predict")

    def _values(self, columns: dict[str, list[Any]]) -> NDArray[Any]:
        import numpy as np

        names = list(columns)
        records = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        out = np.asarray(self.model.predict(records), dtype=np.float64)
        if out.shape[0] != len(records):
            raise ModelInvalid(f"python model: predict answered {out.shape[0]} rows for {len(records)} records")
        return out
