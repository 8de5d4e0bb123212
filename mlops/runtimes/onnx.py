"""The onnx runtime: an ONNX graph run by onnxruntime (CPU, one intra-op and one inter-op thread per session: a
serving worker is one process per core).

Inputs: a graph with one input takes mlops.features' matrix (category codes) in the input's float type; a graph
with one input per interface input (what skl2onnx makes of a pipeline with a ColumnTransformer) takes one [n, 1]
column each, strings for category and string inputs. Outputs: regression, the first output; classifiers, the
probabilities (a float tensor [n, k] in the manifest's `classes` order, or skl2onnx's ZipMap, a list of
{class: p} maps, matched by class name).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.errors import ModelInvalid
from mlops.formats.manifest import Manifest
from mlops.runtimes.base import BaseRuntime, require

if TYPE_CHECKING:
    from numpy.typing import NDArray

_FLOATS = {"tensor(float)": "float32", "tensor(double)": "float64"}
_COLUMN_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
                 "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(string)": "object"}


class OnnxRuntime(BaseRuntime):
    name: ClassVar[str] = "onnx"

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        super().__init__(manifest, directory)
        require("onnxruntime", "onnx", "onnx")
        import numpy as np
        import onnxruntime as ort

        path = self.file()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # warnings about unused initializers are not the user's business
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types from C++
            raise ModelInvalid(f"{path}: not a loadable ONNX model: {str(exc).splitlines()[0]}") from None
        inputs = self.session.get_inputs()
        names = self.interface.names
        by_name = {i.name: i for i in inputs}
        if len(inputs) == 1 and inputs[0].name not in names:
            inp = inputs[0]
            self._no_text()
            if inp.type not in _FLOATS:
                raise ModelInvalid(f"{path}: its one input '{inp.name}' is {inp.type}; a matrix input must be "
                                   "tensor(float) or tensor(double)")
            width = inp.shape[-1] if inp.shape else None
            if isinstance(width, int) and width != len(names):
                raise ModelInvalid(f"{path}: its input takes {width} columns, the interface lists {len(names)}")
            self.takes_matrix = True
            self.dtype = np.dtype(_FLOATS[inp.type]).type
            self._input = inp.name
            self._column_types: dict[str, str] = {}
        elif set(by_name) == set(names):
            bad = [i for i in inputs if i.type not in _COLUMN_TYPES]
            if bad:
                raise ModelInvalid(f"{path}: input '{bad[0].name}' has the unsupported type {bad[0].type}")
            self.takes_matrix = False
            self._column_types = {i.name: _COLUMN_TYPES[i.type] for i in inputs}
        else:
            raise ModelInvalid(f"{path}: its inputs ({', '.join(sorted(by_name))}) are neither one matrix nor one "
                               "per interface input", hint="name the graph's inputs after the interface's inputs")
        outputs = self.session.get_outputs()
        self._output = outputs[0].name
        if manifest.task != "regression":
            probs = [o for o in outputs if "prob" in o.name.lower()] or outputs[1:2]
            if not probs:
                raise ModelInvalid(f"{path}: a {manifest.task} model needs a probability output; the graph has "
                                   f"{', '.join(o.name for o in outputs)}")
            self._output = probs[0].name

    def _run(self, feed: dict[str, Any]) -> NDArray[Any]:
        import numpy as np

        (out,) = self.session.run([self._output], feed)
        if isinstance(out, list):  # ZipMap: one {class: probability} per row
            classes = list(self.manifest.classes or ())
            try:
                return np.array([[row[self._key(row, c)] for c in classes] for row in out], dtype=np.float64)
            except KeyError as exc:
                raise ModelInvalid(f"onnx model: its probabilities have no class {exc}; the manifest's classes "
                                   f"are {classes}") from None
        return np.asarray(out, dtype=np.float64)

    @staticmethod
    def _key(row: dict[Any, Any], name: str) -> Any:
        if name in row:
            return name
        for k in row:
            if str(k) == name:
                return k
        raise KeyError(name)

    def _matrix(self, matrix: NDArray[Any]) -> NDArray[Any]:
        import numpy as np

        return self._run({self._input: np.ascontiguousarray(matrix, dtype=self.dtype)})

    def _values(self, columns: dict[str, list[Any]]) -> NDArray[Any]:
        import numpy as np

        feed: dict[str, Any] = {}
        for name, kind in self._column_types.items():
            values = columns[name]
            if kind == "object":
                arr = np.array(["" if v is None else str(v) for v in values], dtype=object)
            elif kind.startswith("float"):
                arr = np.array([np.nan if v is None else v for v in values], dtype=kind)
            else:
                if any(v is None for v in values):
                    raise ModelInvalid(f"onnx model: input '{name}' is {kind} in the graph and cannot take null")
                arr = np.array(values, dtype=kind)
            feed[name] = arr.reshape(-1, 1)
        return self._run(feed)
