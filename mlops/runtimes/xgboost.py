"""The xgboost runtime: a Booster saved with xgboost's own format (UBJSON or JSON, never pickle), bound to the
interface's names and types and predicted on mlops.features' float32 matrix (category codes) through the same
fast path the server uses (`mlops.features.make_predictor`: xgboost's C prediction, kept only when it equals
`inplace_predict` bit for bit). Binary: P(label 1); multiclass (multi:softprob): a column per class; regression:
the value."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.errors import ModelInvalid
from mlops.features import bind_booster, make_predictor
from mlops.formats.manifest import Manifest
from mlops.runtimes.base import BaseRuntime, require

if TYPE_CHECKING:
    from numpy.typing import NDArray


class XGBoostRuntime(BaseRuntime):
    name: ClassVar[str] = "xgboost"
    takes_matrix = True

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        super().__init__(manifest, directory)
        self._no_text()
        require("xgboost", "xgboost", "xgboost")
        import xgboost as xgb

        path = self.file()
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as exc:
            raise ModelInvalid(f"{path}: not a readable xgboost model: {str(exc).splitlines()[0]}") from None
        bind_booster(booster, self.interface, str(path))
        self.booster = booster
        self._predict = make_predictor(booster)

    def _matrix(self, matrix: NDArray[Any]) -> NDArray[Any]:
        return self._predict(matrix)
