"""The lightgbm runtime: a Booster saved as text (`Booster.save_model`), predicted on mlops.features' float64
matrix. A pandas categorical feature is its code in the interface's `categories`, which must be the categories
the model recorded (`pandas_categorical`): that is the DataFrame path of `Booster.predict`, without pandas.
Binary: P(label 1); multiclass: a column per class; regression: the value."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.errors import ModelInvalid
from mlops.formats.manifest import Manifest
from mlops.runtimes.base import BaseRuntime, require

if TYPE_CHECKING:
    from numpy.typing import NDArray


class LightGBMRuntime(BaseRuntime):
    name: ClassVar[str] = "lightgbm"
    takes_matrix = True

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        super().__init__(manifest, directory)
        self._no_text()
        require("lightgbm", "lightgbm", "lightgbm")
        import lightgbm as lgb
        import numpy as np

        self.dtype = np.float64
        path = self.file()
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, OSError, ValueError) as exc:
            raise ModelInvalid(f"{path}: not a readable lightgbm model: {str(exc).splitlines()[0]}") from None
        names = list(booster.feature_name())
        if names != self.interface.names and not all(n.startswith("Column_") for n in names):
            raise ModelInvalid(f"{path}: the model was trained on features {names[:5]}..., its interface lists "
                               f"{self.interface.names[:5]}...", hint="the interface must list the model's "
                               "columns in its order")
        if len(names) != len(self.interface.names):
            raise ModelInvalid(f"{path}: the model takes {len(names)} features, its interface lists "
                               f"{len(self.interface.names)}")
        recorded = [list(map(str, c)) for c in (booster.pandas_categorical or [])]
        declared = [list(f.categories or ()) for f in self.interface.features if f.type == "category"]
        if recorded and recorded != declared:
            raise ModelInvalid(f"{path}: the model's categories differ from its interface's",
                               hint="take the interface's categories from the training frame's categoricals")
        self.booster = booster

    def _matrix(self, matrix: NDArray[Any]) -> NDArray[Any]:
        import numpy as np

        out: NDArray[Any] = self.booster.predict(np.asarray(matrix, dtype=np.float64), num_threads=1)
        return out
