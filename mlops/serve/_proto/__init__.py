"""The Open Inference Protocol's gRPC messages: grpc_predict_v2.proto (KServe's, copied unchanged) and the module
protoc generates from it, committed; tests/test_grpc.py checks that regenerating it gives the same file:

    python -m grpc_tools.protoc -I mlops/serve/_proto --python_out=mlops/serve/_proto \\
        mlops/serve/_proto/grpc_predict_v2.proto

(grpcio-tools 1.85; its output needs protobuf's runtime 7.35 or newer, the `grpc` extra.) Only the messages are
generated: the service is registered by mlops.serve.grpc_server with grpc's generic handlers.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def messages() -> Any:
    """The generated module (its message classes are made when it is imported, so they are Any to mypy)."""
    import importlib

    return importlib.import_module("mlops.serve._proto.grpc_predict_v2_pb2")
