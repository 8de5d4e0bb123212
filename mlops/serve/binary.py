"""The binary tensor extension of the Open Inference Protocol (Triton's `binary_tensor_data`, also KServe's), and the
raw tensor encoding that gRPC's `raw_input_contents` / `raw_output_contents` share with it.

A binary request is the JSON request header followed by the raw tensors, in input order, of the inputs whose
`parameters.binary_data_size` gives their byte length; `Inference-Header-Content-Length` gives the header's length.
A raw tensor is little-endian and row-major, BOOL one byte per element, BYTES each element as a 4-byte length then
its bytes. An output goes back raw when the request asks for it (`parameters.binary_data: true` on a requested
output, or `parameters.binary_data_output: true` on the request): the response is then the JSON header, with
`parameters.binary_data_size` on those outputs in place of `data`, followed by their raw tensors, and its
`Inference-Header-Content-Length` header says where the JSON ends.

The codec turns a request into the very document a JSON request is (tensors' `data` as lists of Python values), so
that the one validation of mlops.features judges both; a raw tensor that does not match its datatype and shape is a
FeatureError naming the input.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from mlops.features import FeatureError

JSON = b"application/json"
OCTETS = b"application/octet-stream"
HEADER_LENGTH = b"inference-header-content-length"
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY

# struct format character and size of one element, per fixed-size datatype (little-endian: the "<" of the format).
FIXED: dict[str, tuple[str, int]] = {
    "BOOL": ("B", 1), "UINT8": ("B", 1), "UINT16": ("H", 2), "UINT32": ("I", 4), "UINT64": ("Q", 8),
    "INT8": ("b", 1), "INT16": ("h", 2), "INT32": ("i", 4), "INT64": ("q", 8),
    "FP16": ("e", 2), "BF16": ("H", 2), "FP32": ("f", 4), "FP64": ("d", 8),
}
DATATYPES = frozenset({*FIXED, "BYTES"})
# numpy dtypes of the fixed-size datatypes, for encoding outputs (BF16 is not one numpy knows).
_NP = {"BOOL": "|b1", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
       "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def elements(shape: Any, name: str) -> int:
    """The element count of SHAPE (a list of non-negative integers); FeatureError naming the input otherwise."""
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise FeatureError(f"input '{name}': shape must be a list of non-negative integers, got {shape!r}",
                           field=name)
    count = 1
    for d in shape:
        count *= d
    return count


def decode_tensor(raw: bytes | memoryview, datatype: Any, shape: Any, name: str) -> list[Any]:
    """The flat list of Python values in a raw tensor (what `data` of a JSON tensor holds); FeatureError naming the
    input when the bytes do not fit its datatype and shape."""
    count = elements(shape, name)
    if datatype == "BYTES":
        return _decode_bytes(bytes(raw), count, name)
    fixed = FIXED.get(datatype) if type(datatype) is str else None
    if fixed is None:
        raise FeatureError(f"input '{name}': datatype {datatype!r} is not an Open Inference Protocol datatype "
                           f"({', '.join(sorted(DATATYPES))})", field=name)
    code, size = fixed
    if len(raw) != count * size:
        raise FeatureError(f"input '{name}': {len(raw)} bytes of binary data for shape {shape} of {datatype} "
                           f"(expected {count * size})", field=name)
    values = list(struct.unpack(f"<{count}{code}", raw))
    if datatype == "BOOL":
        if any(v > 1 for v in values):
            raise FeatureError(f"input '{name}': a BOOL element is not 0 or 1", field=name)
        return [v == 1 for v in values]
    if datatype == "BF16":  # the high half of a float32
        return list(struct.unpack(f"<{count}f", struct.pack(f"<{count}I", *(v << 16 for v in values))))
    return values


def _decode_bytes(raw: bytes, count: int, name: str) -> list[Any]:
    out: list[Any] = []
    pos, end = 0, len(raw)
    while pos < end:
        if pos + 4 > end:
            raise FeatureError(f"input '{name}': BYTES element {len(out)} is cut short (its 4-byte length)",
                               field=name)
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > end:
            raise FeatureError(f"input '{name}': BYTES element {len(out)} says {n} bytes, {end - pos} are left",
                               field=name)
        try:
            out.append(raw[pos:pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise FeatureError(f"input '{name}': BYTES element {len(out)} is not UTF-8 text", field=name) from None
        pos += n
    if len(out) != count:
        raise FeatureError(f"input '{name}': {len(out)} BYTES elements for {count} in its shape", field=name)
    return out


def _flat(data: Any) -> list[Any]:
    if type(data) is not list:
        return [data]
    if not data or type(data[0]) is not list:
        return data
    return [x for row in data for x in _flat(row)]


def encode_tensor(data: Any, datatype: str) -> bytes:
    """DATA (a numpy array or a possibly nested list, row-major) as a raw tensor of DATATYPE."""
    if datatype == "BYTES":
        values = data.ravel().tolist() if hasattr(data, "ravel") else _flat(data)
        parts: list[bytes] = []
        for v in values:
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    dtype = _NP.get(datatype)
    if dtype is None:
        raise ValueError(f"cannot encode an output of datatype {datatype!r}")
    import numpy as np

    return np.ascontiguousarray(np.asarray(data, dtype=dtype)).tobytes()


def _param(params: Any, key: str, where: str, field: str) -> bool | None:
    """A boolean flag among PARAMS (an object or absent); FeatureError when it is there but not a boolean."""
    if type(params) is not dict or key not in params:
        return None
    value = params[key]
    if type(value) is not bool:
        raise FeatureError(f"{where}: parameter '{key}' must be true or false, got {value!r}", field=field)
    return value


class BinaryCodec:
    """One V2 REST request and its response: JSON, or JSON with binary tensors (see the module's docstring).

    `decode` gives the request document with every tensor's `data` filled in; `encode` gives the response body,
    its content type and its extra headers. Made per request: it keeps which outputs the request asked raw.
    """

    __slots__ = ("_all", "_header", "_outputs")

    def __init__(self, header_length: bytes | None) -> None:
        self._header = header_length
        self._all = False
        self._outputs: dict[str, bool] = {}

    @property
    def binary_request(self) -> bool:
        return self._header is not None

    def decode(self, body: bytes) -> Any:
        from mlops.serve.app import parse_json  # the one JSON reader (it names a non-finite number's field)

        if self._header is None:
            doc = parse_json(body)
        else:
            n = self._header_length(len(body))
            doc = parse_json(body[:n])
            if type(doc) is dict:
                self._fill(doc, memoryview(body)[n:])
        if type(doc) is dict:
            self._requested(doc)
        return doc

    def _header_length(self, size: int) -> int:
        raw = self._header or b""
        text = raw.decode("latin-1").strip()
        if not text.isdigit() or int(text) > size:
            raise FeatureError(f"Inference-Header-Content-Length {text[:40]!r}: expected the byte length of the JSON "
                               f"header, at most the body's {size} bytes", field="Inference-Header-Content-Length")
        return int(text)

    @staticmethod
    def _fill(doc: dict[str, Any], rest: memoryview) -> None:
        inputs = doc.get("inputs")
        if type(inputs) is not list:
            return  # the validation names it
        pos = 0
        for k, tensor in enumerate(inputs):
            if type(tensor) is not dict:
                continue
            params = tensor.get("parameters")
            if type(params) is not dict or "binary_data_size" not in params:
                continue
            name = tensor.get("name")
            name = name if type(name) is str else f"inputs[{k}]"
            size = params["binary_data_size"]
            if type(size) is not int or size < 0:
                raise FeatureError(f"input '{name}': parameter 'binary_data_size' must be a byte count, got "
                                   f"{size!r}", field=name)
            if "data" in tensor:
                raise FeatureError(f"input '{name}': 'data' and 'binary_data_size' both given (one or the other)",
                                   field=name)
            if pos + size > len(rest):
                raise FeatureError(f"input '{name}': binary_data_size {size} goes past the end of the body "
                                   f"({len(rest) - pos} bytes left)", field=name)
            tensor["data"] = decode_tensor(rest[pos:pos + size], tensor.get("datatype"), tensor.get("shape"), name)
            pos += size
        if pos != len(rest):
            raise FeatureError(f"{len(rest) - pos} bytes after the JSON header belong to no input (the inputs' "
                               "binary_data_size add up to less)", field="binary_data_size")

    def _requested(self, doc: dict[str, Any]) -> None:
        self._all = bool(_param(doc.get("parameters"), "binary_data_output", "the request", "parameters"))
        outputs = doc.get("outputs")
        if type(outputs) is not list:
            return
        for k, out in enumerate(outputs):
            if type(out) is not dict:
                continue
            name = out.get("name")
            where = f"output '{name}'" if type(name) is str else f"outputs[{k}]"
            params = out.get("parameters")
            if type(params) is dict and params.get("classification"):
                raise FeatureError(f"{where}: the classification extension is not supported (ask for the output "
                                   "itself)", field="outputs")
            flag = _param(params, "binary_data", where, "outputs")
            if flag is not None and type(name) is str:
                self._outputs[name] = flag

    def encode(self, payload: dict[str, Any]) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
        outputs: Sequence[dict[str, Any]] = payload.get("outputs") or ()
        raw = [self._outputs.get(o["name"], self._all) for o in outputs]
        if not any(raw):
            return orjson.dumps(payload, option=_DUMPS_OPTS), JSON, []
        head: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        for out, binary in zip(outputs, raw, strict=True):
            if not binary:
                head.append(out)
                continue
            data = encode_tensor(out["data"], out["datatype"])
            chunks.append(data)
            head.append({**{k: v for k, v in out.items() if k != "data"},
                         "parameters": {**(out.get("parameters") or {}), "binary_data_size": len(data)}})
        header = orjson.dumps({**payload, "outputs": head}, option=_DUMPS_OPTS)
        return header + b"".join(chunks), OCTETS, [(HEADER_LENGTH, str(len(header)).encode())]


class Codec(Protocol):
    """How a V2 inference request other than plain JSON reaches the REST handler, and how its answer leaves it."""

    def decode(self, body: bytes) -> Any:
        """The request document (tensors' `data` filled in); FeatureError naming the field."""

    def encode(self, payload: dict[str, Any]) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
        """The response body, its content type and extra headers, for the handler's answer PAYLOAD."""
